# What the module captures, read back through the real rf-spoold: every
# method through proxy_pass with all fields right; bodies byte-exact
# (binary, chunked, empty, HTTP/2, keepalive series, unbuffered);
# truncation over replayforge_max_body; off locations, $var, sampling and
# masked headers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::MD5 qw(md5_hex);
use MIME::Base64 qw(decode_base64);
use Test::More;
use RF::Test;

my $backend = start_backend();
my $bport = $backend->port;
my $ring = tempdir() . '/capture.ring';

my %common = (http_config => <<"EOF", config => <<"EOF");
replayforge_ring $ring size=4m;
upstream backend { server 127.0.0.1:$bport; keepalive 8; }
proxy_http_version 1.1;
proxy_set_header Connection "";
EOF
replayforge on;
replayforge_bucket web;
replayforge_mask_header Authorization x-secret;

location / {
    proxy_set_header Connection "";
    proxy_set_header X-Request-Id \$request_id;
    proxy_pass http://backend;
}
location /small/ { replayforge_max_body 1k; proxy_pass http://backend; }
location /stream/ { proxy_request_buffering off; proxy_pass http://backend; }
location /off/ { replayforge off; proxy_pass http://backend; }
location /cond/ { replayforge \$http_x_capture; proxy_pass http://backend; }
location /sampled/ { replayforge_sample 25%; return 204; }
location /local { return 200 "local\\n"; }
EOF

my $nginx = start_nginx(%common);
my $port = $nginx->port;
my $spool = start_spool(ring => $ring, id => 'web-1');

my $seen = 0;       # records read back so far

# The records that arrived since the last call; waits for exactly $n more
# and checks that no extra record shows up.
sub captured {
    my ($n, $what) = @_;
    my $want = $seen + $n;
    wait_until(sub { spool_stats($spool->buffer)->{stored_total} >= $want },
               15, "$want records stored ($what)");
    my @all = spool_dump($spool->buffer);
    is(scalar @all, $want, "$what: exactly $n new records");
    my @new = @all[$seen .. $#all];
    $seen = @all;
    return @new;
}

sub hdr {
    my ($rec, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $rec->{headers} };
}

sub body_of {
    my ($rec) = @_;
    return exists $rec->{body_b64} ? decode_base64($rec->{body_b64})
                                   : do { my $b = $rec->{body};
                                          utf8::encode($b); $b };
}


# ---- every method, every field

my @methods = qw(GET HEAD POST PUT PATCH DELETE);
my @resp;
for my $m (@methods) {
    push @resp, http_req($port, method => $m, uri => "/m/\L$m\E?a=1&b=%20x",
                         headers => [['Host', 'shop.example'],
                                     ['X-Dup', 'one'], ['X-Order', 'mid'],
                                     ['X-Dup', 'two'],
                                     ['Authorization', 'Bearer secret']],
                         body => $m =~ /^(POST|PUT|PATCH)$/ ? "body-$m" : undef);
}
is_deeply([map { $_->status } @resp], [(200) x @methods], 'all methods 200');

{
    # workers write in the order their log phases run, which is not
    # always the order the client saw responses in: match by uri
    my @r = captured(scalar @methods, 'methods');
    my %by_uri = map { $_->{uri} => $_ } @r;
    for my $i (0 .. $#methods) {
        my $m = $methods[$i];
        my $r = $by_uri{"/m/\L$m\E?a=1&b=%20x"} || {};
        my $name = "$m record";
        is($r->{kind}, 'http', "$name: kind");
        is($r->{source}, 'web-1', "$name: source");
        is($r->{bucket}, 'web', "$name: bucket");
        like($r->{id}, qr/^web-1:\d+$/, "$name: id");
        like($r->{ts}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
             "$name: ts");
        is($r->{method}, $m, "$name: method");
        is($r->{uri}, "/m/\L$m\E?a=1&b=%20x", "$name: uri with query");
        is($r->{version}, 'HTTP/1.1', "$name: version");
        is($r->{scheme}, 'http', "$name: scheme");
        is($r->{host}, 'shop.example', "$name: host");
        like($r->{client}, qr/^127\.0\.0\.1:\d+$/, "$name: client");
        is($r->{server}, "127.0.0.1:$port", "$name: server");
        is_deeply([map { $_->[0] } @{ $r->{headers} }],
                  ['Host', 'X-Dup', 'X-Order', 'X-Dup', 'Authorization',
                   'Connection',
                   ($m =~ /^(POST|PUT|PATCH)$/ ? 'Content-Length' : ())],
                  "$name: headers in order, duplicates kept");
        is_deeply([hdr($r, 'X-Dup')], ['one', 'two'], "$name: dup values");
        is_deeply([hdr($r, 'Authorization')], ['***'], "$name: masked");
        is($r->{status}, 200, "$name: status");
        my $len = length $resp[$i]->body;
        ok($r->{bytes_sent} > $len && $r->{bytes_sent} < $len + 1024,
           "$name: bytes_sent $r->{bytes_sent} covers the response");
        ok($r->{duration_ms} >= 0 && $r->{duration_ms} < 10_000,
           "$name: duration_ms");
        is($r->{upstream}, "127.0.0.1:$bport", "$name: upstream");
        like($r->{request_id}, qr/^[0-9a-f]{32}$/, "$name: request_id");
        my ($seen) = grep { $_->{uri} eq $r->{uri} } $backend->requests;
        is($r->{request_id}, (hdr($seen || {headers => []},
                                  'X-Request-Id'))[0],
           "$name: request_id is the one sent upstream");
        my $body = $m =~ /^(POST|PUT|PATCH)$/ ? "body-$m" : '';
        is(body_of($r), $body, "$name: body");
        is($r->{body_size}, length $body, "$name: body_size");
        ok(!$r->{body_truncated}, "$name: not truncated");
    }
    my %ids = map { $_->{id} => 1 } @r;
    is(scalar keys %ids, scalar @r, 'ids are unique');
}


# ---- bodies, byte-exact

srand(7);
my $binary = join '', "\0\0\r\n\xff", map { chr int rand 256 } 1 .. 30_000;

{
    my $r = http_req($port, method => 'POST', uri => '/bin', body => $binary);
    is($r->json->{md5}, md5_hex($binary), 'binary: upstream got it whole');
    my ($c) = captured(1, 'binary body');
    ok(exists $c->{body_b64}, 'binary: carried as body_b64');
    is(md5_hex(body_of($c)), md5_hex($binary), 'binary: captured exactly');
    is($c->{body_size}, length $binary, 'binary: body_size');
}

{
    my $r = http_req($port, method => 'POST', uri => '/chunked',
                     chunked => 1000, body => $binary);
    is($r->json->{md5}, md5_hex($binary), 'chunked: upstream got it whole');
    my ($c) = captured(1, 'chunked body');
    is(md5_hex(body_of($c)), md5_hex($binary), 'chunked: captured exactly');
    is_deeply([hdr($c, 'Transfer-Encoding')], ['chunked'],
              'chunked: header kept');
}

{
    http_req($port, method => 'POST', uri => '/empty', body => '',
             headers => [['Content-Length', '0']]);
    my ($c) = captured(1, 'empty body');
    is(body_of($c), '', 'empty: body');
    is($c->{body_size}, 0, 'empty: body_size 0');
    ok(!$c->{body_truncated}, 'empty: not truncated');
}

{
    my $r = http_req($port, method => 'POST', uri => '/stream/x',
                     chunked => 777, body => $binary);
    is($r->json->{md5}, md5_hex($binary),
       'unbuffered: upstream got the body intact');
    my ($c) = captured(1, 'proxy_request_buffering off');
    is(md5_hex(body_of($c)), md5_hex($binary),
       'unbuffered: captured exactly');
}

{
    my @reqs = map { { uri => "/ka/$_", method => 'POST',
                       body => "n=$_" . ("\0" x ($_ % 3)) } } 1 .. 60;
    my @r = http_series($port, \@reqs);
    is(scalar(grep { $_->status == 200 } @r), 60, 'keepalive: 60 answers');
    my @c = captured(60, 'keepalive series');
    is_deeply([map { $_->{uri} } @c], [map { "/ka/$_" } 1 .. 60],
              'keepalive: every request captured, in order');
    is_deeply([map { body_of($_) } @c], [map { $_->{body} } @reqs],
              'keepalive: every body exact');
    my %clients = map { $_->{client} => 1 } @c;
    is(scalar keys %clients, 1, 'keepalive: one client connection');
}

{
    my $over = 'x' x 5000 . 'TAIL';
    my $r = http_req($port, method => 'PUT', uri => '/small/big',
                     body => $over);
    is($r->json->{md5}, md5_hex($over), 'max_body: upstream got all of it');
    my ($c) = captured(1, 'body over max_body');
    is(body_of($c), 'x' x 1024, 'max_body: first 1k kept');
    ok($c->{body_truncated}, 'max_body: body_truncated');
    is($c->{body_size}, length $over, 'max_body: original size kept');

    http_req($port, method => 'POST', uri => '/local', body => 'discarded');
    ($c) = captured(1, 'discarded body');
    is(body_of($c), '', 'discarded: nothing claimed');
    ok($c->{body_truncated}, 'discarded: flagged truncated');
    is($c->{body_size}, 9, 'discarded: size from Content-Length');
    ok(!exists $c->{request_id},
       'no request_id where the configuration never made one');
}


# ---- HTTP/2 (h2c, prior knowledge)

{
    my $h2 = start_nginx(%common, listen_opts => 'http2');
    my $file = write_file(tempdir() . '/h2body', $binary);
    my $r = curl('--http2-prior-knowledge', '-H', 'X-Secret: hide-me',
                 '--data-binary', "\@$file",
                 'http://127.0.0.1:' . $h2->port . '/h2/post?q=2');
    is($r->version, '2', 'h2: spoken');
    is($r->json->{md5}, md5_hex($binary), 'h2: upstream got the body');
    my ($c) = captured(1, 'h2c request');
    is($c->{version}, 'HTTP/2.0', 'h2: version');
    is($c->{method}, 'POST', 'h2: method');
    is($c->{uri}, '/h2/post?q=2', 'h2: uri');
    is(md5_hex(body_of($c)), md5_hex($binary), 'h2: body exact');
    is_deeply([hdr($c, 'X-Secret')], ['***'], 'h2: masked header');
    $h2->stop;
    no_errors_in_log($h2->error_log_text, 'h2 nginx log');
}


# ---- what is not captured, and conditions

{
    http_req($port, uri => '/off/1');
    http_req($port, uri => '/cond/yes', headers => [['X-Capture', '1']]);
    http_req($port, uri => '/cond/zero', headers => [['X-Capture', '0']]);
    http_req($port, uri => '/cond/none');
    http_req($port, uri => '/cond/word', headers => [['X-Capture', 'on']]);
    my @c = captured(2, 'off and $var');
    is_deeply([map { $_->{uri} } @c], ['/cond/yes', '/cond/word'],
              'only the non-empty, non-"0" condition captured');
}

{
    my $n = 400;
    my @r = http_series($port, [map { { uri => "/sampled/$_" } } 1 .. $n]);
    is(scalar(grep { $_->status == 204 } @r), $n, 'sampled: all answered');
    # 25% of 400: mean 100, sd 8.7; 55..145 is over 5 sd either side
    wait_until(sub { spool_stats($spool->buffer)->{stored_total} >= $seen + 55 },
               15, 'sampled records stored');
    # let the spool drain what nginx wrote, then count exactly
    wait_until(sub { my $s = spool_stats($spool->buffer, '--ring', $ring);
                     $s->{consumed} == $s->{written} },
               15, 'ring drained');
    my @all = spool_dump($spool->buffer);
    my $got = @all - $seen;
    ok($got >= 55 && $got <= 145, "sampled: $got of $n near 25%");
    $seen = @all;
}

my $stats = spool_stats($spool->buffer, '--ring', $ring);
is($stats->{invalid}, 0, 'no invalid records');
is($stats->{dropped_full}, 0, 'no ring drops');
is($spool->stop, 0, 'spool stops cleanly');
is($nginx->stop, 0, 'nginx stops cleanly');
no_errors_in_log($nginx->error_log_text, 'nginx log');
no_errors_in_log($spool->log_text, 'spool log');

done_testing();
