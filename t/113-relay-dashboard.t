# rf-relayd's dashboard renders in a real browser: the page at GET / of
# the stats listener is the embedded relay_dashboard.html byte for byte,
# and headless Chromium, fed by the live /v1/stats, draws the bucket with
# its record and source, a spool with its host and stats, another role's
# numeric stats, a stale system, and a hostile last_error as plain text.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use File::Spec;
use JSON::PP ();
use Test::More;
use RF::Test;

my $chromium = $ENV{RF_CHROMIUM}
    // (grep { -x } map { File::Spec->catfile($_, 'chromium') }
                    File::Spec->path)[0];
plan skip_all => 'chromium not installed (apt-get install chromium)'
    unless $chromium && -x $chromium;

my $dir = tempdir();
my $json = JSON::PP->new->canonical;
my $hostile = '<img src=x onerror=document.title=1>';

my $relay = start_relay(buckets => { demo => 'dash-token' });
my $sport = $relay->stats_port;


sub heartbeat {
    my (%hb) = @_;
    my $r = relay_request($relay, 'POST', '/v1/heartbeat',
                          token => 'dash-token', body => $json->encode(\%hb),
                          headers => [['Content-Type', 'application/json']]);
    is($r->status, 204, "heartbeat of $hb{id} accepted")
        or diag($r->body);
}


my $r = relay_request($relay, 'GET', '/', stats => 1);
is($r->status, 200, 'GET / answers 200');
like($r->header('Content-Type') // '', qr{^text/html}, 'as text/html');
ok($r->body eq read_file(repo_root() . '/relayd/relay_dashboard.html'),
   'the page served is relayd/relay_dashboard.html byte for byte');

# stale: interval 1 s, left alone for more than 3 intervals
heartbeat(id => 'old-test-1', role => 'spool', host => 'old.example',
          version => '0.1.0', interval_s => 1, stats => {});

heartbeat(id => 'web-test-1', role => 'spool',
          host => 'web-test-1.example', version => '0.1.0', interval_s => 5,
          stats => { ring_size => 67108864, ring_used => 16777216,
                     ring_written => 10, ring_dropped_full => 2,
                     ring_dropped_too_big => 1, buffer_records => 3,
                     buffer_bytes => 3072, buffer_max => 268435456,
                     buffer_dropped_oldest => 0, buffer_dropped_newest => 0,
                     sent_records => 7, sent_bytes => 7168,
                     send_rate => 2.5, errors => 1,
                     last_error => $hostile });

heartbeat(id => 'player-test-1', role => 'player',
          host => '<script>document.title=2</script>', version => '0.1.0',
          interval_s => 5,
          stats => { replayed => 42, lag => 7, target => 'not-a-number' });

$r = relay_post($relay, 'demo',
               '{"kind":"http","ts":"2026-11-23T10:00:00.000000Z",'
               . '"id":"web-test-1:1","method":"GET","uri":"/x",'
               . '"headers":[]}' . "\n", ndjson => 1);
is($r->status, 200, 'record posted') or diag($r->body);
is(eval { $json->decode($r->body)->{accepted} }, 1, 'one record accepted');

wait_until(sub {
    my $s = relay_stats($relay);
    my ($old) = grep { $_->{id} eq 'old-test-1' } @{ $s->{systems} };
    return $old && defined $old->{last_heartbeat_age_s}
           && $old->{last_heartbeat_age_s} > 3.2;
}, 10, 'old-test-1 goes stale');

my ($code, $dom, $err) = run_cmd(
    [$chromium, '--headless=new', '--no-sandbox', '--disable-gpu',
     '--no-first-run', '--disable-extensions',
     "--user-data-dir=$dir/chromium", '--enable-logging=stderr', '--v=0',
     '--virtual-time-budget=5000', '--dump-dom', "http://127.0.0.1:$sport/"],
    timeout => 60);
is($code, 0, 'chromium exits 0') or diag($err);

my ($banner) = $dom =~ m{<div id="error"([^>]*>.*?)</div>}s;
ok($dom =~ /<body[^>]*data-rendered="1"/, 'the page rendered the stats')
    or diag("error banner: " . ($banner // 'none'));
unlike($err, qr/Uncaught/, 'no uncaught JS error')
    or diag(join "\n", grep { /CONSOLE/ } split /\n/, $err);
like($banner // '', qr/^ class="banner"(?: role="alert")?>$/,
     'no error banner');

my ($bucket) =
    $dom =~ m{<section[^>]*data-bucket="demo"[^>]*>(.*?)</section>}s;
ok(defined $bucket, 'a section for bucket demo');
$bucket //= '';
like($bucket, qr{<span class="k">records</span><span class="v">1</span>},
     'the bucket shows 1 record');
like($bucket, qr{<tr><td>web-test-1</td><td class="n">1</td>},
     'source web-test-1 with 1 record');

sub system_row {
    my ($id) = @_;
    my ($row) = $dom =~ m{(<tr data-system-id="\Q$id\E"[^>]*>.*?</tr>)}s;
    ok(defined $row, "a row for system $id");
    return $row // '';
}

my $row = system_row('web-test-1');
like($row, qr{<td class="role">spool</td>}, 'web-test-1 is a spool');
like($row, qr{<td class="host">web-test-1\.example</td>}, 'with its host');
unlike($row, qr/stale/, 'and a fresh heartbeat');
like($row, qr{>ring 25\.0%<}, 'ring fill');
like($row, qr{>ring drops 3<}, 'ring drops: full + too big');
like($row, qr{>buffer 3 rec, 3\.0 KiB / 256 MiB<}, 'buffer depth');
like($row, qr{>send 2\.5/s<}, 'send rate');
like($row, qr{>errors 1<}, 'errors');
like($row, qr{>last error: &lt;img src=x onerror=document\.title=1&gt;<},
     'a hostile last_error is text');

$row = system_row('player-test-1');
like($row, qr{<td class="role">player</td>}, 'player-test-1 is a player');
like($row,
     qr{<td class="host">&lt;script&gt;document\.title=2&lt;/script&gt;</td>},
     'a hostile host is text');
like($row, qr{>lag=7<.*>replayed=42<}s, 'numeric stats as name=value');
unlike($row, qr/target=/, 'other stats left out');
unlike($dom, qr/<img|<script>document/i,
       'no element came of hostile values');
like($dom, qr{<title>rf-relayd</title>}, 'and no script ran');

$row = system_row('old-test-1');
like($row, qr{class="stale".*\bstale</td>}s, 'old-test-1 shown stale');

is($relay->stop, 0, 'rf-relayd stops with 0');
no_errors_in_log($relay->log_text, 'relay log');

done_testing();
