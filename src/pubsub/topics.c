/*
 * topics.c — the shard-local topic index and subscription sets (see
 * ringcast/pubsub.h). Chained hash table of power-of-two size, doubled at
 * load factor 1; entries are single allocations with the name inline.
 *
 * Thread: the owning shard only.
 */
#include "ringcast/pubsub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 1024

uint64_t rc_topic_hash(const char *name, size_t len) {
    /* FNV-1a, then a final avalanche so the high bits (the owner shard)
     * depend on every byte. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)name[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int rc_topic_table_init(struct rc_topic_table *t, rc_conflate_fn conflate, void *ctx) {
    memset(t, 0, sizeof *t);
    t->buckets = calloc(INITIAL_BUCKETS, sizeof *t->buckets);
    if (!t->buckets) return -ENOMEM;
    t->nbuckets = INITIAL_BUCKETS;
    t->conflate = conflate;
    t->conflate_ctx = ctx;
    return 0;
}

void rc_topic_table_destroy(struct rc_topic_table *t) {
    if (!t->buckets) return;
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        struct rc_topic *e = t->buckets[i];
        while (e) {
            struct rc_topic *next = e->next_in_bucket;
            free(e->subs);
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

struct rc_topic *rc_topic_find(const struct rc_topic_table *t, const char *name, size_t len, uint64_t hash) {
    for (struct rc_topic *e = t->buckets[hash & (t->nbuckets - 1)]; e; e = e->next_in_bucket)
        if (e->hash == hash && e->len == len && memcmp(e->name, name, len) == 0) return e;
    return NULL;
}

static void grow(struct rc_topic_table *t) {
    uint32_t n = t->nbuckets * 2;
    struct rc_topic **b = calloc(n, sizeof *b);
    if (!b) return; /* keep working with longer chains */
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        struct rc_topic *e = t->buckets[i];
        while (e) {
            struct rc_topic *next = e->next_in_bucket;
            e->next_in_bucket = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

struct rc_topic *rc_topic_acquire(struct rc_topic_table *t, const char *name, size_t len, uint64_t hash) {
    struct rc_topic *e = rc_topic_find(t, name, len, hash);
    if (!e) {
        if (len > UINT16_MAX) return NULL;
        e = calloc(1, sizeof *e + len + 1);
        if (!e) return NULL;
        e->hash = hash;
        e->len = (uint16_t)len;
        memcpy(e->name, name, len);
        e->conflate = t->conflate && t->conflate(name, len, t->conflate_ctx);
        if (t->count >= t->nbuckets) grow(t);
        struct rc_topic **slot = &t->buckets[hash & (t->nbuckets - 1)];
        e->next_in_bucket = *slot;
        *slot = e;
        t->count++;
    }
    e->users++;
    return e;
}

void rc_topic_release(struct rc_topic_table *t, struct rc_topic *topic) {
    if (--topic->users) return;
    struct rc_topic **p = &t->buckets[topic->hash & (t->nbuckets - 1)];
    while (*p != topic) p = &(*p)->next_in_bucket;
    *p = topic->next_in_bucket;
    t->count--;
    free(topic->subs);
    free(topic);
}

static int find_in_set(const struct rc_subset *set, const char *name, size_t len) {
    for (uint32_t i = 0; i < set->n; i++) {
        const struct rc_topic *e = set->items[i].topic;
        if (e->len == len && memcmp(e->name, name, len) == 0) return (int)i;
    }
    return -1;
}

bool rc_subset_has(const struct rc_subset *set, const char *name, size_t len) {
    return find_in_set(set, name, len) >= 0;
}

int rc_subset_add(struct rc_topic_table *t, struct rc_subset *set, void *conn, const char *name, size_t len) {
    if (find_in_set(set, name, len) >= 0) return 0;
    if (set->cap == 0) {
        set->items = &set->one;
        set->cap = 1;
    } else if (set->n == set->cap) {
        bool held_inline = set->items == &set->one; /* cap 1 */
        uint32_t cap = held_inline ? 4 : set->cap * 2;
        struct rc_subset_item *items =
            held_inline ? malloc(cap * sizeof *items) : realloc(set->items, cap * sizeof *items);
        if (!items) return -ENOMEM;
        if (held_inline) items[0] = set->one;
        set->items = items;
        set->cap = cap;
    }
    struct rc_topic *e = rc_topic_acquire(t, name, len, rc_topic_hash(name, len));
    if (!e) return -ENOMEM;
    if (e->nsubs == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 4;
        struct rc_sub *subs = realloc(e->subs, cap * sizeof *subs);
        if (!subs) {
            rc_topic_release(t, e);
            return -ENOMEM;
        }
        e->subs = subs;
        e->cap = cap;
    }
    e->subs[e->nsubs] = (struct rc_sub){.conn = conn, .set = set, .pos = set->n};
    set->items[set->n] = (struct rc_subset_item){.topic = e, .pos = e->nsubs};
    e->nsubs++;
    set->n++;
    return 1;
}

/* Takes item i out of its topic's subscriber array (swap with the last,
 * fixing the moved subscriber's back-index) and releases the topic. */
static void unlink_item(struct rc_topic_table *t, struct rc_subset_item *it) {
    struct rc_topic *e = it->topic;
    uint32_t last = --e->nsubs;
    if (it->pos != last) {
        e->subs[it->pos] = e->subs[last];
        struct rc_sub *moved = &e->subs[it->pos];
        moved->set->items[moved->pos].pos = it->pos;
    }
    rc_topic_release(t, e);
}

int rc_subset_remove(struct rc_topic_table *t, struct rc_subset *set, const char *name, size_t len) {
    int i = find_in_set(set, name, len);
    if (i < 0) return 0;
    unlink_item(t, &set->items[i]);
    /* Close the gap, keeping order; the shifted items' topics learn their
     * new position in this set. */
    for (uint32_t k = (uint32_t)i + 1; k < set->n; k++) {
        set->items[k - 1] = set->items[k];
        struct rc_subset_item *it = &set->items[k - 1];
        it->topic->subs[it->pos].pos = k - 1;
    }
    set->n--;
    return 1;
}

void rc_subset_clear(struct rc_topic_table *t, struct rc_subset *set) {
    for (uint32_t i = set->n; i-- > 0;) unlink_item(t, &set->items[i]);
    if (set->items != &set->one) free(set->items);
    memset(set, 0, sizeof *set);
}
