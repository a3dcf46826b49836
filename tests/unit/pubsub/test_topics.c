/*
 * test_topics.c — the topic index and subscription sets: back-indices stay
 * right through swaps and order-keeping removals, entries die with their
 * last user, and the table survives growth.
 */
#include <stdio.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/pubsub.h"

/* Every (set item ↔ topic subscriber) pair points at each other. */
static int consistent(struct rc_subset *sets, int nsets) {
    for (int i = 0; i < nsets; i++)
        for (uint32_t k = 0; k < sets[i].n; k++) {
            struct rc_subset_item *it = &sets[i].items[k];
            if (it->pos >= it->topic->nsubs) return 0;
            struct rc_sub *sub = &it->topic->subs[it->pos];
            if (sub->set != &sets[i] || sub->pos != k || sub->conn != (void *)&sets[i]) return 0;
        }
    return 1;
}

static bool conflate_px(const char *name, size_t len, void *ctx) {
    (void)ctx;
    return len > 3 && !memcmp(name, "px:", 3);
}

int main(void) {
    struct rc_topic_table t;
    CHECK_EQ(rc_topic_table_init(&t, conflate_px, NULL), 0);

    enum { N = 50 };
    struct rc_subset sets[N];
    memset(sets, 0, sizeof sets);
    char name[32];

    /* every set subscribes to topics a..e; conn pointer = its set */
    for (int i = 0; i < N; i++)
        for (char c = 'a'; c <= 'e'; c++) {
            snprintf(name, sizeof name, "topic-%c", c);
            CHECK_EQ(rc_subset_add(&t, &sets[i], &sets[i], name, strlen(name)), 1);
        }
    CHECK_EQ(rc_subset_add(&t, &sets[0], &sets[0], "topic-a", 7), 0); /* already */
    CHECK_EQ(t.count, 5);
    struct rc_topic *a = rc_topic_find(&t, "topic-a", 7, rc_topic_hash("topic-a", 7));
    CHECK(a != NULL);
    CHECK_EQ(a->nsubs, N);
    CHECK_EQ(a->users, N);
    CHECK(!a->conflate);
    CHECK(consistent(sets, N));

    /* removal from the middle of a set keeps the order of the rest */
    CHECK_EQ(rc_subset_remove(&t, &sets[3], "topic-b", 7), 1);
    CHECK_EQ(rc_subset_remove(&t, &sets[3], "topic-b", 7), 0);
    CHECK_EQ(sets[3].n, 4);
    CHECK(!strcmp(sets[3].items[0].topic->name, "topic-a"));
    CHECK(!strcmp(sets[3].items[1].topic->name, "topic-c"));
    CHECK(!strcmp(sets[3].items[3].topic->name, "topic-e"));
    CHECK(!rc_subset_has(&sets[3], "topic-b", 7));
    CHECK(rc_subset_has(&sets[3], "topic-c", 7));
    CHECK(consistent(sets, N));

    /* removing subscribers from the front of a topic's array swaps the last in */
    for (int i = 0; i < N; i += 2) rc_subset_remove(&t, &sets[i], "topic-a", 7);
    CHECK_EQ(a->nsubs, N / 2);
    CHECK(consistent(sets, N));
    for (uint32_t k = 0; k < a->nsubs; k++) CHECK(((struct rc_subset *)a->subs[k].conn - sets) % 2 == 1);

    /* an entry dies with its last user, and an owner-side hold keeps it */
    struct rc_topic *x = rc_topic_acquire(&t, "px:BTC", 6, rc_topic_hash("px:BTC", 6));
    CHECK(x != NULL && x->conflate);
    CHECK_EQ(rc_subset_add(&t, &sets[1], &sets[1], "px:BTC", 6), 1);
    CHECK_EQ(x->users, 2);
    rc_subset_clear(&t, &sets[1]);
    CHECK(rc_topic_find(&t, "px:BTC", 6, rc_topic_hash("px:BTC", 6)) == x); /* still held */
    rc_topic_release(&t, x);
    CHECK(rc_topic_find(&t, "px:BTC", 6, rc_topic_hash("px:BTC", 6)) == NULL);
    CHECK(consistent(sets, N));

    /* the first subscription is held inline (no allocation); the second
     * moves it to the heap with its topic's back-index intact; emptied by
     * removals, the set keeps its array and takes topics again */
    struct rc_subset one = {0};
    CHECK_EQ(rc_subset_add(&t, &one, &one, "in:A", 4), 1);
    CHECK(one.items == &one.one && one.cap == 1 && one.n == 1);
    struct rc_topic *ta = one.items[0].topic;
    CHECK(ta->subs[one.items[0].pos].set == &one && ta->subs[one.items[0].pos].pos == 0);
    CHECK_EQ(rc_subset_add(&t, &one, &one, "in:A", 4), 0);
    CHECK_EQ(rc_subset_add(&t, &one, &one, "in:B", 4), 1);
    CHECK(one.items != &one.one && one.cap == 4 && one.n == 2);
    CHECK(one.items[0].topic == ta && ta->subs[one.items[0].pos].pos == 0);
    CHECK_EQ(rc_subset_remove(&t, &one, "in:A", 4), 1);
    CHECK(one.n == 1 && one.items[0].topic->subs[one.items[0].pos].pos == 0);
    CHECK_EQ(rc_subset_remove(&t, &one, "in:B", 4), 1);
    CHECK_EQ(rc_subset_add(&t, &one, &one, "in:C", 4), 1);
    CHECK(rc_subset_has(&one, "in:C", 4) && !rc_subset_has(&one, "in:A", 4));
    rc_subset_clear(&t, &one);
    CHECK(one.n == 0 && one.items == NULL);
    CHECK(rc_topic_find(&t, "in:C", 4, rc_topic_hash("in:C", 4)) == NULL);

    /* growth: many topics, then all gone */
    struct rc_subset big = {0};
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "g:%d", i);
        CHECK_EQ(rc_subset_add(&t, &big, &big, name, strlen(name)), 1);
    }
    CHECK(t.nbuckets >= 4096);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(name, sizeof name, "g:%d", i);
        CHECK(rc_topic_find(&t, name, strlen(name), rc_topic_hash(name, strlen(name))) != NULL);
    }
    rc_subset_clear(&t, &big);
    for (int i = 0; i < N; i++) rc_subset_clear(&t, &sets[i]);
    CHECK_EQ(t.count, 0);

    /* owner spread: topics land on every shard */
    int per[4] = {0};
    for (int i = 0; i < 4000; i++) {
        snprintf(name, sizeof name, "demo:SYM%d", i);
        per[rc_topic_owner(rc_topic_hash(name, strlen(name)), 4)]++;
    }
    for (int k = 0; k < 4; k++) CHECK(per[k] > 800 && per[k] < 1200);

    rc_topic_table_destroy(&t);
    RC_TEST_MAIN_END("topics");
}
