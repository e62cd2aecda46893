/*
 * Copyright (C) ReplayForge contributors
 *
 * CRC32C (Castagnoli, reflected 0x82F63B78).  Records are checksummed on
 * every hop, so the hardware instruction is used when the CPU has it; the
 * slicing-by-8 table is the portable fallback.
 */

#include <string.h>

#include "rf_crc32c.h"


static void rf_crc32c_init_table(void);
static uint32_t rf_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n);
#if defined(__x86_64__)
static uint32_t rf_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n);
static uint32_t rf_crc32c_hw1(uint32_t crc, const unsigned char *p,
    size_t n);
static void rf_crc32c_init_shift(void);
#endif


static uint32_t  rf_crc32c_table[8][256];
static int       rf_crc32c_mode;        /* 0 unknown, 1 software, 2 sse4.2 */

#if defined(__x86_64__)
/*
 * The hardware instruction has a latency of three cycles and a throughput
 * of one: three streams over three blocks of RF_CRC32C_BLOCK bytes run at
 * once, and the first two registers are carried over the blocks after
 * them with this table (the register after RF_CRC32C_BLOCK zero bytes,
 * which is linear in the register: a byte of it at a time).
 */
#define RF_CRC32C_BLOCK         128

static uint32_t  rf_crc32c_shift[4][256];
#endif


static void
rf_crc32c_init_table(void)
{
    uint32_t  c;
    unsigned  i, j;

    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++) {
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
        }
        rf_crc32c_table[0][i] = c;
    }

    for (i = 0; i < 256; i++) {
        c = rf_crc32c_table[0][i];
        for (j = 1; j < 8; j++) {
            c = rf_crc32c_table[0][c & 0xff] ^ (c >> 8);
            rf_crc32c_table[j][i] = c;
        }
    }
}


static uint32_t
rf_crc32c_sw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t  w;

    while (n >= 8) {
        memcpy(&w, p, 8);
        w ^= crc;
        crc = rf_crc32c_table[7][w & 0xff]
              ^ rf_crc32c_table[6][(w >> 8) & 0xff]
              ^ rf_crc32c_table[5][(w >> 16) & 0xff]
              ^ rf_crc32c_table[4][(w >> 24) & 0xff]
              ^ rf_crc32c_table[3][(w >> 32) & 0xff]
              ^ rf_crc32c_table[2][(w >> 40) & 0xff]
              ^ rf_crc32c_table[1][(w >> 48) & 0xff]
              ^ rf_crc32c_table[0][w >> 56];
        p += 8;
        n -= 8;
    }

    while (n--) {
        crc = rf_crc32c_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }

    return crc;
}


#if defined(__x86_64__)

__attribute__((target("sse4.2")))
static uint32_t
rf_crc32c_hw(uint32_t crc, const unsigned char *p, size_t n)
{
    size_t    i;
    uint64_t  a, b, c, w;

    a = crc;

    while (n >= 3 * RF_CRC32C_BLOCK) {
        b = 0;
        c = 0;

        for (i = 0; i < RF_CRC32C_BLOCK; i += 8) {
            memcpy(&w, p + i, 8);
            a = __builtin_ia32_crc32di(a, w);
            memcpy(&w, p + RF_CRC32C_BLOCK + i, 8);
            b = __builtin_ia32_crc32di(b, w);
            memcpy(&w, p + 2 * RF_CRC32C_BLOCK + i, 8);
            c = __builtin_ia32_crc32di(c, w);
        }

        /* a over the second block, the sum over the third */

        a = rf_crc32c_shift[0][a & 0xff] ^ rf_crc32c_shift[1][(a >> 8) & 0xff]
            ^ rf_crc32c_shift[2][(a >> 16) & 0xff]
            ^ rf_crc32c_shift[3][(a >> 24) & 0xff] ^ b;

        a = rf_crc32c_shift[0][a & 0xff] ^ rf_crc32c_shift[1][(a >> 8) & 0xff]
            ^ rf_crc32c_shift[2][(a >> 16) & 0xff]
            ^ rf_crc32c_shift[3][(a >> 24) & 0xff] ^ c;

        p += 3 * RF_CRC32C_BLOCK;
        n -= 3 * RF_CRC32C_BLOCK;
    }

    return rf_crc32c_hw1((uint32_t) a, p, n);
}


static void
rf_crc32c_init_shift(void)
{
    unsigned              k, v;
    static unsigned char  zeros[RF_CRC32C_BLOCK];

    for (k = 0; k < 4; k++) {
        for (v = 0; v < 256; v++) {
            rf_crc32c_shift[k][v] = rf_crc32c_hw1((uint32_t) v << (8 * k),
                                                  zeros, RF_CRC32C_BLOCK);
        }
    }
}


/* one stream */
__attribute__((target("sse4.2")))
static uint32_t
rf_crc32c_hw1(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t  c, w;

    c = crc;

    while (n >= 8) {
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }

    crc = (uint32_t) c;

    while (n--) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
    }

    return crc;
}

#endif


uint32_t
rf_crc32c(uint32_t crc, const void *data, size_t n)
{
    int  mode;

    /* a benign race: every thread computes the same mode and table */
    mode = __atomic_load_n(&rf_crc32c_mode, __ATOMIC_ACQUIRE);

    if (mode == 0) {
        mode = 1;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("sse4.2")) {
            mode = 2;
            rf_crc32c_init_shift();
        }
#endif
        if (mode == 1) {
            rf_crc32c_init_table();
        }
        __atomic_store_n(&rf_crc32c_mode, mode, __ATOMIC_RELEASE);
    }

    crc = ~crc;

#if defined(__x86_64__)
    if (mode == 2) {
        return ~rf_crc32c_hw(crc, data, n);
    }
#endif

    return ~rf_crc32c_sw(crc, data, n);
}
