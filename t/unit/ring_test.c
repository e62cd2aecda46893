/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests of the capture ring: reservation, wrap-around padding, drop
 * counting, reuse of an existing file, hostile files, the recovery of
 * slots abandoned by dead producers, and a multi-process stress run with
 * producers killed mid-write.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rf_ring.h"
#include "rf_crc32c.h"


#define STRESS_PRODUCERS    4
#define STRESS_RECORDS      100000
#define STRESS_VICTIMS      2


typedef struct {
    uint64_t    attempted;
    uint64_t    failed;
    uint64_t    committed;
    int         done;
} stress_counts_t;


static char  ring_path[256];


static int
setup(void **state)
{
    (void) state;
    snprintf(ring_path, sizeof(ring_path), "/tmp/rf-ring-test.%d",
             (int) getpid());
    unlink(ring_path);
    return 0;
}


static int
teardown(void **state)
{
    (void) state;
    unlink(ring_path);
    return 0;
}


static int
push(rf_ring_t *r, const void *data, uint32_t len)
{
    unsigned char   *p;
    rf_ring_slot_t   slot;

    p = rf_ring_reserve(r, len, &slot);
    if (p == NULL) {
        return -1;
    }

    memcpy(p, data, len);
    rf_ring_commit(r, &slot, len);

    return 0;
}


static void
test_push_pop(void **state)
{
    int                   i, rc;
    char                  buf[64], err[256];
    uint32_t              len;
    rf_ring_t             r;
    rf_ring_stats_t       st;
    rf_ring_reader_t      rd;
    const unsigned char  *p;

    (void) state;

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);

    for (i = 0; i < 100; i++) {
        len = snprintf(buf, sizeof(buf), "record %d", i);
        assert_int_equal(push(&r, buf, len), 0);
    }

    rf_ring_reader_init(&r, &rd, 1000000000);

    for (i = 0; i < 100; i++) {
        rc = rf_ring_next(&r, &rd, &p, &len);
        assert_int_equal(rc, RF_RING_OK);
        snprintf(buf, sizeof(buf), "record %d", i);
        assert_int_equal(len, strlen(buf));
        assert_memory_equal(p, buf, len);
    }

    assert_int_equal(rf_ring_next(&r, &rd, &p, &len), RF_RING_EMPTY);

    rf_ring_release(&r, rd.pos, 100);
    rf_ring_get_stats(&r, &st);

    assert_int_equal(st.written, 100);
    assert_int_equal(st.consumed, 100);
    assert_int_equal(st.head, st.tail);
    assert_int_equal(st.dropped_full, 0);

    rf_ring_close(&r);
}


/* Fill, drain and refill many laps with odd sizes: padding at the end. */
static void
test_wrap(void **state)
{
    int                   rc;
    char                  err[256];
    uint32_t              len, n, next_in, next_out;
    rf_ring_t             r;
    rf_ring_stats_t       st;
    rf_ring_reader_t      rd;
    unsigned char         buf[5000];
    const unsigned char  *p;

    (void) state;

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);
    rf_ring_reader_init(&r, &rd, 1000000000);

    next_in = 0;
    next_out = 0;

    while (next_out < 5000) {

        /* produce until full */
        for ( ;; ) {
            len = 12 + (next_in * 7919) % 4000;
            memset(buf, (int) (next_in & 0xff), len);
            memcpy(buf, &next_in, 4);
            memcpy(buf + 4, &len, 4);
            if (push(&r, buf, len) == -1) {
                break;
            }
            next_in++;
        }

        /* consume half of what is there */
        for (n = (next_in - next_out + 1) / 2; n; n--) {
            rc = rf_ring_next(&r, &rd, &p, &len);
            assert_int_equal(rc, RF_RING_OK);
            assert_int_equal(len, 12 + (next_out * 7919) % 4000);
            assert_memory_equal(p, &next_out, 4);
            assert_int_equal(p[len - 1], next_out & 0xff);
            next_out++;
        }

        rf_ring_release(&r, rd.pos, 0);
    }

    rf_ring_get_stats(&r, &st);
    assert_true(st.dropped_full > 0);
    assert_int_equal(st.written, next_in);

    rf_ring_close(&r);
}


static void
test_too_big_and_full(void **state)
{
    char             err[256];
    rf_ring_t        r;
    rf_ring_stats_t  st;
    unsigned char    buf[20000];

    (void) state;

    memset(buf, 'x', sizeof(buf));

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);

    /* max_record is a quarter of the ring */
    assert_int_equal(push(&r, buf, 16 * 1024 + 1), -1);
    assert_int_equal(push(&r, buf, 16 * 1024), 0);
    assert_int_equal(push(&r, buf, 16 * 1024), 0);
    assert_int_equal(push(&r, buf, 16 * 1024), 0);
    /* 3 * (16k + 16) used: a fourth does not fit */
    assert_int_equal(push(&r, buf, 16 * 1024), -1);
    assert_int_equal(push(&r, buf, 100), 0);

    rf_ring_get_stats(&r, &st);
    assert_int_equal(st.dropped_too_big, 1);
    assert_int_equal(st.dropped_full, 1);
    assert_int_equal(st.written, 4);

    rf_ring_close(&r);
}


/* An existing ring of the same size is reused with its records. */
static void
test_reuse_and_recreate(void **state)
{
    char              err[256];
    uint64_t          gen;
    uint32_t          len;
    rf_ring_t         r, c;
    rf_ring_reader_t  rd;
    const unsigned char  *p;

    (void) state;

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);
    assert_int_equal(push(&r, "kept", 4), 0);
    gen = r.hdr->generation;
    rf_ring_close(&r);

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);
    assert_true(r.hdr->generation == gen);

    assert_int_equal(rf_ring_attach(&c, ring_path, 0, err, sizeof(err)), 0);
    rf_ring_reader_init(&c, &rd, 1000000000);
    assert_int_equal(rf_ring_next(&c, &rd, &p, &len), RF_RING_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(p, "kept", 4);
    assert_int_equal(rf_ring_replaced(&c, ring_path), 0);
    assert_int_equal(r.hdr->attached_pid, getpid());

    /* an observer reads the header without write access, and leaves the
     * consumer's pid alone */
    r.hdr->attached_pid = 1;
    assert_int_equal(chmod(ring_path, 0400), 0);
    {
        rf_ring_t        o;
        rf_ring_stats_t  st;

        assert_int_equal(rf_ring_attach(&o, ring_path, 1, err, sizeof(err)),
                         0);
        rf_ring_get_stats(&o, &st);
        assert_int_equal(st.written, 1);
        rf_ring_close(&o);
    }
    assert_int_equal(r.hdr->attached_pid, 1);
    assert_int_equal(chmod(ring_path, 0600), 0);

    rf_ring_close(&r);

    /* another size: recreated with a new generation, a new file */
    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 128 * 1024, 0600,
                                            err, sizeof(err)), 0);
    assert_true(r.hdr->generation != gen);
    assert_int_equal(rf_ring_replaced(&c, ring_path), 1);
    rf_ring_close(&c);

    assert_int_equal(rf_ring_attach(&c, ring_path, 0, err, sizeof(err)), 0);
    rf_ring_reader_init(&c, &rd, 1000000000);
    assert_int_equal(rf_ring_next(&c, &rd, &p, &len), RF_RING_EMPTY);

    rf_ring_close(&c);
    rf_ring_close(&r);
}


static void
test_hostile_files(void **state)
{
    int            i;
    char           err[256];
    FILE          *f;
    rf_ring_t      r;
    unsigned char  junk[8192];

    (void) state;

    /* missing */
    assert_int_equal(rf_ring_attach(&r, ring_path, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "No such file"));

    /* empty, short, garbage */
    for (i = 0; i < 3; i++) {
        f = fopen(ring_path, "w");
        assert_non_null(f);
        memset(junk, i == 2 ? 0xff : 0, sizeof(junk));
        fwrite(junk, 1, i == 0 ? 0 : (i == 1 ? 10 : sizeof(junk)), f);
        fclose(f);
        assert_int_equal(rf_ring_attach(&r, ring_path, 0, err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "is not a replayforge ring"));
    }

    /* a garbage file is replaced by the producer side */
    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);
    rf_ring_close(&r);

    /* a valid header claiming another size than the file has */
    assert_int_equal(truncate(ring_path, RF_RING_HDR_SIZE + 32 * 1024), 0);
    assert_int_equal(rf_ring_attach(&r, ring_path, 0, err, sizeof(err)), -1);

    /* bad sizes */
    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 1000, 0600,
                                            err, sizeof(err)), -1);
    assert_int_equal(rf_ring_size_normalize(100000), 128 * 1024);
    assert_int_equal(rf_ring_size_normalize(1ULL << 40), 0);
}


/* Read on while the reader waits out a stalled slot (up to 2 s). */
static int
next_past_stall(rf_ring_t *r, rf_ring_reader_t *rd,
    const unsigned char **p, uint32_t *len)
{
    int              i, rc;
    struct timespec  ts = { 0, 20 * 1000 * 1000 };

    rc = RF_RING_WAIT;

    for (i = 0; i < 100 && rc == RF_RING_WAIT; i++) {
        rc = rf_ring_next(r, rd, p, len);
        if (rc == RF_RING_WAIT) {
            nanosleep(&ts, NULL);
        }
    }

    return rc;
}


/*
 * A producer that died after writing its slot header but before commit
 * (BUSY forever), and one that died between the reservation and its first
 * store (no header at all): both are skipped after the stall timeout and
 * the records after them are read.
 */
static void
test_abandoned_slots(void **state)
{
    char                  err[256];
    uint32_t              len;
    rf_ring_t             r;
    rf_ring_slot_t        slot;
    rf_ring_stats_t       st;
    rf_ring_reader_t      rd;
    unsigned char        *w;
    const unsigned char  *p;

    (void) state;

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 64 * 1024, 0600,
                                            err, sizeof(err)), 0);

    assert_int_equal(push(&r, "first", 5), 0);

    w = rf_ring_reserve(&r, 100, &slot);        /* BUSY, never committed */
    assert_non_null(w);
    memset(w, 'z', 50);

    assert_int_equal(push(&r, "second", 6), 0);

    w = rf_ring_reserve(&r, 200, &slot);        /* header never written */
    assert_non_null(w);
    memset(slot.slot, 0, RF_RING_SLOT_HDR);

    assert_int_equal(push(&r, "third", 5), 0);

    rf_ring_reader_init(&r, &rd, 10 * 1000 * 1000);

    assert_int_equal(rf_ring_next(&r, &rd, &p, &len), RF_RING_OK);
    assert_memory_equal(p, "first", 5);

    assert_int_equal(rf_ring_next(&r, &rd, &p, &len), RF_RING_WAIT);

    assert_int_equal(next_past_stall(&r, &rd, &p, &len), RF_RING_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(p, "second", 6);

    assert_int_equal(next_past_stall(&r, &rd, &p, &len), RF_RING_OK);
    assert_memory_equal(p, "third", 5);
    assert_int_equal(rf_ring_next(&r, &rd, &p, &len), RF_RING_EMPTY);

    rf_ring_get_stats(&r, &st);
    assert_int_equal(st.skipped, 2);
    assert_int_equal(st.skipped_bytes, (16 + 112) + (16 + 208));

    rf_ring_close(&r);
}


/*
 * Records of the stress run: producer id, sequence, length, payload of a
 * pattern, and a CRC32C of it all, so that a torn record cannot pass.
 */
static void
stress_producer(int id, stress_counts_t *cnt, int slow)
{
    char             err[256];
    uint32_t         len, crc, seq;
    rf_ring_t        r;
    rf_ring_slot_t   slot;
    unsigned char   *p;
    struct timespec  pace = { 0, 10 * 1000 };

    if (rf_ring_open_or_create(&r, ring_path, 1024 * 1024, 0600,
                               err, sizeof(err)) != 0)
    {
        _exit(2);
    }

    for (seq = 0; seq < STRESS_RECORDS; seq++) {
        len = 16 + (seq * 31 + id * 17) % 900;

        cnt->attempted++;

        p = rf_ring_reserve(&r, len, &slot);
        if (p == NULL) {
            cnt->failed++;
            continue;
        }

        memcpy(p, &id, 4);
        memcpy(p + 4, &seq, 4);
        memset(p + 8, (int) (seq & 0xff), len - 12);

        if (slow && seq % 64 == 0) {
            /* widen the window for a kill between reserve and commit */
            sched_yield();
        }

        crc = rf_crc32c(0, p, len - 4);
        memcpy(p + len - 4, &crc, 4);

        rf_ring_commit(&r, &slot, len);
        cnt->committed++;

        if (!slow && seq % 8 == 0) {
            /* pace a little, so the run spans many laps of the ring */
            nanosleep(&pace, NULL);
        }
    }

    cnt->done = 1;
    rf_ring_close(&r);
    _exit(0);
}


static void
test_stress_multiprocess(void **state)
{
    int                   i, rc, status, alive, killed;
    char                  err[256];
    pid_t                 pids[STRESS_PRODUCERS];
    uint32_t              len, id, seq, crc;
    uint64_t              got[STRESS_PRODUCERS], total, bad, pending;
    int64_t               last[STRESS_PRODUCERS];
    rf_ring_t             r;
    rf_ring_stats_t       st;
    rf_ring_reader_t      rd;
    stress_counts_t      *cnt;
    const unsigned char  *p;
    struct timespec       ts = { 0, 100 * 1000 };

    (void) state;

    assert_int_equal(rf_ring_open_or_create(&r, ring_path, 1024 * 1024, 0600,
                                            err, sizeof(err)), 0);

    cnt = mmap(NULL, sizeof(stress_counts_t) * STRESS_PRODUCERS,
               PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(cnt != MAP_FAILED);
    memset(cnt, 0, sizeof(stress_counts_t) * STRESS_PRODUCERS);

    for (i = 0; i < STRESS_PRODUCERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] != -1);
        if (pids[i] == 0) {
            stress_producer(i, &cnt[i], i < STRESS_VICTIMS);
        }
        got[i] = 0;
        last[i] = -1;
    }

    rf_ring_reader_init(&r, &rd, 50 * 1000 * 1000);

    total = 0;
    bad = 0;
    pending = 0;
    killed = 0;
    alive = STRESS_PRODUCERS;

    for ( ;; ) {
        rc = rf_ring_next(&r, &rd, &p, &len);

        if (rc == RF_RING_OK) {
            memcpy(&id, p, 4);
            memcpy(&seq, p + 4, 4);
            memcpy(&crc, p + len - 4, 4);

            if (len < 16 || id >= STRESS_PRODUCERS
                || crc != rf_crc32c(0, p, len - 4)
                || (int64_t) seq <= last[id])
            {
                bad++;

            } else {
                last[id] = seq;
                got[id]++;
            }

            total++;

            if (++pending == 64) {
                rf_ring_release(&r, rd.pos, pending);
                pending = 0;
            }

            /*
             * kill the victims mid-stream: early, since on a busy machine
             * the producers may finish (mostly dropping) after ~15000
             * consumed records
             */
            if (!killed && total == 2000) {
                for (i = 0; i < STRESS_VICTIMS; i++) {
                    kill(pids[i], SIGKILL);
                }
                killed = 1;
            }

            continue;
        }

        rf_ring_release(&r, rd.pos, pending);
        pending = 0;

        if (alive == 0) {
            if (rc == RF_RING_EMPTY) {
                break;
            }
            nanosleep(&ts, NULL);
            continue;
        }

        while (alive && waitpid(-1, &status, WNOHANG) > 0) {
            alive--;
        }

        nanosleep(&ts, NULL);
    }

    rf_ring_get_stats(&r, &st);

    print_message("# consumed %llu, dropped_full %llu, skipped %llu\n",
                  (unsigned long long) total,
                  (unsigned long long) st.dropped_full,
                  (unsigned long long) st.skipped);

    assert_int_equal(bad, 0);
    assert_int_equal(st.consumed, total);
    assert_true(killed);

    for (i = 0; i < STRESS_PRODUCERS; i++) {
        if (i >= STRESS_VICTIMS) {
            /* survivors: every committed record arrived, drops exact */
            assert_int_equal(cnt[i].done, 1);
            assert_int_equal(cnt[i].attempted, STRESS_RECORDS);
            assert_int_equal(got[i], cnt[i].committed);
            assert_int_equal(cnt[i].committed + cnt[i].failed,
                             STRESS_RECORDS);

        } else {
            /* victims: all they committed, or one more in flight */
            assert_true(got[i] >= cnt[i].committed);
            assert_true(got[i] <= cnt[i].committed + 1);
        }
    }

    /* every failed reservation is counted by the ring, no more */
    total = 0;
    for (i = 0; i < STRESS_PRODUCERS; i++) {
        total += cnt[i].failed;
    }
    assert_true(st.dropped_full + STRESS_VICTIMS >= total);
    assert_true(st.dropped_full <= total + STRESS_VICTIMS);

    munmap(cnt, sizeof(stress_counts_t) * STRESS_PRODUCERS);
    rf_ring_close(&r);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_push_pop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big_and_full, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reuse_and_recreate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hostile_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_slots, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stress_multiprocess, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
