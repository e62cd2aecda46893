# The whole path nginx → ring → rf-spoold → rf-relayd → GET records, with
# two captured servers (two nginx, two spools) feeding one bucket and two
# consumers reading it: every request arrives exactly once, its body
# byte-exact, in order per source, and both consumers get everything.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use MIME::Base64 qw(decode_base64);
use POSIX ();
use Test::More;
use RF::Test;

my $per_source = 300;
my $dir = tempdir();
my $backend = start_backend();
my $bport = $backend->port;
my $relay = start_relay(buckets => { prod => 'tk-prod' });

my (%nginx, %spool);
for my $src (qw(web-1 web-2)) {
    my $ring = "$dir/$src.ring";
    $nginx{$src} = start_nginx(workers => 1, http_config => <<"EOF", config => <<'EOF');
replayforge_ring $ring size=4m;
upstream backend { server 127.0.0.1:$bport; keepalive 4; }
EOF
replayforge on;
replayforge_bucket prod;
keepalive_requests 100000;
location / {
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_pass http://backend;
}
EOF
    $spool{$src} = start_spool(ring => $ring, id => $src,
                               args => ['--relay', $relay->url,
                                        '--token', 'tk-prod']);
}

# a body per request: binary, NUL bytes and all, different each time
sub body_of {
    my ($src, $i) = @_;
    return join '', "$src $i\0", map { chr(($i * 7 + $_) % 256) } 0 .. $i % 700;
}

# both servers at once, each with its own client
my @kids;
for my $src (sort keys %nginx) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @reqs = map { { method => 'POST', uri => "/p/$src/$_",
                           body => body_of($src, $_) } } 1 .. $per_source;
        my @resp = http_series($nginx{$src}->port, \@reqs);
        POSIX::_exit((grep { $_->status == 200 } @resp) == $per_source
                     ? 0 : 1);
    }
    push @kids, $pid;
}
for my $pid (@kids) {
    waitpid $pid, 0;
    is($? >> 8, 0, 'every request got its 200');
}

my $total = 2 * $per_source;
wait_until(sub {
    my ($b) = @{ relay_stats($relay)->{buckets} };
    return $b->{in_records} >= $total;
}, 60, "$total records at the relay");

for my $consumer (qw(c1 c2)) {
    my ($r, $recs) = relay_get($relay, 'prod', consumer => $consumer,
                               max => 100000);
    is(scalar @$recs, $total, "$consumer: $total records, no more");

    my (%uris, %last, $in_order, $bodies);
    $in_order = $bodies = 1;
    for my $rec (@$recs) {
        $uris{$rec->{uri}}++;
        my ($src, $i) = $rec->{uri} =~ m{^/p/([^/]+)/(\d+)$} or next;
        $in_order = 0 if $rec->{source} ne $src
                      || ($last{$src} // 0) != $i - 1;
        $last{$src} = $i;
        my $body = exists $rec->{body_b64} ? decode_base64($rec->{body_b64})
                                           : $rec->{body};
        $bodies = 0 if $body ne body_of($src, $i);
    }
    is(scalar(grep { $uris{$_} == 1 } keys %uris), $total,
       "$consumer: every request exactly once");
    ok($in_order, "$consumer: in order per source");
    ok($bodies, "$consumer: every body byte-exact");
    is(relay_ack($relay, 'prod', $consumer, $recs->[-1]{seq})->status, 200,
       "$consumer: ack");
}

is(relay_get($relay, 'prod', consumer => 'c1')->status, 204,
   'after the ack nothing is left for c1');

my $st = relay_stats($relay);
my ($b) = @{ $st->{buckets} };
is($b->{duplicates}, 0, 'no duplicates on a healthy path');
is_deeply([sort map { $_->{id} } @{ $b->{sources} }], [qw(web-1 web-2)],
          'both sources are known to the bucket');

for my $src (sort keys %spool) {
    wait_until(sub { spool_stats($spool{$src}->buffer)->{records} == 0 },
               20, "$src: buffer drained");
    my $s = spool_stats($spool{$src}->buffer);
    is($s->{forwarded}, $per_source, "$src: forwarded $per_source");
    wait_until(sub {
        grep { $_->{id} eq $src && $_->{role} eq 'spool' }
             @{ relay_stats($relay)->{systems} }
    }, 20, "$src: heartbeat");
    pass("$src: its heartbeat reached the relay");
    is($spool{$src}->stop, 0, "$src: spool stops cleanly");
    no_errors_in_log($spool{$src}->log_text, "$src: spool log");
    no_errors_in_log($nginx{$src}->error_log_text, "$src: nginx log");
}
is($relay->stop, 0, 'relay stops cleanly');
no_errors_in_log($relay->log_text, 'relay log');

done_testing;
