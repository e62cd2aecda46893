# rf-spoold's Lua scripts, with nginx capturing into the ring: the four
# examples of docs/examples end to end (redact, drop /health*, a sticky
# 10% sample by user, routing /api/admin* to a bucket whose own script
# runs next); binary bodies byte-exact through scripts that touch them;
# a looping script stopped by the budget and a script failing on one
# record, both dead-lettered while the rest is stored; SIGHUP with a
# broken script keeping the old one, then taking a new one from the same
# path; -t naming file:line; fan-out; tick() while the ring is idle;
# dead_letter_max; the counters of --stats.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha256_hex);
use JSON::PP ();
use MIME::Base64 qw(decode_base64);
use Test::More;
use RF::Test;

my $dir = tempdir();
my $ring = "$dir/ring";
my $examples = repo_root() . '/docs/examples';
my $json = JSON::PP->new->utf8;

my $nginx = start_capture_nginx(ring => $ring, ring_size => '8m');
my $sent = 0;           # records nginx wrote to the ring so far


sub script {
    my ($name, $text) = @_;
    return write_file("$dir/$name.lua", $text);
}

# a spool on the shared ring, once it has attached (at the ring's tail:
# the previous spool stopped with everything released)
sub spool {
    my (@args) = @_;
    my $s = start_spool(ring => $ring, args => \@args);
    wait_until(sub {
        die "rf-spoold exited:\n" . $s->log_text unless $s->running;
        return $s->log_text =~ /ring "\Q$ring\E" attached/;
    }, 10, 'the spool to attach the ring');
    return $s;
}

sub send_reqs {
    my (@reqs) = @_;
    my @r = http_series($nginx->port, \@reqs);
    $sent += @reqs;
    return scalar grep { $_->status == 204 } @r;
}

# every record written to the ring is stored (and released) by $s; the
# meta is read before the ring's counters, so it must have the position
# the ring was released to as well
sub drained {
    my ($s) = @_;
    return wait_until(sub {
        die "rf-spoold exited:\n" . $s->log_text unless $s->running;
        my $st = spool_stats($s->buffer, '--ring', $ring);
        return $st->{written} >= $sent && $st->{consumed} == $st->{written}
               && $st->{ring_pos} == $st->{ring_tail} ? $st : undef;
    }, 20, "the ring drained ($sent records)");
}

sub dead_letters {
    my ($path) = @_;
    return map { $json->decode($_) } grep { /\S/ } split /\n/,
           read_file($path);
}

sub header {
    my ($rec, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name }
           @{ $rec->{headers} || [] };
}

sub body_of {
    my ($rec) = @_;
    return exists $rec->{body_b64} ? decode_base64($rec->{body_b64})
                                   : $rec->{body};
}

sub stop_clean {
    my ($s, $what, @allowed) = @_;
    is($s->stop, 0, "$what: the spool stops cleanly");
    no_errors_in_log($s->log_text, "$what: spool log", @allowed);
}


# ------------------------------------------------ redact.lua

{
    my $s = spool('--script', "$examples/redact.lua");
    is(send_reqs(
        { uri => '/r/1', headers => [ Authorization => 'Bearer s3cret',
                                      Cookie => 'sid=abc', 'X-Keep' => 'k' ] },
        { uri => '/r/2', headers => [ cookie => 'a=1', COOKIE => 'b=2' ] },
        { uri => '/r/3' }), 3, 'redact: requests answered');
    my $st = drained($s);

    my %by = map { $_->{uri} => $_ } spool_dump($s->buffer);
    is(scalar keys %by, 3, 'redact: every record stored');
    is_deeply([header($by{'/r/1'}, 'Authorization')], ['[redacted]'],
              'redact: Authorization value replaced');
    is_deeply([header($by{'/r/1'}, 'Cookie')], ['[redacted]'],
              'redact: Cookie value replaced');
    is_deeply([header($by{'/r/1'}, 'X-Keep')], ['k'],
              'redact: other headers kept');
    is_deeply([header($by{'/r/2'}, 'Cookie')], ['[redacted]', '[redacted]'],
              'redact: every Cookie header, any case');
    unlike(JSON::PP->new->encode([spool_dump($s->buffer)]),
           qr/s3cret|sid=abc|a=1|b=2/, 'redact: no secret in the buffer');
    is($by{'/r/1'}{source}, $s->id, 'redact: records stamped with the id');
    is($st->{script_calls}, 3, 'redact: script_calls');
    is($st->{script_produced}, 3, 'redact: script_produced');
    is($st->{script_errors}, 0, 'redact: no script_errors');
    stop_clean($s, 'redact');
}


# ------------------------------------------------ drop-health.lua

{
    my $s = spool('--script', "$examples/drop-health.lua");
    send_reqs(map { { uri => $_ } }
              qw(/health /healthz /health/db?x=1 /api/x /other/health));
    my $st = drained($s);

    is_deeply([sort map { $_->{uri} } spool_dump($s->buffer)],
              ['/api/x', '/other/health'], 'drop-health: only /health* went');
    is($st->{script_dropped}, 3, 'drop-health: script_dropped');
    is($st->{stored_total}, 2, 'drop-health: stored_total');
    stop_clean($s, 'drop-health');
}


# ------------------------------------------------ sample.lua

{
    my $s = spool('--script', "$examples/sample.lua");
    my @users = map { "user-$_" } 1 .. 1000;
    my @again = @users[0 .. 199];
    send_reqs((map { { uri => "/s/1/$_", headers => [ 'X-User' => $_ ] } }
               @users),
              (map { { uri => "/s/2/$_", headers => [ 'X-User' => $_ ] } }
               @again),
              (map { { uri => "/s/anon/$_" } } 1 .. 5));
    drained($s);

    my %kept = map { $_->{uri} => 1 } spool_dump($s->buffer);
    my @first = grep { $kept{"/s/1/$_"} } @users;
    my $share = @first / @users;
    ok($share >= 0.05 && $share <= 0.15,
       "sample: between 5% and 15% of the users kept ($share)");
    is_deeply([grep { !$kept{"/s/2/$_"} != !$kept{"/s/1/$_"} } @again], [],
              'sample: a user seen twice gets the same decision');
    is_deeply(\@first,
              [grep { hex(substr(sha256_hex($_), 0, 8)) % 100 < 10 } @users],
              'sample: the users the documented hash picks');
    is(scalar(grep { $kept{"/s/anon/$_"} } 1 .. 5), 5,
       'sample: requests without X-User kept');
    stop_clean($s, 'sample');
}


# ------------------------------------------------ route-admin.lua, and a
# bucket script running after it on the records it routed

{
    my $conf = write_file("$dir/route.conf", <<"EOF");
script $examples/route-admin.lua;
bucket admin {
    script $examples/redact.lua;
}
EOF
    my $s = spool('-c', $conf);
    send_reqs({ uri => '/api/admin/users', headers => [ Cookie => 'c=1' ] },
              { uri => '/api/adminx?y=1' },
              { uri => '/api/x', headers => [ Cookie => 'c=2' ] });
    my $st = drained($s);

    my %by = map { $_->{uri} => $_ } spool_dump($s->buffer);
    is($by{'/api/admin/users'}{bucket}, 'admin', 'route: /api/admin* routed');
    is($by{'/api/adminx?y=1'}{bucket}, 'admin', 'route: prefix match');
    is($by{'/api/x'}{bucket}, 'default', 'route: the rest stays');
    is_deeply([header($by{'/api/admin/users'}, 'Cookie')], ['[redacted]'],
              'route: the admin bucket\'s script ran on the routed record');
    is_deeply([header($by{'/api/x'}, 'Cookie')], ['c=2'],
              'route: not on the default bucket\'s');
    is($st->{script_calls}, 5, 'route: global + bucket calls counted');
    stop_clean($s, 'route');
}


# ------------------------------------------------ binary bodies

{
    my $body = "\x00\x01bin\xff\xfe\x80 \xc3\x28 end\x00";
    my $touch = script('touch-body', <<'EOF');
function transform(r)
    r.body = r.body
    r.host = r.host .. ".touched"
    return r
end
EOF
    my $hdr = script('add-header', <<'EOF');
function transform(r)
    r.headers[#r.headers + 1] = { "X-Added", "yes" }
    return r
end
EOF
    for my $case ([$touch, 'body touched'], [$hdr, 'header added']) {
        my ($file, $what) = @$case;
        my $s = spool('--script', $file);
        send_reqs({ method => 'POST', uri => '/bin', body => $body });
        drained($s);
        my ($r) = spool_dump($s->buffer);
        ok($r && exists $r->{body_b64}, "binary, $what: body_b64 in the dump");
        is(body_of($r), $body, "binary, $what: the body byte-exact");
        is($r->{body_size}, length $body, "binary, $what: body_size");
        if ($file eq $touch) {
            is($r->{host}, 'localhost.touched', 'binary: the record rebuilt');
        } else {
            is_deeply([header($r, 'X-Added')], ['yes'],
                      'binary: the header added');
        }
        stop_clean($s, "binary, $what");
    }
}


# ------------------------------------------------ the budget

{
    my $loop = script('loop', <<'EOF');
function transform(r)
    if r.uri:sub(1, 5) == "/loop" then
        while true do end
    end
    return r
end
EOF
    my $dl = "$dir/budget.dead.ndjson";
    my $s = spool('--script', $loop, '--dead-letter', $dl,
                  '--script-budget', '200000');
    send_reqs(map { { uri => $_ } } qw(/b/1 /loop/1 /b/2 /loop/2 /b/3));
    drained($s);
    send_reqs(map { { uri => "/b/later/$_" } } 1 .. 3);
    my $st = drained($s);

    is_deeply([sort map { $_->{uri} } spool_dump($s->buffer)],
              [qw(/b/1 /b/2 /b/3 /b/later/1 /b/later/2 /b/later/3)],
              'budget: every other record stored, also later ones');
    my @dead = dead_letters($dl);
    is_deeply([map { $_->{record}{uri} } @dead], ['/loop/1', '/loop/2'],
              'budget: the looping records dead-lettered');
    like($dead[0]{reason}, qr/budget of 200000/, 'budget: the reason');
    is($dead[0]{script}, $loop, 'budget: the script named');
    is($st->{script_budget}, 2, 'budget: script_budget counted');
    is($st->{dead_lettered}, 2, 'budget: dead_lettered counted');
    like($s->log_text, qr/script "\Q$loop\E": instruction budget/,
         'budget: logged with the reason');
    stop_clean($s, 'budget');
}


# ------------------------------------------------ an error on one record

{
    my $bad = script('one-bad', <<'EOF');
function transform(r)
    if r.uri == "/bad" then
        error("cannot take this one")
    end
    return r
end
EOF
    my $s = spool('--script', $bad);
    my $dl = $s->buffer . '.dead.ndjson';
    send_reqs(map { { uri => $_, headers => [ 'X-N' => $_ ] } }
              qw(/d/1 /bad /d/2 /d/3));
    my $st = drained($s);

    is_deeply([map { $_->{uri} } spool_dump($s->buffer)],
              [qw(/d/1 /d/2 /d/3)], 'error: the others stored, in order');
    my @dead = dead_letters($dl);
    is(scalar @dead, 1, 'error: one dead letter, in buffer.dead.ndjson');
    is($dead[0]{record}{uri}, '/bad', 'error: the failing record');
    is_deeply([header($dead[0]{record}, 'X-N')], ['/bad'],
              'error: the record as the script got it');
    like($dead[0]{reason}, qr/\Q$bad\E:3: cannot take this one/,
         'error: the reason with file:line');
    is($dead[0]{source}, $s->id, 'error: the spool id');
    is($st->{script_errors}, 1, 'error: script_errors');
    like($s->log_text, qr/warn: script "\Q$bad\E": .*cannot take this one/,
         'error: logged');
    stop_clean($s, 'error');
}


# ------------------------------------------------ SIGHUP

{
    my $file = "$dir/reload.lua";
    my $old = "function transform(r)\n    r.bucket = \"old\"\n"
            . "    return r\nend\n";
    write_file($file, $old);
    my $conf = write_file("$dir/reload.conf", "script $file;\n");
    my $s = spool('-c', $conf);
    send_reqs({ uri => '/h/1' });
    drained($s);

    write_file($file, "function transform(r)\n    return r +\nend\n");
    kill 'HUP', $s->pid;
    wait_until(sub { $s->log_text =~ /reload failed/ }, 10,
               'the reload to fail');
    my $failed = qr/reload failed, the running configuration and scripts/;
    like($s->log_text, qr/$failed stay: script \Q$file\E:3: /,
         'reload: a broken script is refused, saying where');
    send_reqs({ uri => '/h/2' });
    drained($s);

    write_file($file, "function transform(r)\n    r.bucket = \"new\"\n"
                      . "    return r\nend\n");
    kill 'HUP', $s->pid;
    wait_until(sub { $s->log_text =~ /configuration reloaded/ }, 10,
               'the reload');
    send_reqs({ uri => '/h/3' });
    drained($s);

    my %bucket = map { $_->{uri} => $_->{bucket} } spool_dump($s->buffer);
    is_deeply(\%bucket, { '/h/1' => 'old', '/h/2' => 'old', '/h/3' => 'new' },
              'reload: the old script ran until a good one came, '
              . 'from the same path');
    stop_clean($s, 'reload');
}


# ------------------------------------------------ -t

{
    my $syntax = script('syntax', "-- a comment\nfunction transform(r)\n"
                                  . "    return r.x.\nend\n");
    my $init = script('init-fails', "function transform(r) return r end\n"
                                    . "function init()\n"
                                    . "    error(\"no config\")\nend\n");
    my $none = script('none', "local x = 1\n");
    my @base = ('-t', '--id', 'x', '--ring', $ring, '--buffer',
                "$dir/t.db");

    my ($code, $out, $err) = run_cmd([spoold_path(), @base, '--script',
                                      $syntax]);
    is($code, 1, '-t: a syntax error fails');
    like($err, qr/\[emerg\] script \Q$syntax\E:4: /, '-t: file:line');
    like($err, qr/test failed/, '-t: test failed');

    write_file("$dir/bucket-t.conf", "bucket b {\n    script $init;\n}\n");
    ($code, $out, $err) = run_cmd([spoold_path(), @base, '-c',
                                   "$dir/bucket-t.conf"]);
    is($code, 1, '-t: a bucket script whose init() fails');
    like($err, qr/\Q$init\E.*init\(\).*\Q$init\E:3: no config/,
         '-t: init() runs, its error names file:line');

    ($code, $out, $err) = run_cmd([spoold_path(), @base, '--script', $none]);
    is($code, 1, '-t: a script without transform() or tick()');
    like($err, qr/neither transform\(\) nor tick\(\)/, '-t: says so');

    ($code, $out, $err) = run_cmd([spoold_path(), @base, '--script',
                                   "$examples/redact.lua", '--script-memory',
                                   '100k']);
    is($code, 1, '-t: script_memory under 1m');
    like($err, qr/--script-memory value must be at least 1m/,
         '-t: script_memory bound');

    ($code, $out, $err) = run_cmd([spoold_path(), @base, '--script',
                                   "$examples/redact.lua"]);
    is($code, 0, '-t: a good script passes') or diag $err;
    ok(!-e "$dir/t.db", '-t: no buffer created');

    my $s = start_spool(ring => $ring, args => ['--script', $syntax]);
    wait_until(sub { !$s->running }, 10, 'a spool with a bad script to exit');
    is($s->exit_code, 1, 'start: a bad script stops the start');
    like($s->log_text, qr/\Q$syntax\E:4: /, 'start: says where');
}


# ------------------------------------------------ fan-out

{
    my $fan = script('fan', <<'EOF');
function transform(r)
    local c = rf.copy(r)
    c.uri = c.uri .. "?copy"
    c.bucket = "copies"
    return { r, c }
end
EOF
    my $s = spool('--script', $fan);
    send_reqs({ uri => '/f/1' }, { uri => '/f/2' });
    my $st = drained($s);

    my @recs = spool_dump($s->buffer);
    is_deeply([map { "$_->{bucket} $_->{uri}" } @recs],
              ['default /f/1', 'copies /f/1?copy', 'default /f/2',
               'copies /f/2?copy'], 'fan-out: both records stored, in order');
    my @seq = map { (split /:/, $_->{id})[1] } @recs;
    is_deeply(\@seq, [map { $seq[0] + $_ } 0 .. 3],
              'fan-out: each has its own sequence number');
    is($st->{script_produced}, 4, 'fan-out: script_produced');
    stop_clean($s, 'fan-out');

    # more than a batch of a 1m buffer (32k) out of one record: refused,
    # so that one transaction stays inside the cap's shares
    my $many = script('many', <<'EOF');
function transform(r)
    local n = r.uri == "/many" and 200 or 2
    local t = {}
    for i = 1, n do
        t[i] = rf.copy(r)
        t[i].uri = r.uri .. "/" .. i
    end
    return t
end
EOF
    $s = spool('--script', $many, '--max-buffer', '1m');
    send_reqs({ uri => '/few' }, { uri => '/many', body => 'y' x 100,
                                   method => 'POST' }, { uri => '/few2' });
    $st = drained($s);

    is_deeply([map { $_->{uri} } spool_dump($s->buffer)],
              ['/few/1', '/few/2', '/few2/1', '/few2/2'],
              'fan-out past a batch: refused, the rest stored');
    my @dead = dead_letters($s->buffer . '.dead.ndjson');
    is_deeply([map { $_->{record}{uri} } @dead], ['/many'],
              'fan-out past a batch: the record dead-lettered');
    my $batch = qr/more than one batch of the buffer takes \(32768 bytes\)/;
    like($dead[0]{reason} // '', qr/200 records of \d+ bytes came out, $batch/,
         'fan-out past a batch: the reason');
    is($st->{script_errors}, 1, 'fan-out past a batch: an error');
    stop_clean($s, 'fan-out past a batch');
}


# ------------------------------------------------ tick() with the ring idle

{
    my $tick = script('tick', <<'EOF');
local n = 0
function tick()
    n = n + 1
    return { kind = "line", path = "tick", line = "tick " .. n,
             bucket = "ticks" }
end
EOF
    my $s = spool('--script', $tick, '--script-tick', '100ms');
    my @recs = @{ wait_until(sub {
        my @r = spool_dump($s->buffer);
        return @r >= 3 ? \@r : undef;
    }, 10, 'tick() records in the buffer') };
    is_deeply([map { $_->{line} } @recs[0 .. 2]], ['tick 1', 'tick 2',
              'tick 3'], 'tick: its records stored, in order, while idle');
    is($recs[0]{kind}, 'line', 'tick: a line record');
    is($recs[0]{bucket}, 'ticks', 'tick: in its bucket');
    is($recs[0]{source}, $s->id, 'tick: stamped');
    my $st = spool_stats($s->buffer, '--ring', $ring);
    cmp_ok($st->{script_ticks}, '>=', 3, 'tick: script_ticks');
    is($st->{consumed}, $st->{written}, 'tick: nothing taken from the ring');
    stop_clean($s, 'tick');
}


# ------------------------------------------------ dead_letter_max

{
    my $fail = script('all-fail', "function transform(r)\n"
                                  . "    error(\"no\")\nend\n");
    my $dl = "$dir/max.dead.ndjson";
    my $s = spool('--script', $fail, '--dead-letter', $dl,
                  '--dead-letter-max', '4k');
    send_reqs(map { { uri => "/m/$_", body => 'x' x 200,
                      method => 'POST' } } 1 .. 30);
    my $st = drained($s);

    my $size = -s $dl;
    ok($size > 2048 && $size <= 4096,
       "dead_letter_max: the file holds ($size)");
    my @dead = dead_letters($dl);
    is($st->{dead_lettered}, scalar @dead, 'dead_letter_max: dead_lettered');
    ok($st->{dead_dropped} > 0, 'dead_letter_max: dead_dropped counted');
    is($st->{dead_lettered} + $st->{dead_dropped}, 30,
       'dead_letter_max: every failed record counted once');
    is($st->{stored_total}, 0, 'dead_letter_max: nothing stored');
    like($s->log_text, qr/dead_letter_max reached in "\Q$dl\E"/,
         'dead_letter_max: logged');
    stop_clean($s, 'dead_letter_max');
}

$nginx->stop;
no_errors_in_log($nginx->error_log_text, 'nginx error log');

done_testing();
