/*
 * Copyright (C) ReplayForge contributors
 *
 * The dashboard page, embedded at build time with the assembler's .incbin:
 * the page stays an ordinary HTML file to edit and preview, yet the relay
 * ships as one binary.  The path is relative to the repository root, where
 * the compiler runs; the Makefile rebuilds this object when the page
 * changes.
 */

#include <stddef.h>

#include "relay_dashboard.h"


extern const unsigned char  relay_dashboard_html_start[];
extern const unsigned char  relay_dashboard_html_end[];


__asm__ (
    "    .section .rodata\n"
    "    .global relay_dashboard_html_start\n"
    "    .global relay_dashboard_html_end\n"
    "    .type relay_dashboard_html_start, @object\n"
    "relay_dashboard_html_start:\n"
    "    .incbin \"relayd/relay_dashboard.html\"\n"
    "relay_dashboard_html_end:\n"
    "    .byte 0\n"
    "    .size relay_dashboard_html_start, "
             ". - relay_dashboard_html_start\n"
    "    .previous\n"
);


const unsigned char *
relay_dashboard_html(size_t *len)
{
    *len = (size_t) (relay_dashboard_html_end - relay_dashboard_html_start);

    return relay_dashboard_html_start;
}
