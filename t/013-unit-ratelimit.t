#!/usr/bin/perl
# Runs the C unit tests of common/rf_ratelimit.c (t/unit/ratelimit_test.c) as TAP.
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/ratelimit_test') or die "exec: $!";
