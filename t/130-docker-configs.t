# The docker compose demo cannot run here (no Docker engine), but what it
# runs can be checked: both nginx configurations pass `nginx -t` with the
# built module, and every daemon command line of docker/compose.yaml
# passes its daemon's -t.  Paths inside the containers are mapped to a
# temp dir; service names resolve only inside compose, so they stay as
# text.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

my $dir = tempdir();
my $root = repo_root();

sub nginx_t_file {
    my ($name, %map) = @_;
    my $conf = read_file("$root/docker/$name");
    for my $from (sort keys %map) {
        $conf =~ s/\Q$from\E/$map{$from}/g;
    }
    write_file("$dir/$name", $conf);
    my ($code, $out, $err) = run_cmd(['/usr/sbin/nginx', '-t', '-p', $dir,
                                      '-c', "$dir/$name", '-e',
                                      "$dir/error.log"],
                                     env => RF::Test::_nginx_env());
    is($code, 0, "nginx -t docker/$name") or diag($err);
}

nginx_t_file('nginx-front.conf',
    '/usr/lib/nginx/modules/ngx_http_replayforge_module.so' => module_path(),
    '/ring/' => "$dir/",
    'listen 80;' => 'listen 127.0.0.1:' . free_port() . ';',
    'http://app:8080' => 'http://127.0.0.1:' . free_port());
nginx_t_file('nginx-app.conf',
    'listen 8080;' => 'listen 127.0.0.1:' . free_port() . ';');

# the command: [...] arrays of the compose file, daemons only
my $compose = read_file("$root/docker/compose.yaml");
my %bin = ('rf-spoold' => spoold_path(), 'rf-relayd' => relayd_path(),
           'rf-playerd' => player_path());
my $n = 0;
while ($compose =~ /command:\s*\[(.*?)\]/sg) {
    my @argv = $1 =~ /"([^"]*)"/g;
    next unless $bin{$argv[0]};
    for (@argv) {
        s/\$\{RF_TOKEN:-([^}]*)\}/$1/g;
        s{^/var/lib/replayforge}{$dir}g;
        s{^/etc/replayforge/htpasswd$}{$root/docker/htpasswd};
    }
    my $daemon = shift @argv;
    my ($code, $out, $err) = run_cmd([$bin{$daemon}, '-t', @argv]);
    is($code, 0, "$daemon -t with the compose command line") or diag($err);
    $n++;
}
is($n, 3, 'the compose file runs the three daemons');

done_testing;
