#!/usr/bin/perl
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/log_test') or die "exec: $!";
