#!/usr/bin/perl
# Runs the C unit tests of the Lua bridge (t/unit/lua_test.c) as TAP.
$ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP'; exec(($ENV{RF_BUILD} || 'build') . '/unit/lua_test') or die "exec: $!";
