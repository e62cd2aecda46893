# rf-spoold restarts with traffic flowing: SIGTERM stops it cleanly and
# kill -9 at any moment loses nothing; on restart it resumes from the
# ring's read position, so every captured request is stored exactly once,
# in order, with contiguous source sequence numbers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use RF::Test;

my $dir = tempdir();
my $ring = "$dir/ring";
my $buffer = "$dir/spool.db";
my $total = 1500;

my $nginx = start_capture_nginx(ring => $ring);

sub spool { start_spool(ring => $ring, buffer => $buffer, id => 'web') }
sub stored { -e $buffer ? spool_stats($buffer)->{stored_total} : 0 }

# the client: numbered requests, one connection each, paced a little so
# the spool restarts happen in the middle of the stream
my $client = fork // die "fork: $!";
if ($client == 0) {
    open my $log, '>>', "$dir/done" or POSIX::_exit(2);
    $log->autoflush(1);
    for my $i (1 .. $total) {
        my $r = eval { http_req($nginx->port, method => 'POST',
                                uri => "/r/$i", body => "request $i") };
        print $log "$i\n" if $r && $r->status == 204;
        select undef, undef, undef, 0.002;
    }
    POSIX::_exit(0);
}

sub done { my @l = split /\n/, read_file("$dir/done"); return scalar @l }

my $spool = spool();
wait_until(sub { stored() >= 200 }, 30, '200 stored');
is($spool->stop, 0, 'SIGTERM: the spool exits 0 mid-stream');
no_errors_in_log($spool->log_text, 'log of the first run');

my $at = done();
wait_until(sub { done() >= $at + 150 }, 30, 'traffic while the spool is down');

$spool = spool();
for my $round (1 .. 3) {
    my $want = stored() + 100;
    wait_until(sub { stored() >= $want }, 30, "progress before kill $round");
    $spool->kill9;
    pass("kill -9 number $round during traffic");
    $spool = spool();
}

waitpid $client, 0;
is($?, 0, 'client finished');
is(done(), $total, 'every request answered');

wait_until(sub { my $s = spool_stats($buffer, '--ring', $ring);
                 $s->{consumed} == $s->{written}
                 && $s->{stored_total} == $s->{written} }, 30,
           'everything written to the ring is stored');

my @recs = spool_dump($buffer);
is(scalar @recs, $total, "$total records stored, not one more");
# two workers log in the order their log phases run: compare as a set
is_deeply([sort { $a <=> $b } map { substr $_->{uri}, 3 } @recs],
          [1 .. $total], 'each request exactly once');
# a new buffer starts its sequence at the wall clock (docs/spoold.md)
my ($first) = $recs[0]{id} =~ /^web:(\d+)$/;
ok($first > 1_700_000_000_000_000, 'the first sequence is the clock in us');
is_deeply([map { $_->{id} } @recs],
          [map { "web:$_" } $first .. $first + $total - 1],
          'source sequence numbers contiguous');
is(scalar(grep { $_->{body} eq "request " . substr($_->{uri}, 3) } @recs),
   $total, 'every body intact');

my $st = spool_stats($buffer, '--ring', $ring);
is($st->{invalid}, 0, 'no invalid records');
is($st->{dropped_full}, 0, 'no ring drops');

is($spool->stop, 0, 'last spool stops cleanly');
no_errors_in_log($spool->log_text, 'log of the last run');
$nginx->stop;
no_errors_in_log($nginx->error_log_text, 'nginx log');

done_testing();
