#!/usr/bin/perl
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/conf_test') or die "exec: $!";
