# Capture through `nginx -s reload` and a worker killed with SIGKILL, with
# traffic flowing: capture continues, nothing is torn or duplicated, and
# at most the requests in flight on the killed worker go missing.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use POSIX ();
use Test::More;
use RF::Test;

my $backend = start_backend();
my $dir = tempdir();
my $ring = "$dir/crash.ring";

my %conf = (
    vars        => { BACKEND => $backend->port },
    http_config => "replayforge_ring $ring size=4m;\n"
                   . "upstream backend { server 127.0.0.1:\$RF_BACKEND; "
                   . "keepalive 8; }",
    config      => <<'EOF');
replayforge on;
proxy_http_version 1.1;
proxy_set_header Connection "";
location / { proxy_pass http://backend; }
EOF
my $nginx = start_nginx(%conf);
my $port = $nginx->port;
my $spool = start_spool(ring => $ring, id => 'crash',
                        args => ['--stall-timeout', '200ms']);

my $clients = 2;
my $per_client = 300;

# each client sends numbered requests whose body names their uri, and
# writes down every uri it got a complete 200 for
my @kids;
for my $c (1 .. $clients) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open my $log, '>>', "$dir/done.$c" or POSIX::_exit(2);
        $log->autoflush(1);
        for my $i (1 .. $per_client) {
            my $uri = "/c$c/$i";
            my $r = eval { http_req($port, method => 'POST', uri => $uri,
                                    body => "body of $uri", timeout => 5) };
            print $log "$uri\n" if $r && $r->status == 200;
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}

sub done {
    return map { my $t = read_file("$dir/done.$_"); split /\n/, $t }
           1 .. $clients;
}

wait_until(sub { done() >= 150 }, 30, "150 requests before the reload");
$nginx->reload(%conf);
pass('reloaded during traffic');

wait_until(sub { done() >= 350 }, 30, "350 requests before the kill");
my ($victim) = $nginx->worker_pids;
kill 'KILL', $victim;
pass("worker $victim killed with SIGKILL during traffic");

for my $pid (@kids) {
    waitpid $pid, 0;
    is($?, 0, "client $pid finished");
}

my @done = done();
ok(@done >= $clients * $per_client - 5,
   scalar(@done) . ' requests completed');

wait_until(sub { my $s = spool_stats($spool->buffer, '--ring', $ring);
                 $s->{consumed} == $s->{written} }, 20,
           'the ring drained');

my @recs = spool_dump($spool->buffer);
my %sent = map { ("/c$_/" => 1) } 1 .. $clients;
my %seen;
my ($dups, $torn, $foreign) = (0, 0, 0);
for my $r (@recs) {
    $dups++ if $seen{ $r->{uri} }++;
    $torn++ unless ($r->{body} // '') eq "body of $r->{uri}";
    $foreign++ unless $r->{uri} =~ m{^/c(\d+)/(\d+)$}
                      && $1 >= 1 && $1 <= $clients && $2 <= $per_client;
}
is($dups, 0, 'no record captured twice');
is($torn, 0, 'no torn record: every body matches its uri');
is($foreign, 0, 'every record is a request that was sent');

my @missing = grep { !$seen{$_} } @done;
ok(@missing <= 2, 'completed requests missing from capture: '
                  . scalar(@missing) . ' (at most those in flight)')
    or diag "missing: @missing";

# capture went on after the kill: the last requests of each client are in
for my $c (1 .. $clients) {
    my @tail = grep { m{^/c$c/} } @done;
    @tail = @tail[-50 .. -1];
    is(scalar(grep { $seen{$_} } @tail), 50,
       "client $c: its last 50 requests captured after the kill");
}

my $st = spool_stats($spool->buffer, '--ring', $ring);
is($st->{invalid}, 0, 'the spool saw no invalid record');
is($st->{dropped_full}, 0, 'no ring drops');
note("ring skipped $st->{skipped} abandoned slot(s)");

is($spool->stop, 0, 'spool stops cleanly');
$nginx->stop;
no_errors_in_log($nginx->error_log_text, 'nginx log',
                 qr/worker process \d+ exited on signal 9/);
no_errors_in_log($spool->log_text, 'spool log');

done_testing();
