# A ring file on disk is legal but can stall workers on writeback: nginx
# warns at start-up; a ring on tmpfs gets no warning.  Ring sizes take k,
# m and g (nginx -t, which does not create the file).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

my $shm = "/dev/shm/rf-test-$$.ring";
END { unlink $shm }

my $disk = start_nginx(http_config => 'replayforge_ring $RF_DIR/r.ring size=64k;',
                       config => 'replayforge on; location / { return 204; }');
like($disk->error_log_text,
     qr/\[warn\].*replayforge_ring ".*r\.ring" is not on tmpfs/,
     'a ring on disk is warned about');
$disk->stop;

SKIP: {
    skip 'no /dev/shm here', 1 unless -d '/dev/shm';
    my $tmpfs = start_nginx(http_config => "replayforge_ring $shm size=64k;",
                            config => 'replayforge on; location / { return 204; }');
    unlike($tmpfs->error_log_text, qr/not on tmpfs/,
           'a ring on tmpfs is not');
    $tmpfs->stop;
    no_errors_in_log($tmpfs->error_log_text, 'tmpfs nginx log');
}

for my $size (qw(2g 64g 512m)) {
    my ($code, $out) = nginx_t(
        http_config => "replayforge_ring \$RF_DIR/big.ring size=$size;",
        config => 'replayforge on; location / { return 204; }');
    is($code, 0, "size=$size is a size") or diag $out;
}

for my $size (qw(65g 1t 2G0)) {
    my ($code, $out) = nginx_t(
        http_config => "replayforge_ring \$RF_DIR/big.ring size=$size;",
        config => 'replayforge on; location / { return 204; }');
    is($code, 1, "size=$size is refused");
    like($out, qr/invalid ring size "size=\Q$size\E"/, "size=$size: says why");
}

done_testing();
