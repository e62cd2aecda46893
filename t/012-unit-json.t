#!/usr/bin/perl
# Runs the C unit tests of common/rf_json.c (t/unit/json_test.c) as TAP.
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/json_test') or die "exec: $!";
