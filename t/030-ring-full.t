# A full ring (no spool draining it): every client still gets its normal
# response, every dropped record is counted in replayforge_status, and
# what was written is drained intact once a spool starts.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::MD5 qw(md5_hex);
use Test::More;
use RF::Test;

my $backend = start_backend();
my $ring = tempdir() . '/full.ring';

# one worker: records reach the ring in request order, so which ones the
# full ring kept can be checked exactly
my $nginx = start_nginx(
    workers     => 1,
    vars        => { BACKEND => $backend->port },
    http_config => "replayforge_ring $ring size=64k;",
    config      => <<'EOF');
replayforge on;
location / { proxy_pass http://127.0.0.1:$RF_BACKEND; }
location = /status { replayforge off; replayforge_status; }
EOF
my $port = $nginx->port;

sub status { http_req($port, uri => '/status')->json }

my $n = 200;
my $body = 'b' x 2000;
my $ok = 0;
for my $i (1 .. $n) {
    my $r = http_req($port, method => 'POST', uri => "/full/$i",
                     body => $body);
    $ok++ if $r->status == 200 && $r->json->{md5} eq md5_hex($body);
}
is($ok, $n, 'every client got its normal response while the ring was full');
is(scalar $backend->requests, $n, 'every request reached the upstream');

my $st = status();
ok($st->{dropped_full} > 0, "drops counted: $st->{dropped_full}");
is($st->{written} + $st->{dropped_full}, $n,
   'written + dropped_full = requests: every record accounted for');
is($st->{consumed}, 0, 'nothing consumed yet');
ok($st->{used} > 0 && $st->{used} <= $st->{size}, 'ring used within size');

my $spool = start_spool(ring => $ring);
wait_until(sub { status()->{consumed} == $st->{written} }, 15,
           'spool drained the ring');
my @recs = spool_dump($spool->buffer);
is(scalar @recs, $st->{written}, 'every written record stored');
is_deeply([map { $_->{uri} } @recs], [map { "/full/$_" } 1 .. $st->{written}],
          'the first records are the ones kept, in order');
is(scalar(grep { $_->{body} eq $body } @recs), scalar @recs, 'bodies intact');

# room again: capture resumes
http_req($port, uri => '/after');
wait_until(sub { spool_stats($spool->buffer)->{stored_total}
                 == $st->{written} + 1 }, 15, 'capture resumed');
is((spool_dump($spool->buffer))[-1]{uri}, '/after', 'new record captured');

is($spool->stop, 0, 'spool stops cleanly');
is($nginx->stop, 0, 'nginx stops cleanly');
no_errors_in_log($nginx->error_log_text, 'nginx log');
no_errors_in_log($spool->log_text, 'spool log');

done_testing();
