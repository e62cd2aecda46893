/*
 * Copyright (C) ReplayForge contributors
 *
 * Benchmark helper: writes N http records with a body of B bytes into a
 * ring as fast as it can, so rf-spoold's drain rate can be measured apart
 * from nginx's own throughput.  Usage: ringfill RING SIZE N BODY_BYTES
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_conf.h"
#include "rf_record.h"
#include "rf_ring.h"


int
main(int argc, char **argv)
{
    char             err[256];
    size_t           len, blen;
    uint64_t         size, n, i, dropped;
    rf_ring_t        ring;
    rf_http_t        h;
    rf_header_t      hd[4];
    unsigned char   *p, *body;
    rf_ring_slot_t   slot;

    if (argc != 5 || rf_conf_parse_size(argv[2], &size) == -1) {
        fprintf(stderr, "usage: ringfill RING SIZE N BODY_BYTES\n");
        return 2;
    }

    n = strtoull(argv[3], NULL, 10);
    blen = strtoul(argv[4], NULL, 10);

    if (rf_ring_open_or_create(&ring, argv[1], size, 0600, err, sizeof(err))
        == -1)
    {
        fprintf(stderr, "ringfill: %s\n", err);
        return 1;
    }

    body = malloc(blen + 1);
    if (body == NULL) {
        return 1;
    }
    memset(body, 'b', blen);

    memset(&h, 0, sizeof(h));
    h.method = (rf_str_t) rf_string("POST");
    h.uri = (rf_str_t) rf_string("/bench/path?q=1");
    h.version = (rf_str_t) rf_string("HTTP/1.1");
    h.scheme = (rf_str_t) rf_string("http");
    h.host = (rf_str_t) rf_string("bench.local");
    h.client = (rf_str_t) rf_string("127.0.0.1:40000");
    h.server = (rf_str_t) rf_string("127.0.0.1:8080");
    hd[0] = (rf_header_t) { rf_string("Host"), rf_string("bench.local") };
    hd[1] = (rf_header_t) { rf_string("User-Agent"), rf_string("wrk") };
    hd[2] = (rf_header_t) { rf_string("Content-Type"),
                            rf_string("application/octet-stream") };
    hd[3] = (rf_header_t) { rf_string("Content-Length"), rf_string("1024") };
    h.headers = hd;
    h.nheaders = 4;
    h.body.data = body;
    h.body.len = blen;
    h.body_size = blen;
    h.status = 200;
    h.bytes_sent = 200;
    h.duration_us = 1000;

    len = rf_http_size(&h);
    dropped = 0;

    for (i = 0; i < n; i++) {
        h.time_ns = 1795428000000000000ULL + i * 1000;

        p = rf_ring_reserve(&ring, (uint32_t) len, &slot);
        if (p == NULL) {
            dropped++;
            continue;
        }

        rf_http_encode(&h, p, len);
        rf_ring_commit(&ring, &slot, (uint32_t) len);
    }

    printf("record_bytes=%zu written=%llu dropped=%llu\n", len,
           (unsigned long long) (n - dropped), (unsigned long long) dropped);

    free(body);
    rf_ring_close(&ring);

    return dropped ? 1 : 0;
}
