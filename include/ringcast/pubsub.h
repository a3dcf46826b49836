/*
 * ringcast/pubsub.h — a shard's topic index: topic name → the connections
 * of this shard subscribed to it, and each connection's subscription set.
 *
 * Place in the data flow: when a frame of topic T reaches a shard, the
 * shard finds T here and walks T's subscriber array; when a client
 * subscribes, its connection's set and T's array are updated together.
 * The same entry carries the owner-side state of T on the shard that owns
 * T (hash(T) % shards): the frame being built in the current batch window.
 *
 * Both directions are arrays with back-indices, so subscribe, unsubscribe
 * and delivery are O(1) per (connection, topic) and a delivery walks
 * contiguous memory. A topic entry lives while anyone uses it (subscribers
 * + owner-side holds) and is freed with its last user.
 *
 * Thread: the owning shard only. Nothing here locks.
 */
#ifndef RINGCAST_PUBSUB_H
#define RINGCAST_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rc_subset;
struct rc_frame;

struct rc_sub {
    void *conn;            /* the subscriber (a struct rc_conn *) */
    struct rc_subset *set; /* its subscription set */
    uint32_t pos;          /* index of this topic in set->items */
};

struct rc_topic {
    struct rc_topic *next_in_bucket;
    uint64_t hash;
    struct rc_sub *subs; /* this shard's subscribers */
    uint32_t nsubs, cap;
    uint32_t users; /* subscribers + owner-side holds; freed at 0 */
    bool conflate;  /* stale frames may be dropped for a slow reader */
    uint32_t pmd_local;  /* this shard's subscribers that negotiated compression */
    uint32_t pmd_shards; /* owner side: shards (this one included) with such subscribers */

    /* Owner side (only on the shard that owns the topic). */
    struct rc_frame *building;  /* frame of the current batch window */
    struct rc_topic *next_dirty;

    uint16_t len;
    char name[]; /* NUL-terminated */
};

struct rc_subset_item {
    struct rc_topic *topic;
    uint32_t pos; /* index of this subscriber in topic->subs */
};

/* A connection's subscriptions, in the order they were made. A zeroed
 * struct is an empty set. The first subscription lives in `one` (items
 * points at it while cap is 1): most connections hold one topic, and an idle
 * connection then costs no allocation for its set. A set holding items must
 * not be moved or copied. */
struct rc_subset {
    struct rc_subset_item *items;
    uint32_t n, cap;
    struct rc_subset_item one;
};

typedef bool (*rc_conflate_fn)(const char *name, size_t len, void *ctx);

/* A zeroed struct is not usable: call rc_topic_table_init. */
struct rc_topic_table {
    struct rc_topic **buckets;
    uint32_t nbuckets; /* power of two */
    uint32_t count;
    rc_conflate_fn conflate;
    void *conflate_ctx;
};

/* Returns 0 or -ENOMEM. conflate (may be NULL) decides, once per topic
 * entry, whether the topic is conflatable. */
int rc_topic_table_init(struct rc_topic_table *t, rc_conflate_fn conflate, void *ctx);

/* Frees every entry and the table. Callers clear their sets first. */
void rc_topic_table_destroy(struct rc_topic_table *t);

/* The topic hash; also decides the owner shard (rc_topic_owner). */
uint64_t rc_topic_hash(const char *name, size_t len);

static inline unsigned rc_topic_owner(uint64_t hash, unsigned nshards) {
    return (unsigned)((hash >> 32) % nshards);
}

/* The entry for name, or NULL. */
struct rc_topic *rc_topic_find(const struct rc_topic_table *t, const char *name, size_t len, uint64_t hash);

/* Finds or creates the entry and counts one more user. NULL when memory
 * runs out. */
struct rc_topic *rc_topic_acquire(struct rc_topic_table *t, const char *name, size_t len, uint64_t hash);

/* Drops one user; the entry is unlinked and freed with its last user. */
void rc_topic_release(struct rc_topic_table *t, struct rc_topic *topic);

/* Subscribes conn (whose set is `set`) to name. Returns 1 when added, 0
 * when it was already subscribed, -ENOMEM. */
int rc_subset_add(struct rc_topic_table *t, struct rc_subset *set, void *conn, const char *name, size_t len);

/* Returns 1 when removed, 0 when the set did not hold name. Keeps the
 * order of the remaining subscriptions. */
int rc_subset_remove(struct rc_topic_table *t, struct rc_subset *set, const char *name, size_t len);

/* Removes every subscription and frees the set's memory. */
void rc_subset_clear(struct rc_topic_table *t, struct rc_subset *set);

/* True when the set holds name. */
bool rc_subset_has(const struct rc_subset *set, const char *name, size_t len);

#endif
