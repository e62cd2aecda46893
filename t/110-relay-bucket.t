#!/usr/bin/perl
# Runs the C unit tests of the relay's buckets (t/unit/bucket_test.c) as TAP.
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/bucket_test') or die "exec: $!";
