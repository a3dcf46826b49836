/*
 * ringcast/fanout.h — broadcast frames and the hand-off between shards.
 *
 * A frame is the unit of fan-out: the WebSocket frames of every message one
 * topic received in one batch window, concatenated (one WebSocket message
 * per published message), built once by the topic's owner shard and never
 * copied or changed afterwards. It is shared by reference:
 *
 *   owner shard ── rc_frame (atomic refs: one per shard holding it)
 *        │                 │
 *        │ inbox msg       └── on each shard: one rc_buf "view" (plain refs:
 *        ▼                      one per send queue holding it); the view's
 *   other shards                last unref drops that shard's frame ref
 *
 * so a delivery costs one non-atomic increment, and a frame costs one
 * atomic operation per shard, never per subscriber.
 *
 * Inboxes: each shard has one multi-producer single-consumer queue (Vyukov)
 * plus an eventfd; producers are other shards, flushing what they gathered
 * for that shard once per loop pass (publish records for topics it owns,
 * frames for its subscribers), so a wake-up costs one eventfd write per
 * pass per destination at most.
 *
 * Thread: frames and inboxes may cross threads as described; views and
 * view pools belong to one shard.
 */
#ifndef RINGCAST_FANOUT_H
#define RINGCAST_FANOUT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringcast/buf.h"
#include "ringcast/proto.h"

enum {
    RC_FRAME_BROADCAST = 1u << 0, /* to every connection, not a topic's subscribers */
    RC_FRAME_CONFLATE = 1u << 1,  /* a slow reader may lose it to a newer frame of the topic */
};

struct rc_frame {
    atomic_uint refs;
    uint32_t len;  /* bytes of WebSocket frames in data */
    uint32_t cap;  /* bytes allocated for data */
    uint32_t msgs; /* WebSocket messages in data */
    uint64_t hash; /* topic hash */
    uint8_t flags;
    uint16_t name_len;
    /* The permessage-deflate variant (built once, by the owner, only when a
     * subscriber negotiated compression): the same messages, each payload
     * of at least --deflate-min-bytes compressed with RSV1 set. Owned by
     * this frame; NULL when not built. */
    struct rc_frame *deflated;
    uint32_t max_msg;         /* largest message payload in data */
    uint32_t deflated_max_in; /* largest original payload compressed in it */
    uint32_t compressed_msgs; /* messages compressed in it */
    char name[RC_TOPIC_MAX_LEN + 1];
    uint8_t data[];
};

/* A new frame for topic name with room for cap bytes; refs = 1 (the
 * builder's). NULL when memory runs out. */
struct rc_frame *rc_frame_new(const char *name, size_t len, uint64_t hash, uint8_t flags, size_t cap);

/* Appends payload as one unmasked, unfragmented text frame. Only the
 * builder may append, and only before the frame is shared: *f may move.
 * Returns 0 or -ENOMEM (the frame is unchanged then). */
int rc_frame_append_text(struct rc_frame **f, const void *payload, size_t len);

static inline void rc_frame_hold(struct rc_frame *f, unsigned n) {
    atomic_fetch_add_explicit(&f->refs, n, memory_order_relaxed);
}

/* Drops one reference; the last one frees the frame (and its variant).
 * Any thread. */
void rc_frame_release(struct rc_frame *f);

struct rc_deflater;

/*
 * Builds f->deflated from f (builder only, before f is shared): each
 * message payload of at least min_bytes is compressed (window 2^15, no
 * context) and sent with RSV1 when that makes it smaller; the others are
 * copied as they are. scratch is the caller's reusable work buffer.
 * Returns 0, -ENOENT when no message would be compressed (no variant is
 * needed), or -ENOMEM; f->deflated stays NULL then and subscribers get f.
 */
int rc_frame_build_deflated(struct rc_frame *f, struct rc_deflater *d, size_t min_bytes, uint8_t **scratch,
                            size_t *scratch_cap);

/* True when the rc_buf is a view of a frame (see rc_view_new). */
bool rc_buf_is_view(const struct rc_buf *b);

static inline struct rc_frame *rc_view_frame(const struct rc_buf *b) { return (struct rc_frame *)b->owner; }

/* A shard's pool of views. A zeroed struct is an empty pool. */
struct rc_view_pool {
    struct rc_view *free;
    size_t total, nfree;
};

/*
 * A shard-local rc_buf over frame f's bytes, or over its deflated variant's
 * when `deflated` (refs = 1, the caller's). It takes over one frame
 * reference the caller holds: the view's last unref releases it. NULL when
 * memory runs out (the reference stays the caller's).
 */
struct rc_buf *rc_view_new(struct rc_view_pool *pool, struct rc_frame *f, bool deflated);

/* Frees pooled views. Every view must have been released. */
void rc_view_pool_destroy(struct rc_view_pool *pool);

/* ---- inter-shard messages ---- */

enum rc_msg_kind {
    RC_MSG_PUBLISH = 1, /* publish records for topics the receiver owns */
    RC_MSG_FRAMES,      /* frames for the receiver's subscribers */
    RC_MSG_TLS_CTX,     /* main thread, SIGHUP: a new TLS context (one reference) in data */
};

/* rc_pub_rec.flags besides RC_FRAME_BROADCAST: not a message but a change
 * of interest: the sending shard gained its first / lost its last
 * subscriber that negotiated compression for this topic (no data). */
enum {
    RC_PUB_DEFLATE_INTEREST_ADD = 1u << 6,
    RC_PUB_DEFLATE_INTEREST_DEL = 1u << 7,
};

/* Records for shard 0, which runs the subscribing Redis link (--redis):
 * the sending shard gained its first / lost its last subscriber of a topic
 * ("*": of the firehose), so the node (un)subscribes its channel. (Every
 * shard PUBLISHes on its own link.) */
enum {
    RC_PUB_REDIS_INTEREST_ADD = 1u << 4,
    RC_PUB_REDIS_INTEREST_DEL = 1u << 5,
};


/* The link of an inbox entry; the first member of every struct rc_msg. */
struct rc_qnode {
    _Atomic(struct rc_qnode *) next;
};

struct rc_msg {
    struct rc_qnode node;
    uint32_t kind;
    uint32_t count; /* records or frames */
    size_t len, cap; /* bytes used / allocated in data */
    _Alignas(8) uint8_t data[];
};

/* One publish record inside an RC_MSG_PUBLISH: header, topic bytes, data
 * bytes, padded to 8. */
struct rc_pub_rec {
    uint64_t hash;
    uint32_t topic_len;
    uint32_t data_len;
    uint8_t flags; /* RC_FRAME_BROADCAST */
    uint8_t pad[7];
};

static inline size_t rc_pub_rec_size(size_t topic_len, size_t data_len) {
    return (sizeof(struct rc_pub_rec) + topic_len + data_len + 7) & ~(size_t)7;
}

/* Appends a publish record to *m (allocated when NULL). Returns 0 or -ENOMEM. */
int rc_msg_add_pub(struct rc_msg **m, uint64_t hash, const char *topic, size_t topic_len, const void *data,
                   size_t data_len, uint8_t flags);

/* Appends a frame pointer to *m (allocated when NULL); the message takes
 * over one reference the caller holds. Returns 0 or -ENOMEM. */
int rc_msg_add_frame(struct rc_msg **m, struct rc_frame *f);

static inline struct rc_frame **rc_msg_frames(struct rc_msg *m) { return (struct rc_frame **)m->data; }

struct rc_inbox {
    _Atomic(struct rc_qnode *) head; /* producers swap themselves in here */
    struct rc_qnode *tail;           /* consumer side */
    struct rc_qnode stub;
    atomic_bool notified; /* an eventfd write is pending */
    int efd;
};

void rc_inbox_init(struct rc_inbox *q, int efd);

/* Any thread: enqueues m (the inbox owns it now) and wakes the consumer
 * unless a wake-up is already pending. */
void rc_inbox_push(struct rc_inbox *q, struct rc_msg *m);

/* Consumer, before draining after a wake-up: re-enables wake-ups, so a
 * message pushed while draining is never left without one. */
static inline void rc_inbox_rearm(struct rc_inbox *q) {
    atomic_store_explicit(&q->notified, false, memory_order_seq_cst);
}

/* Consumer only: the oldest message, or NULL when empty (or when a
 * producer is between its two steps; its wake-up follows). */
struct rc_msg *rc_inbox_pop(struct rc_inbox *q);

#endif
