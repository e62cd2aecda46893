# rf-playerd's sqlite sink and query API on the real path: records POSTed
# to rf-relayd as NDJSON (so the test sets method, uri, status, ts and
# body), pulled by rf-playerd --sqlite --api-listen --htpasswd:
#   - every filter (method, path, path_prefix, status, since/until), alone
#     and combined, against the answer computed here from what was sent
#   - paging with limit/after until next is null: every row once, in order
#   - /v1/requests/{id} by seq and by "source:sseq"; /body byte-exact for
#     a binary body with its Content-Type; a truncated body says so
#   - basic auth: 401 without credentials, with wrong ones, for an unknown
#     name; 200 for a bcrypt, an apr1, a {SHA} and a crypt $6$ line; the
#     file is read again when it changes; /healthz and /metrics stay open
#   - hostile parameters get a 400 or the right (empty) answer, and the
#     table is intact after them
#   - max_size holds over the file and its -wal while records stream in,
#     and the rows it dropped are counted
# bcrypt: Perl's crypt() is libxcrypt's, which makes $2y$ hashes; where it
# does not, a fixed hash of "s3cret-b" made that way is used.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Digest::SHA qw(sha1);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX qw(strftime);
use Test::More;
use Time::HiRes qw(sleep);
use RF::Test;

plan skip_all => player_path() . ' not built' unless -x player_path();

my $json = JSON::PP->new->utf8->canonical;
my $relay = start_relay(buckets => { web => 'tk-web', cap => 'tk-cap' });
my $T0 = 1767322800;                           # 2026-01-02T03:00:00Z


# ------------------------------------------------------------ the records

my @methods = qw(GET POST PUT DELETE GET);
my @paths = ('/api/users', '/api/users/1', '/api/orders', '/static/a.js',
             '/apix', "/caf\x{e9}", '/api/users/2');
my @statuses = (200, 201, 404, 500, 302, 200);
my @recs;

for my $i (1 .. 70) {
    push @recs, {
        id => "web-1:$i", kind => 'http',
        ts => strftime('%Y-%m-%dT%H:%M:%S', gmtime($T0 + 60 * $i))
              . sprintf('.%06dZ', $i),
        method => $methods[$i % 5], uri => $paths[$i % 7] . "?i=$i",
        status => $statuses[$i % 6], body => "body $i",
        headers => [['Content-Type', 'text/plain'], ['X-I', "$i"]],
    };
}

my $bin = join '', map { chr } 0 .. 255, 255, 0, 13, 10;
push @recs, {
    id => 'bin:1', kind => 'http', ts => '2026-01-02T05:00:00Z',
    method => 'POST', uri => '/upload', status => 201,
    headers => [['Content-Type', 'application/x-thing; v=1']],
    body_b64 => encode_base64($bin, ''),
}, {
    id => 'bin:2', kind => 'http', ts => '2026-01-02T05:00:01Z',
    method => 'POST', uri => '/upload', status => 413,
    body => 'partial', body_truncated => JSON::PP::true,
    body_size => 100000,
}, {
    id => 'tail:1', kind => 'line', ts => '2026-01-02T05:00:02Z',
    path => '/var/log/app.log', line => 'hello',
};

my $r = relay_post($relay, 'web',
                   join('', map { $json->encode($_) . "\n" } @recs),
                   ndjson => 1);
is($r->status, 200, 'the relay took the records') or diag($r->body);
my $first = $json->decode($r->body)->{first_seq};
$recs[$_]{seq} = $first + $_ for 0 .. $#recs;
my %by_id = map { $_->{id} => $_ } @recs;


# ------------------------------------------------------------ htpasswd

sub apr1 { my $h = `openssl passwd -apr1 '$_[0]'`; chomp $h; $h }
sub crypt6 { my $h = `openssl passwd -6 '$_[0]'`; chomp $h; $h }

my $bcrypt = crypt('s3cret-b', '$2y$05$abcdefghijklmnopqrstuu');
$bcrypt = '$2y$05$abcdefghijklmnopqrstuuGYM1AoXyUXzGq0n1rxc.KhKLNI4nprq'
    unless defined $bcrypt && $bcrypt =~ /^\$2y\$05\$.{53}$/;

my %users = (
    alice => ['s3cret-b', $bcrypt],
    bob   => ['s3cret-a', apr1('s3cret-a')],
    carol => ['s3cret-s', '{SHA}' . encode_base64(sha1('s3cret-s'), '')],
    dave  => ['s3cret-6', crypt6('s3cret-6')],
);
like($users{bob}[1], qr/^\$apr1\$/, 'openssl makes apr1 hashes');
like($users{dave}[1], qr/^\$6\$/, 'openssl makes $6$ hashes');

my $dir = tempdir();
my $htpasswd = "$dir/htpasswd";
write_file($htpasswd, join '', "# users\n",
           map { "$_:$users{$_}[1]\n" } sort keys %users);

my $player = start_player(relay => $relay, args => [
    '--relay', $relay->url, '--bucket', 'web', '--token', 'tk-web',
    '--consumer', 'query', '--sqlite', '$RF_DIR/requests.db',
    '--api-listen', '127.0.0.1:$RF_API_PORT', '--htpasswd', $htpasswd]);
my $port = $player->api_port;

sub basic { ['Authorization', 'Basic ' . encode_base64("$_[0]:$_[1]", '')] }
my $auth = basic(bob => $users{bob}[0]);

sub enc {
    my ($s) = @_;
    utf8::encode($s);                   # characters, as JSON sent them
    $s =~ s/([^A-Za-z0-9\-._~\/])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub api {
    my ($uri, @h) = @_;
    return http_req($port, uri => $uri, headers => [@h ? @h : $auth],
                    timeout => 30);
}

wait_until(sub {
    my $r = api('/v1/requests?limit=1000');
    $r->status == 200 && @{ $r->json->{items} } == @recs;
}, 30, 'every record stored');


# ------------------------------------------------------------ filters

# every page of a query, following next
sub all_pages {
    my ($qs, $limit) = @_;
    my (@seqs, $after, $pages);
    while (1) {
        my $uri = "/v1/requests?$qs" . ($limit ? "&limit=$limit" : '')
                  . (defined $after ? "&after=$after" : '');
        my $r = api($uri);
        is($r->status, 200, "GET $uri") or diag($r->body), return;
        my $page = $r->json;
        $pages++;
        push @seqs, map { $_->{seq} } @{ $page->{items} };
        last unless defined $page->{next};
        is($page->{next}, $page->{items}[-1]{seq},
           'next is the last item of a full page');
        $after = $page->{next};
    }
    return wantarray ? (\@seqs, $pages) : \@seqs;
}

# a record's capture time as unix seconds (with the fraction)
sub rec_ts {
    my ($rec) = @_;
    $rec->{ts} =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z$/
        or die "ts $rec->{ts}";
    require Time::Local;
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1)
           + ("0." . ($7 // 0));
}

sub path_of { my ($u) = @_; $u =~ s/\?.*//s; return $u }

sub check {
    my ($qs, $want, $name) = @_;
    my @want = map { $_->{seq} } grep { $want->($_) } @recs;
    my $got = all_pages($qs);
    is_deeply($got, \@want, "$name: " . scalar(@want) . ' rows');
}

my $http = sub { $_[0]{kind} eq 'http' };
check('method=GET', sub { $http->($_[0]) && $_[0]{method} eq 'GET' },
      'method');
check('path=/api/users', sub { $http->($_[0])
                               && path_of($_[0]{uri}) eq '/api/users' },
      'path (the query string is not part of it)');
check('path=' . enc("/caf\x{e9}"),
      sub { $http->($_[0]) && path_of($_[0]{uri}) eq "/caf\x{e9}" },
      'path with UTF-8');
check('path_prefix=/api/users', sub { $http->($_[0])
                                      && $_[0]{uri} =~ m{^/api/users} },
      'path_prefix');
check('path_prefix=/api', sub { $http->($_[0]) && $_[0]{uri} =~ m{^/api} },
      'path_prefix takes /apix too');
check('status=404', sub { $http->($_[0]) && $_[0]{status} == 404 },
      'status');
my $since = $T0 + 60 * 20;
my $until = $T0 + 60 * 40;
check("since=$since", sub { rec_ts($_[0]) >= $since }, 'since (unix)');
check('since=' . enc(strftime('%Y-%m-%dT%H:%M:%S+01:00',
                              gmtime($since + 3600))),
      sub { rec_ts($_[0]) >= $since }, 'since (RFC 3339 with an offset)');
check("since=$since&until=" . enc(strftime('%Y-%m-%dT%H:%M:%SZ',
                                           gmtime($until))),
      sub { rec_ts($_[0]) >= $since && rec_ts($_[0]) < $until },
      'since and until (until is exclusive)');
check("until=$until.5", sub { rec_ts($_[0]) < $until + 0.5 },
      'until with a fraction');
check("method=GET&path_prefix=/api/users&status=200&since=$since",
      sub { $http->($_[0]) && $_[0]{method} eq 'GET'
            && $_[0]{uri} =~ m{^/api/users} && $_[0]{status} == 200
            && rec_ts($_[0]) >= $since },
      'method, path_prefix, status and since together');
check('method=PATCH', sub { 0 }, 'a method nobody used');


# ------------------------------------------------------------ paging

my ($seqs, $pages) = all_pages('', 7);
is_deeply($seqs, [map { $_->{seq} } @recs],
          'pages of 7 cover every row once, in seq order');
is($pages, int((@recs + 6) / 7), 'as many pages as needed, no empty one');
($seqs) = all_pages('method=POST', 3);
is_deeply($seqs, [map { $_->{seq} }
                  grep { ($_->{method} // '') eq 'POST' } @recs],
          'paging a filter');
$r = api('/v1/requests?limit=5000');
is(scalar @{ $r->json->{items} }, scalar @recs, 'limit over 1000 is 1000');
$r = api('/v1/requests?limit=2');
is(scalar @{ $r->json->{items} }, 2, 'limit');
is($r->json->{next}, $first + 1, 'next after a full page');


# ------------------------------------------------------------ one record

my $rec = $by_id{'web-1:5'};
$r = api("/v1/requests/$rec->{seq}");
is($r->status, 200, 'GET /v1/requests/{seq}');
my $view = $json->decode($r->body);
is($view->{seq}, $rec->{seq}, '... its seq');
is($view->{id}, 'web-1:5', '... its id');
is($view->{uri}, $rec->{uri}, '... its uri');
is_deeply($view->{headers}, $rec->{headers}, '... its headers');
$r = api('/v1/requests/web-1:5');
is($r->status, 200, 'GET /v1/requests/{source:sseq}');
is($r->json->{seq}, $rec->{seq}, '... the same record');
is(api('/v1/requests/99999999')->status, 404, 'an unknown seq: 404');
is(api('/v1/requests/nope:1')->status, 404, 'an unknown id: 404');
is(api('/v1/requests/12x')->status, 400, 'a malformed id: 400');
is(api("/v1/requests/$rec->{seq}/x")->status, 404, 'an unknown route: 404');

$r = api("/v1/requests/$by_id{'bin:1'}{seq}/body");
is($r->status, 200, 'GET /body of a binary body');
ok($r->body eq $bin, '... byte for byte') or diag(unpack 'H*', $r->body);
is($r->header('Content-Type'), 'application/x-thing; v=1',
   '... with its Content-Type');
is($r->header('X-RF-Body-Truncated'), '0', '... not truncated');
$r = api("/v1/requests/$by_id{'bin:2'}{seq}/body");
is($r->body, 'partial', 'a truncated body: what was captured');
is($r->header('X-RF-Body-Truncated'), '1', '... says so');
is($r->header('X-RF-Body-Size'), '100000', '... and the original size');
is($r->header('Content-Type'), 'application/octet-stream',
   '... octet-stream without a Content-Type');
$r = api("/v1/requests/$by_id{'tail:1'}{seq}");
is($r->json->{kind}, 'line', 'a line record is stored with its kind');
is(api("/v1/requests/$by_id{'tail:1'}{seq}/body")->status, 404,
   '... and has no body');


# ------------------------------------------------------------ auth

for my $u (sort keys %users) {
    my ($kind) = $users{$u}[1] =~ /^(\$\w+\$|\{SHA\})/;
    is(api('/v1/requests?limit=1', basic($u, $users{$u}[0]))->status, 200,
       "$kind line lets $u in");
    is(api('/v1/requests?limit=1', basic($u, $users{$u}[0] . 'x'))->status,
       401, "$kind line: a wrong password is 401");
}

$r = http_req($port, uri => '/v1/requests');
is($r->status, 401, 'no credentials: 401');
is($r->header('WWW-Authenticate'), 'Basic realm="replayforge"',
   '... with the challenge');
is($r->json->{error}, 'unauthorized', '... and a JSON error');
is(api("/v1/requests/$first/body", basic(mallory => 'x'))->status, 401,
   'an unknown name: 401');
is(api("/v1/requests/$first", ['Authorization', 'Basic !!'])->status, 401,
   'malformed credentials: 401');
is(api("/v1/requests/$first", ['Authorization', 'Bearer tk-web'])->status,
   401, 'a bearer token: 401');
is(http_req($port, uri => '/healthz')->status, 200,
   '/healthz needs no credentials');
$r = http_req($port, uri => '/metrics');
is($r->status, 200, '/metrics needs no credentials');
like($r->body, qr/^rf_player_sqlite_rows\{bucket="web",sink="sqlite"\} \d+$/m,
     '... and counts the rows');

# the file is read again when it changes
my $erin = apr1('s3cret-e');
write_file($htpasswd, "bob:$users{bob}[1]\nerin:$erin\n");
utime(time + 5, time + 5, $htpasswd);
is(api('/v1/requests?limit=1', basic(erin => 's3cret-e'))->status, 200,
   'a name added to the file is let in');
is(api('/v1/requests?limit=1', basic(alice => 's3cret-b'))->status, 401,
   'a name removed from it is not');


# ------------------------------------------------------------ hostility

my @bad = (
    ['method=' . enc('GET;DROP TABLE requests'), 'SQL in method'],
    ['method=' . enc("GET' OR '1'='1"), 'quotes and blanks in method'],
    ['status=' . enc('200 OR 1=1'), 'SQL in status'],
    ['status=abc', 'a word for status'], ['status=99', 'status 99'],
    ['since=yesterday', 'a word for since'],
    ['since=2026-02-30T00:00:00Z', 'February 30th'],
    ['until=2026-01-02T03:00:00', 'RFC 3339 without an offset'],
    ["since=$until&until=$since", 'since after until'],
    ['limit=0', 'limit 0'], ['limit=-1', 'a negative limit'],
    ['after=-1', 'a negative after'], ['after=1e3', 'after 1e3'],
    ['foo=1', 'an unknown parameter'],
    ['method=GET&method=POST', 'a parameter given twice'],
    ['path=', 'an empty path'], ['path=%00', 'a NUL in path'],
    ['path=' . ('a' x 4097), 'a path over 4096 bytes'],
);
for my $b (@bad) {
    my $r = api("/v1/requests?$b->[0]");
    is($r->status, 400, "$b->[1]: 400");
    is(eval { $r->json->{error} }, 'bad_request', '... a JSON error');
}

for my $q ("path=" . enc("' OR 1=1 --"), 'path_prefix=' . enc("' OR ''='"),
           'path_prefix=' . enc('/api/%'), 'path_prefix=' . enc('/api/_'),
           'path=' . enc("/\x{fc}ber/\x{2603}"),
           'path=' . ('/a' x 2048), 'method=' . enc("GET'"))
{
    my $r = api("/v1/requests?$q");
    is($r->status, 200, 'hostile but valid: ' . substr($q, 0, 40));
    is_deeply($r->json->{items}, [], '... matches nothing');
}

$r = api('/v1/requests?path=' . ('a' x 70000));
ok($r->status >= 400 && $r->status < 500,
   'a query larger than the request limit: ' . $r->status);
is(scalar @{ all_pages('') }, scalar @recs, 'the table is intact after it');


# ------------------------------------------------------------ max_size

my $cap = 1024 * 1024;
my $capp = start_player(relay => $relay, conf => <<'EOF');
relay $RF_RELAY;
api_listen 127.0.0.1:$RF_API_PORT;
bucket cap {
    consumer store;
    token tk-cap;
    batch 200;
    sink sqlite small { path $RF_DIR/small.db; max_size 1m; }
}
EOF
my $db = $capp->dir . '/small.db';
my $n = 0;
my $biggest = 0;

sub files_size { (-s $db // 0) + (-s "$db-wal" // 0) }

for my $batch (1 .. 15) {
    my $body = '';
    for (1 .. 100) {
        $n++;
        $body .= $json->encode({
            id => "cap:$n", kind => 'http', method => 'PUT',
            ts => strftime('%Y-%m-%dT%H:%M:%SZ', gmtime($T0 + $n)),
            uri => "/blob/$n", status => 200, body => 'z' x 2000 }) . "\n";
    }
    my $r = relay_post($relay, 'cap', $body, ndjson => 1);
    is($r->status, 200, "cap batch $batch posted") or diag($r->body);
    for (1 .. 10) {
        my $s = files_size();
        $biggest = $s if $s > $biggest;
        sleep 0.02;
    }
}

my %m;
wait_until(sub {
    my $r = http_req($capp->api_port, uri => '/metrics');
    %m = map { /^(rf_player_(?:sqlite_\w+|sink_taken_total))\{[^}]*\} (\d+)/
               ? ($1 => $2) : () } split /\n/, $r->body;
    my $s = files_size();
    $biggest = $s if $s > $biggest;
    ($m{rf_player_sink_taken_total} // 0) == $n;
}, 60, 'the sink took every record');

cmp_ok($biggest, '<=', $cap, "file and -wal stayed under max_size "
                             . "($biggest bytes)");
cmp_ok(files_size(), '<=', $cap, 'and are under it now');
cmp_ok($m{rf_player_sqlite_dropped_total}, '>', 0, 'rows were dropped');
is($m{rf_player_sqlite_rows} + $m{rf_player_sqlite_dropped_total}, $n,
   'rows kept + rows dropped = rows stored');
cmp_ok($m{rf_player_sqlite_rows}, '>', 100, 'the cap still holds many rows');

$r = http_req($capp->api_port, uri => '/v1/requests?limit=1000');
my @kept = map { $_->{id} } @{ $r->json->{items} };
is(scalar @kept, $m{rf_player_sqlite_rows}, 'the API sees the rows kept');
is($kept[-1], "cap:$n", 'the newest row is kept');
is($kept[0], 'cap:' . ($n - @kept + 1), 'the oldest ones went');

$capp->stop;
$player->stop;
for my $p ($player, $capp) {
    no_errors_in_log($p->log_text, 'no sanitizer report in the player log');
    unlike($p->log_text, qr/\]: (?:warn|fatal):/,
           'no warning in the player log') or diag($p->log_text);
}
no_errors_in_log($relay->log_text, 'no errors in the relay log');

done_testing();
