/*
 * Copyright (C) ReplayForge contributors
 *
 * SHA-256 (FIPS 180-4), for Lua's rf.sha256(): hashing for sticky
 * sampling and pseudonymising values, not for secrets at rest.
 */

#ifndef _RF_SHA256_H_INCLUDED_
#define _RF_SHA256_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define RF_SHA256_SIZE          32


typedef struct {
    uint32_t                    h[8];
    uint64_t                    len;        /* bytes hashed */
    unsigned char               block[64];
    size_t                      used;       /* bytes in block */
} rf_sha256_t;


void rf_sha256_init(rf_sha256_t *c);
void rf_sha256_update(rf_sha256_t *c, const void *data, size_t n);
void rf_sha256_final(rf_sha256_t *c, unsigned char out[RF_SHA256_SIZE]);

/* The digest of data as 64 lowercase hex digits and a NUL. */
void rf_sha256_hex(const void *data, size_t n, char out[65]);


#endif /* _RF_SHA256_H_INCLUDED_ */
