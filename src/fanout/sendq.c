/*
 * sendq.c — per-connection send queues of buffer references and the
 * per-shard node pool behind them (see ringcast/sendq.h for the contract).
 *
 * Thread: the owning shard only.
 */
#include "ringcast/sendq.h"

#include <errno.h>
#include <stdlib.h>

/* Nodes are allocated one by one and kept on the pool's free list for
 * reuse (no allocation per message once warm), up to this many: past it a
 * freed node goes back to malloc, so a flood's queues do not stay resident
 * after the flood (issue: memory goes back). */
static struct rc_sendq_node *node_get(struct rc_sendq_pool *pool) {
    struct rc_sendq_node *n = pool->free;
    if (n) {
        pool->free = n->next;
        pool->nodes_free--;
        return n;
    }
    n = malloc(sizeof *n);
    if (n) pool->nodes_total++;
    return n;
}

static void node_put(struct rc_sendq_pool *pool, struct rc_sendq_node *n) {
    if (pool->nodes_free >= RC_SENDQ_POOL_KEEP) {
        free(n);
        pool->nodes_total--;
        return;
    }
    n->next = pool->free;
    n->buf = NULL;
    pool->free = n;
    pool->nodes_free++;
}

int rc_sendq_push(struct rc_sendq *q, struct rc_sendq_pool *pool, struct rc_buf *b) {
    struct rc_sendq_node *n = node_get(pool);
    if (!n) return -ENOMEM;
    rc_buf_ref(b);
    n->buf = b;
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
    q->bytes += b->len;
    return 0;
}

int rc_sendq_fill_iov(const struct rc_sendq *q, struct iovec *iov, int max, size_t *total, uint32_t *nodes) {
    int i = 0;
    size_t sum = 0;
    uint32_t off = q->head_off, covered = 0;
    for (const struct rc_sendq_node *n = q->head; n && i < max; n = n->next) {
        covered++;
        if (n->buf->len - off == 0) { /* empty buffers carry nothing */
            off = 0;
            continue;
        }
        iov[i].iov_base = n->buf->data + off;
        iov[i].iov_len = n->buf->len - off;
        sum += iov[i].iov_len;
        i++;
        off = 0;
    }
    *total = sum;
    if (nodes) *nodes = covered;
    return i;
}

uint32_t rc_sendq_drop_if(struct rc_sendq *q, struct rc_sendq_pool *pool, uint32_t keep,
                          bool (*pred)(const struct rc_buf *b, void *ctx), void *ctx) {
    struct rc_sendq_node **link = &q->head, *prev = NULL;
    for (uint32_t i = 0; i < keep && *link; i++) {
        prev = *link;
        link = &(*link)->next;
    }
    uint32_t dropped = 0;
    while (*link) {
        struct rc_sendq_node *n = *link;
        if (!pred(n->buf, ctx)) {
            prev = n;
            link = &n->next;
            continue;
        }
        *link = n->next;
        if (q->tail == n) q->tail = prev;
        /* only nodes past the head can be here unless keep == 0 and
         * head_off == 0, so no partly sent bytes are lost */
        q->bytes -= n->buf->len;
        q->count--;
        rc_buf_unref(n->buf);
        node_put(pool, n);
        dropped++;
    }
    return dropped;
}

void rc_sendq_consume(struct rc_sendq *q, struct rc_sendq_pool *pool, size_t n) {
    q->bytes -= n;
    while (q->head) {
        struct rc_sendq_node *h = q->head;
        size_t left = h->buf->len - q->head_off;
        if (n < left) {
            q->head_off += (uint32_t)n;
            return;
        }
        n -= left;
        q->head = h->next;
        if (!q->head) q->tail = NULL;
        q->head_off = 0;
        q->count--;
        rc_buf_unref(h->buf);
        node_put(pool, h);
    }
}

void rc_sendq_clear(struct rc_sendq *q, struct rc_sendq_pool *pool) {
    while (q->head) {
        struct rc_sendq_node *h = q->head;
        q->head = h->next;
        rc_buf_unref(h->buf);
        node_put(pool, h);
    }
    q->tail = NULL;
    q->bytes = 0;
    q->count = 0;
    q->head_off = 0;
}

void rc_sendq_pool_destroy(struct rc_sendq_pool *pool) {
    while (pool->free) {
        struct rc_sendq_node *n = pool->free;
        pool->free = n->next;
        free(n);
    }
    pool->nodes_total = pool->nodes_free = 0;
}
