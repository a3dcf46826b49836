/*
 * frame.c — broadcast frames, their shard-local views, inter-shard
 * messages and the MPSC inbox (see ringcast/fanout.h).
 */
#include "ringcast/fanout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringcast/pmd.h"
#include "ringcast/ws.h"

struct rc_frame *rc_frame_new(const char *name, size_t len, uint64_t hash, uint8_t flags, size_t cap) {
    if (len > RC_TOPIC_MAX_LEN || cap > UINT32_MAX) return NULL;
    struct rc_frame *f = malloc(sizeof *f + cap);
    if (!f) return NULL;
    atomic_init(&f->refs, 1);
    f->len = 0;
    f->cap = (uint32_t)cap;
    f->msgs = 0;
    f->hash = hash;
    f->flags = flags;
    f->name_len = (uint16_t)len;
    f->deflated = NULL;
    f->max_msg = 0;
    f->deflated_max_in = 0;
    f->compressed_msgs = 0;
    memcpy(f->name, name, len);
    f->name[len] = 0;
    return f;
}

int rc_frame_append_text(struct rc_frame **fp, const void *payload, size_t len) {
    struct rc_frame *f = *fp;
    size_t need = (size_t)f->len + rc_ws_header_len(len) + len;
    if (need > UINT32_MAX) return -ENOMEM;
    if (need > f->cap) {
        size_t cap = (size_t)f->cap * 2;
        if (cap < need) cap = need;
        if (cap > UINT32_MAX) cap = need;
        f = realloc(f, sizeof *f + cap);
        if (!f) return -ENOMEM;
        f->cap = (uint32_t)cap;
        *fp = f;
    }
    f->len += (uint32_t)rc_ws_write_header(f->data + f->len, RC_WS_OP_TEXT, true, false, len);
    memcpy(f->data + f->len, payload, len);
    f->len += (uint32_t)len;
    f->msgs++;
    if (len > f->max_msg) f->max_msg = (uint32_t)len;
    return 0;
}

void rc_frame_release(struct rc_frame *f) {
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        free(f->deflated);
        free(f);
    }
}

/* Reads the header of the server frame at p (unmasked; what
 * rc_ws_write_header wrote). Returns the header length. */
static size_t frame_header(const uint8_t *p, uint8_t *opcode, uint64_t *len) {
    *opcode = p[0] & 0x0f;
    uint64_t n = p[1] & 0x7f;
    if (n == 126) {
        *len = ((uint64_t)p[2] << 8) | p[3];
        return 4;
    }
    if (n == 127) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = (v << 8) | p[2 + i];
        *len = v;
        return 10;
    }
    *len = n;
    return 2;
}

int rc_frame_build_deflated(struct rc_frame *f, struct rc_deflater *d, size_t min_bytes, uint8_t **scratch,
                            size_t *scratch_cap) {
    if (f->max_msg < min_bytes || f->max_msg == 0) return -ENOENT; /* nothing to compress: no variant */
    /* The variant is never larger than the plain frame: a message whose
     * compressed form is not smaller goes out as it is. */
    struct rc_frame *v = rc_frame_new(f->name, f->name_len, f->hash, f->flags, f->len);
    if (!v) return -ENOMEM;
    uint32_t off = 0;
    while (off < f->len) {
        uint8_t opcode;
        uint64_t plen;
        size_t hl = frame_header(f->data + off, &opcode, &plen);
        const uint8_t *payload = f->data + off + hl;
        bool done = false;
        if (plen >= min_bytes && plen > 0) {
            size_t need = rc_deflate_bound(plen);
            if (need > *scratch_cap) {
                uint8_t *n = realloc(*scratch, need);
                if (!n) {
                    free(v);
                    return -ENOMEM;
                }
                *scratch = n;
                *scratch_cap = need;
            }
            ssize_t clen = rc_deflate_message(d, payload, plen, *scratch, *scratch_cap, 15);
            if (clen >= 0 && (uint64_t)clen + rc_ws_header_len((uint64_t)clen) < plen + hl) {
                v->len += (uint32_t)rc_ws_write_header(v->data + v->len, opcode, true, true, (uint64_t)clen);
                memcpy(v->data + v->len, *scratch, (size_t)clen);
                v->len += (uint32_t)clen;
                v->compressed_msgs++;
                if (plen > v->deflated_max_in) v->deflated_max_in = (uint32_t)plen;
                done = true;
            }
        }
        if (!done) {
            memcpy(v->data + v->len, f->data + off, hl + plen);
            v->len += (uint32_t)(hl + plen);
        }
        v->msgs++;
        off += (uint32_t)(hl + plen);
    }
    if (!v->compressed_msgs) { /* nothing got smaller: the plain frame serves everyone */
        free(v);
        return -ENOENT;
    }
    f->deflated_max_in = v->deflated_max_in;
    f->compressed_msgs = v->compressed_msgs;
    f->deflated = v;
    return 0;
}

/* ---- views ---- */

struct rc_view {
    struct rc_buf buf; /* first: a view is its rc_buf */
    struct rc_view_pool *pool;
    struct rc_view *next_free;
};

static void view_release(struct rc_buf *b) {
    struct rc_view *v = (struct rc_view *)b;
    rc_frame_release((struct rc_frame *)b->owner);
    v->next_free = v->pool->free;
    v->pool->free = v;
    v->pool->nfree++;
}

bool rc_buf_is_view(const struct rc_buf *b) { return b->release == view_release; }

struct rc_buf *rc_view_new(struct rc_view_pool *pool, struct rc_frame *f, bool deflated) {
    struct rc_view *v = pool->free;
    if (v) {
        pool->free = v->next_free;
        pool->nfree--;
    } else {
        v = malloc(sizeof *v);
        if (!v) return NULL;
        v->pool = pool;
        pool->total++;
    }
    v->buf.refs = 1;
    const struct rc_frame *bytes = deflated ? f->deflated : f;
    v->buf.len = bytes->len;
    v->buf.data = (uint8_t *)bytes->data;
    v->buf.release = view_release;
    v->buf.owner = f;
    return &v->buf;
}

void rc_view_pool_destroy(struct rc_view_pool *pool) {
    while (pool->free) {
        struct rc_view *v = pool->free;
        pool->free = v->next_free;
        free(v);
    }
    pool->total = pool->nfree = 0;
}

/* ---- inter-shard messages ---- */

static int msg_reserve(struct rc_msg **mp, uint32_t kind, size_t extra) {
    struct rc_msg *m = *mp;
    size_t need = (m ? m->len : 0) + extra;
    if (m && need <= m->cap) return 0;
    size_t cap = m ? m->cap * 2 : 4096;
    while (cap < need) cap *= 2;
    struct rc_msg *n = realloc(m, sizeof *n + cap);
    if (!n) return -ENOMEM;
    if (!m) {
        atomic_init(&n->node.next, NULL);
        n->kind = kind;
        n->count = 0;
        n->len = 0;
    }
    n->cap = cap;
    *mp = n;
    return 0;
}

int rc_msg_add_pub(struct rc_msg **mp, uint64_t hash, const char *topic, size_t topic_len, const void *data,
                   size_t data_len, uint8_t flags) {
    size_t size = rc_pub_rec_size(topic_len, data_len);
    if (topic_len > UINT32_MAX || data_len > UINT32_MAX || msg_reserve(mp, RC_MSG_PUBLISH, size) < 0) return -ENOMEM;
    struct rc_msg *m = *mp;
    struct rc_pub_rec *r = (struct rc_pub_rec *)(m->data + m->len);
    memset(r, 0, sizeof *r);
    r->hash = hash;
    r->topic_len = (uint32_t)topic_len;
    r->data_len = (uint32_t)data_len;
    r->flags = flags;
    memcpy((uint8_t *)(r + 1), topic, topic_len);
    if (data_len) memcpy((uint8_t *)(r + 1) + topic_len, data, data_len); /* interest records carry none */
    m->len += size;
    m->count++;
    return 0;
}

int rc_msg_add_frame(struct rc_msg **mp, struct rc_frame *f) {
    if (msg_reserve(mp, RC_MSG_FRAMES, sizeof f) < 0) return -ENOMEM;
    struct rc_msg *m = *mp;
    memcpy(m->data + m->len, &f, sizeof f);
    m->len += sizeof f;
    m->count++;
    return 0;
}

/* ---- the inbox: Vyukov's intrusive MPSC queue ---- */

void rc_inbox_init(struct rc_inbox *q, int efd) {
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    q->tail = &q->stub;
    atomic_init(&q->notified, false);
    q->efd = efd;
}

static void push_node(struct rc_inbox *q, struct rc_qnode *n) {
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    struct rc_qnode *prev = atomic_exchange_explicit(&q->head, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

void rc_inbox_push(struct rc_inbox *q, struct rc_msg *m) {
    push_node(q, &m->node);
    if (!atomic_exchange_explicit(&q->notified, true, memory_order_seq_cst)) {
        uint64_t one = 1;
        ssize_t w = write(q->efd, &one, sizeof one); /* never blocks: the counter cannot reach 2^64-1 */
        (void)w;
    }
}

struct rc_msg *rc_inbox_pop(struct rc_inbox *q) {
    struct rc_qnode *tail = q->tail;
    struct rc_qnode *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (!next) return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return (struct rc_msg *)tail; /* node is the first member */
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire)) return NULL; /* a push is mid-way */
    push_node(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return (struct rc_msg *)tail;
    }
    return NULL;
}
