# The spool buffer's hard cap holds: pushing far more than max_buffer
# through nginx keeps the SQLite files (database + WAL) within the cap
# plus the margin docs/spoold.md states, at every moment a sampler sees,
# and every dropped record is counted.  Both overflow policies.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use RF::Test;

my $cap = 2 * 1024 * 1024;
my $margin = 64 * 1024;         # the margin stated in docs/spoold.md
my $body = 'p' x 8000;
my $requests = 2000;            # ~16 MB of records: 8 x the cap

sub file_size { my @s = stat $_[0]; return @s ? $s[7] : 0 }

# samples db + wal every few ms in a child; returns the largest seen
sub start_sampler {
    my ($db, $out) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $max = 0;
        my $stop = 0;
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

for my $policy (qw(drop_oldest drop_newest)) {
    my $dir = tempdir() . "/$policy";
    mkdir $dir;
    my $ring = "$dir/ring";

    my $nginx = start_capture_nginx(ring => $ring, ring_size => '8m');
    my $spool = start_spool(ring => $ring, buffer => "$dir/spool.db",
                            id => 'cap', max_buffer => '2m',
                            args => ['--overflow', $policy]);
    wait_until(sub { -e "$dir/spool.db" }, 10, 'buffer created');

    my $sampler = start_sampler("$dir/spool.db", "$dir/max");

    my @r = http_series($nginx->port, [map { { method => 'POST',
                                               uri => "/cap/$_",
                                               body => $body } }
                                       1 .. $requests]);
    is(scalar(grep { $_->status == 204 } @r), $requests,
       "$policy: every request answered");

    wait_until(sub { my $s = spool_stats($spool->buffer, '--ring', $ring);
                     $s->{consumed} == $s->{written} }, 30,
               "$policy: ring drained");

    kill "TERM", $sampler;
    waitpid $sampler, 0;
    my $max = read_file("$dir/max");

    my $st = spool_stats($spool->buffer, '--ring', $ring);
    my $now = file_size("$dir/spool.db") + file_size("$dir/spool.db-wal");

    ok($max > 0, "$policy: sampler saw the files");
    cmp_ok($max, '<=', $cap + $margin,
           "$policy: db + wal never above cap + margin (max seen $max)");
    cmp_ok($now, '<=', $cap + $margin, "$policy: at the end: $now");
    is($st->{dropped_full}, 0, "$policy: no ring drops");
    is($st->{invalid}, 0, "$policy: no invalid records");

    my @recs = spool_dump($spool->buffer);
    is(scalar @recs, $st->{records}, "$policy: records count matches dump");
    ok($st->{records} > 50, "$policy: the buffer holds $st->{records}");

    if ($policy eq 'drop_oldest') {
        ok($st->{dropped_oldest} > 0, "drops counted: $st->{dropped_oldest}");
        is($st->{records} + $st->{dropped_oldest}, $requests,
           'kept + dropped_oldest = captured: every drop counted');
        is($st->{stored_total}, $requests, 'every record was stored once');
        is($recs[-1]{uri}, "/cap/$requests", 'the newest record is kept');
        is_deeply([map { $_->{uri} } @recs],
                  [map { "/cap/$_" }
                   $requests - @recs + 1 .. $requests],
                  'what is kept is the newest, contiguous, in order');
    } else {
        ok($st->{dropped_newest} > 0, "drops counted: $st->{dropped_newest}");
        is($st->{records} + $st->{dropped_newest}, $requests,
           'kept + dropped_newest = captured: every drop counted');
        is_deeply([map { $_->{uri} } @recs],
                  [map { "/cap/$_" } 1 .. scalar @recs],
                  'what is kept is the oldest, contiguous, in order');
    }
    is(scalar(grep { $_->{body} eq $body } @recs), scalar @recs,
       "$policy: kept bodies intact");

    is($spool->stop, 0, "$policy: spool stops cleanly");
    $nginx->stop;
    no_errors_in_log($nginx->error_log_text, "$policy: nginx log");
    no_errors_in_log($spool->log_text, "$policy: spool log");
}

done_testing();
