package RF::Test;

# Helpers shared by every prove test of ReplayForge: a private temp dir,
# nginx instances built from a config template, a logging HTTP backend, the
# rf-spoold daemon, raw HTTP clients and polling.  Every process started
# here is stopped (and the temp dir removed) at exit, even when a test dies.

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno qw(EINTR);
use Exporter qw(import);
use File::Basename qw(basename dirname);
use File::Path qw(remove_tree);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(WNOHANG _exit setpgid);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    repo_root build_dir module_path spoold_path tempdir timeout_scale
    free_port wait_until run_cmd write_file read_file
    start_nginx nginx_t nginx_conf start_capture_nginx
    start_backend
    build_request http_request http_req http_series http_connect
    read_responses curl
    start_spool spool_dump spool_stats
    relayd_path start_relay relay_request relay_post relay_get relay_ack
    relay_stats
    player_path start_player
    log_errors no_errors_in_log
);

use constant NGINX => '/usr/sbin/nginx';
use constant CURL  => '/usr/bin/curl';

my $MAIN_PID = $$;
my @LIVE;              # every process object started, stopped at END
my %USED_PORTS;
my $TMPDIR;
my $SEQ = 0;           # unique names inside the temp dir
my $JSON = JSON::PP->new->canonical->ascii->allow_nonref;

# Leave through the END blocks on ^C and kill, so processes still get
# stopped (exit, not die: an eval must not swallow it).
my %SIGNUM = (HUP => 1, INT => 2, TERM => 15);
for my $sig (keys %SIGNUM) {
    $SIG{$sig} = sub {
        print STDERR "# RF::Test: caught SIG$sig\n";
        exit 128 + $SIGNUM{$sig};
    };
}


sub repo_root {
    return abs_path(dirname(__FILE__) . '/../../..');
}


sub build_dir {
    my $dir = $ENV{RF_BUILD} || 'build';
    return $dir =~ m{^/} ? $dir : repo_root() . "/$dir";
}


sub module_path { build_dir() . '/ngx_http_replayforge_module.so' }
sub spoold_path { build_dir() . '/rf-spoold' }
sub relayd_path { build_dir() . '/rf-relayd' }


sub timeout_scale {
    return $ENV{RF_TIMEOUT_SCALE} || ($ENV{RF_ASAN} ? 3 : 1);
}


sub tempdir {
    return $TMPDIR if defined $TMPDIR;
    (my $name = basename($0)) =~ s/\W+/_/g;
    $TMPDIR = File::Temp::tempdir("rf-$name-XXXXXX", TMPDIR => 1,
                                  CLEANUP => 0);
    return $TMPDIR;
}


sub _unique {
    my ($prefix) = @_;
    return tempdir() . '/' . $prefix . '-' . ++$SEQ;
}


sub free_port {
    for (1 .. 100) {
        my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                          LocalPort => 0, Proto => 'tcp',
                                          ReuseAddr => 1)
            or croak "free_port: cannot bind: $!";
        my $port = $sock->sockport;
        close $sock;
        next if $USED_PORTS{$port}++;
        return $port;
    }
    croak 'free_port: no unused port after 100 tries';
}


sub wait_until {
    my ($cond, $timeout, $desc) = @_;
    $timeout = ($timeout // 10) * timeout_scale();
    $desc //= 'condition';
    my $deadline = time + $timeout;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        last if time > $deadline;
        sleep 0.02;
    }
    croak "wait_until: timed out after ${timeout}s waiting for: $desc";
}


sub write_file {
    my ($path, $data) = @_;
    open my $fh, '>:raw', $path or croak "write_file $path: $!";
    print {$fh} $data;
    close $fh or croak "write_file $path: $!";
    return $path;
}


sub read_file {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return '';
    local $/;
    my $data = <$fh>;
    return $data // '';
}


# Forks a child in its own process group running $code (which must exec or
# return); the child never returns into the test (no END blocks there).
sub _spawn {
    my (%a) = @_;
    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        eval {
            setpgid(0, 0);
            $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP PIPE CHLD);
            if (defined $a{stdin}) {
                open STDIN, '<', $a{stdin} or die "stdin: $!";
            } else {
                open STDIN, '<', '/dev/null' or die "stdin: $!";
            }
            if ($a{stdout}) {
                open STDOUT, '>>', $a{stdout} or die "$a{stdout}: $!";
            }
            if ($a{stderr}) {
                open STDERR, '>>', $a{stderr} or die "$a{stderr}: $!";
            }
            $ENV{$_} = $a{env}{$_} for keys %{ $a{env} || {} };
            if ($a{exec}) {
                exec { $a{exec}[0] } @{ $a{exec} };
                die "exec $a{exec}[0]: $!\n";
            }
            $a{code}->();
        };
        print STDERR $@ if $@;
        _exit($@ ? 127 : 0);
    }
    setpgid($pid, $pid);    # also here: no race with an early kill
    return $pid;
}


# Polls for the exit of a child; returns its wait status or undef.
sub _reap {
    my ($pid, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        return $? if $r == $pid;
        return -1 if $r == -1;        # not our child (any more)
        return undef if time > $deadline;
        sleep 0.02;
    }
}


sub _exit_code {
    my ($status) = @_;
    return undef unless defined $status;
    return $status & 127 ? 128 + ($status & 127) : $status >> 8;
}


sub run_cmd {
    my ($cmd, %opts) = @_;
    my $base = _unique('cmd');
    my $stdin;
    if (defined $opts{stdin}) {
        $stdin = write_file("$base.in", $opts{stdin});
    }
    my $pid = _spawn(exec => $cmd, stdin => $stdin, env => $opts{env},
                     stdout => "$base.out", stderr => "$base.err");
    my $timeout = ($opts{timeout} // 60) * timeout_scale();
    my $status = _reap($pid, $timeout);
    unless (defined $status) {
        kill 'KILL', -$pid;
        _reap($pid, 5);
        croak "run_cmd: '@$cmd' still running after ${timeout}s";
    }
    my @res = (_exit_code($status), read_file("$base.out"),
               read_file("$base.err"));
    unlink grep { defined } "$base.out", "$base.err", $stdin;
    return @res;
}


# ---------------------------------------------------------------- logs

my $ERROR_RE = qr/\[(?:error|crit|alert|emerg)\]
                 |ERROR:\ (?:Address|Leak|Thread|Memory)Sanitizer
                 |runtime\ error:/x;


sub log_errors {
    my ($text, @allowed) = @_;
    my @bad;
    for my $line (split /\n/, $text // '') {
        next unless $line =~ $ERROR_RE;
        next if grep { $line =~ $_ } @allowed;
        push @bad, $line;
    }
    return @bad;
}


sub no_errors_in_log {
    my ($text, $name, @allowed) = @_;
    my @bad = log_errors($text, @allowed);
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = Test::More::ok(!@bad, $name // 'no errors in log');
    if (@bad) {
        my @show = @bad > 20 ? (@bad[0 .. 19], '...') : @bad;
        Test::More::diag(join "\n", 'unexpected log lines:', @show);
    }
    return $ok;
}


# ---------------------------------------------------------------- nginx

sub _libasan {
    my ($code, $out) = run_cmd(['gcc', '-print-file-name=libasan.so']);
    chomp $out;
    croak "RF_ASAN: cannot find libasan.so with gcc (got '$out')"
        if $code || $out !~ m{^/} || !-e $out;
    return $out;
}


# An ASan-built module can only be loaded into the (uninstrumented) nginx
# when the ASan runtime is the first library of the process.
sub _asan_module {
    my (%o) = @_;
    return 0 if $o{no_module};
    return 1 if $ENV{RF_ASAN};
    return index(read_file($o{module} // module_path()), 'libasan.so') >= 0;
}


my $ASAN_ENV;

sub _nginx_env {
    my (%o) = @_;
    return {} unless _asan_module(%o);
    $ASAN_ENV //= {
        LD_PRELOAD   => _libasan(),
        ASAN_OPTIONS => join(':', grep { length }
                             $ENV{ASAN_OPTIONS} // '', 'detect_leaks=0'),
    };
    return $ASAN_ENV;
}


sub _subst {
    my ($text, $vars) = @_;
    return '' unless defined $text;
    $text =~ s{\$RF_([A-Z][A-Z0-9_]*)}{
        exists $vars->{$1} ? $vars->{$1}
                           : croak "unknown template variable \$RF_$1"
    }ge;
    return $text;
}


sub _indent {
    my ($text, $n) = @_;
    my $pad = ' ' x $n;
    $text =~ s/^(?=.)/$pad/mg;
    return $text;
}


sub nginx_conf {
    my (%o) = @_;
    my $dir = $o{dir} or croak 'nginx_conf: dir needed';
    my $vars = { PORT => $o{port}, DIR => $dir, TMP => tempdir(),
                 BUILD => build_dir(), %{ $o{vars} || {} } };
    my $s = sub { _subst($_[0], $vars) };

    my @modules = @{ $o{load_modules} || [] };
    unless ($o{no_module}) {
        my $mod = $o{module} // module_path();
        croak "RF::Test: module $mod not found (run make first)"
            unless -f $mod;
        push @modules, $mod;
    }

    my $conf = "# generated by RF::Test\n";
    $conf .= "load_module $_;\n" for @modules;
    $conf .= "user root;\n" if $> == 0;
    $conf .= "daemon off;\n"
           . "master_process on;\n"
           . 'worker_processes ' . ($o{workers} // 2) . ";\n"
           . "error_log $dir/error.log " . ($o{log_level} // $ENV{RF_LOG_LEVEL} // 'info') . ";\n"
           . "pid $dir/nginx.pid;\n"
           . "lock_file $dir/nginx.lock;\n"
           . $s->($o{main_config}) . "\n"
           . "events {\n    worker_connections 1024;\n}\n\n"
           . "http {\n"
           . "    access_log off;\n";
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        $conf .= "    ${t}_temp_path $dir/${t}_temp;\n";
    }
    if (defined $o{http}) {
        $conf .= _indent($s->($o{http}), 4);
    } else {
        my $listen = "127.0.0.1:$o{port}"
                   . ($o{listen_opts} ? " $o{listen_opts}" : '');
        $conf .= _indent($s->($o{http_config}), 4) . "\n"
               . "    server {\n"
               . "        listen $listen;\n"
               . "        server_name localhost;\n\n"
               . _indent($s->($o{config}), 8) . "\n"
               . "    }\n";
    }
    $conf .= "}\n";
    $conf .= "\nstream {\n" . _indent($s->($o{stream_config}), 4) . "}\n"
        if defined $o{stream_config};
    return $conf;
}


sub _nginx_dir {
    my (%o) = @_;
    my $dir = _unique('nginx');
    mkdir $dir or croak "mkdir $dir: $!";
    $o{port} //= free_port();
    write_file("$dir/nginx.conf", nginx_conf(%o, dir => $dir));
    return ($dir, $o{port});
}


sub nginx_t {
    my (%o) = @_;
    my ($dir) = _nginx_dir(%o);
    my ($code, $out, $err) = run_cmd(
        [NGINX, '-t', '-p', "$dir/", '-c', "$dir/nginx.conf",
         '-e', "$dir/error.log"], env => _nginx_env(%o));
    return ($code, $out . $err . read_file("$dir/error.log"));
}


sub start_nginx {
    my (%o) = @_;
    for my $try (1 .. 3) {
        my $self = _start_nginx(%o);
        return $self if ref $self eq 'RF::Test::Nginx';
        # A port picked by free_port() can be taken before nginx binds it
        # (e.g. as the local port of an outgoing connection): try another.
        croak $$self if defined $o{port} || $try == 3
                     || $$self !~ /bind\(\) to .* \(98: Address already in use\)/;
    }
}


sub _start_nginx {
    my (%o) = @_;
    my ($dir, $port) = _nginx_dir(%o);
    my $self = bless { opts => \%o, dir => $dir, port => $port,
                       conf => "$dir/nginx.conf" }, 'RF::Test::Nginx';
    $self->{pid} = _spawn(
        exec   => [NGINX, '-p', "$dir/", '-c', $self->{conf},
                   '-e', "$dir/error.log"],
        env    => _nginx_env(%o),
        stdout => "$dir/stderr.log",
        stderr => "$dir/stderr.log");
    push @LIVE, $self;
    my $err = $self->_wait_started;
    return defined $err ? \$err : $self;
}


# ---------------------------------------------------------------- backend

# nginx capturing everything it serves into ring => PATH (ring_size, 4m by
# default), proxying to a server of its own that answers 204: a fast
# upstream for tests that push many requests.  Other options go to
# start_nginx.
sub start_capture_nginx {
    my (%o) = @_;
    my $ring = delete $o{ring} or croak 'start_capture_nginx: ring required';
    my $size = delete $o{ring_size} // '4m';
    return start_nginx(
        vars        => { SINK => free_port() },
        http_config => "replayforge_ring $ring size=$size;\n"
                       . 'upstream sink { server 127.0.0.1:$RF_SINK; '
                       . "keepalive 4; }\n"
                       . 'server { listen 127.0.0.1:$RF_SINK; '
                       . "location / { return 204; } }\n",
        config      => "replayforge on;\n"
                       . "keepalive_requests 100000;\n"
                       . "proxy_http_version 1.1;\n"
                       . "proxy_set_header Connection \"\";\n"
                       . "location / { proxy_pass http://sink; }\n",
        %o);
}


sub start_backend {
    my (%o) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                        LocalPort => 0, Listen => 128,
                                        ReuseAddr => 1, Proto => 'tcp')
        or croak "start_backend: listen: $!";
    my $port = $listen->sockport;
    $USED_PORTS{$port}++;
    my $log = tempdir() . "/backend-$port.log";
    write_file($log, '');
    my $pid = _spawn(stdout => tempdir() . "/backend-$port.err",
                     stderr => tempdir() . "/backend-$port.err",
                     code => sub { RF::Test::Backend::serve($listen, $log) });
    close $listen;
    my $self = bless { port => $port, pid => $pid, log => $log },
                     'RF::Test::Backend';
    push @LIVE, $self;
    return $self;
}


# ---------------------------------------------------------------- clients

sub _header_list {
    my ($h) = @_;
    return () unless $h;
    return @$h if ref $h eq 'ARRAY' && (!@$h || ref $h->[0]);
    my @flat = ref $h eq 'ARRAY' ? @$h : map { ($_, $h->{$_}) } sort keys %$h;
    my @pairs;
    push @pairs, [splice @flat, 0, 2] while @flat;
    return @pairs;
}


sub build_request {
    my (%r) = @_;
    my $method  = $r{method}  // 'GET';
    my $uri     = $r{uri}     // '/';
    my $version = $r{version} // 'HTTP/1.1';
    my @h = _header_list($r{headers});
    my %have = map { lc $_->[0] => 1 } @h;
    my $body = $r{body};

    unshift @h, ['Host', 'localhost'] unless $have{host} || $r{no_host};
    push @h, ['Connection', 'close'] if $r{close} && !$have{connection};

    my $wire = '';
    if (defined $body && $r{chunked}) {
        push @h, ['Transfer-Encoding', 'chunked'];
        my $size = $r{chunked} =~ /^\d+$/ && $r{chunked} > 1
                 ? $r{chunked} : 1000;
        for (my $off = 0; $off < length $body; $off += $size) {
            my $c = substr($body, $off, $size);
            $wire .= sprintf("%x\r\n", length $c) . $c . "\r\n";
        }
        $wire .= "0\r\n\r\n";
    } elsif (defined $body) {
        push @h, ['Content-Length', length $body]
            unless $have{'content-length'} || $have{'transfer-encoding'};
        $wire = $body;
    }
    return "$method $uri $version\r\n"
         . join('', map { "$_->[0]: $_->[1]\r\n" } @h) . "\r\n" . $wire;
}


sub http_connect {
    my ($port) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp')
        or croak "connect 127.0.0.1:$port: $!";
    binmode $sock;
    return $sock;
}


sub _send_all {
    my ($sock, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        unless (defined $n) {
            next if $! == EINTR;
            croak "send: $!";
        }
        $off += $n;
    }
}


# One response from the front of $$buf, or undef when more bytes are needed.
sub _parse_response {
    my ($buf, $eof, $head) = @_;
    my $hend = index($$buf, "\r\n\r\n");
    return undef if $hend < 0;
    my ($line, @lines) = split /\r\n/, substr($$buf, 0, $hend);
    my ($version, $status, $reason) =
        $line =~ m{^(HTTP/\d(?:\.\d)?) (\d{3})(?: (.*))?$}
        or croak "bad status line: '$line'";
    my @h = map { /^([^:]+):\s*(.*?)\s*$/ ? [$1, $2] : () } @lines;
    my %h = map { lc $_->[0] => $_->[1] } @h;
    my $pos = $hend + 4;
    my $body = '';

    if ($head || $status =~ /^1/ || $status == 204 || $status == 304) {
        # no body
    } elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        while (1) {
            my $le = index($$buf, "\r\n", $pos);
            return undef if $le < 0;
            my ($size) = substr($$buf, $pos, $le - $pos) =~ /^([0-9a-fA-F]+)/
                or croak 'bad chunk size';
            $size = hex $size;
            $pos = $le + 2;
            if ($size == 0) {
                my $te = index($$buf, "\r\n", $pos);
                while ($te >= 0 && $te != $pos) {     # skip trailers
                    $pos = $te + 2;
                    $te = index($$buf, "\r\n", $pos);
                }
                return undef if $te < 0;
                $pos += 2;
                last;
            }
            return undef if length($$buf) < $pos + $size + 2;
            $body .= substr($$buf, $pos, $size);
            $pos += $size + 2;
        }
    } elsif (defined $h{'content-length'}) {
        return undef if length($$buf) < $pos + $h{'content-length'};
        $body = substr($$buf, $pos, $h{'content-length'});
        $pos += $h{'content-length'};
    } else {
        return undef unless $eof;              # body ends at close
        $body = substr($$buf, $pos);
        $pos = length $$buf;
    }
    substr($$buf, 0, $pos, '');
    return RF::Test::Response->new(version => $version, status => $status,
                                   reason => $reason // '', headers => \@h,
                                   body => $body);
}


sub read_responses {
    my ($sock, %o) = @_;
    my $timeout = ($o{timeout} // 10) * timeout_scale();
    my $want = $o{count};
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($sock);
    my ($buf, $eof, @resp) = ('', 0);
    while (1) {
        while (my $r = _parse_response(\$buf, $eof, $o{head})) {
            next if $r->status =~ /^1/;
            push @resp, $r;
            return @resp if defined $want && @resp >= $want;
        }
        if ($eof) {
            croak 'connection closed inside a response: '
                . substr($buf, 0, 200) if length $buf;
            croak "connection closed after " . @resp . " of $want responses"
                if defined $want;
            return @resp;
        }
        my $left = $deadline - time;
        croak "read_responses: timed out after ${timeout}s with "
            . @resp . ' responses and ' . length($buf) . ' pending bytes: '
            . substr($buf, 0, 200)
            if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($sock, $buf, 65536, length $buf);
        if (!defined $n) {
            next if $! == EINTR;
            $n = 0;                 # reset by peer: treat as close
        }
        $eof = 1 if $n == 0;
    }
}


sub http_request {
    my ($port, $raw, %o) = @_;
    my $sock = http_connect($port);
    _send_all($sock, $raw);
    my @r = read_responses($sock, %o);
    close $sock;
    return wantarray ? @r : $r[0];
}


sub http_req {
    my ($port, %r) = @_;
    my $timeout = delete $r{timeout};
    return scalar http_request($port, build_request(%r, close => 1),
                               count => 1, timeout => $timeout,
                               head => ($r{method} // '') eq 'HEAD');
}


sub http_series {
    my ($port, $reqs, %o) = @_;
    my $sock = http_connect($port);
    my @resp;
    if ($o{pipeline}) {
        _send_all($sock, join '', map { build_request(%$_) } @$reqs);
        @resp = read_responses($sock, %o, count => scalar @$reqs);
    } else {
        for my $r (@$reqs) {
            _send_all($sock, build_request(%$r));
            push @resp, read_responses($sock, %o, count => 1,
                                       head => ($r->{method} // '') eq 'HEAD');
        }
    }
    close $sock;
    return @resp;
}


sub curl {
    my (@args) = @_;
    my $base = _unique('curl');
    my ($code, $out, $err) = run_cmd(
        [CURL, '-sS', '--max-time', 30 * timeout_scale(), '-o', "$base.body",
         '-D', "$base.head", '-w', '%{http_code} %{http_version}', @args]);
    my ($status, $version) = split ' ', $out;
    my @blocks = split /\r\n\r\n/, read_file("$base.head");
    my (undef, @lines) = split /\r\n/, $blocks[-1] // '';
    my @h = map { /^([^:]+):\s*(.*?)\s*$/ ? [$1, $2] : () } @lines;
    my $r = RF::Test::Response->new(
        status => ($status // 0) + 0, version => $version // '',
        headers => \@h, body => read_file("$base.body"),
        exit_code => $code, stderr => $err);
    unlink "$base.body", "$base.head";
    return $r;
}


# ---------------------------------------------------------------- spool

sub start_spool {
    my (%o) = @_;
    my $bin = $o{binary} // spoold_path();
    croak "RF::Test: $bin not found (run make first)" unless -x $bin;
    my $base = _unique('spool');
    my $self = bless {
        ring   => $o{ring}   // tempdir() . '/replayforge.ring',
        buffer => $o{buffer} // "$base.db",
        id     => $o{id}     // 'test',
        log    => "$base.log",
    }, 'RF::Test::Spool';
    my @cmd = ($bin, '-d', '--ring', $self->{ring},
               '--buffer', $self->{buffer}, '--id', $self->{id});
    push @cmd, '--max-buffer', $o{max_buffer} if defined $o{max_buffer};
    push @cmd, @{ $o{args} || [] };
    $self->{cmd} = \@cmd;
    $self->{pid} = _spawn(exec => \@cmd, env => $o{env},
                          stdout => $self->{log}, stderr => $self->{log});
    push @LIVE, $self;
    return $self;
}


sub _spool_query {
    my ($flag, $buffer, @extra) = @_;
    my ($code, $out, $err) = run_cmd([spoold_path(), $flag,
                                      '--buffer', $buffer, @extra]);
    croak "rf-spoold $flag --buffer $buffer exited $code: $err" if $code;
    return $out;
}


sub spool_dump {
    my $out = _spool_query('--dump', @_);
    my $json = JSON::PP->new->utf8;
    my @recs = map { $json->decode($_) } grep { /\S/ } split /\n/, $out;
    return wantarray ? @recs : \@recs;
}


sub spool_stats {
    return JSON::PP->new->utf8->decode(_spool_query('--stats', @_));
}


# ---------------------------------------------------------------- relay

# start_relay(buckets => { NAME => TOKEN, ... } | conf => TEXT, args => [..])
# A config text may use $RF_PORT, $RF_STATS_PORT and $RF_DATA.  The data
# directory survives restart() (same ports), so a test can kill -9 the
# relay and start it again on the same files.
sub start_relay {
    my (%o) = @_;
    my $base = _unique('relay');
    my $self = bless {
        port       => $o{port} // free_port(),
        stats_port => $o{stats_port} // free_port(),
        data       => $o{data} // "$base.data",
        log        => "$base.log",
        buckets    => $o{buckets} // {},
        opts       => \%o,
    }, 'RF::Test::Relay';
    my @cmd = ($o{binary} // relayd_path(), '-d',
               '--listen', "127.0.0.1:$self->{port}",
               '--stats-listen', "127.0.0.1:$self->{stats_port}",
               '--data', $self->{data});
    croak "RF::Test: $cmd[0] not found (run make first)" unless -x $cmd[0];
    if (defined $o{conf}) {
        my $conf = $o{conf};
        $conf =~ s/\$RF_PORT\b/$self->{port}/g;
        $conf =~ s/\$RF_STATS_PORT\b/$self->{stats_port}/g;
        $conf =~ s/\$RF_DATA\b/$self->{data}/g;
        write_file("$base.conf", $conf);
        push @cmd, '-c', "$base.conf";
    }
    for my $b (sort keys %{ $self->{buckets} }) {
        push @cmd, '--bucket', "$b:$self->{buckets}{$b}";
    }
    push @cmd, @{ $o{args} || [] };
    $self->{cmd} = \@cmd;
    $self->_start;
    push @LIVE, $self;
    return $self;
}


# relay_request($relay, METHOD, PATH, body => .., headers => [..],
#               token => .., stats => 1, timeout => ..)
sub relay_request {
    my ($relay, $method, $path, %o) = @_;
    my @h = _header_list($o{headers});
    push @h, ['Authorization', "Bearer $o{token}"] if defined $o{token};
    return http_req($o{stats} ? $relay->stats_port : $relay->port,
                    method => $method, uri => $path, headers => \@h,
                    body => $o{body}, timeout => $o{timeout});
}


# POST records: binary unless ndjson => 1; the token defaults to the
# bucket's from start_relay.
sub relay_post {
    my ($relay, $bucket, $body, %o) = @_;
    my $type = $o{ndjson} ? 'application/x-ndjson'
                          : 'application/x-replayforge';
    my @h = (['Content-Type', $o{type} // $type]);
    push @h, ['Content-Encoding', $o{encoding}] if $o{encoding};
    return relay_request($relay, 'POST', "/v1/buckets/$bucket/records",
                         body => $body, headers => \@h,
                         token => $o{token} // $relay->token($bucket));
}


# GET records as NDJSON, decoded: (response, [records]) in list context.
sub relay_get {
    my ($relay, $bucket, %q) = @_;
    my $token = delete $q{token} // $relay->token($bucket);
    my $binary = delete $q{binary};
    my $timeout = delete $q{timeout} // (($q{wait} // 0) + 10);
    my $qs = join '&', map { "$_=$q{$_}" } sort keys %q;
    my $r = relay_request($relay, 'GET',
                          "/v1/buckets/$bucket/records" . ($qs ? "?$qs" : ''),
                          token => $token, timeout => $timeout,
                          headers => $binary ? []
                                     : [['Accept', 'application/x-ndjson']]);
    my @recs;
    if (!$binary && $r->status == 200) {
        my $json = JSON::PP->new->utf8;
        @recs = map { $json->decode($_) } grep { /\S/ } split /\n/, $r->body;
    }
    return wantarray ? ($r, \@recs) : $r;
}


sub relay_ack {
    my ($relay, $bucket, $consumer, $upto, %o) = @_;
    return relay_request($relay, 'POST', "/v1/buckets/$bucket/ack",
                         token => $o{token} // $relay->token($bucket),
                         headers => [['Content-Type', 'application/json']],
                         body => $JSON->encode({ consumer => $consumer,
                                                 upto => $upto + 0 }));
}


sub relay_stats {
    my ($relay) = @_;
    my $r = relay_request($relay, 'GET', '/v1/stats', stats => 1);
    croak "GET /v1/stats: " . $r->status unless $r->status == 200;
    return JSON::PP->new->utf8->decode($r->body);
}


# ================================================================ player
# (rf-playerd: start_player and its object, RF::Test::Player, below)

sub player_path { build_dir() . '/rf-playerd' }

# start_player(relay => $relay, conf => TEXT, args => [..], env => {..},
#              dead_letter => PATH, no_wait => 1, binary => PATH)
# The config text (written to a file, given with -c) may use $RF_RELAY
# (the relay's URL), $RF_DIR (a private directory for the player's
# files), $RF_DEAD (the dead-letter file) and $RF_API_PORT (a free port
# for api_listen).  Unless the text or args name one, --dead-letter
# $RF_DEAD is added, so nothing lands in the working directory.  Started
# once its log says "started:"; restart() runs it again with the same
# files, kill9() and stop() end it, reload() sends SIGHUP and waits for
# the outcome in the log.
sub start_player {
    my (%o) = @_;
    my $base = _unique('player');
    my $self = bless {
        dir      => "$base.d",
        log      => "$base.log",
        api_port => $o{api_port} // free_port(),
        opts     => \%o,
    }, 'RF::Test::Player';
    mkdir $self->{dir} or croak "mkdir $self->{dir}: $!";
    $self->{dead} = $o{dead_letter} // "$self->{dir}/dead.ndjson";
    my @cmd = ($o{binary} // player_path(), '-d');
    croak "RF::Test: $cmd[0] not found (run make first)" unless -x $cmd[0];
    my %var = (RF_RELAY => $o{relay} ? $o{relay}->url : '',
               RF_DIR => $self->{dir}, RF_DEAD => $self->{dead},
               RF_API_PORT => $self->{api_port});
    my $conf = $o{conf};
    if (defined $conf) {
        $conf =~ s/\$(RF_RELAY|RF_DIR|RF_DEAD|RF_API_PORT)\b/$var{$1}/g;
        write_file("$base.conf", $conf);
        $self->{conf} = "$base.conf";
        push @cmd, '-c', "$base.conf";
    }
    my @args = map { my $a = $_;
                     $a =~ s/\$(RF_RELAY|RF_DIR|RF_DEAD|RF_API_PORT)\b/$var{$1}/g;
                     $a } @{ $o{args} || [] };
    push @cmd, '--dead-letter', $self->{dead}
        unless ($conf // '') =~ /\bdead_letter\b/
               || grep { $_ eq '--dead-letter' } @args;
    push @cmd, @args;
    $self->{cmd} = \@cmd;
    $self->_start;
    push @LIVE, $self;
    return $self;
}



# ---------------------------------------------------------------- cleanup

END {
    if ($$ == $MAIN_PID) {
        local $?;
        for my $obj (reverse @LIVE) {
            eval { $obj->_cleanup; 1 } or print STDERR "# cleanup: $@";
        }
        if (defined $TMPDIR) {
            if ($ENV{RF_KEEP}) {
                print STDERR "# RF_KEEP: test files kept in $TMPDIR\n";
            } else {
                remove_tree($TMPDIR);
            }
        }
    }
}


# ================================================================ objects

package RF::Test::Process;

# Common part of every child process object: pid, stop with a signal and a
# timeout, SIGKILL of the whole process group as the last resort.

use POSIX ();

sub pid { $_[0]{pid} }

sub running {
    my ($self) = @_;
    return 0 if defined $self->{status};
    my $r = waitpid($self->{pid}, POSIX::WNOHANG());
    return 1 if $r == 0;
    $self->{status} = $r == $self->{pid} ? $? : -1;
    kill 'KILL', -$self->{pid};           # leftovers of its group
    return 0;
}

sub _signal_and_wait {
    my ($self, $sig, $timeout) = @_;
    if ($self->running) {
        kill $sig, $self->{pid};
        my $st = RF::Test::_reap($self->{pid},
                                 $timeout * RF::Test::timeout_scale());
        unless (defined $st) {
            kill 'KILL', -$self->{pid};
            $st = RF::Test::_reap($self->{pid}, 10);
            $self->{killed} = 1;
        }
        $self->{status} = $st;
    }
    kill 'KILL', -$self->{pid};
    return RF::Test::_exit_code($self->{status});
}

sub exit_code { RF::Test::_exit_code($_[0]{status}) }
sub killed    { $_[0]{killed} }

sub _cleanup { $_[0]->_signal_and_wait('TERM', 5) }


package RF::Test::Nginx;

use parent -norequire, 'RF::Test::Process';
use Carp qw(croak);

sub port     { $_[0]{port} }
sub dir      { $_[0]{dir} }
sub conf     { $_[0]{conf} }
sub error_log { "$_[0]{dir}/error.log" }

sub error_log_text {
    my ($self) = @_;
    return RF::Test::read_file("$self->{dir}/error.log")
         . RF::Test::read_file("$self->{dir}/stderr.log");
}

# Children of the master running as workers of the current generation
# (old workers retitle themselves "worker process is shutting down").
sub worker_pids {
    my ($self) = @_;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        my $stat = RF::Test::read_file("/proc/$p/stat");
        next unless $stat =~ /\) \S (\d+) / && $1 == $self->{pid};
        my $cmd = RF::Test::read_file("/proc/$p/cmdline");
        $cmd =~ s/\0+$//;
        push @pids, $p if $cmd =~ /worker process$/;
    }
    @pids = sort { $a <=> $b } @pids;
    return wantarray ? @pids : scalar @pids;
}

sub _workers {
    my ($self) = @_;
    my $n = $self->{opts}{workers} // 2;
    return $n if $n =~ /^\d+$/;
    return scalar grep { /^processor\s*:/ }            # "auto"
                  split /\n/, RF::Test::read_file('/proc/cpuinfo');
}

# Returns undef once the master runs, its workers are up and the port
# accepts connections, or the reason it failed.
sub _wait_started {
    my ($self) = @_;
    eval {
        RF::Test::wait_until(sub {
            die "nginx exited during start-up\n" unless $self->running;
            return 0 unless $self->worker_pids >= $self->_workers;
            return 1 if $self->{opts}{no_connect_check};
            my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                           PeerPort => $self->{port});
            return $s ? 1 : 0;
        }, 10, "nginx to accept on port $self->{port}");
        1;
    } and return undef;
    my $err = $@;
    $self->_signal_and_wait('KILL', 5);
    return "start_nginx failed: $err" . "error log:\n"
         . $self->error_log_text;
}

sub reload {
    my ($self, %new) = @_;
    if (%new) {
        $self->{opts} = { %{ $self->{opts} }, %new };
        RF::Test::write_file($self->{conf},
            RF::Test::nginx_conf(%{ $self->{opts} }, dir => $self->{dir},
                                 port => $self->{port}));
    }
    my %old = map { $_ => 1 } $self->worker_pids;
    my $log_pos = -s $self->error_log // 0;
    kill 'HUP', $self->{pid};
    RF::Test::wait_until(sub {
        croak 'nginx master exited during reload' unless $self->running;
        my $log = RF::Test::read_file($self->error_log);
        my $since = length $log > $log_pos ? substr($log, $log_pos) : '';
        croak "nginx reload failed:\n$since" if $since =~ /\[emerg\]/;
        # new workers all up, old ones gone or retitled "shutting down"
        my @cur = $self->worker_pids;
        return !grep({ $old{$_} } @cur) && @cur >= $self->_workers;
    }, 10, 'a new generation of nginx workers');
    return $self;
}

sub stop {
    my ($self, %o) = @_;
    return $self->_signal_and_wait('QUIT', $o{timeout} // 10);
}

sub _cleanup { $_[0]->_signal_and_wait('QUIT', 5) }


package RF::Test::Backend;

# A small HTTP/1.x server: one forked process per connection, keepalive,
# Content-Length and chunked request bodies, "Expect: 100-continue".  Every
# request is appended to a JSON-lines log before its response is sent, so
# a client that has its response can read the entry.

use parent -norequire, 'RF::Test::Process';
use Digest::MD5 qw(md5_hex);
use Errno qw(EINTR);
use Fcntl qw(:flock);
use IO::Select;
use POSIX ();
use Time::HiRes qw(sleep);

use constant IDLE_TIMEOUT => 60;

sub port { $_[0]{port} }
sub log_path { $_[0]{log} }

sub requests {
    my ($self) = @_;
    my @r = map { $JSON->decode($_) } grep { /\S/ } split /\n/,
            RF::Test::read_file($self->{log});
    return wantarray ? @r : scalar @r;
}

sub stop { $_[0]->_signal_and_wait('TERM', 5) }

sub serve {
    my ($listen, $log) = @_;
    $SIG{CHLD} = 'IGNORE';
    while (1) {
        my $conn = $listen->accept;
        unless ($conn) {
            next if $! == EINTR;
            die "accept: $!";
        }
        my $pid = fork;
        if (defined $pid && $pid == 0) {
            close $listen;
            eval { _connection($conn, $log) };
            print STDERR "backend: $@" if $@;
            POSIX::_exit(0);
        }
        close $conn;
    }
}

# Appends to $$buf; returns 0 at EOF or after the idle timeout.
sub _fill {
    my ($sock, $buf) = @_;
    return 0 unless IO::Select->new($sock)->can_read(IDLE_TIMEOUT);
    while (1) {
        my $n = sysread($sock, $$buf, 65536, length $$buf);
        return $n if defined $n;
        return 0 unless $! == EINTR;
    }
}

sub _need {
    my ($sock, $buf, $len) = @_;
    while (length $$buf < $len) {
        _fill($sock, $buf) or die "client closed inside a request\n";
    }
}

sub _line {
    my ($sock, $buf) = @_;
    my $i;
    while (($i = index($$buf, "\n")) < 0) {
        _fill($sock, $buf) or die "client closed inside a request\n";
    }
    my $line = substr($$buf, 0, $i + 1, '');
    $line =~ s/\r?\n\z//;
    return $line;
}

sub _connection {
    my ($sock, $log) = @_;
    binmode $sock;
    my $buf = '';
    while (1) {
        $buf =~ s/\A(?:\r?\n)+//;
        while ($buf !~ /\r?\n\r?\n/) {
            return unless _fill($sock, \$buf);
            $buf =~ s/\A(?:\r?\n)+//;
        }
        $buf =~ s/\A(.*?)\r?\n\r?\n//s;
        my ($line, @lines) = split /\r?\n/, $1;
        my ($method, $uri, $version) = split / /, $line, 3;
        $version //= 'HTTP/0.9';
        my @h = map { /^([^:]+):[ \t]*(.*?)[ \t]*$/ ? [$1, $2] : () } @lines;
        my %h;
        $h{lc $_->[0]} = $_->[1] for @h;

        if (($h{expect} // '') =~ /100-continue/i && $version eq 'HTTP/1.1') {
            RF::Test::_send_all($sock, "HTTP/1.1 100 Continue\r\n\r\n");
        }

        my $body = '';
        if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            while (1) {
                my ($size) = _line($sock, \$buf) =~ /^\s*([0-9a-fA-F]+)/
                    or die "bad chunk size line\n";
                $size = hex $size;
                if ($size == 0) {
                    1 while length _line($sock, \$buf);     # trailers
                    last;
                }
                _need($sock, \$buf, $size + 2);
                $body .= substr($buf, 0, $size);
                substr($buf, 0, $size + 2, '');
            }
        } elsif ($h{'content-length'}) {
            _need($sock, \$buf, $h{'content-length'});
            $body = substr($buf, 0, $h{'content-length'}, '');
        }

        my $entry = { method => $method, uri => $uri, version => $version,
                      headers => \@h, body_len => length $body,
                      body_md5 => md5_hex($body) };
        open my $fh, '>>', $log or die "$log: $!";
        flock $fh, LOCK_EX;
        syswrite $fh, $JSON->encode($entry) . "\n";
        close $fh;

        my $conn = lc($h{connection} // '');
        my $keep = $version eq 'HTTP/1.1' ? $conn !~ /close/
                                          : $conn =~ /keep-alive/;
        my $status = $h{'x-backend-status'} // 200;
        my $out = $JSON->encode({ len => length $body,
                                  md5 => md5_hex($body) });
        my $resp = "HTTP/1.1 $status RF\r\n"
                 . "Content-Type: application/json\r\n"
                 . 'Content-Length: ' . length($out) . "\r\n"
                 . ($keep ? '' : "Connection: close\r\n") . "\r\n"
                 . ($method eq 'HEAD' ? '' : $out);
        RF::Test::_send_all($sock, $resp);
        return unless $keep;
    }
}


package RF::Test::Spool;

use parent -norequire, 'RF::Test::Process';

sub ring     { $_[0]{ring} }
sub buffer   { $_[0]{buffer} }
sub id       { $_[0]{id} }
sub log_path { $_[0]{log} }
sub log_text { RF::Test::read_file($_[0]{log}) }

sub stop  { $_[0]->_signal_and_wait('TERM', $_[1] // 10) }
sub kill9 { $_[0]->_signal_and_wait('KILL', 5) }


package RF::Test::Relay;

use parent -norequire, 'RF::Test::Process';
use Carp qw(croak);

sub port       { $_[0]{port} }
sub stats_port { $_[0]{stats_port} }
sub data       { $_[0]{data} }
sub log_path   { $_[0]{log} }
sub log_text   { RF::Test::read_file($_[0]{log}) }
sub url        { "http://127.0.0.1:$_[0]{port}" }
sub token      { $_[0]{buckets}{$_[1]} // $_[0]{opts}{tokens}{$_[1]} }

# started when /healthz answers on both listeners
sub _start {
    my ($self) = @_;
    $self->{status} = undef;
    $self->{killed} = undef;
    $self->{pid} = RF::Test::_spawn(exec => $self->{cmd},
                                    env => $self->{opts}{env},
                                    stdout => $self->{log},
                                    stderr => $self->{log}, append => 1);
    return $self if $self->{opts}{no_wait};
    my $up = RF::Test::wait_until(sub {
        return 1 unless $self->running;
        my $ok = eval {
            RF::Test::http_req($self->{port}, uri => '/healthz',
                               timeout => 2)->status == 200
            && RF::Test::http_req($self->{stats_port}, uri => '/healthz',
                                  timeout => 2)->status == 200;
        };
        return $ok;
    }, 20);
    croak "rf-relayd did not start:\n" . $self->log_text
        unless $up && $self->running;
    return $self;
}

sub restart {
    my ($self) = @_;
    $self->stop if $self->running;
    return $self->_start;
}

sub stop  { $_[0]->_signal_and_wait('TERM', $_[1] // 10) }
sub kill9 { $_[0]->_signal_and_wait('KILL', 5) }


package RF::Test::Player;

use parent -norequire, 'RF::Test::Process';
use Carp qw(croak);

sub dir         { $_[0]{dir} }
sub conf        { $_[0]{conf} }
sub dead_letter { $_[0]{dead} }
sub api_port    { $_[0]{api_port} }
sub log_path    { $_[0]{log} }
sub log_text    { RF::Test::read_file($_[0]{log}) }

# started once the log says so past where it ended before (the sinks are
# open and the pipelines run by then)
sub _start {
    my ($self) = @_;
    $self->{status} = undef;
    $self->{killed} = undef;
    my $pos = -s $self->{log} // 0;
    $self->{pid} = RF::Test::_spawn(exec => $self->{cmd},
                                    env => $self->{opts}{env},
                                    stdout => $self->{log},
                                    stderr => $self->{log});
    return $self if $self->{opts}{no_wait};
    my $up = RF::Test::wait_until(sub {
        return 1 unless $self->running;
        return substr($self->log_text, $pos) =~ /\bstarted: /;
    }, 20);
    croak "rf-playerd did not start:\n" . $self->log_text
        unless $up && $self->running;
    return $self;
}

sub restart {
    my ($self) = @_;
    $self->stop if $self->running;
    return $self->_start;
}

# SIGHUP; returns 1 when the log says "reloaded", 0 on "reload failed"
sub reload {
    my ($self) = @_;
    my $pos = length $self->log_text;
    kill 'HUP', $self->{pid};
    my $res;
    RF::Test::wait_until(sub {
        my $new = substr($self->log_text, $pos);
        $res = 1 if $new =~ /\breloaded: /;
        $res = 0 if $new =~ /\breload failed/;
        return defined $res;
    }, 20, 'rf-playerd to reload');
    return $res;
}

sub stop  { $_[0]->_signal_and_wait('TERM', $_[1] // 10) }
sub kill9 { $_[0]->_signal_and_wait('KILL', 5) }


package RF::Test::Response;

sub new {
    my ($class, %a) = @_;
    return bless {%a}, $class;
}

sub status    { $_[0]{status} }
sub reason    { $_[0]{reason} }
sub version   { $_[0]{version} }
sub headers   { $_[0]{headers} }
sub body      { $_[0]{body} }
sub exit_code { $_[0]{exit_code} }
sub stderr    { $_[0]{stderr} }

sub header {
    my ($self, $name) = @_;
    my @v = map { $_->[1] } grep { lc $_->[0] eq lc $name }
            @{ $self->{headers} };
    return wantarray ? @v : $v[0];
}

sub json { JSON::PP->new->decode($_[0]{body}) }

1;

__END__

=head1 NAME

RF::Test - test harness of ReplayForge: nginx, backend, spool, clients

=head1 SYNOPSIS

    use FindBin;
    use lib "$FindBin::Bin/lib";
    use Test::More;
    use RF::Test;

    my $backend = start_backend();
    my $nginx = start_nginx(
        http_config => 'replayforge_ring $RF_TMP/ring size=1m;',
        vars        => { BACKEND_PORT => $backend->port },
        config      => <<'EOF');
    location / {
        replayforge on;
        proxy_pass http://127.0.0.1:$RF_BACKEND_PORT;
    }
    EOF
    my $r = http_req($nginx->port, method => 'POST', uri => '/x',
                     body => "a\0b");
    is($r->status, 200);
    wait_until(sub { $backend->requests >= 1 }, 5, 'backend got it');
    $nginx->stop;
    no_errors_in_log($nginx->error_log_text, 'nginx log clean');
    done_testing();

=head1 DESCRIPTION

Everything runs on 127.0.0.1 inside one temporary directory per test
script.  Every process started here (nginx, backend, spool, commands) runs
in its own process group and is stopped at exit by an END block, also when
the test dies or gets SIGINT/SIGTERM/SIGHUP; then the temp dir is removed.
The only way to wait is C<wait_until>, which polls.

Environment:

=over

=item RF_BUILD

Build directory (default F<build>, relative to the repository root).  The
module is F<$RF_BUILD/ngx_http_replayforge_module.so>, the spool daemon
F<$RF_BUILD/rf-spoold>.

=item RF_KEEP

Keep the temp dir (its path is printed at exit) to read configs and logs.

=item RF_ASAN

The module is an ASan build (C<make asan> sets it).  nginx itself is not
instrumented, and ASan refuses to start unless its runtime is the first
library of the process, so nginx (and C<nginx -t>) is started with
C<LD_PRELOAD> set to the libasan of the compiler (C<gcc
-print-file-name=libasan.so>) and C<ASAN_OPTIONS=detect_leaks=0> appended
to any C<ASAN_OPTIONS> you set: nginx does not free its memory at exit, so
leak reports would be noise.  Reports go to the worker's stderr, which
nginx points at its error log, so C<no_errors_in_log> catches them
(C<ERROR: AddressSanitizer>, UBSan's C<runtime error:>).  The daemons are
instrumented executables and run with the environment unchanged, i.e. with
leak detection on: check their exit code and C<log_text>.  The preload is
also used without RF_ASAN when the module file names F<libasan.so>, and
never for an nginx started with C<no_module>.
RF_ASAN also triples every timeout.

=item RF_TIMEOUT_SCALE

Multiplies every timeout (wait_until, stops, reads, commands).

=item RF_LOG_LEVEL

nginx error_log level when a test does not choose one (default C<info>).

=back

=head1 FUNCTIONS

All are exported.

=head2 Paths and files

C<repo_root()>, C<build_dir()>, C<module_path()>, C<spoold_path()>:
absolute paths.  C<tempdir()>: the test's temp dir.
C<write_file($path, $bytes)> returns $path; C<read_file($path)> returns the
bytes or '' when the file cannot be read.

=head2 free_port()

A free 127.0.0.1 TCP port, never the same twice in one test.

=head2 wait_until($sub, $timeout = 10, $description)

Calls $sub every 20 ms until it returns true and returns that value; dies
with "timed out after Ns waiting for: $description" otherwise.

=head2 run_cmd(\@argv, stdin => $bytes, env => {...}, timeout => 60)

Runs a command (no shell); returns ($exit_code, $stdout, $stderr).  The
exit code is 128+N for death by signal N.

=head2 start_nginx(%opts)

Writes F<nginx.conf> into a new directory and starts
C</usr/sbin/nginx -p DIR/ -c DIR/nginx.conf -e DIR/error.log> in the
foreground (C<daemon off; master_process on>).  Returns once the master
runs, all its workers have started and the port accepts connections; dies
with the error log otherwise.  Options:

    config        text of the server { } block (after listen/server_name)
    http_config   text inside http { }, before the server block
    http          replaces http_config and the server block: the whole
                  content of http { } (access_log off and the temp paths
                  inside DIR stay)
    main_config   text in the main context (env, thread_pool ...)
    stream_config adds a stream { } block with this content
    listen_opts   appended to "listen 127.0.0.1:PORT", e.g. 'http2'
    workers       worker_processes (default 2)
    log_level     error_log level (default info)
    port          listen port (default free_port(); with a free_port()
                  port nginx could not bind, another one is tried)
    no_module     do not load the ReplayForge module
    module        module path (default module_path())
    load_modules  [paths] of other modules to load first
    vars          { NAME => value } for $RF_NAME in the texts
    no_connect_check  only wait for the workers (for a custom http block)

In every text, C<$RF_PORT>, C<$RF_DIR> (this nginx's dir), C<$RF_TMP> (the
test's temp dir), C<$RF_BUILD> and the C<vars> are replaced; any other
C<$RF_UPPERCASE> is an error.  The generated config has C<user root> when
running as root, C<pid>, C<lock_file> and all temp paths inside DIR,
C<access_log off> and C<events { worker_connections 1024; }>.

The returned object has:

    ->port, ->dir, ->conf, ->pid, ->error_log (path)
    ->error_log_text   error.log, then whatever went to stderr
    ->worker_pids      current workers (in scalar context: how many)
    ->reload(%opts)    SIGHUP (rewriting the config first when options
                       are given, merged into the start options) and wait
                       for a new generation: as many workers as configured,
                       none of the old ones still serving; dies with the
                       new [emerg] lines when the reload fails
    ->stop(timeout => 10)  SIGQUIT, wait, SIGKILL to the group after the
                       timeout; returns the exit code
    ->running, ->exit_code, ->killed

=head2 nginx_t(%opts)

Writes the config as start_nginx does and runs C<nginx -t> on it; returns
($exit_code, $output).

=head2 nginx_conf(%opts, dir => $dir)

The config text start_nginx would write.

=head2 start_backend()

An HTTP/1.x server on a free port, one forked process per connection:
keepalive (HTTP/1.1 unless C<Connection: close>, HTTP/1.0 with
C<keep-alive>), bodies by Content-Length or chunked, C<Expect:
100-continue>.  For every request it appends
C<{method, uri, version, headers: [[name, value], ...], body_len,
body_md5}> to its JSON-lines log I<before> answering C<200> with
C<{"len":N,"md5":"..."}> (application/json).  A request header
C<X-Backend-Status: NNN> changes the status.  Object: C<< ->port >>,
C<< ->requests >> (the decoded log; in scalar context the count),
C<< ->log_path >>, C<< ->stop >>.

=head2 HTTP clients

All return L</RF::Test::Response> objects and die on timeouts (10 s) or a
connection closed inside a response.

    build_request(method => 'GET', uri => '/', version => 'HTTP/1.1',
                  headers => [[name, value], ...] | [n, v, ...] | {..},
                  body => $bytes, chunked => $chunk_size_or_1,
                  close => 1, no_host => 1)
        the request bytes; Host: localhost and Content-Length are added
        unless given; chunked => 1 uses 1000-byte chunks
    http_req($port, %request)      one request with Connection: close
    http_series($port, [\%request, ...], pipeline => 0)
        requests over one keepalive connection, each after the previous
        response (or all at once with pipeline => 1)
    http_request($port, $raw_bytes, count => N, head => 0, timeout => 10)
        sends raw bytes; reads N responses, or until the server closes
    http_connect($port), read_responses($sock, %same_options)
        for scripted connections (slow bodies, half-sent requests)
    curl(@args)   runs /usr/bin/curl -sS with @args (one URL), e.g.
        curl('--http2-prior-knowledge', "http://127.0.0.1:$port/x")

=head2 start_spool(%opts)

Runs C<rf-spoold -d --ring RING --buffer BUFFER --id ID [--max-buffer
SIZE] @args>, stdout and stderr to a log file.  Options: C<ring> (default
F<$RF_TMP/replayforge.ring>), C<buffer> (default a new file in the temp
dir), C<id> (default C<test>), C<max_buffer>, C<args> (arrayref), C<env>
(hashref), C<binary>.  Object: C<< ->stop($timeout) >> (SIGTERM, wait,
returns the exit code), C<< ->kill9 >>, C<< ->log_text >>, C<< ->running >>,
C<< ->ring >>, C<< ->buffer >>, C<< ->id >>, C<< ->pid >>.

=head2 spool_dump($buffer, @args), spool_stats($buffer, @args)

Run C<rf-spoold --dump|--stats --buffer $buffer> and return the decoded
records (one JSON object per line) or the decoded stats object; die when
the command fails.

=head2 start_player(%opts), player_path()

rf-playerd in the foreground (C<-d>), logging to its own file.  Options:
C<relay> (an RF::Test::Relay object, for C<$RF_RELAY>), C<conf> (text
written to a file and passed with C<-c>; C<$RF_RELAY>, C<$RF_DIR> (the
player's own directory), C<$RF_DEAD> (the dead-letter file) and
C<$RF_API_PORT> (a free port) are replaced, in C<args> too), C<args>
(more flags), C<env>, C<dead_letter>, C<api_port>, C<binary>, C<no_wait>.
C<--dead-letter $RF_DEAD> is added unless the text or the args name one.
It counts as started when its log says C<started:>.  Methods: C<dir>,
C<conf>, C<dead_letter>, C<api_port>, C<log_path>, C<log_text>,
C<running>, C<stop> (SIGTERM, returns the exit code), C<kill9>,
C<restart> (same files and ports), C<reload> (SIGHUP; 1 when the log
says C<reloaded:>, 0 on C<reload failed>).

=head2 log_errors($text, @allowed_regexes), no_errors_in_log($text, $name, @allowed_regexes)

The lines with C<[error]>, C<[crit]>, C<[alert]>, C<[emerg]> or a
sanitizer report, except those matching an allowed regex; the second is a
Test::More check that there are none (and shows them when there are).

=head1 RF::Test::Response

C<< ->status >>, C<< ->reason >>, C<< ->version >> (C<HTTP/1.1>; from curl:
C<1.1> or C<2>), C<< ->headers >> (C<[[name, value], ...]>),
C<< ->header($name) >> (case-insensitive; first value, or all in list
context), C<< ->body >>, C<< ->json >>, and from curl C<< ->exit_code >>,
C<< ->stderr >>.

=cut
