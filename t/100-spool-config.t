# rf-spoold's configuration: -t accepts a good file and refuses bad ones
# with "file:line: message"; flags alone work and are checked the same
# way; the read-only modes fail clearly on a missing buffer.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use RF::Test;

my $dir = tempdir();
my $bin = spoold_path();

sub spoold { my ($c, $o, $e) = run_cmd([$bin, @_]); return ($c, "$o$e") }

sub conf {
    my ($name, $text) = @_;
    return write_file("$dir/$name.conf", $text);
}

my $good = conf('good', <<"EOF");
# a complete configuration
id web-1;
ring $dir/ring;            # created by nginx
buffer $dir/spool.db;
max_buffer 64m;
overflow drop_newest;
batch 1000;
batch_linger 100ms;
stall_timeout 500ms;
log_level debug;
EOF

my ($code, $out) = spoold('-t', '-c', $good);
is($code, 0, '-t: a good file passes');
like($out, qr/the configuration file \Q$good\E syntax is ok/, '-t: syntax ok');
like($out, qr/configuration file \Q$good\E test is successful/,
     '-t: test is successful');
ok(!-e "$dir/spool.db", '-t creates no buffer');

$ENV{RF_TEST_SPOOL_ID} = 'from-env';
($code, $out) = spoold('-t', '-c', conf('env', <<"EOF"));
id \${RF_TEST_SPOOL_ID};
ring $dir/ring;
buffer $dir/spool.db;
EOF
is($code, 0, '-t: ${ENV} in values');

my @bad = (
    [ "id web;\nring /r;\nbuffer /b;\nfoo 1;\n",
      qr/bad1\.conf:4: unknown directive "foo"/, 'unknown directive' ],
    [ "id web;\nring /r;\nbuffer /b;\nmax_buffer 12q;\n",
      qr/bad2\.conf:4: .*"max_buffer".*"12q"/, 'bad size' ],
    [ "id web;\nring /r;\nbuffer /b;\nmax_buffer 100k;\n",
      qr/bad3\.conf:4: .*"max_buffer".*at least 1m/, 'size under the minimum' ],
    [ "id web;\nring /r;\nbuffer /b;\noverflow drop_all;\n",
      qr/bad4\.conf:4: .*"overflow".*"drop_all"/, 'unknown policy' ],
    [ "id web;\nid web2;\nring /r;\nbuffer /b;\n",
      qr/bad5\.conf:2: "id" directive is duplicate/, 'duplicate' ],
    [ "id web\nring /r;\nbuffer /b;\n",
      qr/bad6\.conf:\d+: /, 'missing semicolon' ],
    [ "id \"we b\";\nring /r;\nbuffer /b;\n",
      qr/bad7\.conf:1: .*id/, 'id with a space' ],
    [ "ring /r;\nbuffer /b;\n",
      qr/no "id" is set/, 'id required' ],
    [ "id web;\nbuffer /b;\n",
      qr/no "ring" is set/, 'ring required' ],
    [ "id web;\nring /r;\nbuffer /b;\nid \${RF_TEST_NOT_SET_ANYWHERE};\n",
      qr/bad10\.conf:4: environment variable "RF_TEST_NOT_SET_ANYWHERE" is not set/,
      'unset environment variable' ],
    [ "id web;\nring /r;\nbuffer /b;\nbatch 0;\n",
      qr/bad11\.conf:4: .*"batch"/, 'batch out of range' ],
    [ "id web;\nring /r;\nbuffer /b;\nbatch_linger 2m;\n",
      qr/bad12\.conf:4: .*"batch_linger"/, 'batch_linger out of range' ],
);

my $i = 0;
for my $b (@bad) {
    my ($text, $re, $what) = @$b;
    $i++;
    ($code, $out) = spoold('-t', '-c', conf("bad$i", $text));
    is($code, 1, "-t refuses: $what");
    like($out, $re, "-t says why: $what");
    like($out, qr/test failed/, "-t: test failed: $what");
}

($code, $out) = spoold('-t', '-c', "$dir/missing.conf");
is($code, 1, 'missing file refused');
like($out, qr/missing\.conf.*No such file/, 'missing file named');

# flags alone, checked like directives
($code, $out) = spoold('-t', '--ring', "$dir/ring", '--buffer', "$dir/b.db",
                       '--id', 'x', '--max-buffer', '2m');
is($code, 0, 'flags alone pass -t');

($code, $out) = spoold('-t', '--ring', "$dir/ring", '--buffer', "$dir/b.db",
                       '--id', 'x', '--max-buffer', 'huge');
is($code, 1, 'bad flag value refused');
like($out, qr/--max-buffer/, 'the flag is named');

($code, $out) = spoold('-t', '--ring', "$dir/ring", '--buffer', "$dir/b.db",
                       '--id', 'x', '--batch-linger', 'soon');
is($code, 1, 'bad --batch-linger refused');
like($out, qr/--batch-linger/, '--batch-linger named');

($code, $out) = spoold('-t', '--ring', "$dir/ring", '--id', 'x');
is($code, 1, 'missing --buffer refused');
like($out, qr/no "buffer" is set/, 'missing buffer named');

($code, $out) = spoold('--no-such-flag');
is($code, 1, 'unknown flag refused');
like($out, qr/no-such-flag/, 'unknown flag named');

# flags override the file
($code, $out) = spoold('-t', '-c', $good, '--id', 'override');
is($code, 0, 'flags on top of a file');

($code, $out) = spoold('-v');
is($code, 0, '-v');
like($out, qr/rf-spoold/, '-v names the program');

for my $mode ('--dump', '--stats') {
    ($code, $out) = spoold($mode, '--buffer', "$dir/none.db");
    is($code, 1, "$mode on a missing buffer fails");
    like($out, qr/none\.db.*does not exist/, "$mode names the missing buffer");
    ok(!-e "$dir/none.db", "$mode does not create the buffer");
}

done_testing();
