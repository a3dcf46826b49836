/*
 * ringcast/ring.h — the io_uring layer: ring set-up with the best flags the
 * kernel takes, user_data encoding, and provided-buffer rings for multishot
 * recv. The only header that includes liburing.
 *
 * Debian 12 ships liburing 2.3, older than the 6.x kernels it runs on:
 * constants the kernel knows but 2.3 lacks are defined here from the kernel
 * UAPI values, and buffer-ring set-up is done by hand (2.3 has no
 * io_uring_setup_buf_ring).
 *
 * Thread: a ring belongs to the shard thread that created it (SINGLE_ISSUER).
 */
#ifndef RINGCAST_RING_H
#define RINGCAST_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6) /* kernel 6.4 */
#endif

/*
 * user_data layout: | op (8 bits) | generation (24 bits) | index (32 bits) |
 * The index names a connection slot (or 0 for shard-level operations); the
 * generation changes each time the slot is reused, so a completion that
 * outlives its connection can be recognised and dropped.
 */
enum rc_op {
    RC_OP_NONE = 0,
    RC_OP_ACCEPT,
    RC_OP_RECV,
    RC_OP_SEND,
    RC_OP_CANCEL,
    RC_OP_TIMER,
    RC_OP_WAKE,
    RC_OP_WINDOW, /* batch window timer (--batch-ms > 0) */
    RC_OP_DEMO,   /* demo feed timer */
    RC_OP_REDIS,  /* the Redis link's sockets (shard 0): idx = socket << 3 | request kind */
};

static inline uint64_t rc_ud(enum rc_op op, uint32_t idx, uint32_t gen) {
    return ((uint64_t)op << 56) | ((uint64_t)(gen & 0xffffff) << 32) | idx;
}
static inline enum rc_op rc_ud_op(uint64_t ud) { return (enum rc_op)(ud >> 56); }
static inline uint32_t rc_ud_gen(uint64_t ud) { return (uint32_t)(ud >> 32) & 0xffffff; }
static inline uint32_t rc_ud_idx(uint64_t ud) { return (uint32_t)ud; }

/*
 * Creates a ring of `entries` SQEs (CQ 4× that) on the calling thread with
 * SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN, falling back to
 * COOP_TASKRUN alone, then to no flags, on kernels that refuse them (logged
 * once). *flags_out gets the set-up flags in force. Returns 0 or -errno.
 */
int rc_ring_init(struct io_uring *ring, unsigned entries, unsigned *flags_out);

/* Returns an SQE, submitting queued ones first when the SQ is full. Never
 * NULL: a ring that cannot take an SQE even after submitting is a broken
 * invariant (aborts with a message). */
struct io_uring_sqe *rc_ring_sqe(struct io_uring *ring);

/* A provided-buffer ring: `count` buffers of `size` bytes in one mapping,
 * registered as buffer group `bgid`. */
struct rc_bufring {
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    uint32_t count;
    uint32_t size;
    uint32_t mask;
    uint16_t bgid;
    uint16_t pending; /* recycled buffers not yet published with advance */
};

/* Maps, fills and registers the buffer ring. count must be a power of two.
 * Returns 0 or -errno (e.g. -EINVAL on kernels without buffer rings). */
int rc_bufring_init(struct io_uring *ring, struct rc_bufring *b, uint16_t bgid, uint32_t count,
                    uint32_t size);

/* Unregisters and unmaps. Accepts a zeroed struct. */
void rc_bufring_destroy(struct io_uring *ring, struct rc_bufring *b);

/* Gives the buffers' pages back to the system; they fault back in, zeroed,
 * when the kernel next fills them. Only from the ring's own thread, with
 * every received buffer already handled, on a DEFER_TASKRUN ring (there the
 * kernel fills buffers only inside that thread's io_uring_enter, so never
 * while the pages are being dropped). */
void rc_bufring_release_pages(struct rc_bufring *b);

static inline uint8_t *rc_bufring_addr(const struct rc_bufring *b, uint16_t bid) {
    return b->bufs + (size_t)bid * b->size;
}

/* Gives buffer bid back to the kernel (published at the next
 * rc_bufring_publish, so a completion batch costs one store barrier). */
static inline void rc_bufring_recycle(struct rc_bufring *b, uint16_t bid) {
    io_uring_buf_ring_add(b->br, rc_bufring_addr(b, bid), b->size, bid, b->mask, b->pending);
    b->pending++;
}

static inline void rc_bufring_publish(struct rc_bufring *b) {
    if (b->pending) {
        io_uring_buf_ring_advance(b->br, b->pending);
        b->pending = 0;
    }
}

#endif
