/*
 * test_sendq.c — send queue accounting and buffer refcounting: what a
 * short send leaves behind, when a buffer is released, and that the iovec
 * always starts where the last send stopped.
 */
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/buf.h"
#include "ringcast/sendq.h"

static int released;
static void count_release(struct rc_buf *b) {
    released++;
    b->refs = 0xdead; /* poison: a later unref would show up */
}

static struct rc_buf mkbuf(uint8_t *data, uint32_t len) {
    struct rc_buf b = {.refs = 1, .len = len, .data = data, .release = count_release};
    return b;
}

static void test_refcount_shared_by_queues(void) {
    uint8_t bytes[100];
    memset(bytes, 'a', sizeof bytes);
    struct rc_buf frame = mkbuf(bytes, 100);
    struct rc_sendq_pool pool = {0};
    struct rc_sendq q[3] = {{0}};
    released = 0;
    for (int i = 0; i < 3; i++) CHECK_EQ(rc_sendq_push(&q[i], &pool, &frame), 0);
    CHECK_EQ(frame.refs, 4); /* creator + three queues */
    rc_buf_unref(&frame);    /* the creator lets go after fan-out */
    CHECK_EQ(released, 0);
    rc_sendq_consume(&q[0], &pool, 100);
    rc_sendq_consume(&q[1], &pool, 40); /* short send: still referenced */
    CHECK_EQ(frame.refs, 2);
    CHECK_EQ(q[1].bytes, 60);
    CHECK_EQ(q[1].head_off, 40);
    rc_sendq_clear(&q[2], &pool); /* connection gone */
    CHECK_EQ(released, 0);
    rc_sendq_consume(&q[1], &pool, 60);
    CHECK_EQ(released, 1);
    CHECK(rc_sendq_empty(&q[1]));
    CHECK_EQ(pool.nodes_free, pool.nodes_total);
    rc_sendq_pool_destroy(&pool);
}

static void test_iov_resumes_after_short_send(void) {
    uint8_t a[10], b[20], c[30];
    struct rc_buf ba = mkbuf(a, 10), bb = mkbuf(b, 20), bc = mkbuf(c, 30);
    struct rc_sendq_pool pool = {0};
    struct rc_sendq q = {0};
    rc_sendq_push(&q, &pool, &ba);
    rc_sendq_push(&q, &pool, &bb);
    rc_sendq_push(&q, &pool, &bc);
    CHECK_EQ(q.bytes, 60);
    CHECK_EQ(q.count, 3);

    struct iovec iov[8];
    size_t total;
    CHECK_EQ(rc_sendq_fill_iov(&q, iov, 8, &total, NULL), 3);
    CHECK_EQ(total, 60);

    rc_sendq_consume(&q, &pool, 15); /* all of a, 5 bytes of b */
    CHECK_EQ(ba.refs, 1);
    CHECK_EQ(q.count, 2);
    CHECK_EQ(rc_sendq_fill_iov(&q, iov, 8, &total, NULL), 2);
    CHECK(iov[0].iov_base == b + 5);
    CHECK_EQ(iov[0].iov_len, 15);
    CHECK(iov[1].iov_base == c);
    CHECK_EQ(total, 45);

    /* iovec limit: only the head fits */
    CHECK_EQ(rc_sendq_fill_iov(&q, iov, 1, &total, NULL), 1);
    CHECK_EQ(total, 15);

    rc_sendq_consume(&q, &pool, 15 + 29);
    CHECK_EQ(q.count, 1);
    CHECK_EQ(q.bytes, 1);
    CHECK_EQ(q.head_off, 29);
    rc_sendq_consume(&q, &pool, 1);
    CHECK(rc_sendq_empty(&q));
    CHECK(q.tail == NULL);
    CHECK_EQ(q.bytes, 0);
    CHECK_EQ(bb.refs, 1);
    CHECK_EQ(bc.refs, 1);
    rc_sendq_pool_destroy(&pool);
}

static void test_empty_buffers_skipped(void) {
    uint8_t a[4];
    struct rc_buf empty = mkbuf(a, 0), full = mkbuf(a, 4);
    struct rc_sendq_pool pool = {0};
    struct rc_sendq q = {0};
    rc_sendq_push(&q, &pool, &empty);
    rc_sendq_push(&q, &pool, &full);
    struct iovec iov[4];
    size_t total;
    CHECK_EQ(rc_sendq_fill_iov(&q, iov, 4, &total, NULL), 1);
    CHECK_EQ(total, 4);
    rc_sendq_consume(&q, &pool, 4);
    CHECK(rc_sendq_empty(&q));
    CHECK_EQ(empty.refs, 1);
    rc_sendq_pool_destroy(&pool);
}

static void test_pool_reuses_nodes(void) {
    uint8_t a[1];
    struct rc_buf b = mkbuf(a, 1);
    struct rc_sendq_pool pool = {0};
    struct rc_sendq q = {0};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 2000; i++) rc_sendq_push(&q, &pool, &b);
        CHECK_EQ(b.refs, 2001);
        rc_sendq_consume(&q, &pool, 2000);
        CHECK_EQ(b.refs, 1);
    }
    CHECK_EQ(pool.nodes_total, 2000); /* the first round's nodes, reused every round */
    rc_sendq_pool_destroy(&pool);
}

/* A flood's nodes do not stay: past RC_SENDQ_POOL_KEEP free nodes the pool
 * gives them back. */
static void test_pool_keeps_at_most_its_ceiling(void) {
    uint8_t a[1];
    struct rc_buf b = mkbuf(a, 1);
    struct rc_sendq_pool pool = {0};
    struct rc_sendq q = {0};
    for (int i = 0; i < 3 * RC_SENDQ_POOL_KEEP; i++) rc_sendq_push(&q, &pool, &b);
    CHECK_EQ(pool.nodes_total, 3 * RC_SENDQ_POOL_KEEP);
    rc_sendq_clear(&q, &pool);
    CHECK_EQ(pool.nodes_free, RC_SENDQ_POOL_KEEP);
    CHECK_EQ(pool.nodes_total, RC_SENDQ_POOL_KEEP);
    CHECK_EQ(b.refs, 1);
    rc_sendq_pool_destroy(&pool);
}

static void test_heap_buffers(void) {
    struct rc_buf *b = rc_buf_new(16);
    CHECK(b != NULL);
    CHECK_EQ(b->refs, 1);
    CHECK_EQ(b->len, 0);
    memcpy(b->data, "hello", 5);
    b->len = 5;
    rc_buf_ref(b);
    rc_buf_unref(b);
    CHECK_EQ(b->refs, 1);
    rc_buf_unref(b); /* freed: ASan would flag a leak or double free */

    uint8_t *block = malloc(32);
    struct rc_buf *a = rc_buf_adopt(block, block + 10, 12);
    CHECK(a != NULL);
    CHECK(a->data == block + 10);
    CHECK_EQ(a->len, 12);
    rc_buf_unref(a);
}

int main(void) {
    test_refcount_shared_by_queues();
    test_iov_resumes_after_short_send();
    test_empty_buffers_skipped();
    test_pool_reuses_nodes();
    test_pool_keeps_at_most_its_ceiling();
    test_heap_buffers();
    RC_TEST_MAIN_END("sendq");
}
