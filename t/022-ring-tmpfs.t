# A ring file on disk is legal but can stall workers on writeback: nginx
# warns at start-up; a ring on tmpfs gets no warning.

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

done_testing();
