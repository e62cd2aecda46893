#!/usr/bin/perl
# Runs the C unit tests of common/rf_ring.c (t/unit/ring_test.c) as TAP.
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/ring_test') or die "exec: $!";
