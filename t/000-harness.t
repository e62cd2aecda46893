# Self-test of the test harness (t/lib/RF) with plain nginx, without the
# ReplayForge module: the backend, nginx start/reload/stop, the HTTP
# clients, curl over h2c, the spool helpers (against a stand-in binary)
# and the data-block runner.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::MD5 qw(md5_hex);
use Test::More;
use RF::Test;
use RF::TestNginx;

# A body that a text-mangling path would break: NULs, CR/LF, high bytes.
srand(42);
my $binary = join '', "\0\r\n\0", map { chr int rand 256 } 1 .. 200_000;
my $binary_md5 = md5_hex($binary);

my $backend = start_backend();
my $bport = $backend->port;

sub last_request { ($backend->requests)[-1] }

sub header_values {
    my ($req, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{ $req->{headers} };
}


# ---- the backend on its own

{
    my $r = http_req($bport, method => 'POST', uri => '/direct?a=1',
                     body => $binary);
    is($r->status, 200, 'backend answers');
    is($r->header('content-type'), 'application/json', 'backend: json');
    is_deeply($r->json, { len => length $binary, md5 => $binary_md5 },
              'backend: len and md5 of the body in the response');
    my $q = last_request();
    is($q->{method}, 'POST', 'backend log: method');
    is($q->{uri}, '/direct?a=1', 'backend log: uri');
    is($q->{body_md5}, $binary_md5, 'backend log: body md5');

    $r = http_req($bport, method => 'PUT', uri => '/chunked', chunked => 777,
                  body => $binary);
    is($r->json->{md5}, $binary_md5, 'backend: chunked body decoded');
}


# ---- nginx proxying to the backend

my $nginx = start_nginx(
    no_module   => 1,
    http_config => <<"EOF",
upstream backend {
    server 127.0.0.1:$bport;
    keepalive 4;
}
EOF
    config => <<'EOF');
location / {
    proxy_pass http://backend;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-Conn $connection;
    proxy_set_header X-Conn-Req $connection_requests;
}

location /stream/ {
    proxy_pass http://backend;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_request_buffering off;
}

location = /local {
    return 200 "v1\n";
}
EOF
my $port = $nginx->port;

is(scalar $nginx->worker_pids, 2, 'two workers by default');
like(read_file($nginx->conf), qr/^user root;$/m, 'user root as root')
    if $> == 0;

{
    my $r = http_req($port, uri => '/hello?x=1');
    is($r->status, 200, 'GET through nginx');
    my $q = last_request();
    is($q->{method}, 'GET', 'GET reached the backend');
    is($q->{uri}, '/hello?x=1', 'uri with query reached the backend');
    is($q->{body_len}, 0, 'GET has no body');

    $r = http_req($port, uri => '/dup',
                  headers => [['X-Dup', 'a'], ['X-Other', 'o'],
                              ['X-Dup', 'b']]);
    is_deeply([header_values(last_request(), 'X-Dup')], ['a', 'b'],
              'duplicate request headers kept, in order');

    $r = http_req($port, method => 'POST', uri => '/upload', body => $binary);
    is($r->status, 200, 'binary POST');
    is($r->json->{md5}, $binary_md5, 'binary body reached backend intact');
    is(last_request()->{body_len}, length $binary, 'binary body length');

    $r = http_req($port, method => 'POST', uri => '/chunked',
                  chunked => 4096, body => $binary);
    is($r->json->{md5}, $binary_md5, 'chunked body, buffered by nginx');

    $r = http_req($port, method => 'POST', uri => '/stream/chunked',
                  chunked => 1000, body => $binary);
    is($r->json->{md5}, $binary_md5, 'chunked body, streamed by nginx');
    is_deeply([header_values(last_request(), 'Transfer-Encoding')],
              ['chunked'], 'streamed body was chunked to the backend');
}

# ---- keepalive

{
    my $before = $backend->requests;
    my @r = http_series($port, [
        { uri => '/ka/1' },
        { uri => '/ka/2', method => 'POST', body => "x\0y" },
        { uri => '/local' },
        { uri => '/ka/3', method => 'POST', chunked => 2, body => 'chunky' },
        { uri => '/ka/4', method => 'HEAD' },
    ]);
    is_deeply([map { $_->status } @r], [(200) x 5], 'keepalive series');
    is($r[2]->body, "v1\n", 'local response inside the series');
    is($r[3]->json->{md5}, md5_hex('chunky'), 'chunked body in the series');
    is($r[4]->body, '', 'HEAD response has no body');

    my @q = ($backend->requests)[$before .. $before + 3];
    is_deeply([map { $_->{uri} } @q], [qw(/ka/1 /ka/2 /ka/3 /ka/4)],
              'series reached the backend in order');
    my %conn = map { (header_values($_, 'X-Conn'))[0] => 1 } @q;
    is(scalar keys %conn, 1, 'one client connection for the series');
    is_deeply([map { (header_values($_, 'X-Conn-Req'))[0] } @q],
              [1, 2, 4, 5], 'connection request counter');

    @r = http_series($port, [map { { uri => "/pipe/$_" } } 1 .. 3],
                     pipeline => 1);
    is_deeply([map { $_->status } @r], [200, 200, 200], 'pipelined series');

    my $raw = build_request(uri => '/raw/1')
            . build_request(uri => '/raw/2', close => 1);
    @r = http_request($port, $raw);
    is(scalar @r, 2, 'raw request: responses read until close');
    is($r[1]->header('Connection'), 'close', 'last raw response closes');
}

# ---- h2c

{
    my $h2 = start_nginx(no_module => 1, listen_opts => 'http2',
                         workers => 1, config => <<"EOF");
location / {
    proxy_pass http://127.0.0.1:$bport;
}
EOF
    my $url = 'http://127.0.0.1:' . $h2->port;
    my $r = curl('--http2-prior-knowledge', "$url/h2/get");
    is($r->exit_code, 0, 'curl ran') or diag $r->stderr;
    is($r->status, 200, 'h2c GET');
    is($r->version, '2', 'spoken over HTTP/2');
    is(last_request()->{uri}, '/h2/get', 'h2c GET reached the backend');

    my $file = write_file(tempdir() . '/body.bin', $binary);
    $r = curl('--http2-prior-knowledge', '--data-binary', "\@$file",
              "$url/h2/post");
    is($r->status, 200, 'h2c POST');
    is($r->json->{md5}, $binary_md5, 'h2c body reached backend intact');

    is($h2->stop, 0, 'h2c nginx stops cleanly');
    no_errors_in_log($h2->error_log_text, 'h2c nginx: no errors');
}

# ---- reload, stop

{
    my @old = $nginx->worker_pids;
    $nginx->reload;
    my @new = $nginx->worker_pids;
    is(scalar @new, 2, 'reload: two workers again');
    ok(!(grep { my $o = $_; grep { $_ == $o } @new } @old),
       'reload: a new generation of workers');
    is(http_req($port, uri => '/local')->body, "v1\n", 'serves after reload');

    my %opts = (config => 'location = /local { return 200 "v2\n"; }',
                workers => 1);
    $nginx->reload(%opts);
    is(scalar $nginx->worker_pids, 1, 'reload with a new worker count');
    is(http_req($port, uri => '/local')->body, "v2\n", 'new config served');

    eval { $nginx->reload(config => 'bogus_directive;') };
    like($@, qr/reload failed.*unknown directive "bogus_directive"/s,
         'failed reload reported');
    is(http_req($port, uri => '/local')->body, "v2\n",
       'old config still served after a failed reload');
}

my $log = $nginx->error_log_text;
is($nginx->stop, 0, 'nginx stops with status 0');
ok(!$nginx->running, 'nginx master gone');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port),
   'port closed after stop');
no_errors_in_log($log, 'proxy nginx: no errors', qr/bogus_directive/);

# ---- failures are reported clearly

{
    eval { start_nginx(no_module => 1, config => 'bogus_directive;') };
    like($@, qr/start_nginx failed.*unknown directive "bogus_directive"/s,
         'start_nginx dies with the reason');

    my ($code, $out) = nginx_t(no_module => 1, config => 'return 204;');
    is($code, 0, 'nginx -t on a good config') or diag $out;
    ($code, $out) = nginx_t(no_module => 1, config => 'bogus_directive;');
    isnt($code, 0, 'nginx -t on a bad config');
    like($out, qr/unknown directive "bogus_directive"/, 'nginx -t output');

    eval { nginx_t(module => tempdir() . '/missing.so') };
    like($@, qr/module .*missing\.so not found/, 'missing module detected');

    eval { wait_until(sub { 0 }, 0.2, 'a thing that never happens') };
    like($@, qr/timed out after .*a thing that never happens/,
         'wait_until times out with the description');

    is_deeply([log_errors(<<'EOF')],
2026/01/01 00:00:00 [notice] 1#1: start worker processes
2026/01/01 00:00:00 [error] 2#2: *1 open() failed
2026/01/01 00:00:00 [alert] 1#1: worker process 2 exited on signal 11
==3==ERROR: AddressSanitizer: heap-use-after-free on address
x.c:10:5: runtime error: signed integer overflow
EOF
              ['2026/01/01 00:00:00 [error] 2#2: *1 open() failed',
               '2026/01/01 00:00:00 [alert] 1#1: worker process 2 exited on signal 11',
               '==3==ERROR: AddressSanitizer: heap-use-after-free on address',
               'x.c:10:5: runtime error: signed integer overflow'],
              'log_errors finds errors, alerts and sanitizer reports');
    is_deeply([log_errors("[error] expected\n", qr/expected/)], [],
              'log_errors skips allowed lines');
}

# ---- spool helpers, against a stand-in rf-spoold

{
    my $fake = tempdir() . '/fakebuild';
    mkdir $fake or die "$fake: $!";
    write_file("$fake/rf-spoold", <<'EOF');
#!/usr/bin/perl
use strict;
use warnings;
my %a;
for (my $i = 0; $i < @ARGV; $i++) {
    $a{$ARGV[$i]} = $ARGV[$i + 1] // 1 if $ARGV[$i] =~ /^-/;
}
if ($a{'--dump'}) {
    print qq({"seq":1,"kind":"http","uri":"/a"}\n{"seq":2,"kind":"http"}\n);
    exit 0;
}
if ($a{'--stats'}) {
    print qq({"records":2,"buffer":"$a{'--buffer'}"}\n);
    exit 0;
}
$| = 1;
print STDERR "spool up: ring=$a{'--ring'} id=$a{'--id'}\n";
$SIG{TERM} = sub { print STDERR "spool: stopping\n"; exit 3 };
select(undef, undef, undef, 0.05) while 1;
EOF
    chmod 0755, "$fake/rf-spoold";
    local $ENV{RF_BUILD} = $fake;

    my $spool = start_spool(id => 'web-1', max_buffer => '1m');
    wait_until(sub { $spool->log_text =~ /spool up/ }, 5, 'spool start');
    like($spool->log_text, qr/ring=\S+replayforge\.ring id=web-1/,
         'spool got its flags');
    my @recs = spool_dump($spool->buffer);
    is_deeply([map { $_->{seq} } @recs], [1, 2], 'spool_dump decodes lines');
    is(spool_stats($spool->buffer)->{records}, 2, 'spool_stats decodes');
    is($spool->stop, 3, 'spool stop reports the exit code');
    like($spool->log_text, qr/stopping/, 'spool got SIGTERM');

    my $spool2 = start_spool();
    wait_until(sub { $spool2->log_text =~ /spool up/ }, 5, 'spool start');
    is($spool2->kill9, 137, 'kill9 reports death by SIGKILL');
}

no_errors_in_log(read_file(tempdir() . "/backend-$bport.err"),
                 'backend: no errors');

run_tests(no_module => 1);

done_testing();

__DATA__

=== TEST 1: unknown directive makes nginx -t fail
--- config
replayforge_no_such_directive on;
--- must_die
--- error_log
unknown directive "replayforge_no_such_directive"

=== TEST 2: a plain location, checked by the runner
--- config
location = /t {
    add_header X-Test yes;
    return 200 "hello\n";
}
--- request
GET /t
--- response_body
hello
--- response_headers
X-Test: yes
!X-Missing

=== TEST 3: proxied to the file's backend, with headers and a body
--- config
location / {
    proxy_pass http://127.0.0.1:$RF_BACKEND_PORT;
}
--- request
POST /echo?q=1
--- more_headers
X-A: 1
X-A: 2
--- request_body eval
"a\0b" x 100
--- response_body_like
"len":300,"md5":"[0-9a-f]{32}"

=== TEST 4: error_code, error_log and no_error_log
--- config
location = /missing {
    root $RF_DIR/nowhere;
}
--- log_level: info
--- request
GET /missing
--- error_code: 404
--- error_log
qr/\[error\].*open\(\) ".*nowhere\/missing" failed/
--- no_error_log
[alert]
