# The buffer keeps records in chunks, many to a row of its SQLite file.
# A batch from the ring becomes a chunk; a chunk the relay acknowledged in
# part keeps the rest, and neither --dump nor a restarted spool shows or
# sends the acknowledged part again.  A buffer of the old format (schema
# 1, a row per record) is converted at start, its records intact; a
# reader refuses it with a clear message until then.  A damaged chunk is
# reported by --dump, and the other chunks are still read.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

my $dir = tempdir();
my $ring = "$dir/ring";
my $nginx = start_capture_nginx(ring => $ring, ring_size => '8m');

sub push_requests {
    my ($prefix, $n) = @_;
    my @r = http_series($nginx->port,
                        [map { { method => 'POST', uri => "/$prefix/$_",
                                 body => "$prefix body $_\0\x01" } }
                         1 .. $n]);
    return scalar grep { $_->status == 204 } @r;
}

sub sql {
    my ($db, $query) = @_;
    my ($code, $out, $err) = run_cmd(['sqlite3', '-batch', $db, $query]);
    return ($code, $out, $err);
}

sub sql_value {
    my ($db, $query) = @_;
    my ($code, $out, $err) = sql($db, $query);
    die "sqlite3 $query: $err" if $code;
    chomp $out;
    return $out;
}


# ------------------------------------- a batch is a chunk; a converted file

my $buf = "$dir/a.db";
my $spool = start_spool(ring => $ring, buffer => $buf, id => 'web');

for my $burst (1 .. 3) {
    is(push_requests("b$burst", 10), 10, "burst $burst answered");
    wait_until(sub { -e $buf && spool_stats($buf)->{stored_total} == 10 * $burst },
               10, "burst $burst stored");
}

is($spool->stop, 0, 'the spool stops cleanly');

my @before = spool_dump($buf);
is(scalar @before, 30, 'the dump shows the 30 records');
is_deeply([map { $_->{uri} } @before],
          [map { my $b = $_; map { "/b$b/$_" } 1 .. 10 } 1 .. 3],
          'in order');

is(sql_value($buf, 'SELECT count(*) FROM chunks'), 3,
   'three batches, three chunks');
is(sql_value($buf, 'SELECT sum(n) FROM chunks'), 30, 'the chunks count them');
is(sql_value($buf, "SELECT value FROM meta WHERE key = 'schema'"), 2,
   'schema 2');

# back to schema 1: a row per record, as the previous rf-spoold kept them
my (undef, $hex) = sql($buf, 'SELECT hex(data) FROM chunks ORDER BY first');
my @rows;
for my $h (split /\n/, $hex) {
    my $c = pack 'H*', $h;
    while (length $c) {
        my ($sseq, $len, $blen) = unpack 'Q< L< S<', $c;
        my $bucket = substr $c, 14, $blen;
        my $data = substr $c, 14 + $blen, $len;
        push @rows, sprintf "(%s, '%s', %d, X'%s')", $sseq, $bucket, $len,
                            unpack('H*', $data);
        substr($c, 0, 14 + $blen + $len) = '';
    }
}
is(scalar @rows, 30, 'the chunks decode into 30 entries');

write_file("$dir/v1.sql", join "\n",
    'BEGIN;',
    'CREATE TABLE records (sseq INTEGER PRIMARY KEY, bucket TEXT NOT NULL,'
    . ' size INTEGER NOT NULL, data BLOB NOT NULL);',
    (map { "INSERT INTO records VALUES $_;" } @rows),
    'DROP TABLE chunks;',
    "UPDATE meta SET value = 1 WHERE key = 'schema';",
    "DELETE FROM meta WHERE key = 'released';",
    'COMMIT;', '');
my ($code, $out, $err) = run_cmd(['sqlite3', '-batch', $buf,
                                  ".read $dir/v1.sql"]);
is($code, 0, 'a schema 1 buffer written') or diag $err;

($code, $out, $err) = run_cmd([spoold_path(), '--dump', '--buffer', $buf]);
is($code, 1, '--dump refuses schema 1');
like($err, qr/written by an older rf-spoold \(schema 1\): start rf-spoold on it once/,
     '... and says what to do');

# as a conversion a crash cut short leaves it: chunks, and schema 1
sql_value($buf, 'CREATE TABLE chunks (first INTEGER PRIMARY KEY, last INTEGER'
          . ' NOT NULL, n INTEGER NOT NULL, bytes INTEGER NOT NULL, data BLOB'
          . ' NOT NULL)');
($code, $out, $err) = run_cmd([spoold_path(), '--dump', '--buffer', $buf]);
is($code, 1, '--dump refuses a conversion cut short');
like($err, qr/\(schema 1\): start rf-spoold on it once/, '... the same way');

$spool = start_spool(ring => $ring, buffer => $buf, id => 'web',
                     args => ['--log-level', 'info']);
wait_until(sub { $spool->log_text =~ /converted in \d+ steps/ }, 10,
           'the spool converts it');
like($spool->log_text, qr/converting its records to chunks \(schema 1 to 2\)/,
     'and says so');
is($spool->stop, 0, 'the spool stops cleanly');

is_deeply([spoold_dump_ids($buf)], [map { $_->{id} } @before],
          'every record survives the conversion, in order');
is_deeply([spool_dump($buf)], \@before, 'byte for byte (the JSON view)');
is(spool_stats($buf)->{records}, 30, 'records still counts 30');
($code) = sql($buf, 'SELECT count(*) FROM records');
isnt($code, 0, 'the records table is gone');
is(sql_value($buf, 'SELECT sum(n) FROM chunks'), 30, 'the chunks hold 30');

sub spoold_dump_ids { return map { $_->{id} } spool_dump($_[0]) }


# ------------------------------------------------------ a damaged chunk

my $damaged = "$dir/d.db";
$spool = start_spool(ring => $ring, buffer => $damaged, id => 'web');
for my $burst (1 .. 3) {
    push_requests("d$burst", 10);
    wait_until(sub { -e $damaged
                     && spool_stats($damaged)->{stored_total} == 10 * $burst },
               10, "damaged: burst $burst stored");
}
is($spool->stop, 0, 'damaged: the spool stops cleanly');

# the second chunk: its first entry says it is longer than the chunk
sql_value($damaged, 'UPDATE chunks SET data = substr(data, 1, 20) WHERE'
          . ' first = (SELECT first FROM chunks ORDER BY first LIMIT 1'
          . ' OFFSET 1)');

($code, $out, $err) = run_cmd([spoold_path(), '--dump', '--buffer',
                               $damaged]);
is($code, 1, 'damaged: --dump exits 1');
like($err, qr/chunk \d+ is damaged at byte 0, the rest of it is skipped/,
     'damaged: names the chunk');
like($err, qr/1 chunks of buffer ".*d\.db" are damaged/,
     'damaged: and sums up');
my @uris = map { JSON::PP->new->decode($_)->{uri} } grep { /\S/ }
           split /\n/, $out;
is_deeply(\@uris, [map { my $b = $_; map { "/d$b/$_" } 1 .. 10 } 1, 3],
          'damaged: the other chunks are read');


# ------------------------------------------------------------ batch_linger

# a long linger holds a lone record back; a stop commits it all the same
my $lbuf = "$dir/l.db";
$spool = start_spool(ring => $ring, buffer => $lbuf, id => 'linger',
                     args => ['--batch-linger', '60s']);
wait_until(sub { -e $lbuf }, 10, 'linger: buffer created');
is(push_requests('l', 1), 1, 'linger: one request');
my $held = 1;
for (1 .. 20) {         # 1s, far past the 20ms a batch waits at least
    $held = 0 if spool_stats($lbuf)->{stored_total} != 0;
    select undef, undef, undef, 0.05;
}
ok($held, 'linger: the small batch waits for more');
is($spool->stop, 0, 'linger: the spool stops cleanly');
is(spool_stats($lbuf)->{stored_total}, 1, 'linger: and the stop commits it');


# ------------------------------------- acknowledged in part, then restarted

my $token = 'chunk-t0ken';
my $relay = start_relay(buckets => { default => $token });
my $url = 'http://127.0.0.1:' . $relay->port;
my $fbuf = "$dir/f.db";

# a slow relay link: 20 records a second in batches of a few
$spool = start_spool(ring => $ring, buffer => $fbuf, id => 'fwd',
                     args => ['--relay', $url, '--token', $token,
                              '--rate', '20/s', '--forward-batch', '3',
                              '--forward-linger', '10ms']);
wait_until(sub { -e $fbuf }, 10, 'forward: buffer created');
kill 'STOP', $spool->pid;       # the 60 records come as one batch
is(push_requests('f', 60), 60, 'forward: 60 requests answered');
kill 'CONT', $spool->pid;
wait_until(sub { spool_stats($fbuf)->{stored_total} == 60 }, 10,
           'forward: stored');
is(sql_value($fbuf, 'SELECT count(*) FROM chunks'), 1, 'forward: in a chunk');
wait_until(sub { spool_stats($fbuf)->{forwarded} >= 9 }, 20,
           'forward: some forwarded');
is($spool->stop, 0, 'forward: the spool stops cleanly');

my $st = spool_stats($fbuf);
ok($st->{forwarded} > 0 && $st->{records} > 0,
   "forward: $st->{forwarded} forwarded, $st->{records} still buffered");
is($st->{records} + $st->{forwarded}, 60, 'forward: records + forwarded = 60');
is(sql_value($fbuf, 'SELECT count(*) FROM chunks WHERE first <= '
             . "(SELECT value FROM meta WHERE key = 'released')"), 1,
   'forward: the chunk was acknowledged in part, and kept');

my ($r, $recs) = relay_get($relay, 'default', token => $token,
                           consumer => 'check', after => 0, max => 1000);
my %at_relay = map { $_->{id} => 1 } @$recs;
is(scalar keys %at_relay, $st->{forwarded}, 'forward: the relay has those');
my @left = spool_dump($fbuf);
is(scalar @left, $st->{records}, 'forward: the dump shows the rest');
is(scalar(grep { $at_relay{$_->{id}} } @left), 0,
   'forward: and none the relay acknowledged');

$spool = start_spool(ring => $ring, buffer => $fbuf, id => 'fwd',
                     args => ['--relay', $url, '--token', $token]);
wait_until(sub { spool_stats($fbuf)->{records} == 0 }, 20,
           'forward: the rest goes after a restart');
is($spool->stop, 0, 'forward: the spool stops again');

($r, $recs) = relay_get($relay, 'default', token => $token,
                        consumer => 'check2', after => 0, max => 1000);
is_deeply([map { $_->{uri} } @$recs], [map { "/f/$_" } 1 .. 60],
          'forward: the relay has all 60, each once, in order');
$st = spool_stats($fbuf);
is($st->{forwarded}, 60, 'forward: forwarded counts 60');
is(sql_value($fbuf, 'SELECT count(*) FROM chunks'), 0,
   'forward: no chunk left');

$relay->stop;
$nginx->stop;
no_errors_in_log($nginx->error_log_text, 'nginx log');

done_testing();
