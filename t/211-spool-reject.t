# A relay bucket with "overflow reject" and a small max_size answers 507
# once it is full.  rf-spoold keeps the records meanwhile (507 is not a
# rejection of the batch) and delivers them once a consumer has acked and
# the relay has room again: every record once, in order.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

my $dir = tempdir();
my $ring = "$dir/ring";
my $token = 'rej3ct-t0ken';
my $total = 1500;
my $body = 'r' x 2000;          # 3 MB of records for a 1 MB bucket

my $relay = start_relay(tokens => { default => $token }, conf => <<"EOF");
bucket default {
    token       $token;
    max_size    1m;
    overflow    reject;
    consumer    reader;
}
EOF

my $nginx = start_capture_nginx(ring => $ring, ring_size => '8m');
my $buf = "$dir/spool.db";
my $spool = start_spool(ring => $ring, buffer => $buf, id => 'rej',
                        max_buffer => '64m',
                        args => ['--relay', 'http://127.0.0.1:' . $relay->port,
                                 '--token', $token,
                                 '--forward-batch-bytes', '64k',
                                 '--retry-max', '300ms']);

my @r = http_series($nginx->port,
                    [map { { method => 'POST', uri => "/r/$_",
                             body => $body } } 1 .. $total]);
is(scalar(grep { $_->status == 204 } @r), $total, 'every request answered');

wait_until(sub { my $s = spool_stats($buf, '--ring', $ring);
                 $s->{consumed} == $s->{written} }, 30, 'ring drained');
wait_until(sub { $spool->log_text =~ /bucket "default": 507 / }, 20,
           'the relay answers 507');

my $st = spool_stats($buf);
is($st->{stored_total}, $total, 'every record stored');
ok($st->{records} > 0, "the spool keeps $st->{records} records");
ok($st->{forwarded} > 0 && $st->{forwarded} < $total,
   "some were delivered before the bucket filled: $st->{forwarded}");
is($st->{rejected}, 0, 'a full bucket rejects nothing for good');
is($st->{records} + $st->{forwarded}, $total, 'nothing lost meanwhile');

# the consumer reads and acks; the relay deletes what it acked, and the
# spool gets in again
my @got;
wait_until(sub {
    my ($r, $recs) = relay_get($relay, 'default', consumer => 'reader',
                               max => 200);
    if ($r->status == 200 && @$recs) {
        push @got, @$recs;
        my $a = relay_ack($relay, 'default', 'reader',
                          $r->header('X-RF-Last-Seq'));
        die 'ack: ' . $a->status . ' ' . $a->body unless $a->status == 200;
    }
    return @got >= $total;
}, 60, 'the consumer has read everything');

is(scalar @got, $total, "$total records read, not one more");
my ($first) = $got[0]{id} =~ /^rej:(\d+)$/;
is_deeply([map { $_->{id} } @got],
          [map { "rej:$_" } $first .. $first + $total - 1],
          'each record once, in order');
is_deeply([sort { $a <=> $b } map { substr $_->{uri}, 3 } @got],
          [1 .. $total], 'every request is there');
is(scalar(grep { $_->{body} eq $body } @got), $total, 'bodies intact');

wait_until(sub { spool_stats($buf)->{records} == 0 }, 10,
           'the buffer is empty');
$st = spool_stats($buf);
is($st->{forwarded}, $total, 'all counted as forwarded');
is($st->{dropped_oldest} + $st->{dropped_newest}, 0, 'the spool dropped none');

my ($b) = grep { $_->{name} eq 'default' } @{ relay_stats($relay)->{buckets} };
ok($b->{rejected} > 0, "the relay counted its 507s: $b->{rejected} records");

is($spool->stop, 0, 'the spool stops cleanly');
$relay->stop;
$nginx->stop;
no_errors_in_log($spool->log_text, 'spool log');
no_errors_in_log($relay->log_text, 'relay log');
no_errors_in_log($nginx->error_log_text, 'nginx log');

done_testing();
