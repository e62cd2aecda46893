# rf-spoold forwards its buffer to rf-relayd.  -t checks the forwarding
# directives.  Records buffered while the relay is down arrive once it is
# up, each once and in order, while the buffer's cap holds during the
# outage and its drops are counted; a wrong token (401) keeps the records
# and says so, and a reload with the right one delivers them; --rate
# holds the rate; the heartbeat carries the stats docs/relay.md lists.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use Time::HiRes qw(time);
use RF::Test;

my $dir = tempdir();
my $ring = "$dir/ring";
my $token = 'S3CRET-t0ken';
my $port = free_port();
my $url = "http://127.0.0.1:$port";
my $cap = 2 * 1024 * 1024;
my $margin = 64 * 1024;         # the margin docs/spoold.md states

my $nginx = start_capture_nginx(ring => $ring, ring_size => '8m');

sub file_size { my @s = stat $_[0]; return @s ? $s[7] : 0 }

sub push_requests {
    my ($prefix, $n, $body) = @_;
    my @r = http_series($nginx->port,
                        [map { { method => 'POST', uri => "/$prefix/$_",
                                 body => $body // "$prefix $_" } } 1 .. $n]);
    return scalar grep { $_->status == 204 } @r;
}

sub drained {
    my ($buffer) = @_;
    my $s = spool_stats($buffer, '--ring', $ring);
    return $s->{consumed} == $s->{written} ? $s : undef;
}

# db + wal every few ms in a child, the largest seen written at the end
sub start_sampler {
    my ($db, $out) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my ($max, $stop) = (0, 0);
        local $SIG{TERM} = sub { $stop = 1 };
        until ($stop) {
            my $n = file_size($db) + file_size("$db-wal");
            $max = $n if $n > $max;
            select undef, undef, undef, 0.002;
        }
        write_file($out, $max);
        POSIX::_exit(0);
    }
    return $pid;
}

sub bucket_stats {
    my ($relay) = @_;
    my ($b) = grep { $_->{name} eq 'default' }
              @{ relay_stats($relay)->{buckets} };
    return $b;
}


# ------------------------------------------------ -t on the directives

sub spoold_t {
    my ($code, $out, $err) = run_cmd([spoold_path(), '-t', '--id', 'web',
                                      '--ring', $ring, '--buffer',
                                      "$dir/t.db", @_]);
    return ($code, "$out$err");
}

write_file("$dir/token", "  $token\n");
write_file("$dir/empty", "\n");
write_file("$dir/good.conf", <<"EOF");
relay               $url/;
token_file          $dir/token;
rate                200/s;
rate_bytes          10m/s;
forward_batch       500;
forward_batch_bytes 256k;
forward_linger      20ms;
retry_max           5s;
heartbeat           2s;
bucket audit { token other-token; }
EOF

my ($code, $out) = spoold_t('-c', "$dir/good.conf");
is($code, 0, '-t: every forwarding directive') or diag $out;
ok(!-e "$dir/t.db", '-t: no buffer created');

for my $bad (
    [ ['--relay', $url], qr/"relay" is set but no token/,
      'a relay needs a token' ],
    [ ['--relay', 'ftp://x', '--token', 'a'],
      qr{--relay: .*http:// or https://}, 'only http and https' ],
    [ ['--relay', "$url/?x=1", '--token', 'a'], qr/may not have a query/,
      'no query' ],
    [ ['--relay', $url, '--token-file', "$dir/empty"], qr/is empty/,
      'an empty token file' ],
    [ ['--relay', $url, '--token-file', "$dir/none"], qr/cannot read/,
      'a missing token file' ],
    [ ['--relay', $url, '--token', "a\tb"], qr/visible ASCII/,
      'a token with a tab' ],
    [ ['--relay', $url, '--token', 'a', '--rate', '2x/s'],
      qr{--rate: invalid value "2x/s"}, 'a bad rate' ],
    [ ['--relay', $url, '--token', 'a', '--rate-bytes', '100/s'],
      qr/at least 1024/, 'rate_bytes under 1k' ],
    [ ['--relay', $url, '--token', 'a', '--retry-max', '10ms'],
      qr/--retry-max value must be at least 100ms/, 'retry_max bounds' ],
    [ ['--relay', $url, '--bucket', 'a/b:t'], qr/invalid bucket name/,
      'a bad bucket name' ],
) {
    my ($args, $re, $what) = @$bad;
    ($code, $out) = spoold_t(@$args);
    is($code, 1, "-t refuses $what");
    like($out, $re, "-t says why: $what");
}

write_file("$dir/both.conf",
           "relay $url;\ntoken a;\ntoken_file $dir/token;\n");
($code, $out) = spoold_t('-c', "$dir/both.conf");
like($out, qr/both\.conf:3: "token" and "token_file" are both set/,
     '-t: token and token_file exclude each other');
write_file("$dir/bucket.conf", "relay $url;\nbucket a { }\n");
($code, $out) = spoold_t('-c', "$dir/bucket.conf");
like($out, qr/bucket "a" has no token/, '-t: a bucket without any token');


# ------------------------------------------------ the relay down, then up

my $buf = "$dir/outage.db";
my $spool = start_spool(ring => $ring, buffer => $buf, id => 'web',
                        max_buffer => '2m',
                        args => ['--relay', $url, '--token', $token,
                                 '--retry-max', '300ms',
                                 '--heartbeat', '1s']);
wait_until(sub { -e $buf }, 10, 'buffer created');

my $sampler = start_sampler($buf, "$dir/max");
is(push_requests('out', 1500, 'o' x 2000), 1500,
   'outage: every request answered');
my $st = wait_until(sub { drained($buf) }, 30, 'outage: ring drained');
kill 'TERM', $sampler;
waitpid $sampler, 0;
my $max = read_file("$dir/max");

cmp_ok($max, '<=', $cap + $margin,
       "outage: db + wal never above the cap (max seen $max)");
ok($st->{dropped_oldest} > 0, "outage: drops counted: $st->{dropped_oldest}");
is($st->{records} + $st->{dropped_oldest}, 1500,
   'outage: kept + dropped_oldest = captured');
is($st->{forwarded}, 0, 'outage: nothing counted as forwarded');
like($spool->log_text,
     qr/relay \Q$url\E: bucket "default": .*connect.*the batch stays buffered/,
     'outage: the failing connection is logged');

my @buffered = map { $_->{id} } spool_dump($buf);
is(scalar @buffered, $st->{records}, 'outage: the dump shows what is kept');

my $relay = start_relay(port => $port, buckets => { default => $token });

wait_until(sub { spool_stats($buf)->{records} == 0 }, 30,
           'the buffer is emptied once the relay is up');

my ($r, $recs) = relay_get($relay, 'default', consumer => 'check',
                           after => 0, max => 100000);
is($r->status, 200, 'GET records');
is_deeply([map { $_->{id} } @$recs], \@buffered,
          'everything buffered arrived, once, in order');
is(scalar(grep { $_->{body} eq 'o' x 2000 } @$recs), scalar @buffered,
   'bodies intact');

$st = spool_stats($buf);
is($st->{forwarded}, scalar @buffered, 'forwarded counts them');
is($st->{records} + $st->{dropped_oldest} + $st->{forwarded}, 1500,
   'every record is kept, dropped or forwarded');
is($st->{rejected}, 0, 'none rejected');
like($spool->log_text, qr/relay \Q$url\E: forwarding again/,
     'the recovery is logged');

# the heartbeat: the keys docs/relay.md lists, and nothing else
my $sys = wait_until(sub {
    my ($s) = grep { $_->{id} eq 'web' } @{ relay_stats($relay)->{systems} };
    return $s && $s->{stats}{sent_records} >= @buffered ? $s : undef;
}, 10, 'a heartbeat after the delivery');
is($sys->{role}, 'spool', 'heartbeat: role');
is($sys->{interval_s}, 1, 'heartbeat: interval');
is_deeply([sort keys %{ $sys->{stats} }],
          [sort qw(ring_size ring_used ring_written ring_dropped_full
                   ring_dropped_too_big buffer_records buffer_bytes buffer_max
                   buffer_dropped_oldest buffer_dropped_newest script_calls
                   script_ticks script_errors script_budget script_memory script_dropped
                   script_produced dead_lettered dead_dropped sent_records
                   sent_bytes send_rate errors last_error)],
          'heartbeat: exactly the documented stats');
is($sys->{stats}{buffer_max}, $cap, 'heartbeat: buffer_max');
is($sys->{stats}{buffer_dropped_oldest}, $st->{dropped_oldest},
   'heartbeat: buffer drops');
cmp_ok($sys->{stats}{ring_written}, '>=', 1500, 'heartbeat: ring counters');
ok($sys->{stats}{errors} > 0, 'heartbeat: the outage counted as errors');
like($sys->{stats}{last_error}, qr/connect/i, 'heartbeat: last_error');

is($spool->stop, 0, 'outage: the spool stops cleanly');
no_errors_in_log($spool->log_text, 'outage: spool log');


# ------------------------------------------------ a wrong token, reloaded

my $conf = "$dir/token.conf";
write_file($conf, "relay $url;\ntoken wrong-token;\nretry_max 300ms;\n");

$buf = "$dir/token.db";
$spool = start_spool(ring => $ring, buffer => $buf, id => 'tok',
                     args => ['-c', $conf]);

is(push_requests('tok', 50), 50, '401: every request answered');
ok(wait_until(sub { $spool->log_text
                    =~ /bucket "default": 401, the relay refuses the token/ },
              10, '401 logged'),
   '401: the log says what is wrong');
$st = wait_until(sub { drained($buf) }, 30, '401: ring drained');
is($st->{records}, 50, '401: the records stay buffered');
is($st->{forwarded} + $st->{rejected}, 0, '401: none forwarded or rejected');

write_file($conf, "relay $url;\ntoken $token;\nretry_max 300ms;\n");
kill 'HUP', $spool->pid;

wait_until(sub { spool_stats($buf)->{forwarded} == 50 }, 20,
           'delivered after a reload with the right token');
like($spool->log_text, qr/reload: the token changed/, 'the reload is logged');
unlike($spool->log_text, qr/\Q$token\E|wrong-token/, 'tokens are not logged');

($r, $recs) = relay_get($relay, 'default', consumer => 'check', after => 0,
                        max => 100000);
my @tok = grep { $_->{source} eq 'tok' } @$recs;
is(scalar @tok, 50, '401: each record arrived once');
is_deeply([sort { $a <=> $b } map { (split m{/}, $_->{uri})[2] } @tok],
          [1 .. 50], '401: all of them');

is($spool->stop, 0, '401: the spool stops cleanly');
no_errors_in_log($spool->log_text, '401: spool log');


# ------------------------------------------------ --rate 200/s

# a backlog in the ring first, so that only the limit paces the sending
is(push_requests('rate', 1500), 1500, 'rate: every request answered');

my $before = bucket_stats($relay)->{in_records};
my $t0 = time;
$spool = start_spool(ring => $ring, buffer => "$dir/rate.db", id => 'rate',
                     args => ['--relay', $url, '--token', $token,
                              '--rate', '200/s']);

wait_until(sub { time - $t0 >= 3.5 }, 10, 'rate: 3.5 seconds');
my $got = bucket_stats($relay)->{in_records} - $before;
my $t = time - $t0;
my $want = 200 * $t + 200;      # the rate over the time, plus a burst

cmp_ok($got, '>=', 0.85 * $want,
       sprintf('rate: %d records in %.2fs, not under %d', $got, $t,
               0.85 * $want));
cmp_ok($got, '<=', 1.15 * $want,
       sprintf('rate: %d records in %.2fs, not over %d', $got, $t,
               1.15 * $want));

$t0 = time;
is($spool->stop, 0, 'rate: the spool stops cleanly');
cmp_ok(time - $t0, '<', 2, 'rate: and promptly');

$st = spool_stats("$dir/rate.db");
is($st->{records} + $st->{forwarded}, 1500,
   'rate: what was not sent yet stays buffered');
no_errors_in_log($spool->log_text, 'rate: spool log');

$relay->stop;
$nginx->stop;
no_errors_in_log($relay->log_text, 'relay log');
no_errors_in_log($nginx->error_log_text, 'nginx log');

done_testing();
