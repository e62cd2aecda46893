#!/usr/bin/perl
# Runs the C unit tests of common/rf_record.c (t/unit/record_test.c) as TAP.
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/record_test') or die "exec: $!";
