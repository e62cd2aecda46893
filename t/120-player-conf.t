# rf-playerd's configuration: -t on files and on flags alone, and the
# mistakes it must name with file:line (unknown sink type, duplicate sink
# name, a bucket without consumer or sink, bad values inside a sink
# block), plus a start-up that cannot open a sink.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

my $bin = player_path();
plan skip_all => "$bin not built" unless -x $bin;

my $dir = tempdir();
my $n = 0;

# -t on a config text; returns (exit code, stderr, the file's path)
sub conf_t {
    my ($text, @args) = @_;
    my $file = "$dir/player-" . ++$n . '.conf';
    write_file($file, $text);
    my ($code, $out, $err) = run_cmd([$bin, '-t', '-c', $file, @args]);
    return ($code, $err, $file);
}

sub flags_t {
    my (@args) = @_;
    my ($code, $out, $err) = run_cmd([$bin, '-t', @args]);
    return ($code, $err);
}

# a config whose line numbers the checks below rely on
my $good = <<"EOF";
relay        http://127.0.0.1:8480/;
token        SECRET;
id           player-1;
dead_letter  $dir/dead.ndjson;
max_tries    3;
retry_backoff 50ms;
heartbeat    2s;
log_level    debug;
bucket prod {
    consumer   staging;
    batch      500;
    wait       10s;
    sink file archive { path $dir/prod.ndjson; max_file 64m; max_total 1g; }
    sink log stderr;
    sink log loud { level warn; }
}
bucket other {
    consumer  c2;
    token     OTHER;
    sink file f { path $dir/other.ndjson; fsync off; }
}
EOF

my ($code, $err, $file) = conf_t($good);
is($code, 0, 'a full config tests ok') or diag $err;
like($err, qr/configuration file \Q$file\E test is successful/,
     'nginx wording on success');

($code, $err) = flags_t('--relay', 'http://127.0.0.1:8480', '--bucket', 'b',
                        '--token', 'tk', '--consumer', 'c',
                        '--file', "$dir/f.ndjson", '--max-tries', '2');
is($code, 0, 'flags alone test ok') or diag $err;
like($err, qr/\(command line\) test is successful/, '... named so');

# file and flags together: a flag overrides a top-level directive
($code, $err) = conf_t($good, '--max-tries', '7', '--log-level', 'warn');
is($code, 0, 'a flag may override a directive of the file') or diag $err;

my @bad = (
    [ 'unknown sink type',
      "relay http://h:1; token t;\nbucket b {\n    consumer c;\n"
      . "    sink nope x { }\n}\n",
      qr/:4: unknown sink type "nope"/ ],
    [ 'duplicate sink name',
      "relay http://h:1; token t;\nbucket b {\n    consumer c;\n"
      . "    sink log a;\n    sink file a { path $dir/a; }\n}\n",
      qr/:5: sink "a" is defined twice in bucket "b"/ ],
    [ 'bucket without consumer',
      "relay http://h:1;\ntoken t;\nbucket b {\n    sink log a;\n}\n",
      qr/:3: bucket "b" needs a "consumer"/ ],
    [ 'bucket without sink',
      "relay http://h:1;\ntoken t;\n\nbucket b {\n    consumer c;\n}\n",
      qr/:4: bucket "b" has no sink/ ],
    [ 'unknown directive inside a sink block',
      "relay http://h:1; token t;\nbucket b {\n    consumer c;\n"
      . "    sink file f {\n        path $dir/x;\n        rotate 5;\n"
      . "    }\n}\n",
      qr/:6: unknown directive "rotate"/ ],
    [ 'bad size inside a sink block',
      "relay http://h:1; token t;\nbucket b {\n    consumer c;\n"
      . "    sink file f { path $dir/x;\n max_file lots; }\n}\n",
      qr/:5: .*max_file/ ],
    [ 'a sink check failing names the sink line',
      "relay http://h:1; token t;\nbucket b {\n    consumer c;\n"
      . "    sink log l;\n    sink file f { max_file 1m; }\n}\n",
      qr/:5: sink file "f": "path" is required/ ],
    [ 'max_total without max_file',
      "relay http://h:1; token t;\nbucket b {\n    consumer c;\n"
      . "    sink file f { path $dir/x; max_total 1m; }\n}\n",
      qr/:4: sink file "f": "max_total" needs "max_file"/ ],
    [ 'max_tries out of bounds',
      "relay http://h:1;\nmax_tries 0;\n",
      qr/:2: .*max_tries/ ],
    [ 'bad log level of a log sink',
      "relay http://h:1; token t;\nbucket b {\n consumer c;\n"
      . " sink log l { level loud; }\n}\n",
      qr/:4: .*level/ ],
    [ 'bucket defined twice',
      "relay http://h:1; token t;\nbucket b { consumer c; sink log l; }\n"
      . "bucket b { consumer c; sink log l; }\n",
      qr/:3: bucket "b" is defined twice/ ],
    # the whole configuration's checks have no single line
    [ 'no relay',
      "token t;\nbucket b { consumer c; sink log l; }\n",
      qr/no "relay" is set/, 1 ],
    [ 'no token for a bucket',
      "relay http://h:1;\nbucket b { consumer c; sink log l; }\n",
      qr/bucket "b" has no token/, 1 ],
    [ 'relay not a URL',
      "relay h:1; token t;\nbucket b { consumer c; sink log l; }\n",
      qr/invalid relay "h:1"/, 1 ],
    [ 'no bucket',
      "relay http://h:1; token t;\n",
      qr/no bucket is defined/, 1 ],
);

for my $case (@bad) {
    my ($name, $text, $re, $global) = @$case;
    my ($code, $err, $file) = conf_t($text);
    is($code, 1, "$name: -t fails");
    my $where = $global ? '' : quotemeta $file;
    like($err, qr/\[emerg\] $where$re/, "$name: file:line and message")
        or diag $err;
    like($err, qr/test failed/, "$name: nginx wording on failure");
}

# the flags' mistakes
($code, $err) = flags_t('--relay', 'http://h:1', '--token', 't',
                        '--bucket', 'b', '--file', "$dir/f");
is($code, 1, '--bucket without --consumer fails');
like($err, qr/\(command line\):\d+: bucket "b" needs a "consumer"/,
     '... and says so') or diag $err;

($code, $err) = flags_t('--relay', 'http://h:1', '--token', 't',
                        '--bucket', 'b', '--consumer', 'c');
is($code, 1, '--bucket without a sink flag fails');
like($err, qr/bucket "b" has no sink/, '... and says so') or diag $err;

($code, $err) = flags_t('--relay', 'http://h:1', '--token', 't',
                        '--file', "$dir/f");
is($code, 1, '--file without --bucket fails');
like($err, qr/need --bucket/, '... and says so') or diag $err;

($code, $err) = flags_t('--relay', 'http://h:1', '--bucket', 'b',
                        '--consumer', 'c', '--token', 't', '--file',
                        "$dir/f", '--max-tries', 'many');
is($code, 1, 'a bad flag value fails');
like($err, qr/max_tries/, '... naming the directive') or diag $err;

# values with quotes, blanks and dollars survive the flags' config text
($code, $err) = flags_t('--relay', 'http://h:1', '--bucket', 'b',
                        '--consumer', 'c', '--token', 'a "b" ${X} \\ c',
                        '--file', "$dir/with space");
is($code, 0, 'flag values are quoted, not interpreted') or diag $err;

($code, my $out, $err) = run_cmd([$bin, '--nope']);
is($code, 1, 'an unknown flag fails');
like($err, qr/invalid option: "--nope"/, '... and says so');

($code, $out, $err) = run_cmd([$bin, '-v']);
is($code, 0, '-v');
like($err, qr{rf-playerd/\d+\.\d+\.\d+}, '-v prints the version');

# -t does not open sinks; starting does, and a sink that cannot open
# stops the start with the reason
($code, $err, $file) = conf_t(
    "relay http://127.0.0.1:1; token t;\ndead_letter $dir/d.ndjson;\n"
    . "bucket b { consumer c; sink file f { path $dir/no/such/x; } }\n");
is($code, 0, '-t passes a file sink whose directory is missing');
($code, $out, $err) = run_cmd([$bin, '-d', '-c', $file], timeout => 20);
is($code, 1, 'starting with it fails');
my $missing = qq{bucket "b" sink file "f": directory "$dir/no/such"};
like($err, qr/\[emerg\] \Q$missing\E does not exist/,
     '... naming bucket, sink and directory') or diag $err;

no_errors_in_log($err, 'nothing else than that [emerg] from the daemon',
                 qr/directory .* does not exist/);

done_testing;
