/*
 * ringcast/sendq.h — a connection's send queue: an ordered list of buffer
 * references with a byte count, drained by one gathered SENDMSG at a time.
 *
 * Place in the data flow: everything a connection sends (HTTP responses,
 * echo frames, pongs, close frames, broadcast frames) is pushed here as an
 * rc_buf reference; the shard's flush turns the queue into an iovec
 * (rc_sendq_fill_iov), submits one SENDMSG, and on its completion calls
 * rc_sendq_consume() with the bytes the kernel took, which drops the
 * references of fully sent buffers. A short send simply leaves the rest
 * queued with head_off advanced; the next flush resumes from there.
 *
 * Nodes come from a per-shard pool (no allocation per message once warm;
 * at most RC_SENDQ_POOL_KEEP free nodes are kept).
 * Thread: the owning shard only.
 */
#ifndef RINGCAST_SENDQ_H
#define RINGCAST_SENDQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ringcast/buf.h"

struct rc_sendq_node {
    struct rc_sendq_node *next;
    struct rc_buf *buf;
};

/* A zeroed struct is an empty queue. */
struct rc_sendq {
    struct rc_sendq_node *head;
    struct rc_sendq_node *tail;
    uint64_t bytes;    /* unsent bytes, head_off already subtracted */
    uint32_t count;    /* nodes */
    uint32_t head_off; /* bytes of head->buf already sent */
};

/* Free nodes a pool keeps for reuse; beyond this they go back to malloc. */
#define RC_SENDQ_POOL_KEEP 8192

/* A zeroed struct is an empty pool. */
struct rc_sendq_pool {
    struct rc_sendq_node *free;
    size_t nodes_total; /* allocated: in queues or free */
    size_t nodes_free;  /* on the free list, at most RC_SENDQ_POOL_KEEP */
};

/* Appends a reference to b (takes a new ref). Returns 0, or -ENOMEM. */
int rc_sendq_push(struct rc_sendq *q, struct rc_sendq_pool *pool, struct rc_buf *b);

/* Fills up to max iovecs from the head of the queue (the first one offset
 * by head_off). Returns the number filled; *total gets their byte sum and
 * *nodes (may be NULL) the queue nodes they cover, empty buffers included. */
int rc_sendq_fill_iov(const struct rc_sendq *q, struct iovec *iov, int max, size_t *total, uint32_t *nodes);

/* Drops the nodes after the first `keep` for which pred(buf, ctx) is true,
 * releasing their references. Returns the number dropped. The first `keep`
 * nodes (those a send in flight covers, or a partly sent head) are never
 * touched. */
uint32_t rc_sendq_drop_if(struct rc_sendq *q, struct rc_sendq_pool *pool, uint32_t keep,
                          bool (*pred)(const struct rc_buf *b, void *ctx), void *ctx);

/* Accounts n bytes as sent: drops references of fully sent buffers and
 * advances head_off into a partly sent one. n must not exceed q->bytes. */
void rc_sendq_consume(struct rc_sendq *q, struct rc_sendq_pool *pool, size_t n);

/* Drops every reference (connection teardown). */
void rc_sendq_clear(struct rc_sendq *q, struct rc_sendq_pool *pool);

static inline bool rc_sendq_empty(const struct rc_sendq *q) { return q->head == NULL; }

/* Frees all slabs. Every queue using the pool must be cleared first. */
void rc_sendq_pool_destroy(struct rc_sendq_pool *pool);

#endif
