/*
 * Copyright (C) ReplayForge contributors
 *
 * The capture ring: a file-backed shared mapping that nginx workers
 * (producers) append records to and rf-spoold (the one consumer) drains.
 */

#ifndef _RF_RING_H_INCLUDED_
#define _RF_RING_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/*
 * File layout (all integers little-endian, native atomics):
 *
 *   0      4096                                       4096 + size
 *   +------+-------------------------------------------+
 *   | hdr  | data: power-of-two byte ring of slots      |
 *   +------+-------------------------------------------+
 *
 *   hdr: line 0  magic, version, size, generation      (read-only)
 *        line 1  head  (next free position, producers)  (CAS)
 *        line 2  tail  (first unconsumed, the consumer)  (store)
 *        line 3+ counters                               (fetch_add)
 *
 * Positions are monotonic 64-bit byte offsets; a position maps to
 * data[pos & (size - 1)].  Every slot starts on a 16-byte boundary with a
 * 16-byte slot header (so a padding slot always has room for one):
 *
 *        +----------------+----------------+------------------------+
 *        | len (u32)      | state (u32)    | pos (u64)              |
 *        +----------------+----------------+------------------------+
 *        | payload: len bytes, padded to 16                         |
 *
 *      tail                         head
 *       v                            v
 *   ...[C rec][B rec...][C rec][P pad]|.........free..........
 *
 * A producer reserves by CAS on head (never blocks: when head - tail
 * would pass size it drops and counts), then writes pos and len, releases
 * state BUSY, copies the payload and releases state COMMITTED.  A record
 * never wraps: when it does not fit before the end of data, the producer
 * reserves the rest of the lap too and marks it PAD.
 *
 * The consumer reads the slot at its position and trusts it only when the
 * stored pos equals that position (a slot from an earlier lap has another
 * pos), so no slot ever has to be cleared.  A slot that stays BUSY, or a
 * reservation whose header never appeared (the producer died between the
 * CAS and its first store), is skipped after a stall timeout: the length
 * of a BUSY slot is known; for a missing header the consumer scans forward
 * 16 bytes at a time for the next slot whose pos matches.  Skipped bytes
 * are counted.  Records carry their own CRC, so a late write by a producer
 * that was presumed dead is caught by the consumer's checksum.
 *
 * No process ever holds a lock in the ring, so no crash can wedge it.
 * Shared words are accessed only through the compiler's __atomic builtins
 * (the C11 memory model; plain fields, so the layout is the file format).
 */


#define RF_RING_MAGIC           0x474e495246524652ULL   /* "RFRFRING" */
#define RF_RING_VERSION         1
#define RF_RING_HDR_SIZE        4096
#define RF_RING_SLOT_HDR        16
#define RF_RING_ALIGN           16
#define RF_RING_MIN_SIZE        (64 * 1024)
#define RF_RING_MAX_SIZE        (1ULL << 36)

#define RF_RING_STATE_BUSY      0x42555359      /* "BUSY" */
#define RF_RING_STATE_COMMITTED 0x434f4d54      /* "COMT" */
#define RF_RING_STATE_PAD       0x50414444      /* "PADD" */

#define RF_RING_LINE            64

#define RF_RING_OK              1
#define RF_RING_EMPTY           0
#define RF_RING_WAIT            (-2)


typedef struct {
    uint64_t                    magic;
    uint32_t                    version;
    uint32_t                    hdr_size;
    uint64_t                    size;
    uint64_t                    generation;
    uint64_t                    created_ns;
    uint32_t                    max_record;
    uint32_t                    reserved0;
    char                        pad0[RF_RING_LINE - 48];

    uint64_t                    head;
    char                        pad1[RF_RING_LINE - 8];

    uint64_t                    tail;
    char                        pad2[RF_RING_LINE - 8];

    uint64_t                    written;
    uint64_t                    written_bytes;
    uint64_t                    dropped_full;
    uint64_t                    dropped_too_big;
    uint64_t                    consumed;
    uint64_t                    skipped;        /* torn/abandoned slots */
    uint64_t                    skipped_bytes;
    uint64_t                    attached_pid;   /* last consumer's pid */
} rf_ring_hdr_t;


typedef struct {
    rf_ring_hdr_t              *hdr;
    unsigned char              *data;
    uint64_t                    size;
    uint64_t                    mask;
    size_t                      map_size;
    int                         fd;
    dev_t                       dev;
    ino_t                       ino;
} rf_ring_t;


typedef struct {
    uint64_t                    pos;        /* slot position, for commit */
    unsigned char              *slot;
} rf_ring_slot_t;


typedef struct {
    uint64_t                    pos;        /* next slot to read */
    uint64_t                    stall_pos;
    uint64_t                    stall_since_ns;
    uint64_t                    stall_timeout_ns;
} rf_ring_reader_t;


typedef struct {
    uint64_t                    size;
    uint64_t                    generation;
    uint64_t                    head;
    uint64_t                    tail;
    uint64_t                    written;
    uint64_t                    written_bytes;
    uint64_t                    dropped_full;
    uint64_t                    dropped_too_big;
    uint64_t                    consumed;
    uint64_t                    skipped;
    uint64_t                    skipped_bytes;
} rf_ring_stats_t;


/*
 * Producer side setup: open path, reuse it when its header is valid and of
 * the same size (records survive an nginx restart), else create it anew
 * (atomically, by rename) with a new generation.  size is rounded up to a
 * power of two.  Returns 0, or -1 with a message in err.
 */
int rf_ring_open_or_create(rf_ring_t *ring, const char *path, uint64_t size,
    mode_t mode, char *err, size_t errlen);

/*
 * Consumer side: map an existing ring file; -1 with err when invalid.
 * readonly: for observers (stats); they may only read the header.
 */
int rf_ring_attach(rf_ring_t *ring, const char *path, int readonly,
    char *err, size_t errlen);

/*
 * Pre-fault the whole mapping: every page of the ring gets its page-table
 * entry now, writable (write: producers) or readable (consumer), instead
 * of one minor fault per page on first touch.  Linux does not copy the
 * entries of a shared file mapping at fork, so each nginx worker would
 * otherwise trap once for every page of the ring it writes, on the request
 * path.  Costs one walk of the mapping and the page tables for it in each
 * process.  Returns 0, or -1 with errno (EINVAL: the kernel, before 5.14,
 * or the headers do not know MADV_POPULATE_*); callers log it and go on,
 * the ring works without.
 */
int rf_ring_populate(rf_ring_t *ring, int write);

/* 1 when path now names another file than the one mapped (recreated). */
int rf_ring_replaced(rf_ring_t *ring, const char *path);

void rf_ring_close(rf_ring_t *ring);

/*
 * Reserve len payload bytes.  Returns a pointer to write the payload to,
 * or NULL when the ring is full or len is over max_record (both counted).
 */
unsigned char *rf_ring_reserve(rf_ring_t *ring, uint32_t len,
    rf_ring_slot_t *slot);
void rf_ring_commit(rf_ring_t *ring, rf_ring_slot_t *slot, uint32_t len);
/* Give up a reserved slot (turned into padding the consumer skips). */
void rf_ring_abort(rf_ring_t *ring, rf_ring_slot_t *slot);

/* Consumer: start reading at the ring's tail. */
void rf_ring_reader_init(rf_ring_t *ring, rf_ring_reader_t *rd,
    uint64_t stall_timeout_ns);

/*
 * Next committed record at or after rd->pos: RF_RING_OK with rec and len set
 * (valid until the consumer releases past it), RF_RING_EMPTY when nothing
 * more was written, RF_RING_WAIT while a reserved slot ahead is not
 * committed yet.  Advances rd->pos past what it returned or skipped.
 */
int rf_ring_next(rf_ring_t *ring, rf_ring_reader_t *rd,
    const unsigned char **rec, uint32_t *len);

/* Give back everything before pos to producers; count n records. */
void rf_ring_release(rf_ring_t *ring, uint64_t pos, uint64_t n);

void rf_ring_get_stats(rf_ring_t *ring, rf_ring_stats_t *st);

/* Round up to a power of two within the allowed bounds; 0 if invalid. */
uint64_t rf_ring_size_normalize(uint64_t size);


#endif /* _RF_RING_H_INCLUDED_ */
