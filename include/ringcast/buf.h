/*
 * ringcast/buf.h — refcounted, immutable byte buffers: the unit every send
 * queue holds.
 *
 * A buffer is filled once by its creator and never changed after it is first
 * queued. Each queued send holds one reference; the last rc_buf_unref()
 * calls the buffer's release function (h2o's "refcounted memory with a
 * dispose callback"). Refcounts are plain integers: a buffer belongs to one
 * shard. A frame shared by several shards is wrapped in one shard-local
 * rc_buf per shard whose release drops the frame's atomic cross-shard
 * reference (src/fanout), so the per-subscriber cost stays one
 * non-atomic increment.
 *
 * Thread: the owning shard only.
 */
#ifndef RINGCAST_BUF_H
#define RINGCAST_BUF_H

#include <stddef.h>
#include <stdint.h>

struct rc_buf {
    uint32_t refs;
    uint32_t len;  /* bytes at data */
    uint8_t *data; /* inline after the struct, or adopted memory */
    void (*release)(struct rc_buf *b);
    void *owner; /* for release: the adopted block, or a shared frame */
};

/* Allocates a buffer with room for cap bytes inline; len starts at 0 and
 * refs at 1 (the caller's). Returns NULL when memory runs out. */
struct rc_buf *rc_buf_new(size_t cap);

/* Wraps memory the caller malloc'd: data lies inside `block`, and
 * free(block) runs on release. refs starts at 1. NULL when out of memory
 * (block is then left to the caller). */
struct rc_buf *rc_buf_adopt(void *block, uint8_t *data, size_t len);

static inline void rc_buf_ref(struct rc_buf *b) { b->refs++; }

static inline void rc_buf_unref(struct rc_buf *b) {
    if (b && --b->refs == 0) b->release(b);
}

#endif
