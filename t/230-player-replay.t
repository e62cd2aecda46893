# rf-playerd's http sink, on the whole path nginx (module) → ring →
# rf-spoold → rf-relayd → rf-playerd → target:
#   - every captured request reaches the target exactly once with its
#     method, uri, headers (less the hop-by-hop ones) and body byte-exact,
#     binary bodies included; two players (two consumers of one bucket)
#     replay to two targets; one player with two targets fans out
#   - a replayed status that differs from the captured one is a mismatch,
#     one NDJSON line in mismatch_log
#   - a target that is down: tries, then the dead-letter file, and the
#     stream goes on with the records after them
#   - "speed 1" keeps the original order and spacing, "speed 2" halves it
#   - "rate" holds
# Targets that must show exactly what arrived are the harness's Perl
# backend (it logs method, uri, headers in order and the body's md5);
# those whose timing matters are nginx with an access log of $msec.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::MD5 qw(md5_hex);
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);
use RF::Test;

plan skip_all => player_path() . ' not built' unless -x player_path();

my $dir = tempdir();
my $json = JSON::PP->new->utf8;
my %tokens = map { $_ => "tk-$_" } qw(exact down pace rate);
my $relay = start_relay(buckets => \%tokens);
my $origin = start_backend();                 # what the capture proxies to
my $oport = $origin->port;

# one capture nginx and one spool per bucket: the bucket is the server's
my (%cap, %spool);
for my $b (sort keys %tokens) {
    my $ring = "$dir/$b.ring";
    $cap{$b} = start_nginx(workers => 1, http_config => <<"EOF", config => <<"EOF");
replayforge_ring $ring size=4m;
upstream origin { server 127.0.0.1:$oport; keepalive 4; }
EOF
replayforge on;
replayforge_bucket $b;
keepalive_requests 100000;
location / {
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_pass http://origin;
}
EOF
    $spool{$b} = start_spool(ring => $ring, id => "cap-$b",
                             args => ['--relay', $relay->url,
                                      '--token', $tokens{$b},
                                      '--forward-linger', '10ms']);
}

my @players;

# rf-playerd on a config text (start_player: -c FILE, -d), after -t on it
sub player {
    my ($name, $conf) = @_;
    $conf = "relay \$RF_RELAY;\ndead_letter $dir/dead-$name.ndjson;\n"
          . "log_level info;\n$conf";
    my $file = "$dir/player-$name.conf";
    (my $text = $conf) =~ s/\$RF_RELAY\b/$relay->url/ge;
    write_file($file, $text);
    my ($code, $out, $err) = run_cmd([player_path(), '-t', '-c', $file]);
    is($code, 0, "$name: config test passes") or diag($out . $err);
    my $p = start_player(relay => $relay, conf => $conf);
    push @players, [$name, $p];
    return $p;
}

sub sink_block {
    my ($bucket, $consumer, $sink) = @_;
    return "bucket $bucket {\n    consumer $consumer;\n"
         . "    token $tokens{$bucket};\n    wait 1s;\n$sink}\n";
}

sub in_relay {
    my ($bucket, $n) = @_;
    wait_until(sub {
        my ($b) = grep { $_->{name} eq $bucket }
                       @{ relay_stats($relay)->{buckets} };
        return $b && $b->{in_records} >= $n;
    }, 30, "$n records in $bucket at the relay");
}

# nginx answering 204 (or $status for /gone) with an access log of
# "$msec $request_method $request_uri $status"
sub timed_target {
    my (%o) = @_;
    my $t = start_nginx(no_module => 1, port => $o{port}, workers => 1,
                        http_config => "log_format t '\$msec "
                                     . "\$request_method \$request_uri "
                                     . "\$status';\n",
                        config => "access_log \$RF_DIR/access.log t;\n"
                                . "keepalive_requests 100000;\n"
                                . "location /gone { return 404; }\n"
                                . "location / { return 204; }\n");
    write_file($t->dir . '/access.log', '')
        unless -e $t->dir . '/access.log';
    return $t;
}

sub hits {
    my ($t) = @_;
    return map { [split / /] } grep { /\S/ } split /\n/,
           read_file($t->dir . '/access.log');
}


# ---------------------------------------------------------------- exact

# requests meant to break a naive replay: binary and empty bodies, HEAD,
# a body with chunked encoding, duplicate and hop-by-hop headers
sub body_of {
    my ($i) = @_;
    return join '', "b$i\0\r\n", map { chr(($i * 31 + $_) % 256) }
                                    0 .. ($i * 37) % 3000;
}

my @exact;
for my $i (1 .. 40) {
    my $k = $i % 8;
    my %r = (uri => "/x/$i?q=$i&a=%20b", headers => [
                 ['X-Dup', "one $i"], ['X-Other', 'v'], ['X-Dup', 'two'],
                 ['Authorization', "Bearer t$i"]]);
    if ($k == 0) {
        %r = (%r, method => 'GET');
    } elsif ($k == 1) {
        %r = (%r, method => 'HEAD');
    } elsif ($k == 2) {
        %r = (%r, method => 'POST', body => body_of($i),
              headers => [@{ $r{headers} },
                          ['Content-Type', 'application/octet-stream']]);
    } elsif ($k == 3) {
        %r = (%r, method => 'PUT', body => '');
    } elsif ($k == 4) {
        %r = (%r, method => 'POST', body => body_of($i), chunked => 700);
    } elsif ($k == 5) {
        %r = (%r, method => 'DELETE');
    } elsif ($k == 6) {
        %r = (%r, method => 'PATCH', body => body_of($i),
              headers => [@{ $r{headers} }, ['Keep-Alive', 'timeout=5'],
                          ['TE', 'trailers'], ['X-Hop', 'drop me'],
                          ['Connection', 'keep-alive, X-Hop'],
                          ['Proxy-Authorization', 'Basic eA==']]);
    } else {
        %r = (%r, method => 'POST', body => body_of($i),
              headers => [@{ $r{headers} }, ['Expect', '100-continue']]);
    }
    $r{uri} = "/gone/$i" if $i % 10 == 0;      # the mismatch player's 404
    push @exact, \%r;
}

my @resp = http_series($cap{exact}->port, \@exact);
is(scalar(grep { $_->status == 200 } @resp), scalar @exact,
   'capture: every request answered 200');
in_relay('exact', scalar @exact);

my ($r, $captured) = relay_get($relay, 'exact', consumer => 'peek',
                               max => 1000);
is(scalar @$captured, scalar @exact, 'the relay has every request');
my %want = map { $_->{uri} => $_ } @$captured;

my %hop = map { lc $_ => 1 } qw(Connection Keep-Alive Proxy-Connection
    Transfer-Encoding TE Trailer Upgrade Proxy-Authorization Content-Length
    Expect X-Hop);

sub expect_headers {
    my ($rec) = @_;
    return join "\n", map { "$_->[0]: $_->[1]" }
                      grep { !$hop{lc $_->[0]} } @{ $rec->{headers} };
}

sub check_target {
    my ($backend, $what) = @_;
    wait_until(sub { $backend->requests >= @exact }, 30,
               "$what: " . scalar(@exact) . ' requests');
    my @got = $backend->requests;
    is(scalar @got, scalar @exact, "$what: no more, no less");
    my %seen;
    my ($method, $heads, $bodies) = (0, 0, 0);
    for my $g (@got) {
        $seen{$g->{uri}}++;
        my $w = $want{$g->{uri}} or next;
        $method++ if $g->{method} eq $w->{method};
        my $got_h = join "\n", map { "$_->[0]: $_->[1]" }
                               grep { lc $_->[0] ne 'content-length' }
                               @{ $g->{headers} };
        if ($got_h eq expect_headers($w)) {
            $heads++;
        } else {
            diag("$what $g->{uri}: headers\n$got_h\nwanted\n"
                 . expect_headers($w)) if $heads < 3;
        }
        my ($i) = $g->{uri} =~ m{^/\w+/(\d+)};
        my $body = defined $exact[$i - 1]{body} ? $exact[$i - 1]{body} : '';
        $bodies++ if $g->{body_md5} eq md5_hex($body)
                  && $g->{body_len} == length $body;
        my ($cl) = map { $_->[1] } grep { lc $_->[0] eq 'content-length' }
                                   @{ $g->{headers} };
        $bodies-- if length $body && ($cl // -1) != length $body;
    }
    is(scalar(grep { $seen{$_} == 1 } keys %want), scalar @exact,
       "$what: every request exactly once");
    is($method, scalar @exact, "$what: methods and uris as captured");
    is($heads, scalar @exact, "$what: headers in order, duplicates kept, "
                              . 'hop-by-hop ones dropped');
    is($bodies, scalar @exact, "$what: bodies byte-exact, Content-Length "
                               . 'recomputed');
}

my %tgt = map { $_ => start_backend() } qw(a b c1 c2);
my $mis = timed_target();

player('one', sink_block('exact', 'one', <<"EOF"));
    sink http to-a { target http://127.0.0.1:${\ $tgt{a}->port}; }
EOF
player('two', sink_block('exact', 'two', <<"EOF"));
    sink http to-b {
        target http://127.0.0.1:${\ $tgt{b}->port}/;
        concurrency 4;
    }
EOF
player('fan', sink_block('exact', 'fan', <<"EOF"));
    sink http fan {
        target http://127.0.0.1:${\ $tgt{c1}->port};
        target http://127.0.0.1:${\ $tgt{c2}->port};
        concurrency 8;
    }
EOF
player('mis', sink_block('exact', 'mis', <<"EOF"));
    sink http cmp {
        target http://127.0.0.1:${\ $mis->port};
        compare on;
        mismatch_log $dir/mismatch.ndjson;
    }
EOF

check_target($tgt{a}, 'player one → a');
check_target($tgt{b}, 'player two (another consumer) → b');
check_target($tgt{c1}, 'fan-out → first target');
check_target($tgt{c2}, 'fan-out → second target');

my @gone = grep { m{^/gone/} } keys %want;
wait_until(sub { (() = hits($mis)) >= @exact }, 30, 'the compare target');
# the nginx target's own access log: each method and uri exactly once
my %logged;
$logged{"$_->[1] $_->[2]"}++ for hits($mis);
is_deeply(\%logged, { map { ("$want{$_}{method} $_" => 1) } keys %want },
          'the nginx target logged every request once, method and uri '
          . 'as captured');
wait_until(sub { -s "$dir/mismatch.ndjson"
                 && (() = read_file("$dir/mismatch.ndjson") =~ /\n/g)
                    >= @gone }, 10, 'mismatch lines');
# 200 captured everywhere; the compare target answers 204, 404 for /gone
my @m = map { $json->decode($_) } split /\n/,
        read_file("$dir/mismatch.ndjson");
is(scalar @m, scalar @exact, 'every record with another status is a '
                             . 'mismatch line');
my @m404 = grep { $_->{replayed_status} == 404 } @m;
is_deeply([sort map { $_->{uri} } @m404], [sort @gone],
          'the 404s are the /gone requests');
ok(!grep({ $_->{status} != 200 || !defined $_->{id}
           || !defined $_->{replayed_ms} } @m),
   'mismatch lines carry id, original status and replayed latency');


# ---------------------------------------------------------------- down

my $down_port = free_port();
player('down', "max_tries 3;\nretry_backoff 50ms;\n"
               . sink_block('down', 'd', <<"EOF"));
    sink http gone { target http://127.0.0.1:$down_port; timeout 2s; }
EOF

http_series($cap{down}->port,
            [map { { uri => "/early/$_" } } 1 .. 5]);
wait_until(sub {
    my $t = read_file("$dir/dead-down.ndjson");
    return (() = $t =~ /\n/g) >= 5;
}, 30, 'five dead-letter lines');
my @dead = map { $json->decode($_) } split /\n/,
           read_file("$dir/dead-down.ndjson");
is(scalar @dead, 5, 'the five records are dead-lettered');
is_deeply([map { $_->{record}{uri} } @dead], [map { "/early/$_" } 1 .. 5],
          'in order, with their records');
ok(!grep({ $_->{tries} != 3 || $_->{sink} ne 'gone'
           || $_->{reason} !~ /connect/i } @dead),
   'after max_tries, with the connect error as the reason');

my $late = timed_target(port => $down_port);
http_series($cap{down}->port, [map { { uri => "/late/$_" } } 1 .. 5]);
wait_until(sub { (() = hits($late)) >= 5 }, 30, 'the late records');
sleep 0.3 * timeout_scale();               # room for a wrong extra one
is_deeply([map { $_->[2] } hits($late)], [map { "/late/$_" } 1 .. 5],
          'the stream goes on: later records arrive, the dead ones not');


# ---------------------------------------------------------------- speed

my @gaps = (0.3, 0.3, 0.6, 0.3, 0.45);
my $s1 = timed_target();
my $s2 = timed_target();
for my $i (0 .. @gaps) {
    http_req($cap{pace}->port, uri => "/pace/$i");
    sleep $gaps[$i] if $i < @gaps;          # the original pacing
}
in_relay('pace', @gaps + 1);

player('pace1', sink_block('pace', 'p1', <<"EOF"));
    sink http s1 { target http://127.0.0.1:${\ $s1->port}; speed 1; }
EOF
player('pace2', sink_block('pace', 'p2', <<"EOF"));
    sink http s2 { target http://127.0.0.1:${\ $s2->port}; speed 2; }
EOF

for my $t ([$s1, 1], [$s2, 2]) {
    my ($target, $speed) = @$t;
    wait_until(sub { (() = hits($target)) >= @gaps + 1 }, 30,
               "speed $speed: every record");
    my @h = hits($target);
    is_deeply([map { $_->[2] } @h], [map { "/pace/$_" } 0 .. @gaps],
              "speed $speed: the original order");
    my @bad;
    for my $i (1 .. $#h) {
        my $want = $gaps[$i - 1] / $speed;
        my $got = $h[$i][0] - $h[$i - 1][0];
        push @bad, sprintf('%.3f for %.3f', $got, $want)
            if $got < $want * 0.7 || $got > $want * 1.6 + 0.05;
    }
    ok(!@bad, "speed $speed: the gaps are the original ones / $speed")
        or diag("gaps: @bad");
}


# ---------------------------------------------------------------- rate

my $rt = timed_target();
my $nrate = 400;
http_series($cap{rate}->port, [map { { uri => "/r/$_" } } 1 .. $nrate],
            pipeline => 1);
in_relay('rate', $nrate);
player('rate', sink_block('rate', 'r', <<"EOF"));
    sink http limited { target http://127.0.0.1:${\ $rt->port}; rate 100; }
EOF
wait_until(sub { (() = hits($rt)) >= $nrate }, 60, 'every rated record');
my @rh = map { $_->[0] } hits($rt);
# a window in the middle, away from the start (a pull) and the end
my ($from, $to) = ($rh[0] + 0.5, $rh[0] + 3.0);
my $in = grep { $_ >= $from && $_ < $to } @rh;
my $expect = 100 * ($to - $from);
ok($in >= $expect * 0.8 && $in <= $expect * 1.2,
   "rate 100: $in requests in 2.5 s (want $expect ± 20%)");


# ---------------------------------------------------------------- logs

for my $np (@players) {
    my ($name, $p) = @$np;
    is($p->stop, 0, "player $name stops cleanly");
    no_errors_in_log($p->log_text, "player $name log");
}
for my $b (sort keys %cap) {
    no_errors_in_log($cap{$b}->error_log_text, "capture nginx $b log");
    no_errors_in_log($spool{$b}->log_text, "spool $b log");
}
for my $t ($mis, $late, $s1, $s2, $rt) {
    no_errors_in_log($t->error_log_text, 'target nginx log');
}
no_errors_in_log($relay->log_text, 'relay log');

done_testing;
