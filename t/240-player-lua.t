# rf-playerd's Lua scripts between a real rf-relayd and the sinks: the
# discord-5xx example turns only the 5xx records into Discord lines; a
# bucket script routes records to one of two file sinks (an unknown sink
# name dead-letters); a binary body (NUL, invalid UTF-8) goes through a
# script that reads and changes body and headers, byte-exact; a script
# that loops forever is stopped by the budget and only its record is
# dead-lettered, the batch acked; a sink script's error dead-letters that
# record for that sink only; fan-out; tick() output while the relay is
# idle (the no-traffic example); SIGHUP with a broken script keeps the
# old one, a good one is picked up; -t names a broken script's file:line;
# the counters in /metrics and the heartbeat.

use strict;
use warnings;
use utf8;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 decode_base64);
use Test::More;
use RF::Test;
use RF::Webhook;

my $bin = player_path();
plan skip_all => "$bin not built" unless -x $bin;

my $json = JSON::PP->new->utf8->canonical;
my $dir = tempdir();
my $examples = repo_root() . '/docs/examples';


# ---------------------------------------------------------------- helpers

my $sseq = 0;

sub view {
    my (%o) = @_;
    my $i = ++$sseq;
    return {
        kind => 'http', id => "web-1:$i", source => 'web-1',
        ts => '2026-11-23T10:00:00.123456Z',
        method => 'GET', uri => "/r/$i", version => 'HTTP/1.1',
        scheme => 'http', host => 'example.com',
        client => '10.0.0.1:51000', server => '10.0.0.2:80',
        headers => [['Content-Type', 'text/plain'], ['X-A', '1'],
                    ['X-A', '2']],
        body => '', status => 200, duration_ms => 1.25,
        %o,
    };
}

sub ndjson { join '', map { $json->encode($_) . "\n" } @_ }

sub records {
    my ($path) = @_;
    return map { $json->decode($_) } grep { /\S/ } split /\n/,
           read_file($path);
}

sub uris { map { $_->{uri} // $_->{line} } records($_[0]) }

sub header {
    my ($r, $name) = @_;
    my ($v) = map { $_->[1] } grep { lc $_->[0] eq lc $name }
              @{ $r->{headers} || [] };
    return $v;
}

sub script {
    my ($name, $text) = @_;
    return write_file("$dir/$name", $text);
}

my $relay = start_relay(buckets => { map { $_ => 'tk' }
                                     qw(disc route bin loop err fan idle
                                        reload) });

sub post {
    my ($bucket, @recs) = @_;
    my $r = relay_post($relay, $bucket, ndjson(@recs), ndjson => 1);
    is($r->status, 200, "records posted to $bucket") or diag $r->body;
}

# the relay's seqs of a bucket's records, by uri
sub seqs {
    my ($bucket) = @_;
    my (undef, $recs) = relay_get($relay, $bucket, consumer => 'peek',
                                  max => 1000);
    return map { $_->{uri} => $_->{seq} } @$recs;
}

# the player's consumer of the bucket acked up to its last seq
sub acked {
    my ($bucket) = @_;
    my ($b) = grep { $_->{name} eq $bucket } @{ relay_stats($relay)->{buckets} };
    my ($c) = grep { $_->{name} eq 'lua' } @{ $b->{consumers} || [] };
    return $c && $b->{last_seq} > 0 && $c->{cursor} == $b->{last_seq};
}


# ------------------------------------------------------------ the scripts

my $route_lua = script('route.lua', <<'EOF');
function transform(r)
    if r.uri:sub(1, 3) == "/a/" then
        r.sink = "a"
    elseif r.uri:sub(1, 3) == "/b/" then
        r.sink = "b"
    elseif r.uri == "/nope" then
        r.sink = { "a", "nope" }
    end
    return r
end
EOF

my $bin_lua = script('binary.lua', <<'EOF');
function transform(r)
    local b = r.body
    local h = r.headers
    h[#h + 1] = { "X-Len", tostring(#b) }
    h[#h + 1] = { "X-Sha", rf.sha256(b) }
    h[#h + 1] = { "X-First", rf.header(r, "x-a") }
    r.body = b .. "\0\255end"
    return r
end
EOF

my $loop_lua = script('loop.lua', <<'EOF');
function transform(r)
    if r.uri == "/loop" then
        while true do end
    end
    return r
end
EOF

my $err_lua = script('err.lua', <<'EOF');
function transform(r)
    if r.uri == "/boom" then
        error("boom on " .. r.uri)
    end
    r.uri = r.uri .. "/seen"
    return r
end
EOF

my $fan_lua = script('fan.lua', <<'EOF');
function transform(r)
    local c = rf.copy(r)
    c.uri = r.uri .. "/copy"
    return { r, c }
end
EOF


# ------------------------------------------------------------------- -t

my $n = 0;

sub conf_t {
    my ($body, @args) = @_;
    my $file = "$dir/t-" . ++$n . '.conf';
    write_file($file, "relay http://127.0.0.1:1; token t;\n"
                      . "dead_letter $dir/t-dead.ndjson;\n$body");
    my ($code, $out, $err) = run_cmd([$bin, '-t', '-c', $file, @args]);
    return ($code, $out . $err);
}

my $syntax = script('syntax.lua', "function transform(r)\n"
                                  . "    return r +\nend\n");
my ($code, $err) = conf_t("bucket b { consumer c; script $syntax;\n"
                          . "    sink log l; }\n");
isnt($code, 0, '-t fails on a bucket script with a syntax error');
like($err, qr/\Q$syntax\E:3: /, '... naming its file:line');
like($err, qr/test failed/, '... with nginx\'s wording');

($code, $err) = conf_t("bucket b { consumer c;\n"
                       . "    sink log l { script $syntax; } }\n");
isnt($code, 0, '-t fails on a sink script with a syntax error');
like($err, qr/sink "l".*\Q$syntax\E:3: /, '... naming the sink and file:line');

my $init = script('init.lua', "function init()\n    error('no db')\nend\n"
                              . "function transform(r) return r end\n");
($code, $err) = conf_t("bucket b { consumer c;\n"
                       . "    sink log l { script $init; } }\n");
isnt($code, 0, '-t runs init()');
like($err, qr/init\(\).*\Q$init\E:2: no db/, '... and reports its error');

($code, $err) = conf_t("bucket b { consumer c; sink log l { script "
                       . "$dir/missing.lua; } }\n");
isnt($code, 0, '-t fails on a missing script');
like($err, qr/missing\.lua/, '... naming it');

($code, $err) = conf_t("script_memory 64k;\n"
                       . "bucket b { consumer c; sink log l; }\n");
isnt($code, 0, 'script_memory below the minimum');
like($err, qr/:3: .*script_memory/, '... is a file:line error');

($code, $err) = conf_t("bucket b { consumer c;\n"
                       . "    sink log l { script $fan_lua; script $fan_lua; }"
                       . " }\n");
like($err, qr/:4: "script" directive is duplicate/,
     'a sink\'s script twice: file:line');

($code, $err) = conf_t("script_budget 50000; script_memory 8m;\n"
                       . "script_tick 250ms;\n"
                       . "bucket b { consumer c; script $route_lua;\n"
                       . "    sink file a { path $dir/x; script $fan_lua; }\n"
                       . "    sink file b { path $dir/y; } }\n");
is($code, 0, '-t accepts good scripts and the script directives')
    or diag $err;

($code, undef, $err) = run_cmd([$bin, '-t', '--relay', 'http://h:1',
                                '--token', 't', '--bucket', 'b',
                                '--consumer', 'c', '--file', "$dir/f",
                                '--script', $syntax]);
isnt($code, 0, '--script: -t fails on its syntax error');
like($err, qr/\Q$syntax\E:3: /, '... naming file:line');
($code, undef, $err) = run_cmd([$bin, '-t', '--relay', 'http://h:1',
                                '--token', 't', '--bucket', 'b',
                                '--consumer', 'c', '--file', "$dir/f",
                                '--script', $fan_lua]);
is($code, 0, '--script with a good script') or diag $err;


# ------------------------------------------------------------- the player

my $hook = RF::Webhook->start(dir => $dir);
my $hport = $hook->port;

my $player = start_player(relay => $relay, env => { RF_QUIET_SECONDS => 1 },
                          conf => <<"EOF");
relay         \$RF_RELAY;
token         tk;
id            lua-1;
api_listen    127.0.0.1:\$RF_API_PORT;
max_tries     2;
retry_backoff 20ms;
heartbeat     0;
script_budget 200000;
script_tick   100ms;
log_level     info;

bucket disc {
    consumer lua;
    wait     2s;
    sink discord alerts {
        webhook  http://127.0.0.1:$hport/webhook;
        template "{line}";
        batch    10;
        script   $examples/discord-5xx.lua;
    }
}

bucket route {
    consumer lua;
    wait     2s;
    script   $route_lua;
    sink file a { path \$RF_DIR/route-a.ndjson; }
    sink file b { path \$RF_DIR/route-b.ndjson; }
}

bucket bin {
    consumer lua;
    wait     2s;
    sink file out { path \$RF_DIR/bin.ndjson; script $bin_lua; }
}

bucket loop {
    consumer lua;
    wait     2s;
    script   $loop_lua;
    sink file out { path \$RF_DIR/loop.ndjson; }
}

bucket err {
    consumer lua;
    wait     2s;
    sink file checked { path \$RF_DIR/err-checked.ndjson; script $err_lua; }
    sink file all     { path \$RF_DIR/err-all.ndjson; }
}

bucket fan {
    consumer lua;
    wait     2s;
    script   $fan_lua;
    sink file out { path \$RF_DIR/fan.ndjson; }
    sink sqlite db { path \$RF_DIR/fan.db; }
}

bucket idle {
    consumer lua;
    wait     30s;
    script   $examples/no-traffic.lua;
    sink file alerts  { path \$RF_DIR/idle-alerts.ndjson; }
    sink file archive { path \$RF_DIR/idle-archive.ndjson; }
}
EOF

my $pdir = $player->dir;
my $dead = $player->dead_letter;

sub dead_of {
    my ($bucket) = @_;
    return grep { $_->{bucket} eq $bucket } records($dead);
}


# (i) tick() while the relay has nothing: the idle bucket long-polls 30s

wait_until(sub { grep { /^no traffic for 1 seconds$/ }
                 uris("$pdir/idle-alerts.ndjson") }, 15,
           'the no-traffic alert from tick() while the relay is idle');
my ($alert) = records("$pdir/idle-alerts.ndjson");
is($alert->{kind}, 'line', 'the alert is a line record');
ok(!$alert->{seq}, '... with no relay seq');
is(scalar uris("$pdir/idle-archive.ndjson"), 0,
   '... routed to the alerts sink only');


# (a) the discord-5xx example, end to end

post('disc', view(uri => '/ok'),
             view(uri => '/down', status => 503),
             view(uri => '/missing', status => 404),
             view(method => 'POST', uri => '/boom', status => 500),
             view(uri => '/gw', status => 502, source => 'web-2',
                  id => 'web-2:1'));
wait_until(sub { $hook->lines >= 3 && acked('disc') }, 20,
           'the 5xx lines posted and the batch acked');
is_deeply([$hook->lines],
          ['5xx: GET /down → 503 (web-1)', '5xx: POST /boom → 500 (web-1)',
           '5xx: GET /gw → 502 (web-2)'],
          'discord: only the 5xx records, as the script words them');


# (b) routing by r.sink

post('route', view(uri => '/a/1'), view(uri => '/b/1'), view(uri => '/both'),
              view(uri => '/nope'), view(uri => '/a/2'));
wait_until(sub { acked('route') }, 20, 'the routed batch acked');
is_deeply([uris("$pdir/route-a.ndjson")], ['/a/1', '/both', '/nope', '/a/2'],
          'sink a: its records, the unrouted one and a list naming it');
is_deeply([uris("$pdir/route-b.ndjson")], ['/b/1', '/both'],
          'sink b: its records and the unrouted one');
my @rd = dead_of('route');
is(scalar @rd, 1, 'a route to an unknown sink: one dead letter');
is($rd[0]{sink}, undef, '... of the bucket\'s script ("sink": null)');
is($rd[0]{script}, $route_lua, '... naming the script');
like($rd[0]{reason} // '', qr/no sink "nope" in bucket "route"/,
     '... and the unknown sink');
is($rd[0]{record}{uri}, '/nope', '... with the record');
my %seq = seqs('route');
my ($both) = grep { $_->{uri} eq '/both' } records("$pdir/route-b.ndjson");
is($both->{seq}, $seq{'/both'}, 'a script\'s output keeps the relay seq');
my ($orig) = grep { $_->{uri} eq '/both' }
             @{ (relay_get($relay, 'route', consumer => 'peek2',
                           max => 100))[1] };
delete $_->{seq} for $orig, $both;
is_deeply($both, $orig, '... and the record is as the relay has it');


# (c) a binary body through a script, byte-exact

my $body = "\x00\xff\xfeA\x00\xc3(\x80 end\x00";
my $bv = view(uri => '/bin', body_b64 => encode_base64($body, ''),
               headers => [['X-A', 'one'], ['X-A', 'two'],
                           ['X-Bin', "caf\x{e9}"]]);
delete $bv->{body};
post('bin', $bv);
wait_until(sub { records("$pdir/bin.ndjson") >= 1 }, 20,
           'the binary record written');
my ($b) = records("$pdir/bin.ndjson");
ok(defined $b->{body_b64}, 'the changed body is still not UTF-8: body_b64');
is(decode_base64($b->{body_b64} // ''), $body . "\x00\xffend",
   'the body the script built, byte-exact');
is(header($b, 'X-Len'), length $body, 'the script saw every byte');
is(header($b, 'X-Sha'), sha256_hex($body), '... the very bytes');
is_deeply([map { $_->[0] } @{ $b->{headers} }],
          ['X-A', 'X-A', 'X-Bin', 'X-Len', 'X-Sha', 'X-First'],
          'headers kept in order, duplicates too, the new ones appended');
is(header($b, 'X-First'), 'one', 'rf.header: the first of its name');
is(header($b, 'X-Bin'), "caf\x{e9}", 'a UTF-8 header value kept');


# (d) an endless loop: stopped by the budget, only its record lost

post('loop', view(uri => '/ok1'), view(uri => '/loop'), view(uri => '/ok2'));
wait_until(sub { acked('loop') }, 20, 'the batch with the loop acked');
is_deeply([uris("$pdir/loop.ndjson")], ['/ok1', '/ok2'],
          'the records around the loop delivered');
my @ld = dead_of('loop');
is(scalar @ld, 1, 'the looping record dead-lettered');
like($ld[0]{reason} // '', qr/^script \Q$loop_lua\E: .*budget/,
     '... stopped by the instruction budget');
is($ld[0]{sink}, undef, '... by the bucket\'s script');
is($ld[0]{record}{uri}, '/loop', '... that record');
post('loop', view(uri => '/ok3'));
wait_until(sub { grep { $_ eq '/ok3' } uris("$pdir/loop.ndjson") }, 20,
           'the script still runs after the budget stopped it');


# (e) a sink script's error: that record, for that sink

post('err', view(uri => '/e1'), view(uri => '/boom'), view(uri => '/e2'));
wait_until(sub { acked('err') }, 20, 'the batch with the error acked');
is_deeply([uris("$pdir/err-checked.ndjson")], ['/e1/seen', '/e2/seen'],
          'the sink with the script: the others, transformed');
is_deeply([uris("$pdir/err-all.ndjson")], ['/e1', '/boom', '/e2'],
          'the other sink: every record, untouched');
my @ed = dead_of('err');
is(scalar @ed, 1, 'one dead letter');
is($ed[0]{sink}, 'checked', '... of the sink with the script');
like($ed[0]{reason} // '', qr/^script \Q$err_lua\E: .*err\.lua:3: boom on \/boom/,
     '... with the script\'s error and line');


# (h) fan-out

post('fan', view(uri => '/f1'), view(uri => '/f2'));
wait_until(sub { acked('fan') }, 20, 'the fanned-out batch acked');
is_deeply([uris("$pdir/fan.ndjson")], ['/f1', '/f1/copy', '/f2', '/f2/copy'],
          'two records out of each');
%seq = seqs('fan');
is_deeply([map { $_->{seq} } records("$pdir/fan.ndjson")],
          [@seq{qw(/f1 /f1 /f2 /f2)}], '... each with its input\'s seq');

# the sqlite sink keeps one row per relay seq: the copies are refused
my @fd = dead_of('fan');
is_deeply([sort map { $_->{record}{uri} } @fd], ['/f1/copy', '/f2/copy'],
          'the sqlite sink dead-letters the fanned-out copies');
is_deeply([map { $_->{sink} } @fd], ['db', 'db'], '... as its own');
like($fd[0]{reason}, qr/one row per relay seq/, '... saying why');
my (undef, $rows) = run_cmd(['sqlite3', "$pdir/fan.db",
                              'SELECT path FROM requests ORDER BY seq']);
is($rows, "/f1\n/f2\n", '... and stores the first of each seq');


# (i) again: traffic is back, then quiet again

post('idle', view(uri => '/i1'));
wait_until(sub { grep { $_ eq '/i1' } uris("$pdir/idle-archive.ndjson") },
           20, 'the idle bucket\'s record archived');
wait_until(sub { my @u = uris("$pdir/idle-alerts.ndjson");
                 grep({ $_ eq 'traffic is back' } @u)
                 && $u[-1] eq 'no traffic for 1 seconds' }, 20,
           'traffic is back, then quiet again');


# counters

my $m = http_req($player->api_port, uri => '/metrics')->body;
like($m, qr/^rf_player_script_calls_total\{bucket="disc",sink="alerts"\} 5$/m,
     'metrics: calls of a sink script');
like($m, qr/^rf_player_script_dropped_total\{bucket="disc",sink="alerts"\} 2$/m,
     'metrics: records it dropped');
like($m, qr/^rf_player_script_produced_total\{bucket="disc",sink="alerts"\} 3$/m,
     'metrics: records it produced');
like($m, qr/^rf_player_script_budget_total\{bucket="loop",sink=""\} 1$/m,
     'metrics: the budget stop of a bucket script');
like($m, qr/^rf_player_script_errors_total\{bucket="err",sink="checked"\} 1$/m,
     'metrics: the error');
like($m, qr/^rf_player_script_produced_total\{bucket="fan",sink=""\} 4$/m,
     'metrics: fan-out produced');
like($m, qr/^rf_player_script_ticks_total\{bucket="idle",sink=""\} [1-9]/m,
     'metrics: ticks');
like($m, qr/^rf_player_script_memory_bytes\{bucket="route",sink=""\} [1-9]/m,
     'metrics: memory in use');

is($player->stop, 0, 'the player stops cleanly');
no_errors_in_log($player->log_text, 'player log');


# ------------------------------------------------------ (f) SIGHUP reload

my $reload_lua = "$dir/reload.lua";
my $version = sub {
    script('reload.lua', "function transform(r)\n"
           . "    r.headers[#r.headers + 1] = { \"X-V\", \"$_[0]\" }\n"
           . "    return r\nend\n");
};
$version->(1);
my $pass_lua = script('pass.lua', "function transform(r) return r end\n");

my $rp = start_player(relay => $relay, conf => <<"EOF");
relay         \$RF_RELAY;
token         tk;
id            lua-2;
retry_backoff 20ms;
heartbeat     1s;
bucket reload {
    consumer lua;
    wait     1s;
    script   $reload_lua;
    sink file out { path \$RF_DIR/reload.ndjson; script $pass_lua; }
    sink sqlite st { path \$RF_DIR/reload.db; }
}
EOF

sub versions {
    my %v;
    $v{ $_->{uri} } = header($_, 'X-V') for records($rp->dir . '/reload.ndjson');
    return \%v;
}

post('reload', view(uri => '/v1'));
wait_until(sub { versions()->{'/v1'} }, 20, 'the first script\'s record');
is(versions()->{'/v1'}, 1, 'the first script ran');

script('reload.lua', "function transform(r)\n    return r +\nend\n");
my $pos = length $rp->log_text;
is($rp->reload, 0, 'SIGHUP with a broken script: the reload fails');
like(substr($rp->log_text, $pos), qr/reload failed.*\Q$reload_lua\E:3:/,
     '... and the log says why, with file:line');
post('reload', view(uri => '/v1b'));
wait_until(sub { versions()->{'/v1b'} }, 20,
           'traffic goes on after the failed reload');
is(versions()->{'/v1b'}, 1, '... through the old script');

$version->(2);
is($rp->reload, 1, 'SIGHUP with a good script: reloaded');
post('reload', view(uri => '/v2'));
wait_until(sub { versions()->{'/v2'} }, 20, 'a record after the reload');
is(versions()->{'/v2'}, 2, '... through the changed script');

# the heartbeat (one bucket: the relay takes its id) with the counters
my $sys;
wait_until(sub {
    ($sys) = grep { $_->{id} eq 'lua-2' } @{ relay_stats($relay)->{systems} };
    return $sys && ($sys->{stats}{script_calls} // 0) >= 1
           && ($sys->{stats}{out_script_calls} // 0) >= 1;
}, 20, 'the heartbeat with the script counters');
is($sys->{stats}{script_errors}, 0, 'heartbeat: the bucket script\'s counters');
is($sys->{stats}{out_script_produced}, $sys->{stats}{out_script_calls},
   'heartbeat: a sink script\'s counters under its name');
wait_until(sub {
    ($sys) = grep { $_->{id} eq 'lua-2' } @{ relay_stats($relay)->{systems} };
    return ($sys->{stats}{st_rows} // 0) >= 3;
}, 20, 'heartbeat: a sink type\'s own counters under its name (st_rows)');
is($sys->{stats}{st_errors}, 0, '... all of them (st_errors)');

is($rp->stop, 0, 'the reloaded player stops cleanly');
no_errors_in_log($rp->log_text, 'reloaded player log');

$relay->stop;
no_errors_in_log($relay->log_text, 'relay log');

done_testing();
