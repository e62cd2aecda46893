# The whole path with the player at its end: nginx → ring → rf-spoold →
# rf-relayd → rf-playerd with file and log sinks.  Every captured request
# lands once in the NDJSON file, byte-exact; the consumer's cursor follows
# (acks); a kill -9 loses nothing; rotation and max_total hold; a sink
# that cannot write sends its records to the dead-letter file after
# max_tries and the stream goes on; the relay going away loses nothing;
# SIGHUP reloads; the heartbeat reaches the relay's dashboard and the
# metrics count what happened.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use JSON::PP ();
use MIME::Base64 qw(decode_base64);
use POSIX ();
use Test::More;
use RF::Test;

plan skip_all => player_path() . ' not built' unless -x player_path();

my $BATCH = 20;
my $dir = tempdir();
my $json = JSON::PP->new->utf8;

my $backend = start_backend();
my $bport = $backend->port;
my $relay = start_relay(buckets => { prod => 'tk-prod' });
my $ring = "$dir/web.ring";
my $nginx = start_nginx(workers => 1, http_config => <<"EOF", config => <<'EOF');
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
my $spool = start_spool(ring => $ring, id => 'web',
                        args => ['--relay', $relay->url,
                                 '--token', 'tk-prod']);

my $conf = <<"EOF";
relay         \$RF_RELAY;
token         tk-prod;
id            play-1;
api_listen    127.0.0.1:\$RF_API_PORT;
max_tries     3;
retry_backoff 20ms;
heartbeat     1s;
bucket prod {
    consumer  play;
    batch     $BATCH;
    wait      2s;
    sink file archive { path \$RF_DIR/out.ndjson; }
    sink file small {
        path      $dir/rot/small.ndjson;
        max_file  16k;
        max_total 64k;
    }
    sink log log;
}
EOF

# a file sink's directory must exist when it opens
mkdir "$dir/rot" or die "mkdir: $!";
my $player = start_player(relay => $relay, conf => $conf);
my $out = $player->dir . '/out.ndjson';
my $small = "$dir/rot/small.ndjson";

# binary bodies, NUL bytes and all, different each time
sub body_of {
    my ($i) = @_;
    return join '', "req $i\0", map { chr(($i * 7 + $_) % 256) } 0 .. $i % 900;
}

sub send_requests {
    my ($from, $to) = @_;
    my @reqs = map { { method => 'POST', uri => "/p/$_",
                       body => body_of($_) } } $from .. $to;
    my @resp = http_series($nginx->port, \@reqs);
    return scalar grep { $_->status == 200 } @resp;
}

sub records_of {
    my ($path) = @_;
    return map { $json->decode($_) } grep { /\S/ } split /\n/,
           read_file($path);
}

sub body_bytes {
    my ($rec) = @_;
    return decode_base64($rec->{body_b64}) if exists $rec->{body_b64};
    my $b = $rec->{body} // '';
    utf8::encode($b);
    return $b;
}

# uri index => how many times it is in the file
sub uri_counts {
    my (@recs) = @_;
    my %n;
    for my $r (@recs) {
        $n{$1}++ if ($r->{uri} // '') =~ m{^/p/(\d+)$};
    }
    return %n;
}

sub bucket_stats {
    my ($b) = @{ relay_stats($relay)->{buckets} };
    return $b;
}

sub cursor_of {
    my ($b) = @_;
    my ($c) = grep { $_->{name} eq 'play' } @{ $b->{consumers} };
    return $c ? $c->{cursor} : -1;
}

# the consumer caught up: every record in, and acked up to the last one
sub wait_acked {
    my ($total, $what) = @_;
    wait_until(sub {
        my $b = bucket_stats();
        return $b->{in_records} >= $total && cursor_of($b) == $b->{last_seq};
    }, 60, $what);
}

# ---------------------------------------------------------------- flow

is(send_requests(1, 200), 200, '200 requests answered');
wait_acked(200, 'the cursor of "play" at the last seq');
pass('acked up to the last seq');

my @recs = records_of($out);
my %n = uri_counts(@recs);
is(scalar(keys %n), 200, 'every request is in the file');
is(scalar(grep { $n{$_} != 1 } keys %n), 0, '... each exactly once');
is(scalar(grep { body_bytes($_) ne body_of($_->{uri} =~ m{(\d+)$}) } @recs),
   0, 'every body byte-exact');
my @seqs = map { $_->{seq} } @recs;
is_deeply(\@seqs, [sort { $a <=> $b } @seqs], 'in relay order');
is($recs[-1]{seq}, bucket_stats()->{last_seq}, 'up to the last seq');

like($player->log_text, qr/: info: \d+ POST \/p\/200 200 \d+\.\d+ms$/m,
     'the log sink wrote its line');

# ---------------------------------------------------------------- kill -9

my $kid = fork // die "fork: $!";
if ($kid == 0) {
    POSIX::_exit(send_requests(201, 400) == 200 ? 0 : 1);
}
wait_until(sub { uri_counts(records_of($out)) > 220 }, 60,
           'the player busy with the next requests');
$player->kill9;
ok($player->killed || $player->exit_code == 137, 'player killed with -9');
waitpid $kid, 0;
is($? >> 8, 0, '200 more requests answered');
is(send_requests(401, 500), 100, '100 more while the player is away');
wait_until(sub { bucket_stats()->{in_records} >= 500 }, 60,
           'all 500 at the relay');
cmp_ok(cursor_of(bucket_stats()), '<', bucket_stats()->{last_seq},
       'records were left unacked by the killed player');
$player->restart;
wait_acked(500, 'caught up after the restart');

@recs = records_of($out);
%n = uri_counts(@recs);
is(scalar(grep { !$n{$_} } 1 .. 500), 0, 'no request missing after kill -9')
    or diag join ' ', grep { !$n{$_} } 1 .. 500;
my $dups = grep { $n{$_} > 1 } keys %n;
cmp_ok($dups, '<=', $BATCH, "duplicates at most one batch ($dups)");
is(scalar(grep { body_bytes($_) ne body_of($_->{uri} =~ m{(\d+)$}) } @recs),
   0, 'every body still byte-exact');

# ---------------------------------------------------------------- rotation

my @files = sort { ($a =~ /\.(\d+)$/)[0] <=> ($b =~ /\.(\d+)$/)[0] }
            grep { /\.\d+$/ } glob("$small.*");
ok(@files >= 2, 'the small file was rotated (' . scalar(@files) . ')');
my $total = -s $small;
my $too_big = 0;
for my $f ($small, @files) {
    $too_big++ if -s $f > 16 * 1024;
    $total += -s $f unless $f eq $small;
}
is($too_big, 0, 'no file above max_file');
cmp_ok($total, '<=', 64 * 1024, "all of them within max_total ($total)");
is_deeply([map { /\.(\d+)$/ } @files], [1 .. scalar @files],
          'rotated files numbered 1.. without holes');

# newest last: the kept files hold the newest records without a gap
my @kept = map { records_of($_) } reverse(@files), $small;
my @kseq = map { $_->{seq} } @kept;
is($kseq[-1], bucket_stats()->{last_seq}, 'the current file ends at the last');
my $holes = grep { $kseq[$_] != $kseq[$_ - 1] + 1
                   && $kseq[$_] > $kseq[$_ - 1] } 1 .. $#kseq;
is($holes, 0, 'no hole inside what rotation kept');

# ---------------------------------------------------------------- reload

my $good = read_file($player->conf);
write_file($player->conf, $good . "bucket broken {\n");
is($player->reload, 0, 'a broken config is refused on SIGHUP');
ok($player->running, '... and the player runs on');
write_file($player->conf, $good);
is($player->reload, 1, 'a good config is reloaded');
is(send_requests(501, 510), 10, 'requests after the reload');
wait_acked(510, 'caught up after the reload');
%n = uri_counts(records_of($out));
is(scalar(grep { !$n{$_} } 501 .. 510), 0, 'delivered after the reload');

# ---------------------------------------------------------------- relay away

# the relay goes away and comes back on its files: the player retries,
# loses nothing, and goes on
$relay->stop;
wait_until(sub { $player->log_text =~ /pull from relay \S+ failed/ }, 20,
           'the player noticing the relay is away');
$relay->restart;
is(send_requests(511, 520), 10, 'requests after the relay came back');
wait_acked(520, 'caught up after the relay came back');
%n = uri_counts(records_of($out));
is(scalar(grep { !$n{$_} } 511 .. 520), 0, 'delivered after the relay outage');
ok($player->running, 'the player ran through the outage');

# ---------------------------------------------------------------- dead letter

# the sink's file becomes a directory: open fails, records are retried
# max_tries times, then dead-lettered, and the stream goes on
rename $out, "$out.saved" or die "rename: $!";
mkdir $out or die "mkdir: $!";
is(send_requests(521, 525), 5, 'requests while the sink cannot write');
wait_acked(525, 'acked although the archive sink failed');
my @dead = records_of($player->dead_letter);
is(scalar @dead, 5, 'five records dead-lettered');
is_deeply([sort map { $_->{record}{uri} } @dead],
          [sort map { "/p/$_" } 521 .. 525], '... the five requests');
is(scalar(grep { $_->{sink} eq 'archive' && $_->{bucket} eq 'prod'
                 && $_->{consumer} eq 'play' && $_->{tries} == 3
                 && $_->{reason} } @dead),
   5, '... with sink, bucket, consumer, tries and reason');
is(scalar(grep { body_bytes($_->{record})
                 ne body_of($_->{record}{uri} =~ m{(\d+)$}) } @dead),
   0, '... and the whole record, body byte-exact');
my %small = uri_counts(map { records_of($_) } $small, glob("$small.*"));
is(scalar(grep { !$small{$_} } 521 .. 525), 0,
   'the other sinks took those records');

rmdir $out or die "rmdir: $!";
is(send_requests(526, 530), 5, 'requests after the sink recovered');
wait_acked(530, 'caught up again');
%n = uri_counts(records_of($out));
is_deeply([sort { $a <=> $b } keys %n], [526 .. 530],
          'the new file holds the later requests');
is(scalar(records_of($player->dead_letter)), 5, 'nothing more dead-lettered');

my $m = http_req($player->api_port, uri => '/metrics');
is($m->status, 200, 'GET /metrics');
my $last = bucket_stats()->{last_seq};
like($m->body, qr/^rf_player_sink_dead_total
                  \{bucket="prod",sink="archive",type="file"\}\ 5$/mx,
     'metrics: dead per sink');
like($m->body, qr/^rf_player_acked_seq\{bucket="prod",consumer="play"\}
                  \ $last$/mx,
     'metrics: acked seq');
like($m->body, qr/^rf_player_lag\{bucket="prod",consumer="play"\} 0$/m,
     'metrics: lag');
is(http_req($player->api_port, uri => '/healthz')->status, 200, 'healthz');

# ---------------------------------------------------------------- heartbeat

my $sys;
wait_until(sub {
    ($sys) = grep { $_->{role} eq 'player' }
             @{ relay_stats($relay)->{systems} };
    return $sys && $sys->{stats}{acked_seq} == bucket_stats()->{last_seq};
}, 20, 'the player heartbeat with its ack');
is($sys->{id}, 'play-1', 'heartbeat: id');
is($sys->{stats}{bucket}, 'prod', 'heartbeat: bucket');
is($sys->{stats}{consumer}, 'play', 'heartbeat: consumer');
# the counters start again with each (re)load: 501 .. 530 since the last
cmp_ok($sys->{stats}{pulled}, '>=', 30, 'heartbeat: pulled');
is($sys->{stats}{dead}, 5, 'heartbeat: dead');
is($sys->{stats}{lag}, 0, 'heartbeat: no lag');
is($sys->{stats}{archive_taken}, 25, 'heartbeat: per-sink taken');
is($sys->{stats}{archive_dead}, 5, 'heartbeat: per-sink dead');

# ---------------------------------------------------------------- the end

is($player->stop, 0, 'the player stops cleanly on SIGTERM');
no_errors_in_log($player->log_text, 'player log');
is($spool->stop, 0, 'spool stops cleanly');
no_errors_in_log($spool->log_text, 'spool log');
no_errors_in_log($nginx->error_log_text, 'nginx log');
is($relay->stop, 0, 'relay stops cleanly');
no_errors_in_log($relay->log_text, 'relay log');

done_testing;
