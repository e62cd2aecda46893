# Workers pre-fault the ring (MADV_POPULATE_WRITE) before they take
# requests, so capture does not pay a page fault per new page of the ring:
# right after start, and again after a reload, each worker's mapping of the
# ring is resident in full although nothing was captured yet.  Without the
# populate a fresh worker has next to none of it mapped (fork does not copy
# the page tables of a shared file mapping).  Capture still works.
# rf-spoold pre-faults its mapping (MADV_POPULATE_READ) when it attaches.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

plan skip_all => 'no /dev/shm here' unless -d '/dev/shm' && -w '/dev/shm';

my $ring = "/dev/shm/rf-test-populate-$$.ring";
END { unlink $ring if defined $ring }

my $size_kb = 8 * 1024;             # the data area; the header adds 4k

my $nginx = start_nginx(
    workers     => 2,
    http_config => "replayforge_ring $ring size=8m;",
    config      => <<'EOF');
replayforge on;
location / { return 204; }
location = /rf-status { replayforge off; replayforge_status; }
EOF
my $port = $nginx->port;

my ($first) = $nginx->worker_pids;
plan skip_all => '/proc/PID/smaps of nginx workers is not readable here'
    unless $first && read_file("/proc/$first/smaps") =~ /^Rss:/m;

# Rss in kB of the ring's mapping in process $pid, undef when not mapped
sub ring_rss {
    my ($pid) = @_;
    my $smaps = read_file("/proc/$pid/smaps");
    my ($rss, $in);
    for my $line (split /\n/, $smaps) {
        if ($line =~ /^[0-9a-f]+-[0-9a-f]+ /) {
            $in = $line =~ /\s\Q$ring\E$/;
            next;
        }
        $rss += $1 if $in && $line =~ /^Rss:\s+(\d+) kB/;
    }
    return $rss;
}

sub workers_populated {
    my ($what) = @_;
    my @pids = $nginx->worker_pids;
    is(scalar @pids, 2, "$what: two workers");
    for my $pid (@pids) {
        my $rss = ring_rss($pid);
        ok(defined $rss && $rss >= $size_kb,
           "$what: worker $pid has the whole ring resident")
            or diag('Rss of the ring mapping: '
                    . ($rss // 'not mapped') . " kB, want >= $size_kb kB");
    }
}

# a counter of the ring, from replayforge_status
sub counter {
    my ($name) = @_;
    my $r = http_req($port, uri => '/rf-status');
    return $r->status == 200 ? $r->json->{$name} : -1;
}

sub written { counter('written') }

workers_populated('after start, before any request');
is(written(), 0, 'nothing captured yet');

is(http_req($port, uri => '/one')->status, 204, 'a request is served');
wait_until(sub { written() == 1 }, 5, 'the request to be captured');
pass('the request was captured');

$nginx->reload;
workers_populated('after reload');

is(http_req($port, uri => '/two')->status, 204, 'served after reload');
wait_until(sub { written() == 2 }, 5, 'the second request to be captured');
pass('capture goes on after reload');

my $spool = start_spool(ring => $ring);
wait_until(sub { $spool->log_text =~ /ring ".*" attached/ }, 10,
           'rf-spoold to attach the ring');
my $rss = ring_rss($spool->pid);
ok(defined $rss && $rss >= $size_kb, 'rf-spoold has the whole ring resident')
    or diag('Rss of the ring mapping: ' . ($rss // 'not mapped')
            . " kB, want >= $size_kb kB");
wait_until(sub { counter('consumed') == 2 }, 10, 'rf-spoold to drain');
pass('rf-spoold drained both records');
is($spool->stop, 0, 'rf-spoold stops cleanly');
no_errors_in_log($spool->log_text, 'rf-spoold log');

my $log = $nginx->error_log_text;
unlike($log, qr/cannot pre-fault/, 'no populate failure logged');
is($nginx->stop, 0, 'nginx stops cleanly');
no_errors_in_log($nginx->error_log_text, 'nginx log');

done_testing();
