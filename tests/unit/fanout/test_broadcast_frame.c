/*
 * test_broadcast_frame.c — frame lifetimes across views and queues, the
 * frame's WebSocket bytes, inter-shard messages, the MPSC inbox under two
 * producer threads, and conflation / slow-consumer dropping in a queue.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "rc_test.h"
#include "ringcast/fanout.h"
#include "ringcast/pmd.h"
#include "ringcast/sendq.h"

static void test_frame_bytes(void) {
    struct rc_frame *f = rc_frame_new("demo:BTC", 8, 42, RC_FRAME_CONFLATE, 4);
    CHECK(f != NULL);
    CHECK_EQ(rc_frame_append_text(&f, "{\"a\":1}", 7), 0); /* grows past cap 4 */
    char big[300];
    memset(big, 'x', sizeof big);
    CHECK_EQ(rc_frame_append_text(&f, big, sizeof big), 0);
    CHECK_EQ(f->msgs, 2);
    CHECK_EQ(f->len, 2 + 7 + 4 + 300);
    CHECK_EQ(f->data[0], 0x81);
    CHECK_EQ(f->data[1], 7);
    CHECK_MEM(f->data + 2, "{\"a\":1}", 7);
    CHECK_EQ(f->data[9], 0x81);
    CHECK_EQ(f->data[10], 126);
    CHECK_EQ((f->data[11] << 8) | f->data[12], 300);
    CHECK(!strcmp(f->name, "demo:BTC"));
    rc_frame_release(f);
}

static void test_views_share_one_frame(void) {
    struct rc_view_pool pool = {0};
    struct rc_sendq_pool qpool = {0};
    struct rc_sendq q[3] = {{0}};
    struct rc_frame *f = rc_frame_new("t", 1, 1, 0, 64);
    rc_frame_append_text(&f, "hello", 5);
    rc_frame_hold(f, 1); /* a second shard */
    CHECK_EQ(atomic_load(&f->refs), 2);

    /* shard A: one view in three queues */
    struct rc_buf *v = rc_view_new(&pool, f, false);
    CHECK(v && rc_buf_is_view(v) && rc_view_frame(v) == f);
    CHECK(v->data == f->data && v->len == f->len);
    for (int i = 0; i < 3; i++) rc_sendq_push(&q[i], &qpool, v);
    rc_buf_unref(v); /* the creator's ref */
    CHECK_EQ(v->refs, 3);
    CHECK_EQ(atomic_load(&f->refs), 2); /* queues cost the frame nothing */
    rc_sendq_consume(&q[0], &qpool, v->len);
    rc_sendq_clear(&q[1], &qpool);
    CHECK_EQ(atomic_load(&f->refs), 2);
    rc_sendq_consume(&q[2], &qpool, 3); /* short send */
    CHECK_EQ(atomic_load(&f->refs), 2);
    rc_sendq_consume(&q[2], &qpool, v->len - 3);
    CHECK_EQ(atomic_load(&f->refs), 1); /* shard A let go */
    CHECK_EQ(pool.nfree, 1);            /* its view is back in the pool */

    /* shard B had no subscriber: drops its ref directly; the frame is freed (ASan checks) */
    rc_frame_release(f);
    rc_view_pool_destroy(&pool);
    rc_sendq_pool_destroy(&qpool);
}

struct match {
    const struct rc_frame *like;
};
static bool same_topic(const struct rc_buf *b, void *arg) {
    struct match *m = arg;
    return rc_buf_is_view(b) && rc_view_frame(b)->hash == m->like->hash;
}

static void test_conflation_keeps_in_flight(void) {
    struct rc_view_pool pool = {0};
    struct rc_sendq_pool qpool = {0};
    struct rc_sendq q = {0};
    struct rc_frame *fa[4], *fb = rc_frame_new("b", 1, 2, 0, 16);
    rc_frame_append_text(&fb, "B", 1);
    for (int i = 0; i < 4; i++) {
        fa[i] = rc_frame_new("a", 1, 1, RC_FRAME_CONFLATE, 16);
        rc_frame_append_text(&fa[i], "A", 1);
        struct rc_buf *v = rc_view_new(&pool, fa[i], false);
        rc_sendq_push(&q, &qpool, v);
        rc_buf_unref(v);
        if (i == 1) {
            struct rc_buf *vb = rc_view_new(&pool, fb, false);
            rc_sendq_push(&q, &qpool, vb);
            rc_buf_unref(vb);
        }
    }
    /* queue: a0 a1 b a2 a3 ; a send in flight covers a0 */
    CHECK_EQ(q.count, 5);
    struct match m = {fa[3]};
    CHECK_EQ(rc_sendq_drop_if(&q, &qpool, 1, same_topic, &m), 3); /* a1 a2 a3 */
    CHECK_EQ(q.count, 2);
    CHECK(rc_view_frame(q.head->buf) == fa[0]);
    CHECK(rc_view_frame(q.head->next->buf) == fb);
    CHECK(q.tail == q.head->next);
    CHECK_EQ(q.bytes, 3 + 3);
    rc_sendq_clear(&q, &qpool);
    CHECK_EQ(pool.nfree, pool.total); /* every view (and frame) released */
    rc_view_pool_destroy(&pool);
    rc_sendq_pool_destroy(&qpool);
}

static void test_pub_records(void) {
    struct rc_msg *m = NULL;
    char data[5000];
    memset(data, 'd', sizeof data);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(rc_msg_add_pub(&m, (uint64_t)i, "topic", 5, data, (size_t)(i * 37), i & 1), 0);
    CHECK_EQ(m->kind, RC_MSG_PUBLISH);
    CHECK_EQ(m->count, 100);
    size_t off = 0;
    for (int i = 0; i < 100; i++) {
        const struct rc_pub_rec *r = (const struct rc_pub_rec *)(m->data + off);
        CHECK_EQ(r->hash, (uint64_t)i);
        CHECK_EQ(r->topic_len, 5);
        CHECK_EQ(r->data_len, (uint32_t)(i * 37));
        CHECK_EQ(r->flags, i & 1);
        CHECK_MEM((const char *)(r + 1), "topic", 5);
        off += rc_pub_rec_size(r->topic_len, r->data_len);
    }
    CHECK_EQ(off, m->len);
    free(m);

    /* an interest record carries no data (NULL, 0): must not touch it */
    m = NULL;
    CHECK_EQ(rc_msg_add_pub(&m, 9, "demo:BTC", 8, NULL, 0, RC_PUB_DEFLATE_INTEREST_ADD), 0);
    const struct rc_pub_rec *r = (const struct rc_pub_rec *)m->data;
    CHECK_EQ(r->data_len, 0);
    CHECK_EQ(r->flags, RC_PUB_DEFLATE_INTEREST_ADD);
    free(m);
}

/* ---- the inbox under concurrency ---- */

static struct rc_inbox inbox;
enum { PER_PRODUCER = 20000 };

static void *producer(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        struct rc_msg *m = NULL;
        rc_msg_add_pub(&m, id, "x", 1, &i, sizeof i, 0);
        rc_inbox_push(&inbox, m);
    }
    return NULL;
}

static void test_inbox_two_producers(void) {
    int efd = eventfd(0, EFD_NONBLOCK);
    rc_inbox_init(&inbox, efd);
    pthread_t t[2];
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, producer, (void *)i);
    uint64_t next[2] = {0, 0};
    int order_ok = 1, got = 0, wakes = 0;
    while (got < 2 * PER_PRODUCER) {
        uint64_t v;
        if (read(efd, &v, sizeof v) == sizeof v) wakes++;
        rc_inbox_rearm(&inbox);
        struct rc_msg *m;
        while ((m = rc_inbox_pop(&inbox))) {
            const struct rc_pub_rec *r = (const struct rc_pub_rec *)m->data;
            uint64_t seq;
            memcpy(&seq, (const char *)(r + 1) + 1, sizeof seq);
            if (seq != next[r->hash]) order_ok = 0; /* FIFO per producer */
            next[r->hash] = seq + 1;
            got++;
            free(m);
        }
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    /* A wake-up written after the consumer's last read (it may drain
     * everything in one pass) is still pending: count it too. */
    uint64_t v;
    if (read(efd, &v, sizeof v) == sizeof v) wakes++;
    CHECK(order_ok);
    CHECK_EQ(next[0], PER_PRODUCER);
    CHECK_EQ(next[1], PER_PRODUCER);
    CHECK(rc_inbox_pop(&inbox) == NULL);
    CHECK(wakes >= 1);
    CHECK(wakes < 2 * PER_PRODUCER); /* wake-ups coalesce */
    close(efd);
}

/* Parses the server frames in p[0..n): returns the count, fills rsv1[] and
 * the payload spans. */
static int split_frames(const uint8_t *p, size_t n, int rsv1[], const uint8_t *pl[], size_t plen[]) {
    int k = 0;
    size_t off = 0;
    while (off < n) {
        size_t len = p[off + 1] & 0x7f, hl = 2;
        if (len == 126) len = ((size_t)p[off + 2] << 8) | p[off + 3], hl = 4;
        rsv1[k] = (p[off] & 0x40) != 0;
        pl[k] = p + off + hl;
        plen[k] = len;
        off += hl + len;
        k++;
    }
    return k;
}

static void test_deflated_variant(void) {
    struct rc_deflater *d = rc_deflater_create(1);
    struct rc_inflater *z = rc_inflater_create();
    CHECK(d && z);
    struct rc_frame *f = rc_frame_new("t", 1, 1, 0, 64);
    char big[2000], small[100];
    for (size_t i = 0; i < sizeof big; i++) big[i] = "{\"px\":64250.12,\"q\":1}"[i % 22];
    memset(small, 's', sizeof small);
    rc_frame_append_text(&f, big, sizeof big);
    rc_frame_append_text(&f, small, sizeof small); /* under the 256-byte minimum */
    rc_frame_append_text(&f, big, 600);
    uint8_t *scratch = NULL;
    size_t scap = 0;
    CHECK_EQ(rc_frame_build_deflated(f, d, 256, &scratch, &scap), 0);
    CHECK(f->deflated != NULL);
    CHECK_EQ(f->deflated->msgs, 3);
    CHECK_EQ(f->compressed_msgs, 2);
    CHECK_EQ(f->deflated_max_in, 2000);
    CHECK(f->deflated->len < f->len);

    int rsv1[8];
    const uint8_t *pl[8];
    size_t plen[8];
    CHECK_EQ(split_frames(f->deflated->data, f->deflated->len, rsv1, pl, plen), 3);
    CHECK(rsv1[0] && !rsv1[1] && rsv1[2]);
    static uint8_t out[4096];
    CHECK_EQ(rc_inflate_message(z, pl[0], plen[0], out, sizeof out), 2000);
    CHECK_MEM(out, big, 2000);
    CHECK_EQ(plen[1], 100);
    CHECK_MEM(pl[1], small, 100);
    CHECK_EQ(rc_inflate_message(z, pl[2], plen[2], out, sizeof out), 600);
    CHECK_MEM(out, big, 600);

    /* a frame of only small messages gets no variant */
    struct rc_frame *g = rc_frame_new("t", 1, 1, 0, 64);
    rc_frame_append_text(&g, small, sizeof small);
    CHECK_EQ(rc_frame_build_deflated(g, d, 256, &scratch, &scap), -ENOENT);
    CHECK(g->deflated == NULL);
    rc_frame_release(g);

    /* views pick the variant's bytes, sharing the frame's reference count */
    struct rc_view_pool pool = {0};
    rc_frame_hold(f, 1);
    struct rc_buf *vp = rc_view_new(&pool, f, false), *vd = rc_view_new(&pool, f, true);
    CHECK(vp->data == f->data && vd->data == f->deflated->data && vd->len == f->deflated->len);
    CHECK(rc_view_frame(vd) == f);
    rc_buf_unref(vp);
    rc_buf_unref(vd); /* frees f and its variant (ASan checks) */
    rc_view_pool_destroy(&pool);
    free(scratch);
    rc_deflater_destroy(d);
    rc_inflater_destroy(z);
}

int main(void) {
    test_frame_bytes();
    test_views_share_one_frame();
    test_conflation_keeps_in_flight();
    test_pub_records();
    test_inbox_two_producers();
    test_deflated_variant();
    RC_TEST_MAIN_END("broadcast_frame");
}
