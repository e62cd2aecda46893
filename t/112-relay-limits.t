# rf-relayd's configuration and limits: -t with file:line errors, token
# files, too many connections answered 503, a stalled client cut off by
# client_timeout, retention by ttl and max_size with the drops counted,
# the reject policy's 507, and a SIGHUP that changes a token and adds a
# bucket.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use IO::Select;
use JSON::PP ();
use Test::More;
use RF::Test;

my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir();

sub relay_t {
    my ($conf, @args) = @_;
    write_file("$dir/t.conf", $conf);
    my ($code, undef, $err) = run_cmd([relayd_path(), '-t', '-c',
                                       "$dir/t.conf", @args]);
    return ($code, $err);
}

sub bucket_stats {
    my ($relay, $name) = @_;
    my ($b) = grep { $_->{name} eq $name }
              @{ relay_stats($relay)->{buckets} };
    return $b;
}

sub records {
    my ($n, $size, $from) = @_;
    my $s = '';
    for my $i ($from .. $from + $n - 1) {
        $s .= $json->encode({ kind => 'http', id => "src:$i",
                              ts => '2026-11-23T10:00:00.000000Z',
                              method => 'POST', uri => "/$i", headers => [],
                              body => 'x' x $size }) . "\n";
    }
    return $s;
}

# ------------------------------------------------------------ -t

my ($code, $err) = relay_t("data $dir/d;\nbucket a { token x; }\n");
is($code, 0, '-t: a good file');
like($err, qr/test is successful/, '-t says so like nginx');

($code, $err) = relay_t("data $dir/d;\nbucket a {\n    token x;\n"
                        . "    max_sise 1m;\n}\n");
is($code, 1, '-t: an unknown directive fails');
like($err, qr/t\.conf:4: unknown directive "max_sise"/,
     'with file:line inside the bucket block');

($code, $err) = relay_t("data $dir/d;\nbucket a { max_size 1g; }\n");
is($code, 1, '-t: a bucket without a token fails');
like($err, qr/bucket "a" has no token/, 'and says so');

($code, $err) = relay_t("data $dir/d;\nbucket a { token x; }\n"
                        . "bucket a { token y; }\n");
like($err, qr/bucket "a" is defined twice/, 'a duplicate bucket');

($code, $err) = relay_t("data $dir/d;\nbucket a { token x; "
                        . "overflow sometimes; }\n");
like($err, qr/overflow/, 'a bad overflow value');

($code, $err) = relay_t("data $dir/d;\nbucket a { token_file "
                        . "$dir/missing; }\n");
like($err, qr/cannot read token_file/, 'a missing token_file');

($code, $err) = relay_t("bucket a { token x; }\n");
like($err, qr/no "data" directory/, 'no data directory');

($code, $err) = relay_t("data $dir/d;\nlisten nowhere;\n"
                        . "bucket a { token x; }\n");
like($err, qr/invalid listen address "nowhere"/, 'a bad listen address');

($code, $err) = relay_t("data $dir/d;\n", '--bucket', 'nocolon');
like($err, qr/expected NAME:TOKEN/, '--bucket without a token');

# ------------------------------------------------------------ files

write_file("$dir/a.token", "secret-from-file\n");
my $relay = start_relay(conf => <<"EOF", tokens => { a => 'secret-from-file' });
data \$RF_DATA;
bucket a {
    token_file $dir/a.token;
}
EOF
is(relay_post($relay, 'a', records(1, 10, 1), ndjson => 1)->status, 200,
   'token_file: its token (without the newline) works');
$relay->stop;

# ------------------------------------------------------------ connections

$relay = start_relay(buckets => { a => 't' },
                     args => ['--max-connections', '4',
                              '--client-timeout', '2s']);
my @idle = map { http_connect($relay->port) } 1 .. 4;
wait_until(sub {
    my $r = eval { relay_request($relay, 'GET', '/healthz', timeout => 5) };
    return $r && $r->status == 503;
}, 10, 'a fifth connection answered 503');
my $r = relay_request($relay, 'GET', '/healthz');
is($r->status, 503, 'over max_connections: 503');
is($r->json->{error}, 'unavailable', 'with a JSON error');
ok($r->header('retry-after'), 'and Retry-After');
close $_ for @idle;
wait_until(sub { relay_request($relay, 'GET', '/healthz')->status == 200 },
           10, 'served again once the idle connections are gone');
pass('served again after the idle connections closed');

# a client that sends half a request and stalls is cut off
my $slow = http_connect($relay->port);
print $slow "POST /v1/buckets/a/records HTTP/1.1\r\nHost: x\r\n";
my $sel = IO::Select->new($slow);
my $closed = 0;
my $deadline = time + 15;
while (time < $deadline) {
    next unless $sel->can_read(1);
    my $n = sysread($slow, my $buf, 4096);
    if (!$n) { $closed = 1; last }
}
ok($closed, 'a stalled client is disconnected after client_timeout');
no_errors_in_log($relay->log_text, 'relay log (connections)');
$relay->stop;

# ------------------------------------------------------------ retention

my %tokens = (t => 't', s => 's', r => 'r');
$relay = start_relay(conf => <<'EOF', tokens => \%tokens);
data $RF_DATA;
bucket t {
    token t;
    ttl 2s;
    consumer reader;
}
bucket s {
    token s;
    max_size 2m;
}
bucket r {
    token r;
    max_size 2m;
    overflow reject;
    consumer reader;
}
EOF

is(relay_post($relay, 't', records(10, 100, 1), ndjson => 1)->status, 200,
   'ttl bucket: 10 records in');
relay_ack($relay, 't', 'reader', 4);
wait_until(sub { bucket_stats($relay, 't')->{records} == 0 }, 20,
           'ttl expires the records');
my $b = bucket_stats($relay, 't');
is($b->{dropped_ttl} + $b->{deleted_acked}, 10,
   'ttl and acks removed all 10');
ok($b->{dropped_ttl} >= 6, "at least the 6 unread by ttl ($b->{dropped_ttl})");
is($b->{dropped_unread}, 6, 'ttl: 6 dropped unread by the declared consumer');

# max_size with drop_oldest: 6 MB into a 2 MB bucket
for my $i (0 .. 59) {
    my $r = relay_post($relay, 's', records(10, 10_000, $i * 10 + 1),
                       ndjson => 1);
    die 'POST: ' . $r->status unless $r->status == 200;
}
$b = bucket_stats($relay, 's');
ok($b->{file_bytes} <= 2 * 1024 * 1024,
   "max_size holds: file and WAL $b->{file_bytes} <= 2m");
ok($b->{dropped_size} > 0, "dropped_size counted ($b->{dropped_size})");
is($b->{dropped_size} + $b->{records}, 600, 'dropped + held = sent');
is($b->{dropped_unread}, $b->{dropped_size}, 'no consumer: all were unread');
my (undef, $recs) = relay_get($relay, 's', after => 0, max => 100000);
is($recs->[-1]{id}, 'src:600', 'the newest record is kept');
is($recs->[0]{seq}, $b->{first_seq}, 'the oldest were dropped');

# reject: 507 once full, nothing partial
my ($accepted, $status) = (0, 0);
for my $i (0 .. 59) {
    my $r = relay_post($relay, 'r', records(10, 10_000, $i * 10 + 1),
                       ndjson => 1);
    $status = $r->status;
    last if $status != 200;
    $accepted += 10;
}
is($status, 507, 'reject: 507 once the bucket is full');
$b = bucket_stats($relay, 'r');
is($b->{records}, $accepted, 'everything accepted is held');
is($b->{rejected}, 10, 'the refused batch is counted');
ok($b->{file_bytes} <= 2 * 1024 * 1024, 'and the cap holds');
is($b->{dropped_size}, 0, 'reject never drops');

# the consumer reads and acks everything: room again
my (undef, $all) = relay_get($relay, 'r', consumer => 'reader',
                             max => 100000);
relay_ack($relay, 'r', 'reader', $all->[-1]{seq});
wait_until(sub { bucket_stats($relay, 'r')->{records} == 0 }, 20,
           'acked records are deleted');
is(relay_post($relay, 'r', records(10, 10_000, 10_001), ndjson => 1)->status,
   200, 'reject: accepted again once there is room');
is(bucket_stats($relay, 'r')->{deleted_acked}, $accepted,
   'deleted_acked counts them');
no_errors_in_log($relay->log_text, 'relay log (retention)');
$relay->stop;

# ------------------------------------------------------------ rate

$relay = start_relay(conf => "data \$RF_DATA;\nbucket q { token q; rate 100; }\n",
                     tokens => { q => 'q' });
is(relay_post($relay, 'q', records(100, 10, 1), ndjson => 1)->status, 200,
   'rate 100: a second\'s worth at once is accepted');
$r = relay_post($relay, 'q', records(50, 10, 101), ndjson => 1);
is($r->status, 429, 'more right away: 429');
is($r->json->{error}, 'too_many_requests', 'with a JSON error');
ok($r->header('retry-after') >= 1, 'and Retry-After');
is(bucket_stats($relay, 'q')->{records}, 100, 'nothing of it was stored');
wait_until(sub {
    relay_post($relay, 'q', records(50, 10, 101), ndjson => 1)->status == 200
}, 10, 'accepted again after the wait');
pass('accepted again once tokens came back');
no_errors_in_log($relay->log_text, 'relay log (rate)');
$relay->stop;

# ------------------------------------------------------------ reload

my $conf = "$dir/reload.conf";
write_file($conf, "data $dir/reload;\nbucket a { token old; }\n");
$relay = start_relay(args => ['-c', $conf], tokens => { a => 'old' });
is(relay_post($relay, 'a', records(1, 1, 1), ndjson => 1)->status, 200,
   'the old token works');
write_file($conf, "data $dir/reload;\nbucket a { token new; }\n"
                  . "bucket b { token bb; }\n");
kill 'HUP', $relay->pid;
wait_until(sub {
    relay_post($relay, 'a', records(1, 1, 2), ndjson => 1, token => 'new')
        ->status == 200
}, 10, 'the new token after SIGHUP');
is(relay_post($relay, 'a', records(1, 1, 3), ndjson => 1, token => 'old')
   ->status, 401, 'the old token no longer works');
is(relay_post($relay, 'b', records(1, 1, 1), ndjson => 1, token => 'bb')
   ->status, 200, 'the bucket added by the reload works');
write_file($conf, "data $dir/reload;\nbucket a { tokken x; }\n");
kill 'HUP', $relay->pid;
wait_until(sub { $relay->log_text =~ /reload failed/ }, 10,
           'a broken file on reload');
is(relay_post($relay, 'a', records(1, 1, 4), ndjson => 1, token => 'new')
   ->status, 200, 'a broken reload keeps the running configuration');
is($relay->stop, 0, 'SIGTERM: exit 0');
no_errors_in_log($relay->log_text, 'relay log (reload)');

done_testing;
