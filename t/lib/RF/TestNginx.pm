package RF::TestNginx;

# Data-block runner for simple nginx cases, in the spirit of Test::Nginx:
# each block of the test file's __DATA__ starts nginx from the RF::Test
# template, sends one request and checks the response and the error log.

use strict;
use warnings;

use base 'Test::Base';

use RF::Test ();
use Test::More ();

our @EXPORT = qw(run_tests run_block);

my $BACKEND;     # started on first use of $RF_BACKEND_PORT, one per file


# Patterns of an error_log / no_error_log section, as [regex, label]: a
# regex (eval filter), a list of them, or text with one pattern per line
# where a line written qr/.../ is a regex and anything else a substring.
sub _patterns {
    my ($v) = @_;
    return () unless defined $v;
    return map { _patterns($_) } @$v if ref $v eq 'ARRAY';
    return [$v, "$v"] if ref $v eq 'Regexp';
    my @p;
    for my $line (grep { /\S/ } split /\n/, $v) {
        $line =~ s/^\s+|\s+$//g;
        if ($line =~ m{^qr/(.*)/([imsx]*)$}) {
            my ($re, $fl) = ($1, $2);
            push @p, [$fl ? qr/(?$fl)$re/ : qr/$re/, $line];
        } else {
            push @p, [qr/\Q$line\E/, $line];
        }
    }
    return @p;
}


sub _uses_backend {
    my ($block) = @_;
    return grep { defined && /\$RF_BACKEND_PORT\b/ }
           map { scalar $block->$_ }
           qw(http_config config main_config http);
}


sub _nginx_opts {
    my ($block, %file_opts) = @_;
    my %o = %file_opts;
    for my $s (qw(http_config config main_config http listen_opts
                  log_level workers)) {
        my $v = $block->$s;
        $o{$s} = $v if defined $v;
    }
    $o{workers} =~ s/\s+//g if defined $o{workers};
    $o{no_module} = 1 if defined $block->no_module;
    if (_uses_backend($block)) {
        $BACKEND //= RF::Test::start_backend();
        $o{vars}{BACKEND_PORT} = $BACKEND->port;
    }
    return %o;
}


sub _check_patterns {
    my ($name, $text, $block) = @_;
    for my $p (_patterns(scalar $block->error_log)) {
        Test::More::like($text, $p->[0], "$name - log has $p->[1]");
    }
    for my $p (_patterns(scalar $block->no_error_log)) {
        Test::More::unlike($text, $p->[0], "$name - log lacks $p->[1]");
    }
}


sub _request {
    my ($block, $port) = @_;
    my $raw = $block->raw_request;
    return RF::Test::http_request($port, $raw, count => 1) if defined $raw;

    my $line = $block->request // "GET /\n";
    $line =~ s/^\s+|\s+$//g;
    my ($method, $uri, $version) = split /\s+/, $line;
    my @headers;
    for (split /\n/, $block->more_headers // '') {
        push @headers, [$1, $2] if /^\s*([^:\s]+)\s*:\s*(.*?)\s*$/;
    }
    return RF::Test::http_req($port, method => $method, uri => $uri,
                              version => $version, headers => \@headers,
                              body => scalar $block->request_body);
}


sub run_block {
    my ($block, %file_opts) = @_;
    my $name = $block->name;
    $name .= ": " . $block->description
        if $block->description ne $name;
    my %o = _nginx_opts($block, %file_opts);

    if (defined $block->must_die) {
        my ($code, $out) = RF::Test::nginx_t(%o);
        Test::More::isnt($code, 0, "$name - nginx -t fails")
            or Test::More::diag($out);
        _check_patterns($name, $out, $block);
        return;
    }

    my $nginx = eval { RF::Test::start_nginx(%o) };
    unless ($nginx) {
        Test::More::fail("$name - nginx starts");
        Test::More::diag($@);
        return;
    }

    my $resp = eval { _request($block, $nginx->port) };
    if ($resp) {
        my $code = $block->error_code // 200;
        $code =~ s/\s+//g;
        Test::More::is($resp->status, $code, "$name - status code");
        Test::More::is($resp->body, $block->response_body,
                       "$name - response body")
            if defined $block->response_body;
        if (defined(my $like = $block->response_body_like)) {
            unless (ref $like) {
                chomp $like;
                $like = qr/$like/;
            }
            Test::More::like($resp->body, $like, "$name - response body like");
        }
        for (split /\n/, $block->response_headers // '') {
            my ($not, $h, $v) = /^\s*(!?)([^:\s]+)\s*(?::\s*(.*?)\s*)?$/
                or next;
            if ($not) {
                Test::More::ok(!defined $resp->header($h),
                               "$name - no header $h");
            } else {
                Test::More::is($resp->header($h), $v, "$name - header $h");
            }
        }
    } else {
        Test::More::fail("$name - request");
        Test::More::diag($@);
    }

    # Stopping first makes sure the log phase of every request is written.
    $nginx->stop;
    my $log = $nginx->error_log_text;
    _check_patterns($name, $log, $block);
    RF::Test::no_errors_in_log($log, "$name - no errors in the log",
                               map { $_->[0] }
                               _patterns(scalar $block->error_log));
}


# Runs every block of the caller's __DATA__.  %opts are start_nginx
# options for every block (e.g. no_module => 1).
sub run_tests {
    my (%opts) = @_;
    # Test::Base runs its own comparison at END unless a plan was made.
    Test::More::plan('no_plan') unless Test::Builder->new->has_plan;
    for my $block (Test::Base::blocks()) {
        run_block($block, %opts);
    }
}

1;

__END__

=head1 NAME

RF::TestNginx - data-block tests of nginx configs, in the style of Test::Nginx

=head1 SYNOPSIS

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::More;
    use RF::TestNginx;

    run_tests();
    done_testing();

    __DATA__

    === TEST 1: capture is off by default
    --- http_config
    replayforge_ring $RF_DIR/ring size=1m;
    --- config
    location / {
        proxy_pass http://127.0.0.1:$RF_BACKEND_PORT;
    }
    --- request
    POST /x?a=1
    --- more_headers
    X-A: 1
    --- request_body chomp
    hello
    --- response_body_like: "len":5

    === TEST 2: a bad value is rejected
    --- config
    location / { replayforge maybe; }
    --- must_die
    --- error_log
    invalid value "maybe"

=head1 DESCRIPTION

The blocks are parsed by Test::Base (so its filters work: C<chomp>,
C<eval>, C<lines> ...; by default a section loses its leading and trailing
blank lines but keeps its last newline, and CRLF becomes LF).  Each block
starts its own nginx with L<RF::Test/start_nginx>, sends one request,
checks the response, stops nginx (so the log phase of the request is
written) and then checks the error log.  Every block that starts nginx
also checks that its log has no C<[error]>, C<[crit]>, C<[alert]>,
C<[emerg]> or sanitizer line, except lines its C<error_log> section
expects.

Sections:

    http_config, config, main_config, http   as in start_nginx
    listen_opts, workers, log_level          as in start_nginx
    no_module          do not load the ReplayForge module
    request            "METHOD URI [VERSION]" (default GET /)
    more_headers       "Name: value" lines, duplicates kept
    request_body       the body (Content-Length is added)
    raw_request        bytes sent as they are (use eval for \r\n)
    error_code         expected status (default 200)
    response_body      exact body
    response_body_like regex for the body (its last newline dropped)
    response_headers   "Name: value" lines (exact value), "!Name" absent
    error_log          patterns the log (or nginx -t output) must have
    no_error_log       patterns it must not have
    must_die           run nginx -t instead and expect it to fail

A pattern is a line: C<qr/.../flags> is a regex, anything else a
substring; with the C<eval> filter a section may also give a qr// or a
list of them.

C<$RF_PORT>, C<$RF_DIR>, C<$RF_TMP> and C<$RF_BUILD> are replaced in the
config sections as in start_nginx; a block whose config uses
C<$RF_BACKEND_PORT> gets the port of a backend (L<RF::Test/start_backend>)
shared by the whole file.

=head1 FUNCTIONS

=head2 run_tests(%start_nginx_opts)

Runs every block of the script's C<__DATA__>; the options apply to every
block (e.g. C<< no_module => 1 >>).  Declares C<no_plan> when the script
has no plan yet (Test::Base would otherwise run its own comparison at
exit); C<done_testing()> after it still works.

=head2 run_block($block, %start_nginx_opts)

Runs one Test::Base block.

=cut
