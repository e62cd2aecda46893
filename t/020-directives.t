# The module's directives: every bad argument fails nginx -t with a clear
# message naming the directive and value; good ones load and serve; the
# status location answers.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::TestNginx;

run_tests();
done_testing();

__DATA__

=== TEST 1: capture without a ring is refused
--- config
replayforge on;
--- must_die
--- error_log
"replayforge" is enabled but "replayforge_ring" is not set

=== TEST 2: capture enabled in a location without a ring is refused too
--- config
location /x { replayforge on; }
--- must_die
--- error_log
"replayforge" is enabled but "replayforge_ring" is not set

=== TEST 3: replayforge takes on, off or a variable
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge yes;
--- must_die
--- error_log
invalid value "yes", it must be "on", "off" or a variable

=== TEST 4: ring size out of range
--- http_config
replayforge_ring $RF_DIR/rf.ring size=1k;
--- must_die
--- error_log
invalid ring size "size=1k", must be between 64k and 64g

=== TEST 5: ring size not a size
--- http_config
replayforge_ring $RF_DIR/rf.ring size=lots;
--- must_die
--- error_log
invalid ring size "size=lots"

=== TEST 6: unknown ring parameter
--- http_config
replayforge_ring $RF_DIR/rf.ring colour=blue;
--- must_die
--- error_log
invalid parameter "colour=blue"

=== TEST 7: ring mode must be octal
--- http_config
replayforge_ring $RF_DIR/rf.ring mode=0800;
--- must_die
--- error_log
invalid parameter "mode=0800"

=== TEST 8: ring only once, only in http
--- http_config
replayforge_ring $RF_DIR/rf.ring;
replayforge_ring $RF_DIR/rf2.ring;
--- must_die
--- error_log
"replayforge_ring" directive is duplicate

=== TEST 9: ring not allowed in server
--- config
replayforge_ring $RF_DIR/rf.ring;
--- must_die
--- error_log
"replayforge_ring" directive is not allowed here

=== TEST 10: sample over 100%
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge_sample 100.5%;
--- must_die
--- error_log
invalid sample "100.5%", it must be a percentage from 0 to 100 with up to two decimals

=== TEST 11: sample with three decimals
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge_sample 0.125%;
--- must_die
--- error_log
invalid sample "0.125%"

=== TEST 12: sample not a number
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge_sample -5;
--- must_die
--- error_log
invalid sample "-5"

=== TEST 13: bucket name characters
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge_bucket "prod/eu";
--- must_die
--- error_log
invalid bucket name "prod/eu", it must be 1 to 64 characters of A-Z a-z 0-9 . _ -

=== TEST 14: max_body must be a size
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge_max_body big;
--- must_die
--- error_log
"replayforge_max_body" directive invalid value

=== TEST 15: mask_header needs a name
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
replayforge_mask_header;
--- must_die
--- error_log
invalid number of arguments in "replayforge_mask_header" directive

=== TEST 16: status takes no arguments
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
location = /s { replayforge_status json; }
--- must_die
--- error_log
invalid number of arguments in "replayforge_status" directive

=== TEST 17: a full valid configuration loads and reports its ring
--- http_config
replayforge_ring $RF_DIR/rf.ring size=100k mode=0640;
--- config
replayforge on;
replayforge_bucket prod.eu-1;
replayforge_max_body 1m;
replayforge_sample 12.25%;
replayforge_mask_header Authorization Cookie;
location = /s { replayforge off; replayforge_status; }
--- request
GET /s
--- response_body_like
^\{"ring":"[^"]+/rf\.ring","size":131072,"generation":\d+,"used":0,"written":0,"written_bytes":0,"dropped_full":0,"dropped_too_big":0,"consumed":0,"skipped":0,"skipped_bytes":0\}$
--- response_headers
Content-Type: application/json

=== TEST 18: status refuses POST
--- http_config
replayforge_ring $RF_DIR/rf.ring size=64k;
--- config
location = /s { replayforge_status; }
--- request
POST /s
--- error_code: 405

=== TEST 19: capture off everywhere loads without a ring
--- config
replayforge off;
location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
