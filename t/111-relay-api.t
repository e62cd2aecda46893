# rf-relayd's HTTP API as DESIGN §7 and docs/relay.md state it: auth and
# routing errors, NDJSON and binary ingest storing the same records,
# zstd and gzip bodies, duplicates, consumers' cursors and acks,
# long-poll, heartbeats, stats and metrics, and a kill -9 that loses no
# acknowledged record and no committed cursor.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Compress::Gzip qw(gzip $GzipError);
use JSON::PP ();
use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use RF::Test;

my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir();
my $relay = start_relay(buckets => { a => 'token-a', b => 'token-b' });

sub view {
    my ($i, %o) = @_;
    return {
        kind => 'http', id => "web-1:$i", source => 'web-1', bucket => 'a',
        ts => sprintf('2026-11-23T10:00:%02d.123456Z', $i % 60),
        method => 'POST', uri => "/api/$i?x=$i", version => 'HTTP/1.1',
        scheme => 'http', host => 'example.com',
        client => '10.0.0.1:51000', server => '10.0.0.2:80',
        headers => [['Content-Type', 'text/plain'], ['X-A', '1'],
                    ['X-A', "2"]],
        body => "body $i", body_size => length("body $i"),
        body_truncated => JSON::PP::false, status => 200,
        bytes_sent => 120, duration_ms => 1.25,
        upstream => '127.0.0.1:9000', %o,
    };
}

sub ndjson { join '', map { $json->encode($_) . "\n" } @_ }

sub without_seq { my %r = %{ $_[0] }; delete $r{seq}; return \%r }

sub last_seq {
    my ($bucket) = @_;
    my ($b) = grep { $_->{name} eq $bucket } @{ relay_stats($relay)->{buckets} };
    return $b->{last_seq};
}

sub split_binary {
    my ($bytes) = @_;
    my @recs;
    while (length $bytes >= 4) {
        my $len = unpack 'V', $bytes;
        push @recs, substr($bytes, 0, $len, '');
    }
    return @recs;
}

# ------------------------------------------------------------ errors

is(relay_request($relay, 'GET', '/healthz')->status, 200, 'healthz (api)');
is(relay_request($relay, 'GET', '/healthz', stats => 1)->status, 200,
   'healthz (stats)');

my $r = relay_post($relay, 'a', ndjson(view(1)), ndjson => 1, token => '');
is($r->status, 401, 'no token: 401');
is($r->json->{error}, 'unauthorized', '401 body is a JSON error');
is(relay_post($relay, 'a', ndjson(view(1)), ndjson => 1,
              token => 'token-b')->status, 401,
   'the token of another bucket: 401');
is(relay_post($relay, 'a', ndjson(view(1)), ndjson => 1,
              token => 'token-a-but-longer')->status, 401,
   'a token with the right prefix: 401');
$r = relay_post($relay, 'nope', ndjson(view(1)), ndjson => 1,
                token => 'token-a');
is($r->status, 404, 'unknown bucket: 404');
like($r->json->{detail}, qr/nope/, '404 names the bucket');
is(relay_request($relay, 'PUT', '/v1/buckets/a/records',
                 token => 'token-a', body => 'x')->status, 405,
   'PUT: 405');
is(relay_request($relay, 'GET', '/v1/other', token => 'token-a')->status,
   404, 'unknown path: 404');
is(relay_request($relay, 'GET', '/v1/stats')->status, 404,
   'stats are not on the API listener');
is(relay_post($relay, 'a', ndjson(view(1)), type => 'text/plain')->status,
   415, 'unknown Content-Type: 415');
is(relay_post($relay, 'a', ndjson(view(1)), ndjson => 1,
              encoding => 'br')->status, 415,
   'unknown Content-Encoding: 415');

# ------------------------------------------------------------ NDJSON in

my @views = map { view($_) } 1 .. 3;
$views[1]{body_b64} = 'AAECAwD/';       # binary, NUL bytes included
delete $views[1]{body};
$views[1]{body_size} = 6;

$r = relay_post($relay, 'a', ndjson(@views), ndjson => 1);
is($r->status, 200, 'NDJSON batch: 200');
is_deeply($r->json, { accepted => 3, duplicates => 0, first_seq => 1,
                      last_seq => 3 }, 'accepted 3, seq 1..3');

$r = relay_post($relay, 'a', ndjson(@views), ndjson => 1);
is_deeply([@{ $r->json }{qw(accepted duplicates)}], [0, 3],
          'the same batch again: 3 duplicates, nothing stored');

my ($g, $recs) = relay_get($relay, 'a', consumer => 'c1');
is($g->status, 200, 'GET records: 200');
is($g->header('x-rf-last-seq'), 3, 'X-RF-Last-Seq is the last seq');
is_deeply([map { $_->{seq} } @$recs], [1, 2, 3], 'seq 1, 2, 3 in order');
is_deeply([map { without_seq($_) } @$recs], \@views,
          'the JSON view returns every field as sent');

# ------------------------------------------------------------ cursors

($g, $recs) = relay_get($relay, 'a', consumer => 'c1');
is(scalar @$recs, 3, 'without an ack the consumer reads the same again');

$r = relay_ack($relay, 'a', 'c1', 2);
is($r->status, 200, 'ack: 200');
is_deeply($r->json, { consumer => 'c1', cursor => 2 }, 'cursor at 2');
($g, $recs) = relay_get($relay, 'a', consumer => 'c1');
is_deeply([map { $_->{seq} } @$recs], [3], 'after the ack: only seq 3');
is(relay_ack($relay, 'a', 'c1', 1)->json->{cursor}, 2,
   'an ack below the cursor leaves it');
$r = relay_ack($relay, 'a', 'c1', 99);
is($r->status, 400, 'an ack beyond the last seq: 400');
is(relay_request($relay, 'POST', '/v1/buckets/a/ack', token => 'token-a',
                 body => '{"consumer":1}')->status, 400,
   'a malformed ack: 400');
($g, $recs) = relay_get($relay, 'a', consumer => 'c2');
is(scalar @$recs, 3, 'a second consumer reads everything');
($g, $recs) = relay_get($relay, 'a', after => 1, max => 1);
is_deeply([map { $_->{seq} } @$recs], [2], 'after=1&max=1: seq 2 only');
is(relay_get($relay, 'a', after => 3)->status, 204, 'nothing new: 204');
is(relay_get($relay, 'a', max => 'x')->status, 400, 'max=x: 400');
is(relay_get($relay, 'a', consumer => 'bad/name')->status, 400,
   'an invalid consumer name: 400');

# ------------------------------------------------------------ binary

$g = relay_get($relay, 'a', after => 0, binary => 1);
is($g->header('content-type'), 'application/x-replayforge',
   'binary GET by default');
my @bin = split_binary($g->body);
is(scalar @bin, 3, 'three binary records');
is(unpack('Q<', substr($bin[2], 8, 8)), 3, 'the relay seq is in the header');

$r = relay_post($relay, 'b', join('', @bin));
is_deeply([@{ $r->json }{qw(accepted duplicates)}], [3, 0],
          'the binary records into bucket b');
my (undef, $from_b) = relay_get($relay, 'b', after => 0);
is_deeply([map { without_seq($_) } @$from_b], \@views,
          'binary and NDJSON ingest store the same records');

# ------------------------------------------------------------ compressed

my @more = map { view($_) } 4 .. 6;
my $gz;
gzip(\ndjson(@more) => \$gz) or die $GzipError;
$r = relay_post($relay, 'a', $gz, ndjson => 1, encoding => 'gzip');
is_deeply([@{ $r->json }{qw(accepted first_seq)}], [3, 4], 'gzip NDJSON');

my $raw = join '', split_binary(relay_get($relay, 'a', after => 0,
                                          binary => 1)->body);
my (undef, $zst) = run_cmd(['zstd', '-q', '-c'], stdin => ndjson(view(7)));
$r = relay_post($relay, 'a', $zst, ndjson => 1, encoding => 'zstd');
is_deeply([@{ $r->json }{qw(accepted first_seq)}], [1, 7], 'zstd NDJSON');
(undef, $zst) = run_cmd(['zstd', '-q', '-c'], stdin => $raw);
$r = relay_post($relay, 'b', $zst, encoding => 'zstd');
is_deeply([@{ $r->json }{qw(accepted duplicates)}], [3, 3],
          'zstd binary: the 3 new ones stored, 3 duplicates');
write_file("$dir/v8", ndjson(view(8)));
write_file("$dir/v9", ndjson(view(9)));
my (undef, $z8) = run_cmd(['zstd', '-q', '-c', "$dir/v8"]);
my (undef, $z9) = run_cmd(['zstd', '-q', '-c', "$dir/v9"]);
$r = relay_post($relay, 'a', $z8 . $z9, ndjson => 1, encoding => 'zstd');
is($r->json->{accepted}, 2, 'two zstd frames back to back, sizes stated');

# ------------------------------------------------------------ hostile

my $before = last_seq('a');
my @one = split_binary(relay_get($relay, 'a', after => 0, max => 2,
                                 binary => 1)->body);
my $good = join '', @one;
my $fresh = ndjson(view(100), view(101));

$r = relay_post($relay, 'a', $good . substr($good, 0, length($good) - 1));
is($r->status, 400, 'a truncated binary batch: 400');
like($r->json->{detail}, qr/record 3 at byte \d+: truncated/,
     'the error names the record and offset');

my $bad = $good;
substr($bad, length($one[0]) + 50, 1) ^= "\x01";
$r = relay_post($relay, 'a', $bad);
is($r->status, 400, 'a flipped byte: 400');
like($r->json->{detail}, qr/record 1 at byte \d+/, 'names record 1');

$r = relay_post($relay, 'a', $fresh . "{\"kind\":\"http\"\n", ndjson => 1);
is($r->status, 400, 'NDJSON with a broken line: 400');
like($r->json->{detail}, qr/line 3/, 'names the line');
$r = relay_post($relay, 'a', ndjson(view(102, kind => 'nope')), ndjson => 1);
is($r->status, 400, 'an unknown kind: 400');
$r = relay_post($relay, 'a', ndjson(view(103, status => 'x')), ndjson => 1);
is($r->status, 400, 'a string status: 400');
$r = relay_post($relay, 'a', "garbage", ndjson => 1, encoding => 'zstd');
is($r->status, 400, 'corrupt zstd: 400');
$r = relay_post($relay, 'a', substr($gz, 0, 20), ndjson => 1,
                encoding => 'gzip');
is($r->status, 400, 'truncated gzip: 400');
is(last_seq('a'), $before, 'nothing of any bad batch was stored');

my $small = start_relay(buckets => { a => 't' },
                        args => ['--max-batch', '64k']);
(undef, $zst) = run_cmd(['zstd', '-q', '-c'], stdin => "\0" x (1 << 20));
$r = relay_post($small, 'a', $zst, encoding => 'zstd');
is($r->status, 413, 'a zstd bomb (1 MB of zeros in a few bytes): 413');
# from a file, zstd states the frame's size: the one-shot path
write_file("$dir/zeros", "\0" x (1 << 20));
(undef, $zst) = run_cmd(['zstd', '-q', '-c', "$dir/zeros"]);
is(relay_post($small, 'a', $zst, encoding => 'zstd')->status, 413,
   'a zstd bomb that states its size: 413');
$gz = undef;
gzip(\("\0" x (1 << 20)) => \$gz) or die $GzipError;
is(relay_post($small, 'a', $gz, encoding => 'gzip')->status, 413,
   'a gzip bomb: 413');
is(relay_post($small, 'a', 'x' x (65 * 1024))->status, 413,
   'a body over max_batch: 413');
$r = relay_request($small, 'GET', '/healthz',
                   headers => [['X-Huge', 'h' x (100 * 1024)]]);
ok($r->status >= 400 && $r->status < 500,
   'a 100 KB header: 4xx (' . $r->status . ')');
is(relay_request($small, 'GET', '/healthz')->status, 200,
   'the relay still serves');
no_errors_in_log($small->log_text, 'small relay log');
$small->stop;

# ------------------------------------------------------------ long-poll

my $after = last_seq('a');
my $t0 = time;
is(relay_get($relay, 'a', after => $after, wait => 1)->status, 204,
   'wait=1 with nothing: 204');
ok(time - $t0 >= 0.9, 'it waited about a second');

my $pid = fork // die "fork: $!";
if ($pid == 0) {
    # the poster: waits for the long-poll to be in place, then posts
    select undef, undef, undef, 0.5;
    relay_post($relay, 'a', ndjson(view(200)), ndjson => 1);
    POSIX::_exit(0);
}
$t0 = time;
($g, $recs) = relay_get($relay, 'a', after => $after, wait => 20);
my $took = time - $t0;
waitpid $pid, 0;
is($g->status, 200, 'long-poll: a record posted meanwhile arrives');
is($recs->[0]{id}, 'web-1:200', 'it is the posted record');
ok($took < 15, sprintf('long before the wait ended (%.1fs)', $took));

# ------------------------------------------------------------ heartbeat

my $hb = $json->encode({ id => 'web-1', role => 'spool', host => 'h1',
                         version => '0.1.0', interval_s => 5,
                         stats => { ring_used => 7, last_error => '<x>' } });
is(relay_request($relay, 'POST', '/v1/heartbeat', body => $hb)->status,
   401, 'heartbeat without a token: 401');
is(relay_request($relay, 'POST', '/v1/heartbeat', body => $hb,
                 token => 'token-b')->status, 204,
   'heartbeat with any bucket token: 204');
is(relay_request($relay, 'POST', '/v1/heartbeat', body => '{"id":1}',
                 token => 'token-b')->status, 400, 'a bad heartbeat: 400');
for my $id ('a/b/c', '/b', 'a/', 'a b') {
    is(relay_request($relay, 'POST', '/v1/heartbeat',
                     body => $json->encode({ id => $id, role => 'player' }),
                     token => 'token-b')->status, 400, "heartbeat id '$id': 400");
}
is(relay_request($relay, 'POST', '/v1/heartbeat',
                 body => $json->encode({ id => 'p-1/bucket-a',
                                          role => 'player' }),
                 token => 'token-b')->status, 204,
   'a player\'s per-bucket id ID/BUCKET: 204');

my $st = relay_stats($relay);
my ($sys) = grep { $_->{id} eq 'web-1' } @{ $st->{systems} };
is($sys->{role}, 'spool', 'the system shows in /v1/stats');
ok((grep { $_->{id} eq 'p-1/bucket-a' } @{ $st->{systems} }),
   'and so does the player\'s bucket');
is($sys->{host}, 'h1', 'with its host');
is($sys->{addr}, '127.0.0.1', 'and its address');
is_deeply($sys->{stats}, { ring_used => 7, last_error => '<x>' },
          'its stats as sent');
my ($ba) = grep { $_->{name} eq 'a' } @{ $st->{buckets} };
is($ba->{duplicates}, 3, 'bucket a counted 3 duplicates');
my ($c1) = grep { $_->{name} eq 'c1' } @{ $ba->{consumers} };
is($c1->{cursor}, 2, 'consumer c1 at 2');
ok(!$c1->{declared}, 'c1 was not declared');
is($c1->{lag}, $ba->{last_seq} - 2, 'its lag is last_seq - cursor');

my $m = relay_request($relay, 'GET', '/metrics', stats => 1);
like($m->body, qr/^rf_relay_in_records_total\{bucket="a"\} $ba->{in_records}$/m,
     '/metrics counts records in');
like($m->body, qr/^# TYPE rf_relay_duplicates_total counter$/m,
     'with TYPE lines');

# ------------------------------------------------------------ kill -9

my $last = last_seq('a');
relay_ack($relay, 'a', 'c1', 4);
$relay->kill9;
$relay->restart;
($g, $recs) = relay_get($relay, 'a', consumer => 'c1');
is($recs->[0]{seq}, 5, 'after kill -9 the cursor of c1 is still 4');
is($recs->[-1]{seq}, $last, 'and every acknowledged record is there');
$r = relay_post($relay, 'a', ndjson(view(300)), ndjson => 1);
is($r->json->{first_seq}, $last + 1, 'seq goes on after the restart');
is(relay_post($relay, 'a', ndjson(view(200)), ndjson => 1)
   ->json->{duplicates}, 1, 'duplicates are still known after the restart');

is($relay->stop, 0, 'SIGTERM: exit 0');
no_errors_in_log($relay->log_text, 'relay log');

done_testing;
