/*
 * Copyright (C) ReplayForge contributors
 *
 * The capture ring (see the diagram in rf_ring.h): lock-free reservation
 * for many producer processes, in-place reading for one consumer, and the
 * recovery rules for producers that die between reserve and commit.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rf_ring.h"


#define rf_ring_align(n)                                                    \
    (((n) + RF_RING_ALIGN - 1) & ~((uint64_t) RF_RING_ALIGN - 1))

#define RF_RING_STATE(slot)     ((uint32_t *) ((slot) + 4))


_Static_assert(offsetof(rf_ring_hdr_t, head) == RF_RING_LINE,
               "head on its own cache line");
_Static_assert(offsetof(rf_ring_hdr_t, tail) == 2 * RF_RING_LINE,
               "tail on its own cache line");
_Static_assert(sizeof(rf_ring_hdr_t) <= RF_RING_HDR_SIZE, "header fits");


static uint64_t rf_ring_now_ns(void);
static int rf_ring_map(rf_ring_t *ring, int fd, uint64_t size, int prot,
    char *err, size_t errlen);
static int rf_ring_header_ok(const rf_ring_hdr_t *hdr, uint64_t file_size);
static int rf_ring_create(rf_ring_t *ring, const char *path, uint64_t size,
    mode_t mode, char *err, size_t errlen);
static int rf_ring_slot_valid(rf_ring_t *ring, uint64_t pos, uint32_t *state,
    uint32_t *len);


static uint64_t
rf_ring_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


uint64_t
rf_ring_size_normalize(uint64_t size)
{
    uint64_t  n;

    if (size < RF_RING_MIN_SIZE || size > RF_RING_MAX_SIZE) {
        return 0;
    }

    for (n = RF_RING_MIN_SIZE; n < size; n <<= 1) { /* void */ }

    return n;
}


static int
rf_ring_header_ok(const rf_ring_hdr_t *hdr, uint64_t file_size)
{
    return hdr->magic == RF_RING_MAGIC
           && hdr->version == RF_RING_VERSION
           && hdr->hdr_size == RF_RING_HDR_SIZE
           && rf_ring_size_normalize(hdr->size) == hdr->size
           && file_size == RF_RING_HDR_SIZE + hdr->size
           && hdr->max_record >= 1024
           && hdr->max_record <= hdr->size / 4;
}


static int
rf_ring_map(rf_ring_t *ring, int fd, uint64_t size, int prot, char *err,
    size_t errlen)
{
    void  *p;

    p = mmap(NULL, RF_RING_HDR_SIZE + size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "mmap(%llu) failed: %s",
                 (unsigned long long) (RF_RING_HDR_SIZE + size),
                 strerror(errno));
        return -1;
    }

    ring->hdr = p;
    ring->data = (unsigned char *) p + RF_RING_HDR_SIZE;
    ring->size = size;
    ring->mask = size - 1;
    ring->map_size = RF_RING_HDR_SIZE + size;
    ring->fd = fd;

    return 0;
}


static int
rf_ring_create(rf_ring_t *ring, const char *path, uint64_t size, mode_t mode,
    char *err, size_t errlen)
{
    int             fd, rc;
    char            tmp[4096];
    struct stat     st;
    rf_ring_hdr_t  *hdr;

    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int) sizeof(tmp)) {
        snprintf(err, errlen, "ring path too long");
        return -1;
    }

    fd = mkstemp(tmp);
    if (fd == -1) {
        snprintf(err, errlen, "cannot create \"%s\": %s", tmp,
                 strerror(errno));
        return -1;
    }

    /*
     * Reserve the memory now: a sparse file on a full tmpfs would turn a
     * later write in an nginx worker into SIGBUS.
     */
    rc = posix_fallocate(fd, 0, RF_RING_HDR_SIZE + size);
    if (rc != 0) {
        snprintf(err, errlen, "cannot allocate %llu bytes for \"%s\": %s",
                 (unsigned long long) (RF_RING_HDR_SIZE + size), tmp,
                 strerror(rc));
        goto failed;
    }

    if (fchmod(fd, mode) == -1 || fstat(fd, &st) == -1) {
        snprintf(err, errlen, "chmod/stat \"%s\": %s", tmp, strerror(errno));
        goto failed;
    }

    if (rf_ring_map(ring, fd, size, PROT_READ | PROT_WRITE, err, errlen)
        == -1)
    {
        goto failed;
    }

    hdr = ring->hdr;
    memset(hdr, 0, RF_RING_HDR_SIZE);
    hdr->version = RF_RING_VERSION;
    hdr->hdr_size = RF_RING_HDR_SIZE;
    hdr->size = size;
    hdr->created_ns = (uint64_t) time(NULL) * 1000000000;
    hdr->generation = rf_ring_now_ns() ^ ((uint64_t) getpid() << 40)
                      ^ hdr->created_ns;
    hdr->max_record = (uint32_t) (size / 4 < 64 * 1024 * 1024
                                  ? size / 4 : 64 * 1024 * 1024);
    __atomic_store_n(&hdr->magic, RF_RING_MAGIC, __ATOMIC_RELEASE);

    if (rename(tmp, path) == -1) {
        snprintf(err, errlen, "rename(\"%s\", \"%s\"): %s", tmp, path,
                 strerror(errno));
        munmap(ring->hdr, ring->map_size);
        goto failed;
    }

    ring->dev = st.st_dev;
    ring->ino = st.st_ino;

    return 0;

failed:

    unlink(tmp);
    close(fd);

    return -1;
}


int
rf_ring_open_or_create(rf_ring_t *ring, const char *path, uint64_t size,
    mode_t mode, char *err, size_t errlen)
{
    int          fd;
    struct stat  st;

    memset(ring, 0, sizeof(rf_ring_t));
    ring->fd = -1;

    size = rf_ring_size_normalize(size);
    if (size == 0) {
        snprintf(err, errlen, "ring size must be between 64k and 64g");
        return -1;
    }

    fd = open(path, O_RDWR | O_CLOEXEC);

    if (fd != -1) {
        if (fstat(fd, &st) == 0
            && (uint64_t) st.st_size == RF_RING_HDR_SIZE + size
            && rf_ring_map(ring, fd, size, PROT_READ | PROT_WRITE,
                           err, errlen) == 0)
        {
            if (rf_ring_header_ok(ring->hdr, st.st_size)
                && ring->hdr->size == size)
            {
                ring->dev = st.st_dev;
                ring->ino = st.st_ino;
                return 0;
            }

            munmap(ring->hdr, ring->map_size);
        }

        close(fd);

    } else if (errno != ENOENT) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path,
                 strerror(errno));
        return -1;
    }

    return rf_ring_create(ring, path, size, mode, err, errlen);
}


int
rf_ring_attach(rf_ring_t *ring, const char *path, int readonly, char *err,
    size_t errlen)
{
    int            fd;
    struct stat    st;
    rf_ring_hdr_t  hdr;

    memset(ring, 0, sizeof(rf_ring_t));
    ring->fd = -1;

    fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path,
                 strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "fstat(\"%s\") failed: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }

    if ((size_t) st.st_size < sizeof(hdr)
        || pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t) sizeof(hdr)
        || !rf_ring_header_ok(&hdr, st.st_size))
    {
        snprintf(err, errlen, "\"%s\" is not a replayforge ring of this "
                 "version", path);
        close(fd);
        return -1;
    }

    if (rf_ring_map(ring, fd, hdr.size,
                    readonly ? PROT_READ : PROT_READ | PROT_WRITE,
                    err, errlen) == -1)
    {
        close(fd);
        return -1;
    }

    /* the file may have changed between pread and mmap: check again */
    if (!rf_ring_header_ok(ring->hdr, st.st_size)
        || ring->hdr->size != hdr.size)
    {
        snprintf(err, errlen, "\"%s\" changed while attaching", path);
        rf_ring_close(ring);
        return -1;
    }

    ring->dev = st.st_dev;
    ring->ino = st.st_ino;

    if (!readonly) {
        __atomic_store_n(&ring->hdr->attached_pid, (uint64_t) getpid(),
                         __ATOMIC_RELAXED);
    }

    return 0;
}


int
rf_ring_populate(rf_ring_t *ring, int write)
{
#ifdef MADV_POPULATE_WRITE

    /*
     * Not MAP_POPULATE: that would fault in the master, whose entries the
     * workers do not inherit.  Not a store to each page: it would race
     * with producers writing there.  A page the kernel cannot provide (a
     * full tmpfs) comes back as an error here instead of a SIGBUS.
     */

    return madvise(ring->hdr, ring->map_size,
                   write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);

#else

    (void) ring;
    (void) write;

    errno = EINVAL;

    return -1;

#endif
}


int
rf_ring_replaced(rf_ring_t *ring, const char *path)
{
    struct stat  st;

    if (stat(path, &st) == -1) {
        return 1;
    }

    return st.st_dev != ring->dev || st.st_ino != ring->ino;
}


void
rf_ring_close(rf_ring_t *ring)
{
    if (ring->hdr) {
        munmap(ring->hdr, ring->map_size);
        ring->hdr = NULL;
    }

    if (ring->fd != -1) {
        close(ring->fd);
        ring->fd = -1;
    }
}


unsigned char *
rf_ring_reserve(rf_ring_t *ring, uint32_t len, rf_ring_slot_t *slot)
{
    uint64_t        head, tail, need, pad, off, pos;
    unsigned char  *s;
    rf_ring_hdr_t  *hdr;

    hdr = ring->hdr;

    if (len > hdr->max_record) {
        __atomic_fetch_add(&hdr->dropped_too_big, 1, __ATOMIC_RELAXED);
        return NULL;
    }

    need = rf_ring_align(RF_RING_SLOT_HDR + (uint64_t) len);
    head = __atomic_load_n(&hdr->head, __ATOMIC_RELAXED);

    for ( ;; ) {
        off = head & ring->mask;
        pad = (off + need > ring->size) ? ring->size - off : 0;
        tail = __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);

        if (head + pad + need - tail > ring->size) {
            __atomic_fetch_add(&hdr->dropped_full, 1, __ATOMIC_RELAXED);
            return NULL;
        }

        if (__atomic_compare_exchange_n(&hdr->head, &head, head + pad + need,
                                        1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
        {
            break;
        }
    }

    if (pad) {
        s = ring->data + off;
        *(uint32_t *) s = (uint32_t) (pad - RF_RING_SLOT_HDR);
        *(uint64_t *) (s + 8) = head;
        __atomic_store_n(RF_RING_STATE(s), RF_RING_STATE_PAD,
                         __ATOMIC_RELEASE);
    }

    pos = head + pad;
    s = ring->data + (pos & ring->mask);

    *(uint32_t *) s = len;
    *(uint64_t *) (s + 8) = pos;
    __atomic_store_n(RF_RING_STATE(s), RF_RING_STATE_BUSY, __ATOMIC_RELEASE);

    slot->pos = pos;
    slot->slot = s;

    return s + RF_RING_SLOT_HDR;
}


void
rf_ring_commit(rf_ring_t *ring, rf_ring_slot_t *slot, uint32_t len)
{
    rf_ring_hdr_t  *hdr;

    hdr = ring->hdr;

    __atomic_store_n(RF_RING_STATE(slot->slot), RF_RING_STATE_COMMITTED,
                     __ATOMIC_RELEASE);

    __atomic_fetch_add(&hdr->written, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&hdr->written_bytes, len, __ATOMIC_RELAXED);
}


void
rf_ring_abort(rf_ring_t *ring, rf_ring_slot_t *slot)
{
    (void) ring;

    __atomic_store_n(RF_RING_STATE(slot->slot), RF_RING_STATE_PAD,
                     __ATOMIC_RELEASE);
}


void
rf_ring_reader_init(rf_ring_t *ring, rf_ring_reader_t *rd,
    uint64_t stall_timeout_ns)
{
    rd->pos = __atomic_load_n(&ring->hdr->tail, __ATOMIC_ACQUIRE);
    rd->stall_pos = UINT64_MAX;
    rd->stall_since_ns = 0;
    rd->stall_timeout_ns = stall_timeout_ns;
}


/*
 * 1 when the slot at pos was written for pos (not left from an earlier
 * lap), with its state and a length that fits the ring.
 */
static int
rf_ring_slot_valid(rf_ring_t *ring, uint64_t pos, uint32_t *state,
    uint32_t *len)
{
    uint64_t        off;
    unsigned char  *s;

    off = pos & ring->mask;
    s = ring->data + off;

    *state = __atomic_load_n(RF_RING_STATE(s), __ATOMIC_ACQUIRE);

    if (*state != RF_RING_STATE_BUSY && *state != RF_RING_STATE_COMMITTED
        && *state != RF_RING_STATE_PAD)
    {
        return 0;
    }

    if (*(volatile uint64_t *) (s + 8) != pos) {
        return 0;
    }

    *len = *(volatile uint32_t *) s;

    return *len <= ring->size - off - RF_RING_SLOT_HDR;
}


int
rf_ring_next(rf_ring_t *ring, rf_ring_reader_t *rd,
    const unsigned char **rec, uint32_t *len)
{
    uint32_t        state, slen, st2, l2;
    uint64_t        pos, head, now, p;
    rf_ring_hdr_t  *hdr;

    hdr = ring->hdr;

    for ( ;; ) {
        pos = rd->pos;
        head = __atomic_load_n(&hdr->head, __ATOMIC_ACQUIRE);

        if (pos >= head) {
            return RF_RING_EMPTY;
        }

        if (rf_ring_slot_valid(ring, pos, &state, &slen)) {

            if (state == RF_RING_STATE_PAD) {
                rd->pos = pos + RF_RING_SLOT_HDR + slen;
                continue;
            }

            if (state == RF_RING_STATE_COMMITTED) {
                *rec = ring->data + (pos & ring->mask) + RF_RING_SLOT_HDR;
                *len = slen;
                rd->pos = pos + rf_ring_align(RF_RING_SLOT_HDR + slen);
                return RF_RING_OK;
            }
        }

        /* BUSY, or no header yet: wait, up to the stall timeout */

        now = rf_ring_now_ns();

        if (rd->stall_pos != pos) {
            rd->stall_pos = pos;
            rd->stall_since_ns = now;
            return RF_RING_WAIT;
        }

        if (now - rd->stall_since_ns < rd->stall_timeout_ns) {
            return RF_RING_WAIT;
        }

        if (state == RF_RING_STATE_BUSY
            && rf_ring_slot_valid(ring, pos, &state, &slen))
        {
            /* the producer died (or froze) mid-copy: skip its slot */
            p = pos + rf_ring_align(RF_RING_SLOT_HDR + slen);

        } else {
            /* died before writing a header: find the next slot that was */
            for (p = pos + RF_RING_ALIGN; p < head; p += RF_RING_ALIGN) {
                if (rf_ring_slot_valid(ring, p, &st2, &l2)) {
                    break;
                }
            }

            if (p >= head) {
                return RF_RING_WAIT;
            }
        }

        __atomic_fetch_add(&hdr->skipped, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&hdr->skipped_bytes, p - pos, __ATOMIC_RELAXED);

        rd->pos = p;
        rd->stall_pos = UINT64_MAX;
    }
}


void
rf_ring_release(rf_ring_t *ring, uint64_t pos, uint64_t n)
{
    __atomic_store_n(&ring->hdr->tail, pos, __ATOMIC_RELEASE);

    if (n) {
        __atomic_fetch_add(&ring->hdr->consumed, n, __ATOMIC_RELAXED);
    }
}


void
rf_ring_get_stats(rf_ring_t *ring, rf_ring_stats_t *st)
{
    rf_ring_hdr_t  *hdr;

    hdr = ring->hdr;

    st->size = hdr->size;
    st->generation = hdr->generation;
    st->head = __atomic_load_n(&hdr->head, __ATOMIC_RELAXED);
    st->tail = __atomic_load_n(&hdr->tail, __ATOMIC_RELAXED);
    st->written = __atomic_load_n(&hdr->written, __ATOMIC_RELAXED);
    st->written_bytes = __atomic_load_n(&hdr->written_bytes,
                                        __ATOMIC_RELAXED);
    st->dropped_full = __atomic_load_n(&hdr->dropped_full, __ATOMIC_RELAXED);
    st->dropped_too_big = __atomic_load_n(&hdr->dropped_too_big,
                                          __ATOMIC_RELAXED);
    st->consumed = __atomic_load_n(&hdr->consumed, __ATOMIC_RELAXED);
    st->skipped = __atomic_load_n(&hdr->skipped, __ATOMIC_RELAXED);
    st->skipped_bytes = __atomic_load_n(&hdr->skipped_bytes,
                                        __ATOMIC_RELAXED);
}
