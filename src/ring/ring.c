/*
 * ring.c — io_uring set-up and provided-buffer rings (see ringcast/ring.h).
 * Thread: the shard thread that owns the ring.
 */
#include "ringcast/ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "ringcast/util.h"

int rc_ring_init(struct io_uring *ring, unsigned entries, unsigned *flags_out) {
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int ret = -EINVAL;
    for (size_t i = 0; i < RC_ARRAY_LEN(tries); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 4;
        ret = io_uring_queue_init_params(entries, ring, &p);
        if (ret == 0) {
            if (i > 0)
                RC_WARN("io_uring: kernel refused SINGLE_ISSUER|DEFER_TASKRUN; running with flags 0x%x "
                        "(completions may run on other contexts; needs Linux >= 6.1 for the fast path)",
                        p.flags);
            if (!(p.features & IORING_FEAT_NODROP))
                RC_WARN("io_uring: kernel lacks IORING_FEAT_NODROP; completions can be lost under overload");
            *flags_out = p.flags;
            return 0;
        }
        if (ret != -EINVAL) break;
    }
    return ret;
}

struct io_uring_sqe *rc_ring_sqe(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (RC_LIKELY(sqe)) return sqe;
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    if (!sqe) rc_die("io_uring: submission queue still full after submit (broken invariant)");
    return sqe;
}

int rc_bufring_init(struct io_uring *ring, struct rc_bufring *b, uint16_t bgid, uint32_t count,
                    uint32_t size) {
    memset(b, 0, sizeof *b);
    if (count == 0 || (count & (count - 1)) || count > 32768) return -EINVAL;
    size_t ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
    size_t total = ring_bytes + (size_t)count * size;
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return -errno;

    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)mem;
    reg.ring_entries = count;
    reg.bgid = bgid;
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret) {
        munmap(mem, total);
        return ret;
    }
    b->br = mem;
    b->bufs = (uint8_t *)mem + ring_bytes;
    b->count = count;
    b->size = size;
    b->mask = io_uring_buf_ring_mask(count);
    b->bgid = bgid;
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < count; i++) rc_bufring_recycle(b, (uint16_t)i);
    rc_bufring_publish(b);
    return 0;
}

void rc_bufring_release_pages(struct rc_bufring *b) {
    if (b->bufs) madvise(b->bufs, (size_t)b->count * b->size, MADV_DONTNEED);
}

void rc_bufring_destroy(struct io_uring *ring, struct rc_bufring *b) {
    if (!b->br) return;
    io_uring_unregister_buf_ring(ring, b->bgid);
    munmap(b->br, (size_t)b->count * sizeof(struct io_uring_buf) + (size_t)b->count * b->size);
    memset(b, 0, sizeof *b);
}
