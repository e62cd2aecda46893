package RF::Webhook;

# A local stand-in for a Discord webhook, for the player's tests: a forked
# server on 127.0.0.1, one connection at a time.  Each request's JSON body
# is logged (with the time it arrived and the status answered) before the
# answer.  Options: contents matching "reject" get a 400, the first
# "limit_n" matching "limit" a 429 (Retry-After: 1, retry_after 1.5 in the
# body: the longer one counts), those matching "exhaust" a 204 that
# empties the rate-limit bucket for 1.2 s; everything else a 204.

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time);

use RF::Test qw(write_file read_file);

my $json = JSON::PP->new->utf8->canonical;
my @started;

END { local $?; $_->stop for @started }


# RF::Webhook->start(dir => DIR, reject => qr//, limit => qr//, ...)
sub start {
    my ($class, %o) = @_;
    my $dir = $o{dir} or die 'RF::Webhook->start: dir is required';
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                        LocalPort => 0, Listen => 64,
                                        ReuseAddr => 1, Proto => 'tcp')
        or die "webhook: listen: $!";
    my $port = $listen->sockport;
    my $log = "$dir/webhook-$port.log";
    write_file($log, '');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        POSIX::setpgid(0, 0);
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        open STDERR, '>>', "$dir/webhook-$port.err";
        eval { _serve($listen, $log, \%o) };
        print STDERR "webhook: $@" if $@;
        POSIX::_exit(0);
    }
    close $listen;
    my $self = bless { pid => $pid, port => $port, log => $log }, $class;
    push @started, $self;
    return $self;
}

sub port { $_[0]{port} }

# every request so far: { t, path, ctype, status, payload, raw }
sub requests {
    my ($self) = @_;
    return map { $json->decode($_) } grep { /\S/ } split /\n/,
           read_file($self->{log});
}

# the lines of every message's content so far
sub lines {
    my ($self) = @_;
    return map { split /\n/, $_->{payload}{content} // '' } $self->requests;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', -$self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = 0;
}

sub _serve {
    my ($listen, $log, $o) = @_;
    my $limited = 0;
    while (1) {
        my $c = $listen->accept or next;
        while (1) {
            my ($path, $ctype, $body) = _read($c) or last;
            my $t = time;
            my $payload = eval { $json->decode($body) };
            my $content = $payload ? $payload->{content} // '' : '';
            my ($status, @h, $answer);
            if ($o->{reject} && $content =~ $o->{reject}) {
                ($status, $answer) = (400, '{"message":"Invalid Form Body",'
                                           . '"code":50035}');
            } elsif ($o->{limit} && $content =~ $o->{limit}
                     && $limited < ($o->{limit_n} // 1)) {
                $limited++;
                ($status, $answer) = (429, '{"message":"You are being rate '
                                           . 'limited.","retry_after":1.5,'
                                           . '"global":false}');
                @h = ('Retry-After: 1', 'X-RateLimit-Scope: user');
            } elsif ($o->{exhaust} && $content =~ $o->{exhaust}) {
                $status = 204;
                @h = ('X-RateLimit-Remaining: 0',
                      'X-RateLimit-Reset-After: 1.200');
            } else {
                $status = 204;
                @h = ('X-RateLimit-Remaining: 4',
                      'X-RateLimit-Reset-After: 0.5');
            }
            open my $fh, '>>', $log or die "$log: $!";
            print {$fh} $json->encode({ t => $t, path => $path,
                                        ctype => $ctype, status => $status,
                                        payload => $payload, raw => $body })
                        . "\n";
            close $fh;
            $answer //= '';
            print {$c} "HTTP/1.1 $status X\r\n",
                       map({ "$_\r\n" } @h),
                       ($answer ne '' ? "Content-Type: application/json\r\n"
                                      : ''),
                       'Content-Length: ' . length($answer) . "\r\n\r\n",
                       $answer;
        }
        close $c;
    }
}

# (path, content type, body) of the next request, or () at EOF
sub _read {
    my ($c) = @_;
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $more = sub {
        return 0 unless $sel->can_read(30);
        return sysread($c, $buf, 65536, length $buf) || 0;
    };
    while (index($buf, "\r\n\r\n") < 0) {
        $more->() or return ();
    }
    my $end = index($buf, "\r\n\r\n");
    my ($start, @lines) = split /\r\n/, substr($buf, 0, $end);
    substr($buf, 0, $end + 4, '');
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } @lines;
    my $len = $h{'content-length'} // 0;
    while (length $buf < $len) {
        $more->() or return ();
    }
    my (undef, $path) = split / /, $start;
    return ($path, $h{'content-type'} // '', substr($buf, 0, $len));
}

1;
