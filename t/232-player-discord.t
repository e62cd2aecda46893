# rf-playerd's discord sink against a webhook receiver of this test: the
# records' lines from the template (every placeholder, "{{" escapes,
# control characters, the body cut to fit, 2000 characters at most, lines
# joined into messages of "batch" lines), no mention can ping anyone, a
# 429 is waited out (Retry-After and the body's retry_after) and the
# message delivered once, an exhausted rate-limit bucket paces the next
# message, a 400 dead-letters its records and the stream goes on, and
# -t refuses an unknown placeholder.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Encode qw(encode_utf8);
use JSON::PP ();
use Test::More;
use RF::Test;
use RF::Webhook;

my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir();
my $player_bin = player_path();

plan skip_all => "$player_bin not built" unless -x $player_bin;


# ------------------------------------------------------------ the lines

my $template = '{method} {uri} → {status} | {body} | {id} seq={seq} {kind} '
             . '{bucket} {host} {client} {source} {ts} {duration_ms} '
             . 'h={header:x-note} {{x}}';

my $sseq = 0;

sub view {
    my (%o) = @_;
    my $i = ++$sseq;
    return {
        kind => 'http', id => "web-1:$i", source => 'web-1',
        bucket => 'prod',
        ts => sprintf('2026-11-23T10:00:%02d.123456Z', $i % 60),
        method => 'GET', uri => "/r/$i", version => 'HTTP/1.1',
        scheme => 'http', host => 'example.com',
        client => '10.0.0.1:51000', server => '10.0.0.2:80',
        headers => [['Content-Type', 'text/plain'], ['X-Note', "n$i"]],
        body => '', status => 200, duration_ms => 1.25,
        %o,
    };
}

sub ndjson { join '', map { $json->encode($_) . "\n" } @_ }

sub chars { length $_[0] }

# the line the documentation promises for a record the relay gave seq
sub expected_line {
    my ($r, $seq) = @_;
    my ($note) = map { $_->[1] } grep { lc $_->[0] eq 'x-note' }
                 @{ $r->{headers} };
    my $clean = sub { (my $s = $_[0]) =~ s/[\x00-\x1f\x7f]/ /g; $s };
    my %v = (
        method => $r->{method}, uri => $clean->($r->{uri}),
        status => $r->{status}, id => $r->{id}, seq => $seq,
        kind => $r->{kind}, bucket => $r->{bucket}, host => $r->{host},
        client => $r->{client}, source => $r->{source}, ts => $r->{ts},
        duration_ms => sprintf('%.3f', $r->{duration_ms}),
        'header:x-note' => $clean->($note // '-'),
    );
    my $fill = sub {
        my ($body) = @_;
        (my $l = $template) =~ s{(\{\{|\}\})|\{([a-z_:-]+)\}}{
            $1 ? substr($1, 0, 1) : $2 eq 'body' ? $body : $v{$2}
        }ge;
        return $l;
    };
    my $body = $clean->($r->{body});
    my $room = 2000 - chars($fill->(''));
    $room = 0 if $room < 0;
    if (chars($body) > $room) {
        $body = $room ? substr($body, 0, $room - 1) . '…' : '';
    }
    my $line = $fill->($body);
    $line = substr($line, 0, 1999) . '…' if chars($line) > 2000;
    return $line;
}


# ------------------------------------------------------------ the setup

my $hook = RF::Webhook->start(dir => $dir, reject => qr{/bad/},
                               limit => qr{/slow/}, limit_n => 2,
                               exhaust => qr{/last-token/});

my $relay = start_relay(buckets => { prod => 'tk-prod' });
my $dead = "$dir/dead.ndjson";
my $hport = $hook->port;

sub player_conf {
    my ($tpl) = @_;
    return <<"EOF";
relay         ${\ $relay->url};
token         tk-prod;
dead_letter   $dead;
max_tries     3;
retry_backoff 100ms;
log_level     info;
bucket prod {
    consumer  discord;
    sink discord alerts {
        webhook  http://127.0.0.1:$hport/webhook;
        template "$tpl";
        batch    4;
        username "RF bot";
        timeout  5s;
    }
}
EOF
}

# -t: the template is checked when the configuration is
my $bad_conf = write_file("$dir/bad.conf",
                          encode_utf8(player_conf('{method} {nope}')));
my ($code, $out, $err) = run_cmd([$player_bin, '-t', '-c', $bad_conf]);
isnt($code, 0, '-t refuses an unknown placeholder');
like($out . $err, qr/unknown placeholder "\{nope\}"/,
     '... and names it');

my $good_conf = write_file("$dir/good.conf",
                           encode_utf8(player_conf($template)));
($code, $out, $err) = run_cmd([$player_bin, '-t', '-c', $good_conf]);
is($code, 0, '-t accepts every documented placeholder')
    or diag($out . $err);

# every record is posted before the player starts: one pull gets them all
my @recs = (
    view(method => 'GET', uri => '/a'),
    view(method => 'POST', uri => '/b', status => 201,
         body => "line1\nline2\ttab"),
    view(uri => '/ping?who=@everyone&x=<@123>', status => 200,
         headers => [['X-Note', '@here @everyone']]),
    view(uri => '/long/' . ('u' x 2500), status => 404, body => 'lost'),
    view(method => 'POST', uri => '/big', status => 413,
         body => 'b' x 3000),
    view(method => 'DELETE', uri => '/e', status => 500),
    view(method => 'PUT', uri => '/f', status => 204),
    view(uri => '/g'),
    view(uri => '/h'),
);
is(relay_post($relay, 'prod', ndjson(@recs), ndjson => 1)->status, 200,
   'records posted');

# the relay's seq of every record, seen by a consumer of our own
sub seqs {
    my ($r, $peek) = relay_get($relay, 'prod', consumer => 'peek',
                               max => 1000);
    return map { $_->{id} => $_->{seq} } @$peek;
}
my %seq = seqs();
is(scalar keys %seq, scalar @recs, 'the relay has them all');

my $player = start_player(relay => $relay, conf => read_file($good_conf));


# ------------------------------------------------------------ the checks

sub delivered { grep { $_->{status} >= 200 && $_->{status} < 300 }
                $hook->requests }

sub delivered_lines { map { split /\n/, $_->{payload}{content} } delivered() }

sub wait_lines {
    my ($n, $what) = @_;
    wait_until(sub { delivered_lines() >= $n }, 30, $what);
}

wait_lines(scalar @recs, 'the first records delivered');

my @msgs = delivered();
my @lines = delivered_lines();
is_deeply(\@lines, [map { expected_line($_, $seq{$_->{id}}) } @recs],
          'every record once, in order, as the template says');
is_deeply([map { scalar split /\n/, $_->{payload}{content} } @msgs],
          [3, 1, 1, 4],
          'lines joined up to batch 4 and 2000 characters');
is(scalar(grep { chars($_->{payload}{content}) > 2000 } @msgs), 0,
   'no message over 2000 characters');
is(chars($lines[3]), 2000, 'the long uri: cut to exactly 2000');
like($lines[3], qr/u…\z/, '... ending in an ellipsis');
like($lines[4], qr/^POST \/big → 413 \| b+… \| web-1:5 /,
     'the long body is cut, the rest of its line kept');
is(chars($lines[4]), 2000, '... to exactly 2000');
like($lines[1], qr/\| line1 line2 tab \|/,
     'control characters in a value become blanks');
like($lines[2], qr/\@everyone.*h=\@here \@everyone/,
     'captured mentions are shown');
is(scalar(grep { !$_->{payload}{allowed_mentions}
                 || !eq_array($_->{payload}{allowed_mentions}{parse}, []) }
          $hook->requests), 0,
   'every message forbids every mention');
is(scalar(grep { ($_->{payload}{username} // '') ne 'RF bot' }
          $hook->requests), 0, 'every message has the username');
is(scalar(grep { $_->{ctype} !~ m{^application/json} || $_->{path} ne
                 '/webhook' } $hook->requests), 0,
   'JSON posted to the webhook URL');

# 429: waited out, by the body's longer retry_after, then sent again
my @slow = (view(uri => '/slow/1'), view(uri => '/slow/2'));
relay_post($relay, 'prod', ndjson(@slow), ndjson => 1);
wait_lines(@recs + @slow, 'the rate-limited records delivered');

my @tries = grep { $_->{payload}{content} =~ m{/slow/} } $hook->requests;
is_deeply([map { $_->{status} } @tries[0, 1]], [429, 429],
          'the webhook answered 429 twice');
my $waited = 1;
for my $i (1 .. $#tries) {
    next unless $tries[$i - 1]{status} == 429;
    $waited = 0 if $tries[$i]{t} - $tries[$i - 1]{t} < 1.5;
    is($tries[$i]{payload}{content}, $tries[$i - 1]{payload}{content},
       'the same message is sent again');
}
ok($waited, 'each retry came 1.5 s (retry_after) or more after its 429');
my @slow_lines = grep { m{/slow/} } delivered_lines();
my %now = seqs();
is_deeply(\@slow_lines, [map { expected_line($_, $now{$_->{id}}) } @slow],
          'the rate-limited lines as the template says');
is(scalar @slow_lines, 2, 'each rate-limited record delivered once');

# X-RateLimit-Remaining: 0 paces the next message
relay_post($relay, 'prod', ndjson(view(uri => '/last-token/1')),
           ndjson => 1);
wait_lines(@recs + @slow + 1, 'the bucket-emptying message delivered');
relay_post($relay, 'prod', ndjson(view(uri => '/paced/1')), ndjson => 1);
wait_lines(@recs + @slow + 2, 'the next message delivered');
my ($emptied) = grep { $_->{payload}{content} =~ m{/last-token/} }
                $hook->requests;
my ($paced) = grep { $_->{payload}{content} =~ m{/paced/} } $hook->requests;
cmp_ok($paced->{t} - $emptied->{t}, '>=', 1.2,
       'the next message waited for X-RateLimit-Reset-After');

# 400: dead-lettered at once, not retried; the stream goes on
relay_post($relay, 'prod', ndjson(view(uri => '/bad/1')), ndjson => 1);
wait_until(sub { read_file($dead) =~ m{/bad/1} }, 30,
                          'the refused record dead-lettered');
relay_post($relay, 'prod', ndjson(view(uri => '/after-bad')), ndjson => 1);
wait_until(sub { grep { m{/after-bad} } delivered_lines() }, 30,
           'a record after the refused one delivered');

my @dl = map { $json->decode($_) } grep { /\S/ } split /\n/,
         read_file($dead);
is(scalar @dl, 1, 'one dead-letter line');
is($dl[0]{sink}, 'alerts', '... of the discord sink');
like($dl[0]{reason}, qr/400/, '... naming the status');
is($dl[0]{record}{uri}, '/bad/1', '... with the record');
is(scalar(grep { $_->{payload}{content} =~ m{/bad/} } $hook->requests), 1,
   'a 400 is not retried');

my %count;
$count{$_}++ for delivered_lines();
is(scalar(grep { $_ > 1 } values %count), 0, 'no line delivered twice');

is($player->stop, 0, 'the player stops cleanly');
my $log = $player->log_text;
no_errors_in_log($log, 'player log');
is(scalar(grep { /warn:/ && /429|rate limit/i } split /\n/, $log), 0,
   'a 429 is no warning');
$relay->stop;
no_errors_in_log($relay->log_text, 'relay log');

done_testing();
