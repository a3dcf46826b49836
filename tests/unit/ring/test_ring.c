/*
 * test_ring.c — pins the io_uring behaviours the shard loop relies on, on
 * the running kernel:
 *   1. the ring comes up (with SINGLE_ISSUER|DEFER_TASKRUN where possible);
 *   2. multishot recv on a provided-buffer ring ends with -ENOBUFS (F_MORE
 *      clear) when buffers run out, loses no byte, and works again once the
 *      buffers are recycled and the recv re-armed;
 *   3. a SENDMSG on a full socket completes short, and resubmitting from the
 *      send queue's cursor delivers every byte in order.
 * Exit 0 pass, 1 fail, 77 skip (no io_uring here).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rc_test.h"
#include "ringcast/buf.h"
#include "ringcast/ring.h"
#include "ringcast/sendq.h"

static void tcp_pair(int fds[2]) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    connect(fds[0], (struct sockaddr *)&a, sizeof a);
    fds[1] = accept(l, NULL, NULL);
    close(l);
}

static struct io_uring_cqe *wait_one(struct io_uring *ring) {
    struct io_uring_cqe *cqe = NULL;
    int ret = io_uring_submit_and_wait(ring, 1);
    if (ret < 0 && ret != -ETIME) return NULL;
    if (io_uring_peek_cqe(ring, &cqe) != 0) return NULL;
    return cqe;
}

static void arm_recv(struct io_uring *ring, int fd, uint16_t bgid) {
    struct io_uring_sqe *sqe = rc_ring_sqe(ring);
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = bgid;
    io_uring_sqe_set_data64(sqe, 1);
}

static void test_multishot_recv_enobufs(struct io_uring *ring) {
    struct rc_bufring br;
    CHECK_EQ(rc_bufring_init(ring, &br, 7, 4, 64), 0);
    int fds[2];
    tcp_pair(fds);
    arm_recv(ring, fds[1], 7);
    io_uring_submit(ring);

    /* Six writes of 64 bytes, each with its own byte value. */
    char expect[6 * 64], got[6 * 64];
    for (int i = 0; i < 6; i++) {
        memset(expect + i * 64, 'A' + i, 64);
        CHECK_EQ(write(fds[0], expect + i * 64, 64), 64);
        usleep(2000); /* separate segments */
    }
    size_t have = 0;
    int enobufs = 0, rearmed = 0;
    uint16_t held[8];
    int nheld = 0;
    while (have < sizeof got) {
        struct io_uring_cqe *cqe = wait_one(ring);
        CHECK(cqe != NULL);
        if (!cqe) break;
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cqe_seen(ring, cqe);
        if (res > 0) {
            CHECK(flags & IORING_CQE_F_BUFFER);
            uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
            memcpy(got + have, rc_bufring_addr(&br, bid), (size_t)res);
            have += (size_t)res;
            held[nheld++] = bid; /* keep buffers to force exhaustion */
        } else if (res == -ENOBUFS) {
            enobufs++;
            CHECK(!(flags & IORING_CQE_F_MORE));
            for (int i = 0; i < nheld; i++) rc_bufring_recycle(&br, held[i]);
            rc_bufring_publish(&br);
            nheld = 0;
            arm_recv(ring, fds[1], 7);
            rearmed++;
        } else {
            CHECK(!"unexpected recv result");
            break;
        }
        if (res > 0 && !(flags & IORING_CQE_F_MORE)) arm_recv(ring, fds[1], 7);
    }
    CHECK_EQ(have, sizeof got);
    CHECK_MEM(got, expect, sizeof got);
    CHECK(enobufs >= 1);
    CHECK(rearmed >= 1);
    close(fds[0]);
    close(fds[1]);
    /* drain the terminating completion of the recv */
    struct io_uring_cqe *cqe = wait_one(ring);
    if (cqe) io_uring_cqe_seen(ring, cqe);
    rc_bufring_destroy(ring, &br);
}

static void noop_release(struct rc_buf *b) { (void)b; }

static void test_short_send_resume(struct io_uring *ring) {
    int fds[2];
    tcp_pair(fds);
    int small = 16384;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

    enum { N = 4, LEN = 1 << 20 };
    uint8_t *data[N];
    struct rc_buf bufs[N];
    struct rc_sendq_pool pool = {0};
    struct rc_sendq q = {0};
    for (int i = 0; i < N; i++) {
        data[i] = malloc(LEN);
        for (size_t k = 0; k < LEN; k++) data[i][k] = (uint8_t)(k * 7 + i);
        bufs[i] = (struct rc_buf){.refs = 1, .len = LEN, .data = data[i], .release = noop_release};
        rc_sendq_push(&q, &pool, &bufs[i]);
    }
    struct iovec iov[64];
    struct msghdr msg;
    int shorts = 0, sends = 0;
    size_t received = 0;
    uint8_t *rx = malloc((size_t)N * LEN);
    while (!rc_sendq_empty(&q)) {
        size_t total;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)rc_sendq_fill_iov(&q, iov, 64, &total, NULL);
        struct io_uring_sqe *sqe = rc_ring_sqe(ring);
        io_uring_prep_sendmsg(sqe, fds[0], &msg, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, 2);
        io_uring_submit(ring);
        /* the peer reads a little while the send is pending */
        for (;;) {
            ssize_t r = recv(fds[1], rx + received, (size_t)N * LEN - received, MSG_DONTWAIT);
            if (r > 0) received += (size_t)r;
            /* With DEFER_TASKRUN a completion is only posted inside an
             * io_uring_enter with GETEVENTS: peeking alone would spin
             * forever once the send had to wait for socket space. */
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
            if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0) {
                int res = cqe->res;
                io_uring_cqe_seen(ring, cqe);
                CHECK(res > 0);
                if (res <= 0) goto out;
                sends++;
                if ((size_t)res < total) shorts++;
                rc_sendq_consume(&q, &pool, (size_t)res);
                break;
            }
        }
    }
    while (received < (size_t)N * LEN) {
        ssize_t r = recv(fds[1], rx + received, (size_t)N * LEN - received, 0);
        if (r <= 0) break;
        received += (size_t)r;
    }
    CHECK_EQ(received, (size_t)N * LEN);
    for (int i = 0; i < N; i++) CHECK_MEM(rx + (size_t)i * LEN, data[i], LEN);
    CHECK(shorts >= 1); /* the case this test exists for did happen */
    CHECK(sends > 1);
out:
    for (int i = 0; i < N; i++) free(data[i]);
    free(rx);
    rc_sendq_clear(&q, &pool);
    rc_sendq_pool_destroy(&pool);
    close(fds[0]);
    close(fds[1]);
}

int main(void) {
    struct io_uring ring;
    unsigned flags = 0;
    int ret = rc_ring_init(&ring, 64, &flags);
    if (ret == -ENOSYS || ret == -EPERM) {
        fprintf(stderr, "ring: io_uring unavailable (%d): skip\n", ret);
        return 77;
    }
    CHECK_EQ(ret, 0);
    if (ret) RC_TEST_MAIN_END("ring");
    fprintf(stderr, "ring flags 0x%x (DEFER_TASKRUN %s)\n", flags, (flags & IORING_SETUP_DEFER_TASKRUN) ? "on" : "off");
    test_multishot_recv_enobufs(&ring);
    test_short_send_resume(&ring);
    io_uring_queue_exit(&ring);
    RC_TEST_MAIN_END("ring");
}
