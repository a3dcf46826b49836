/*
 * conn.c — one connection's life on its shard: received bytes through the
 * HTTP parser or the WebSocket decoder, queued sends, the close handshake,
 * and teardown.
 *
 * Lifecycle (see docs/architecture.md for the picture):
 *   accept → HTTP ─(101)→ WS ─(close sent)→ CLOSING ─(peer close / timeout)→ DEAD
 *              └─(final response)→ LINGER ─(EOF / timeout)→ DEAD
 * A connection is freed in two steps: rc_conn_abort() marks it DEAD and
 * submits a cancel of everything in flight on its fd; the memory and the fd
 * are released only by rc_conn_complete() once the last of its requests
 * (recv, send, cancel) has completed, so no completion can ever see freed
 * memory and a reused fd number can never receive a stale request.
 *
 * Input: a recv completion hands over a provided buffer, which is parsed in
 * place and recycled at once; only an incomplete request head, frame header
 * or control frame is copied into the connection's small `carry` buffer.
 * Message payload streams from the recv buffer into `msg_buf`.
 *
 * Thread: the owning shard only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shard.h"
#include "ringcast/auth.h"
#include "ringcast/pmd.h"
#include "ringcast/proto.h"
#include "ringcast/util.h"

static void unsubscribe_all(struct rc_shard *s, struct rc_conn *c);
static void http_resume(struct rc_shard *s, struct rc_conn *c);
static void close_unread(struct rc_shard *s, struct rc_conn *c, const char *reason);
static void close_for_input(struct rc_shard *s, struct rc_conn *c, int status, const char *why);

/* ---- unfinished input: what it holds, node-wide ---- */

/* Every change of a connection's msg_cap or carry_cap goes through here, so
 * srv->partial_bytes is the node's unfinished input (--max-partial-bytes). */
static void partial_charge(struct rc_shard *s, int64_t delta) {
    if (!delta) return;
    atomic_fetch_add_explicit(&s->srv->partial_bytes, (uint64_t)delta, memory_order_relaxed);
    RC_METRIC_ADD(&s->metrics, partial_input_bytes, (uint64_t)delta);
}

static uint64_t input_held(const struct rc_conn *c) { return c->msg_cap + c->carry_cap; }

/* Drops c's unfinished input at once (c is being closed for it): only
 * called outside c's input processing, which may point into these buffers. */
static void release_input(struct rc_shard *s, struct rc_conn *c) {
    if (input_held(c) >= RC_HTTP_PAUSE_BYTES) s->trim_wanted = true;
    partial_charge(s, -(int64_t)input_held(c));
    free(c->msg_buf);
    free(c->carry);
    c->msg_buf = c->carry = NULL;
    c->msg_len = c->msg_cap = 0;
    c->carry_len = c->carry_cap = 0;
}

/* ---- deadlines ---- */

void rc_conn_set_deadline(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms) {
    if (c->timed_next) { /* unlink */
        c->timed_prev->timed_next = c->timed_next;
        c->timed_next->timed_prev = c->timed_prev;
        c->timed_next = c->timed_prev = NULL;
    }
    c->deadline_ms = deadline_ms;
    if (deadline_ms) {
        struct rc_conn *head = &s->timed;
        c->timed_prev = head->timed_prev;
        c->timed_next = head;
        head->timed_prev->timed_next = c;
        head->timed_prev = c;
    }
}

/* ---- allocation ---- */

/* An idle subscriber costs this struct (one malloc chunk of 240 B), its
 * rc_sub in the topic's array, and 24 B of per-shard slot tables: the
 * idle-memory budget (perf/run idle, docs/performance.md). Grow it knowingly. */
_Static_assert(sizeof(struct rc_conn) <= 232, "struct rc_conn outgrew its 240-byte malloc chunk");

struct rc_conn *rc_conn_open(struct rc_shard *s, int fd, bool tls, bool admin) {
    if (s->nfree == 0 && s->nfresh == s->nslots) return NULL;
    struct rc_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (tls && rc_tls_conn_init(s, c) < 0) {
        free(c);
        return NULL;
    }
    /* Freed slots first (warm); the table's fresh tail is touched only when
     * that many connections are open at once. */
    uint32_t idx = s->nfree ? s->free_slots[--s->nfree] : s->nfresh++;
    c->fd = fd;
    if (admin) {
        c->flags |= RC_CF_ADMIN;
        s->admin[s->admin_conns++] = c;
    }
    c->idx = idx;
    c->gen = s->gens[idx];
    c->state = RC_CONN_HTTP;
    s->conns[idx] = c;
    s->nconns++;
    c->last_rx_s = s->clock_s;
    c->last_tx_s = (uint16_t)s->clock_s;
    RC_METRIC_ADD(&s->metrics, connections_accepted_total, 1);
    RC_METRIC_ADD(&s->metrics, connections, 1);
    /* A TLS client first has --tls-handshake-timeout-ms for its handshake. */
    rc_conn_set_deadline(s, c, s->now_ms + (tls ? s->cfg->tls_handshake_timeout_ms : s->cfg->request_timeout_ms));
    rc_conn_arm_recv(s, c);
    return c;
}

/* Removes c from the shard's admin connections (evicted ones are gone already). */
static bool admin_forget(struct rc_shard *s, const struct rc_conn *c) {
    for (uint32_t i = 0; i < s->admin_conns; i++)
        if (s->admin[i] == c) {
            memmove(&s->admin[i], &s->admin[i + 1], (s->admin_conns - i - 1) * sizeof s->admin[0]);
            s->admin_conns--;
            return true;
        }
    return false;
}

void rc_conn_evict_oldest_admin(struct rc_shard *s) {
    struct rc_conn *old = s->admin[0];
    admin_forget(s, old);
    RC_INFO("conn %u: the admin listener is full (%d connections): its oldest connection is closed", old->idx,
            RC_ADMIN_MAX_CONNS);
    old->flags |= RC_CF_RESET;
    rc_conn_abort(s, old);
}

bool rc_conn_output_pending(const struct rc_conn *c) {
    return (c->flags & RC_CF_SENDING) || !rc_sendq_empty(&c->sq) || rc_tls_out_pending(c);
}

static void conn_free(struct rc_shard *s, struct rc_conn *c) {
    rc_conn_set_deadline(s, c, 0);
    if (c->endpoint == RC_EP_WS) {
        /* Unsubscribing happens here, from a completion, never inside a
         * delivery loop that walks the topics' subscriber arrays. */
        unsubscribe_all(s, c);
        if (c->pmd_bits) atomic_fetch_sub(&s->srv->pmd_ws, 1);
        struct rc_conn *last = s->wsconns[--s->nws];
        s->wsconns[c->ws_pos] = last;
        last->ws_pos = c->ws_pos;
        RC_METRIC_SUB(&s->metrics, ws_connections, 1);
    }
    if (s->claims && s->claims[c->idx]) {
        rc_claims_free(s->claims[c->idx]);
        s->claims[c->idx] = NULL;
    }
    RC_METRIC_SUB(&s->metrics, connections, 1);
    RC_METRIC_SUB(&s->metrics, queued_bytes, c->sq.bytes);
    if (c->sq.bytes >= RC_HTTP_PAUSE_BYTES || input_held(c) >= RC_HTTP_PAUSE_BYTES)
        s->trim_wanted = true;
    partial_charge(s, -(int64_t)input_held(c));
    rc_sendq_clear(&c->sq, &s->sq_pool);
    if (c->sctx) {
        c->sctx->next_free = s->free_sctx;
        s->free_sctx = c->sctx;
    }
    rc_tls_conn_free(s, c);
    free(c->carry);
    free(c->msg_buf);
    if (c->flags & RC_CF_RESET) {
        /* A stalled or abusive peer: reset, so the kernel frees the
         * socket's buffers now instead of retrying them as an orphan. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(c->fd);
    if (c->flags & RC_CF_ADMIN)
        admin_forget(s, c);
    else
        atomic_fetch_sub_explicit(&s->srv->client_conns, 1, memory_order_relaxed);
    s->conns[c->idx] = NULL;
    s->gens[c->idx] = (s->gens[c->idx] + 1) & 0xffffff;
    s->free_slots[s->nfree++] = c->idx;
    s->nconns--;
    free(c);
}

void rc_conn_complete(struct rc_shard *s, struct rc_conn *c) {
    if (--c->inflight == 0 && c->state == RC_CONN_DEAD) conn_free(s, c);
}

void rc_conn_abort(struct rc_shard *s, struct rc_conn *c) {
    if (c->state == RC_CONN_DEAD) return;
    c->state = RC_CONN_DEAD;
    rc_conn_set_deadline(s, c, 0);
    /* Always go through a completion, even with nothing in flight: the
     * caller may still be inside this connection's recv handler, and the
     * memory must outlive it. */
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_CANCEL, c->idx, c->gen));
    c->inflight++;
}

/* ---- sending ---- */

void rc_conn_arm_recv(struct rc_shard *s, struct rc_conn *c) {
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = s->rbufs.bgid;
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_RECV, c->idx, c->gen));
    c->flags |= RC_CF_RECV_ARMED;
    c->inflight++;
}

uint64_t rc_conn_queue_cost(const struct rc_conn *c) {
    return c->sq.bytes + (uint64_t)c->sq.count * RC_QUEUE_NODE_COST;
}

static void over_cap(struct rc_shard *s, struct rc_conn *c, const char *what);

/* Appends b to c's queue, no questions asked: rc_conn_queue's cap, and the
 * close frame that follows a refusal. */
static int sq_push(struct rc_shard *s, struct rc_conn *c, struct rc_buf *b) {
    if (!rc_conn_output_pending(c)) c->last_tx_s = (uint16_t)s->clock_s; /* the stall clock starts with the output */
    if (rc_sendq_push(&c->sq, &s->sq_pool, b) < 0) return -ENOMEM;
    RC_METRIC_ADD(&s->metrics, queued_bytes, b->len);
    if (!(c->flags & (RC_CF_SENDING | RC_CF_DIRTY))) {
        c->flags |= RC_CF_DIRTY;
        c->next_dirty = s->dirty;
        s->dirty = c;
    }
    return 0;
}

/* Every byte for c comes through here, whoever produced it (replies,
 * pongs, HTTP responses, echoes, broadcast frames), and counts against
 * --max-queue-bytes where it enters. Over the cap (unless the queue is
 * empty: one buffer always fits) c is closed, 1008 for a WebSocket, and b
 * is dropped; that still returns 0, as c's fate is settled. Once a close
 * frame is queued nothing else is, so that frame is never refused. */
int rc_conn_queue(struct rc_shard *s, struct rc_conn *c, struct rc_buf *b) {
    if (c->state == RC_CONN_DEAD || c->state == RC_CONN_LINGER) return -EPIPE;
    if (!(c->flags & RC_CF_CLOSE_SENT) && !rc_sendq_empty(&c->sq) &&
        rc_conn_queue_cost(c) + b->len + RC_QUEUE_NODE_COST > s->cfg->max_queue_bytes) {
        over_cap(s, c, "its send queue passed --max-queue-bytes");
        return 0;
    }
    return sq_push(s, c, b);
}

void rc_conn_flush(struct rc_shard *s, struct rc_conn *c) {
    c->flags &= ~RC_CF_DIRTY;
    if (c->tls) { /* encrypt from the queue, send ciphertext */
        if (c->state != RC_CONN_DEAD && !(c->flags & RC_CF_SENDING)) rc_tls_flush(s, c);
        return;
    }
    if (c->state == RC_CONN_DEAD || (c->flags & RC_CF_SENDING) || rc_sendq_empty(&c->sq)) return;
    if (c->sq.count == 1) {
        /* One buffer (the common case between bursts): a plain SEND, no
         * msghdr for the kernel to import and none to keep alive. */
        struct rc_buf *b = c->sq.head->buf;
        c->sending_nodes = 1;
        struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
        io_uring_prep_send(sqe, c->fd, b->data + c->sq.head_off, b->len - c->sq.head_off, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_SEND, c->idx, c->gen));
        c->flags |= RC_CF_SENDING;
        c->inflight++;
        return;
    }
    struct rc_send_ctx *x = s->free_sctx;
    if (x)
        s->free_sctx = x->next_free;
    else if (!(x = malloc(sizeof *x))) {
        rc_conn_abort(s, c);
        return;
    }
    size_t total;
    uint32_t nodes;
    int n = rc_sendq_fill_iov(&c->sq, x->iov, RC_SEND_IOV_MAX, &total, &nodes);
    c->sending_nodes = (uint16_t)nodes;
    memset(&x->msg, 0, sizeof x->msg);
    x->msg.msg_iov = x->iov;
    x->msg.msg_iovlen = (size_t)n;
    c->sctx = x;
    struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
    io_uring_prep_sendmsg(sqe, c->fd, &x->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_SEND, c->idx, c->gen));
    c->flags |= RC_CF_SENDING;
    c->inflight++;
}

/* The queue drained with RC_CF_END_AFTER_SEND set: finish the connection. */
static void end_after_send(struct rc_shard *s, struct rc_conn *c) {
    /* TLS: our close_notify goes out before the TCP side closes. */
    if (c->tls && !(c->flags & RC_CF_PEER_EOF) && rc_tls_close_notify(s, c)) return;
    if ((c->flags & (RC_CF_CLOSE_RCVD | RC_CF_PEER_EOF))) {
        /* The close handshake is complete (or the peer is gone): the server
         * closes the TCP connection first, as RFC 6455 §7.1.1 asks. */
        rc_conn_abort(s, c);
        return;
    }
    /* A final HTTP response or a failed WebSocket: shut our side and
     * discard input until the peer's FIN, so unread request bytes cannot
     * turn our close into a reset that destroys the response in flight. */
    shutdown(c->fd, SHUT_WR);
    c->state = RC_CONN_LINGER;
    uint64_t linger = s->cfg->close_timeout_ms;
    if (s->draining) linger = RC_MIN(linger, RC_DRAIN_LINGER_MS); /* a peer that never FINs must not hold the exit */
    rc_conn_set_deadline(s, c, s->now_ms + linger);
}

void rc_conn_on_send(struct rc_shard *s, struct rc_conn *c, int res) {
    c->flags &= ~RC_CF_SENDING;
    if (c->sctx) {
        c->sctx->next_free = s->free_sctx;
        s->free_sctx = c->sctx;
        c->sctx = NULL;
    }
    if (c->state == RC_CONN_DEAD) return;
    if (res < 0) {
        RC_DEBUG("conn %u: send failed: %s", c->idx, strerror(-res));
        rc_conn_abort(s, c);
        return;
    }
    RC_METRIC_ADD(&s->metrics, bytes_sent_total, (uint64_t)res);
    RC_METRIC_ADD(&s->metrics, sends_total, 1);
    if (res > 0) c->last_tx_s = (uint16_t)s->clock_s;
    if (c->tls) {
        if (!rc_tls_on_send(s, c, res)) /* ciphertext left (a short send) or more queued */
            rc_conn_flush(s, c);
        else if (c->flags & RC_CF_END_AFTER_SEND)
            end_after_send(s, c);
    } else {
        rc_sendq_consume(&c->sq, &s->sq_pool, (size_t)res);
        RC_METRIC_SUB(&s->metrics, queued_bytes, (uint64_t)res);
        if (!rc_sendq_empty(&c->sq)) /* more queued, or a short send: resume */
            rc_conn_flush(s, c);
        else if (c->flags & RC_CF_END_AFTER_SEND)
            end_after_send(s, c);
    }
    if ((c->flags & RC_CF_READ_PAUSED) && rc_conn_queue_cost(c) <= RC_HTTP_PAUSE_BYTES / 2) http_resume(s, c);
}

/* Queues one unfragmented, uncompressed frame built in a fresh buffer:
 * control frames, protocol replies, echoes that cannot adopt their bytes. */
static int queue_frame(struct rc_shard *s, struct rc_conn *c, uint8_t opcode, const void *payload, size_t len) {
    size_t hl = rc_ws_header_len(len);
    struct rc_buf *b = rc_buf_new(hl + len);
    if (!b) return -ENOMEM;
    rc_ws_write_header(b->data, opcode, true, false, len);
    if (len) memcpy(b->data + hl, payload, len);
    b->len = (uint32_t)(hl + len);
    int ret = rc_conn_queue(s, c, b);
    rc_buf_unref(b);
    return ret;
}

void rc_conn_ws_ping(struct rc_shard *s, struct rc_conn *c) {
    if (c->state != RC_CONN_WS || (c->flags & RC_CF_CLOSE_SENT)) return;
    if (queue_frame(s, c, RC_WS_OP_PING, NULL, 0) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    c->flags |= RC_CF_PINGED;
    RC_METRIC_ADD(&s->metrics, ws_pings_sent_total, 1);
}

/* ---- closing ---- */

void rc_conn_ws_close(struct rc_shard *s, struct rc_conn *c, uint16_t code, const char *reason) {
    if (c->state == RC_CONN_DEAD || (c->flags & RC_CF_CLOSE_SENT)) return;
    uint8_t payload[RC_WS_MAX_CONTROL];
    size_t len = 0;
    if (code != RC_WS_CLOSE_NO_STATUS) {
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        len = 2;
        if (reason) {
            size_t rl = RC_MIN(strlen(reason), sizeof payload - 2);
            memcpy(payload + 2, reason, rl);
            len += rl;
        }
    }
    c->flags |= RC_CF_CLOSE_SENT;
    c->state = RC_CONN_CLOSING;
    if (queue_frame(s, c, RC_WS_OP_CLOSE, payload, len) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    rc_conn_set_deadline(s, c, s->now_ms + s->cfg->close_timeout_ms);
}

/* Fails the WebSocket connection (RFC 6455 §7.1.7): close frame with the
 * code, no further processing of input, TCP closed once it is sent. */
static void ws_fail(struct rc_shard *s, struct rc_conn *c, uint16_t code, const char *reason) {
    RC_DEBUG("conn %u: failing websocket with %u %s", c->idx, code, reason);
    c->flags |= RC_CF_DECODER_DEAD;
    if (c->flags & RC_CF_CLOSE_SENT) {
        rc_conn_abort(s, c);
        return;
    }
    rc_conn_ws_close(s, c, code, reason);
    c->flags |= RC_CF_END_AFTER_SEND;
}

static void ws_on_close(struct rc_shard *s, struct rc_conn *c, const struct rc_ws_event *ev) {
    c->flags |= RC_CF_CLOSE_RCVD;
    if (c->flags & RC_CF_CLOSE_SENT) { /* the reply to our close: done */
        rc_conn_abort(s, c);
        return;
    }
    /* Echo the status code (RFC 6455 §5.5.1), then close the TCP side. */
    rc_conn_ws_close(s, c, ev->close_code, NULL);
    c->flags |= RC_CF_END_AFTER_SEND;
}

void rc_conn_begin_drain(struct rc_shard *s, struct rc_conn *c) {
    switch (c->state) {
    case RC_CONN_WS:
        rc_conn_ws_close(s, c, RC_WS_CLOSE_GOING_AWAY, "server shutting down");
        break;
    case RC_CONN_HTTP:
        if (c->flags & RC_CF_PUB_WAIT) break; /* answered when Redis answers, with Connection: close */
        if (c->tls && !rc_tls_handshake_done(c)) { /* no request can come in time: go */
            rc_conn_abort(s, c);
            break;
        }
        if (rc_conn_output_pending(c))
            c->flags |= RC_CF_END_AFTER_SEND; /* the response in flight is the last */
        else if (!c->carry_len)
            /* Idle keep-alive: a short grace, so a probe on it still sees
             * /readyz turn 503 (every response now says Connection: close). */
            rc_conn_set_deadline(s, c, s->now_ms + RC_DRAIN_IDLE_GRACE_MS);
        /* else a request is half received: it completes and is answered
         * with Connection: close, or gets 408 at its deadline. */
        break;
    default:
        break;
    }
}

void rc_conn_on_deadline(struct rc_shard *s, struct rc_conn *c) {
    rc_conn_set_deadline(s, c, 0);
    if (c->tls && !rc_tls_handshake_done(c) && c->state == RC_CONN_HTTP && !(c->flags & RC_CF_END_AFTER_SEND)) {
        RC_METRIC_ADD(&s->metrics, tls_handshake_timeouts_total, 1);
        RC_INFO("conn %u: TLS handshake not finished within %u ms: closed", c->idx, s->cfg->tls_handshake_timeout_ms);
        rc_conn_abort(s, c);
        return;
    }
    if (c->flags & RC_CF_READ_PAUSED) { /* its responses were never read: nothing more can reach it */
        c->flags |= RC_CF_RESET;
        rc_conn_abort(s, c);
        return;
    }
    if (c->state == RC_CONN_HTTP && c->carry_len && !(c->flags & RC_CF_END_AFTER_SEND)) {
        RC_METRIC_ADD(&s->metrics, message_timeouts_total, 1);
        close_for_input(s, c, 408, "request not completed in time");
        return;
    }
    if (c->state == RC_CONN_WS && !(c->flags & RC_CF_CLOSE_SENT)) { /* the message deadline */
        RC_METRIC_ADD(&s->metrics, message_timeouts_total, 1);
        close_for_input(s, c, 0, "message not completed in time");
        return;
    }
    rc_conn_abort(s, c);
}

/* ---- the periodic sweep ---- */

/*
 * Stalls: a socket that has taken no bytes of pending output for
 * --stall-timeout-s belongs to a reader that stopped reading; it is closed
 * whether its topics conflate or not, or it would pin its kernel send
 * buffer forever. Liveness: a WebSocket silent for half of
 * --idle-timeout-s gets a ping (browsers and client libraries answer it by
 * themselves, so a client that only listens stays); one silent for the
 * whole timeout is closed.
 */
void rc_conn_sweep(struct rc_shard *s, struct rc_conn *c) {
    if (c->state == RC_CONN_DEAD) return;
    uint16_t stalled_s = (uint16_t)((uint16_t)s->clock_s - c->last_tx_s); /* --stall-timeout-s < 2^16 */
    if (rc_conn_output_pending(c) && stalled_s >= s->cfg->stall_timeout_s) {
        RC_METRIC_ADD(&s->metrics, stall_closes_total, 1);
        RC_INFO("conn %u: its socket took no bytes for %us: closing (stalled)", c->idx, (unsigned)stalled_s);
        close_unread(s, c, "stalled");
        return;
    }
    if (c->state != RC_CONN_WS) return;
    uint32_t limit = s->cfg->idle_timeout_s;
    uint32_t silent = s->clock_s - c->last_rx_s;
    if (silent > limit) {
        RC_METRIC_ADD(&s->metrics, idle_closes_total, 1);
        rc_conn_ws_close(s, c, RC_WS_CLOSE_NORMAL, "idle timeout");
    } else if (silent >= (limit + 1) / 2 && !(c->flags & RC_CF_PINGED)) {
        rc_conn_ws_ping(s, c);
    }
}

void rc_conn_on_eof(struct rc_shard *s, struct rc_conn *c) {
    c->flags |= RC_CF_PEER_EOF;
    rc_tls_on_eof(s, c);
    if (c->state == RC_CONN_HTTP && (rc_conn_output_pending(c) || (c->flags & RC_CF_PUB_WAIT))) {
        /* Half-closed after its request: let the response (maybe still
         * waiting for Redis) go out first. */
        c->flags |= RC_CF_END_AFTER_SEND;
        return;
    }
    rc_conn_abort(s, c);
}

/* ---- WebSocket messages ---- */

/* Grows msg_buf to hold `need` payload bytes: doubling as bytes arrive,
 * never ahead of them (a frame header announcing 16 MiB costs nothing until
 * the bytes come), never past the endpoint's message size. */
static int msg_reserve(struct rc_shard *s, struct rc_conn *c, uint64_t need) {
    if (need <= c->msg_cap) return 0;
    uint64_t cap = c->msg_cap ? c->msg_cap : 4096;
    while (cap < need) cap *= 2;
    if (cap > need && cap > c->dec.max_message && c->dec.max_message) cap = RC_MAX(need, c->dec.max_message);
    uint8_t *p = realloc(c->msg_buf, RC_WS_MAX_HEADER + cap);
    if (!p) return -ENOMEM;
    partial_charge(s, (int64_t)(cap - c->msg_cap));
    c->msg_buf = p;
    c->msg_cap = cap;
    return 0;
}

static void echo_message(struct rc_shard *s, struct rc_conn *c, uint8_t opcode) {
    if (!c->msg_buf && msg_reserve(s, c, 1) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    size_t hl = rc_ws_header_len(c->msg_len);
    uint8_t *start = c->msg_buf + RC_WS_MAX_HEADER - hl;
    rc_ws_write_header(start, opcode, true, false, c->msg_len);
    struct rc_buf *b = rc_buf_adopt(c->msg_buf, start, hl + c->msg_len);
    if (!b) {
        rc_conn_abort(s, c);
        return;
    }
    partial_charge(s, -(int64_t)c->msg_cap); /* the message is a queued frame now */
    c->msg_buf = NULL;
    c->msg_len = c->msg_cap = 0;
    int ret = rc_conn_queue(s, c, b);
    rc_buf_unref(b);
    if (ret < 0) rc_conn_abort(s, c);
}

/* ---- /ws: the JSON subscribe protocol ---- */

static void queue_text(struct rc_shard *s, struct rc_conn *c, const char *json, size_t len) {
    if (queue_frame(s, c, RC_WS_OP_TEXT, json, len) < 0) rc_conn_abort(s, c);
}

static void reply_error(struct rc_shard *s, struct rc_conn *c, const char *message) {
    char out[512];
    ssize_t n = rc_proto_format_error(out, sizeof out, message);
    if (n > 0) queue_text(s, c, out, (size_t)n);
    RC_METRIC_ADD(&s->metrics, client_errors_total, 1);
}

/* {"type":"subscribed","<key>":[…the full current set…]} */
static void reply_subscribed(struct rc_shard *s, struct rc_conn *c) {
    struct rc_topic_name small[16], *names = small;
    size_t bytes = 64;
    if (c->subs.n > RC_ARRAY_LEN(small) && !(names = malloc(c->subs.n * sizeof *names))) {
        rc_conn_abort(s, c);
        return;
    }
    for (uint32_t i = 0; i < c->subs.n; i++) {
        names[i].name = c->subs.items[i].topic->name;
        names[i].len = c->subs.items[i].topic->len;
        bytes += names[i].len + 3;
    }
    char *out = malloc(bytes);
    ssize_t n = out ? rc_proto_format_subscribed(out, bytes, (enum rc_topic_key)c->topic_key, names, c->subs.n) : -1;
    if (n > 0)
        queue_text(s, c, out, (size_t)n);
    else
        rc_conn_abort(s, c);
    free(out);
    if (names != small) free(names);
}

static bool is_firehose(const char *name, size_t len) { return len == 1 && name[0] == '*'; }

static bool wants_firehose(const struct rc_cmd *cmd) {
    if (cmd->type == RC_CMD_SUBSCRIBE_ALL) return true;
    if (cmd->type != RC_CMD_SUBSCRIBE) return false;
    for (size_t i = 0; i < cmd->ntopics; i++)
        if (is_firehose(cmd->topics[i].name, cmd->topics[i].len)) return true;
    return false;
}

static int subscribe_one(struct rc_shard *s, struct rc_conn *c, const char *name, size_t len) {
    int r = rc_subset_add(&s->topics, &c->subs, c, name, len);
    if (r > 0) {
        struct rc_topic *t = c->subs.items[c->subs.n - 1].topic;
        RC_METRIC_ADD(&s->metrics, subscriptions, 1);
        if (is_firehose(name, len)) c->flags |= RC_CF_FIREHOSE;
        if (c->pmd_bits) rc_shard_pmd_interest(s, t, +1);
        if (t->nsubs == 1) rc_shard_redis_interest(s, t, +1); /* this shard's first subscriber */
    }
    return r;
}

static void unsubscribe_one(struct rc_shard *s, struct rc_conn *c, const char *name, size_t len) {
    if (!rc_subset_has(&c->subs, name, len)) return;
    struct rc_topic *t = rc_topic_find(&s->topics, name, len, rc_topic_hash(name, len));
    if (c->pmd_bits) rc_shard_pmd_interest(s, t, -1);
    if (t && t->nsubs == 1) rc_shard_redis_interest(s, t, -1); /* the last one leaves */
    rc_subset_remove(&s->topics, &c->subs, name, len);
    RC_METRIC_SUB(&s->metrics, subscriptions, 1);
    if (is_firehose(name, len)) c->flags &= ~RC_CF_FIREHOSE;
}

/* Drops every subscription of c. */
static void unsubscribe_all(struct rc_shard *s, struct rc_conn *c) {
    for (uint32_t i = 0; i < c->subs.n; i++) {
        struct rc_topic *t = c->subs.items[i].topic;
        if (c->pmd_bits) rc_shard_pmd_interest(s, t, -1);
        if (t->nsubs == 1) rc_shard_redis_interest(s, t, -1);
    }
    RC_METRIC_SUB(&s->metrics, subscriptions, c->subs.n);
    rc_subset_clear(&s->topics, &c->subs);
    c->flags &= ~RC_CF_FIREHOSE;
}

static void ws_client_message(struct rc_shard *s, struct rc_conn *c, uint8_t opcode, const uint8_t *p, size_t n) {
    RC_METRIC_ADD(&s->metrics, client_messages_total, 1);
    if (opcode != RC_WS_OP_TEXT) {
        reply_error(s, c, "Binary messages are not supported: send JSON text");
        return;
    }
    struct rc_cmd cmd;
    char err[256];
    size_t limit = s->cfg->max_topics_per_conn;
    if (rc_proto_parse((const char *)p, n, limit, &cmd, err, sizeof err) < 0) {
        reply_error(s, c, err);
        return;
    }
    if (s->srv->redis && rc_redis_sharded(s->srv->redis) && wants_firehose(&cmd)) {
        reply_error(s, c, "subscribe_all is not available with --redis-sharded: Redis sharded pub/sub has no "
                          "patterns; subscribe to topics by name");
        goto out;
    }
    /* All or nothing; the operator's dashboard (admin listener) sees everything. */
    if ((cmd.type == RC_CMD_SUBSCRIBE || cmd.type == RC_CMD_SUBSCRIBE_ALL) && !(c->flags & RC_CF_ADMIN)) {
        static const struct rc_topic_name firehose = {"*", 1};
        const struct rc_topic_name *names = cmd.type == RC_CMD_SUBSCRIBE_ALL ? &firehose : cmd.topics;
        size_t n = cmd.type == RC_CMD_SUBSCRIBE_ALL ? 1 : cmd.ntopics;
        const struct rc_claims *claims = s->claims ? s->claims[c->idx] : NULL;
        for (size_t i = 0; i < n; i++) {
            const char *why = rc_trust_subscribe(s, claims, names[i].name, names[i].len);
            if (!why) continue;
            snprintf(err, sizeof err, "not authorized to subscribe to %.*s: %s (nothing was subscribed)",
                     (int)RC_MIN(names[i].len, (size_t)80), names[i].name, why);
            RC_METRIC_ADD(&s->metrics, subscribe_denied_total, 1);
            reply_error(s, c, err);
            goto out;
        }
    }
    switch (cmd.type) {
    case RC_CMD_SUBSCRIBE: {
        c->topic_key = (uint8_t)cmd.key;
        size_t fresh = 0;
        for (size_t i = 0; i < cmd.ntopics; i++) {
            bool dup = rc_subset_has(&c->subs, cmd.topics[i].name, cmd.topics[i].len);
            for (size_t k = 0; k < i && !dup; k++)
                dup = cmd.topics[k].len == cmd.topics[i].len && !memcmp(cmd.topics[k].name, cmd.topics[i].name, cmd.topics[i].len);
            fresh += !dup;
        }
        if (c->subs.n + fresh > limit) {
            snprintf(err, sizeof err, "Too many topics: at most %zu per connection (you have %u)", limit, c->subs.n);
            reply_error(s, c, err);
            break;
        }
        for (size_t i = 0; i < cmd.ntopics; i++)
            if (subscribe_one(s, c, cmd.topics[i].name, cmd.topics[i].len) < 0) {
                rc_conn_abort(s, c);
                goto out;
            }
        reply_subscribed(s, c);
        break;
    }
    case RC_CMD_UNSUBSCRIBE:
        c->topic_key = (uint8_t)cmd.key;
        for (size_t i = 0; i < cmd.ntopics; i++) unsubscribe_one(s, c, cmd.topics[i].name, cmd.topics[i].len);
        reply_subscribed(s, c);
        break;
    case RC_CMD_SUBSCRIBE_ALL:
        if (!rc_subset_has(&c->subs, "*", 1) && c->subs.n + 1 > limit) {
            snprintf(err, sizeof err, "Too many topics: at most %zu per connection (you have %u)", limit, c->subs.n);
            reply_error(s, c, err);
            break;
        }
        if (subscribe_one(s, c, "*", 1) < 0) {
            rc_conn_abort(s, c);
            goto out;
        }
        reply_subscribed(s, c);
        break;
    case RC_CMD_UNSUBSCRIBE_ALL:
        unsubscribe_all(s, c);
        reply_subscribed(s, c);
        break;
    case RC_CMD_PING:
        queue_text(s, c, "{\"type\":\"pong\"}", 15);
        break;
    }
out:
    rc_cmd_free(&cmd);
}

/* ---- broadcast delivery ---- */

struct conflate_ctx {
    const struct rc_frame *like;
    uint32_t msgs;
};

static bool same_topic_view(const struct rc_buf *b, void *arg) {
    struct conflate_ctx *x = arg;
    if (!rc_buf_is_view(b)) return false;
    const struct rc_frame *f = rc_view_frame(b);
    if (f->hash != x->like->hash || f->name_len != x->like->name_len || memcmp(f->name, x->like->name, f->name_len))
        return false;
    x->msgs += f->msgs;
    return true;
}

static bool any_buf(const struct rc_buf *b, void *arg) {
    (void)b;
    (void)arg;
    return true;
}

/* Queue nodes that must stay: those the send in flight covers, or a head
 * that is partly on the wire already (TLS: partly encrypted; the bytes in
 * flight there are ciphertext, outside the queue). */
static uint32_t untouchable(const struct rc_conn *c) {
    if ((c->flags & RC_CF_SENDING) && !c->tls) return c->sending_nodes;
    return c->sq.head_off ? 1 : 0;
}

/* Drops what c has not started sending (its reader is not keeping up). */
static void drop_unsent(struct rc_shard *s, struct rc_conn *c) {
    uint64_t before = c->sq.bytes;
    if (before >= RC_HTTP_PAUSE_BYTES) s->trim_wanted = true;
    rc_sendq_drop_if(&c->sq, &s->sq_pool, untouchable(c), any_buf, NULL);
    RC_METRIC_SUB(&s->metrics, queued_bytes, before - c->sq.bytes);
}

/* c's reader does not keep up (its queue is over the cap, or its socket
 * took nothing for --stall-timeout-s): what it has not started receiving
 * goes, a WebSocket gets 1008 with `reason`, and the TCP connection ends
 * with a reset (after --close-timeout-ms at most), so neither its queue nor
 * its kernel buffers outlive the decision. */
static void close_unread(struct rc_shard *s, struct rc_conn *c, const char *reason) {
    c->flags |= RC_CF_RESET;
    drop_unsent(s, c);
    if (c->state == RC_CONN_WS && !(c->flags & RC_CF_CLOSE_SENT)) {
        rc_conn_ws_close(s, c, RC_WS_CLOSE_POLICY, reason);
        c->flags |= RC_CF_DECODER_DEAD | RC_CF_END_AFTER_SEND;
    } else {
        rc_conn_abort(s, c);
    }
}

static void over_cap(struct rc_shard *s, struct rc_conn *c, const char *what) {
    RC_METRIC_ADD(&s->metrics, slow_consumer_closes_total, 1);
    RC_INFO("conn %u: %s (%llu bytes queued, --max-queue-bytes %llu): closing", c->idx, what,
            (unsigned long long)rc_conn_queue_cost(c), (unsigned long long)s->cfg->max_queue_bytes);
    close_unread(s, c, "slow consumer");
}

void rc_conn_deliver(struct rc_shard *s, struct rc_conn *c, struct rc_buf *view) {
    if (c->state != RC_CONN_WS || (c->flags & RC_CF_CLOSE_SENT)) return;
    const struct rc_frame *f = rc_view_frame(view);
    uint64_t cap = s->cfg->max_queue_bytes;
    if (c->sq.bytes && rc_conn_queue_cost(c) + view->len + RC_QUEUE_NODE_COST > cap) {
        if (f->flags & RC_FRAME_CONFLATE) {
            /* Latest value wins: the older queued frames of this topic go. */
            struct conflate_ctx x = {.like = f, .msgs = 0};
            uint64_t before = c->sq.bytes;
            uint32_t dropped = rc_sendq_drop_if(&c->sq, &s->sq_pool, untouchable(c), same_topic_view, &x);
            RC_METRIC_SUB(&s->metrics, queued_bytes, before - c->sq.bytes);
            RC_METRIC_ADD(&s->metrics, frames_conflated_total, dropped);
            RC_METRIC_ADD(&s->metrics, messages_conflated_total, x.msgs);
        }
        if (c->sq.bytes && rc_conn_queue_cost(c) + view->len + RC_QUEUE_NODE_COST > cap) {
            over_cap(s, c, "slow consumer"); /* nobody else waits for it */
            return;
        }
    }
    if (rc_conn_queue(s, c, view) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    RC_METRIC_ADD(&s->metrics, deliveries_total, f->msgs);
    RC_METRIC_ADD(&s->metrics, delivery_bytes_total, view->len);
    if (f->deflated && view->data == f->deflated->data)
        RC_METRIC_ADD(&s->metrics, compressed_deliveries_total, f->compressed_msgs);
}

/* Echoes a message from bytes it cannot adopt (inflated, or to be
 * compressed): a fresh buffer with the header in front, the payload
 * compressed when the connection negotiated it and the message is big
 * enough. */
static void echo_copy(struct rc_shard *s, struct rc_conn *c, uint8_t opcode, const uint8_t *p, size_t n) {
    if (c->pmd_bits && s->deflater && n >= s->cfg->deflate_min_bytes && n > 0) {
        size_t body = rc_deflate_bound(n);
        struct rc_buf *b = rc_buf_new(RC_WS_MAX_HEADER + body);
        if (!b) {
            rc_conn_abort(s, c);
            return;
        }
        ssize_t clen = rc_deflate_message(s->deflater, p, n, b->data + RC_WS_MAX_HEADER, body, c->pmd_bits);
        if (clen >= 0 && (size_t)clen < n) {
            size_t hl = rc_ws_header_len((uint64_t)clen);
            rc_ws_write_header(b->data, opcode, true, true, (uint64_t)clen);
            memmove(b->data + hl, b->data + RC_WS_MAX_HEADER, (size_t)clen);
            b->len = (uint32_t)(hl + (size_t)clen);
            int ret = rc_conn_queue(s, c, b);
            rc_buf_unref(b);
            if (ret < 0) rc_conn_abort(s, c);
            return;
        }
        rc_buf_unref(b); /* incompressible: plain is smaller */
    }
    if (queue_frame(s, c, opcode, p, n) < 0) rc_conn_abort(s, c);
}

/* A complete message: inflated when it came compressed (stateless, capped
 * at --max-message-bytes), then handed to the endpoint. `assembled` says p
 * is the connection's msg_buf (which the echo may adopt). */
static void ws_on_message(struct rc_shard *s, struct rc_conn *c, uint8_t opcode, bool compressed, const uint8_t *p,
                          size_t n, bool assembled) {
    if (compressed) {
        /* Inflating stops at the endpoint's message size: a small
         * compressed message costs at most that much output. On the client
         * protocols (control messages, never a stream of big ones) a
         * connection may also inflate at most RC_INFLATE_PER_S_MESSAGES
         * messages' worth a second: a few bytes that inflate ~1,000-fold
         * would otherwise let one client keep a shard busy. */
        if (c->endpoint != RC_EP_ECHO) {
            if (c->inflate_s != (uint16_t)s->clock_s) {
                c->inflate_s = (uint16_t)s->clock_s;
                c->inflated = 0;
            }
            if (c->inflated >= RC_INFLATE_PER_S_MESSAGES * c->dec.max_message) {
                ws_fail(s, c, RC_WS_CLOSE_POLICY, "too much compressed input");
                return;
            }
        }
        size_t cap = (size_t)c->dec.max_message;
        if (cap > s->inflate_cap) {
            uint8_t *buf = realloc(s->inflate_buf, cap);
            if (!buf) {
                ws_fail(s, c, RC_WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
            s->inflate_buf = buf;
            s->inflate_cap = cap;
        }
        ssize_t r = rc_inflate_message(s->inflater, p, n, s->inflate_buf, cap);
        if (r == -E2BIG) {
            ws_fail(s, c, RC_WS_CLOSE_TOO_BIG, "message too big");
            return;
        }
        if (r < 0) {
            ws_fail(s, c, RC_WS_CLOSE_INVALID_DATA, "invalid compressed data");
            return;
        }
        p = s->inflate_buf;
        n = (size_t)r;
        c->inflated = (uint32_t)RC_MIN((uint64_t)c->inflated + n, UINT32_MAX);
        if (opcode == RC_WS_OP_TEXT && rc_utf8_validate(RC_UTF8_ACCEPT, p, n) != RC_UTF8_ACCEPT) {
            ws_fail(s, c, RC_WS_CLOSE_INVALID_DATA, "invalid UTF-8");
            return;
        }
        assembled = false;
    }
    switch (c->endpoint) {
    case RC_EP_ECHO:
        if (assembled && !c->pmd_bits)
            echo_message(s, c, opcode); /* zero copy: msg_buf becomes the frame */
        else
            echo_copy(s, c, opcode, p, n);
        break;
    case RC_EP_WS:
        ws_client_message(s, c, opcode, p, n);
        break;
    default:
        break;
    }
}

static void ws_on_data(struct rc_shard *s, struct rc_conn *c, const struct rc_ws_event *ev) {
    if (c->flags & RC_CF_CLOSE_SENT) return; /* closing: data is dropped (RFC 6455 §5.5.1) */
    if (ev->fin && c->msg_len == 0 && (c->endpoint != RC_EP_ECHO || ev->compressed || c->pmd_bits)) {
        /* A whole message in one piece that nobody will adopt: no copy. */
        ws_on_message(s, c, ev->opcode, ev->compressed, ev->data, ev->len, false);
        return;
    }
    if (ev->len) {
        if (msg_reserve(s, c, c->msg_len + ev->len) < 0) {
            ws_fail(s, c, RC_WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        memcpy(c->msg_buf + RC_WS_MAX_HEADER + c->msg_len, ev->data, ev->len);
        c->msg_len += ev->len;
    }
    if (!ev->fin) return;
    ws_on_message(s, c, ev->opcode, ev->compressed, c->msg_buf ? c->msg_buf + RC_WS_MAX_HEADER : ev->data, c->msg_len,
                  c->msg_buf != NULL);
    /* Unless the echo adopted it, the message buffer goes: idle
     * connections hold none. */
    partial_charge(s, -(int64_t)c->msg_cap);
    free(c->msg_buf);
    c->msg_buf = NULL;
    c->msg_len = c->msg_cap = 0;
}

/* Runs the decoder over p[0..n). Returns the bytes consumed; stops early
 * at an incomplete frame header or control frame. */
static size_t ws_process(struct rc_shard *s, struct rc_conn *c, uint8_t *p, size_t n) {
    size_t off = 0;
    while (off < n) {
        if (c->state == RC_CONN_DEAD || (c->flags & RC_CF_DECODER_DEAD)) return n;
        struct rc_ws_event ev;
        ssize_t r = rc_ws_decode(&c->dec, p + off, n - off, &ev);
        if (r < 0) {
            ws_fail(s, c, ev.close_code,
                    ev.close_code == RC_WS_CLOSE_INVALID_DATA ? "invalid UTF-8"
                    : ev.close_code == RC_WS_CLOSE_TOO_BIG   ? "message too big"
                                                             : "protocol error");
            return n;
        }
        off += (size_t)r;
        switch (ev.type) {
        case RC_WS_EV_NONE:
            return off;
        case RC_WS_EV_DATA:
            ws_on_data(s, c, &ev);
            break;
        case RC_WS_EV_PING:
            if (!(c->flags & RC_CF_CLOSE_SENT) && queue_frame(s, c, RC_WS_OP_PONG, ev.data, ev.len) < 0)
                rc_conn_abort(s, c);
            break;
        case RC_WS_EV_PONG:
            break;
        case RC_WS_EV_CLOSE:
            ws_on_close(s, c, &ev);
            return n; /* nothing after a close frame is processed */
        }
    }
    return off;
}

/* ---- HTTP ---- */

/* RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host header. */
static bool host_header_ok(const struct rc_http_request *req) {
    int hosts = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        if (req->headers[i].name_len == 4 && !strncasecmp(req->headers[i].name, "host", 4)) hosts++;
    return hosts == 1;
}

/*
 * HTTP backpressure: a client whose responses pile up (pipelining without
 * reading) is not read either. Its multishot recv is cancelled, so the
 * kernel's receive buffer fills and its sends block; what had already
 * arrived waits in carry. Below half the mark the recv is re-armed and the
 * waiting requests are parsed. A client that never reads its responses is
 * reset at --request-timeout-ms (or sooner by the stall sweep).
 */
static void http_pause(struct rc_shard *s, struct rc_conn *c) {
    if (c->flags & RC_CF_READ_PAUSED) return;
    c->flags |= RC_CF_READ_PAUSED;
    if (c->flags & RC_CF_RECV_ARMED) {
        struct io_uring_sqe *sqe = rc_ring_sqe(&s->ring);
        io_uring_prep_cancel64(sqe, rc_ud(RC_OP_RECV, c->idx, c->gen), 0);
        io_uring_sqe_set_data64(sqe, rc_ud(RC_OP_CANCEL, c->idx, c->gen));
        c->inflight++;
    }
    rc_conn_set_deadline(s, c, s->now_ms + s->cfg->request_timeout_ms);
}

/* The requests that waited are parsed first; the socket is read again
 * only if they all fit, or each pause would let in another receive
 * buffer's worth while answering only 64 KiB of it. */
static void http_resume(struct rc_shard *s, struct rc_conn *c) {
    if (c->flags & RC_CF_PUB_WAIT) return; /* rc_conn_http_release resumes */
    c->flags &= ~RC_CF_READ_PAUSED;
    if (c->state != RC_CONN_HTTP || (c->flags & RC_CF_END_AFTER_SEND)) return;
    rc_conn_set_deadline(s, c, s->now_ms + s->cfg->request_timeout_ms);
    if (c->carry_len) rc_conn_on_plain(s, c, NULL, 0);
    if (c->state == RC_CONN_HTTP && !(c->flags & (RC_CF_READ_PAUSED | RC_CF_RECV_ARMED | RC_CF_PEER_EOF)))
        rc_conn_arm_recv(s, c);
}

/*
 * A request waits for Redis: nothing more is parsed until it is answered,
 * but the socket stays armed (cancelling and re-arming the recv of every
 * waiting publish would cost more than the wait); bytes of pipelined
 * requests collect in carry, and past RC_HTTP_PAUSE_BYTES the connection
 * is paused like any other that sends more than it reads.
 */
void rc_conn_http_hold(struct rc_shard *s, struct rc_conn *c) {
    c->flags |= RC_CF_PUB_WAIT;
    /* Redis answers or the link gives up within --redis-timeout-ms; the
     * deadline is only the backstop. */
    uint64_t wait = RC_MAX((uint64_t)s->cfg->request_timeout_ms, (uint64_t)s->cfg->redis_timeout_ms + 1000);
    rc_conn_set_deadline(s, c, s->now_ms + wait);
}

void rc_conn_http_release(struct rc_shard *s, struct rc_conn *c) {
    c->flags &= ~RC_CF_PUB_WAIT;
    if (c->state != RC_CONN_HTTP) return;
    if (!(c->flags & RC_CF_READ_PAUSED)) {
        if (c->carry_len && !(c->flags & RC_CF_END_AFTER_SEND)) rc_conn_on_plain(s, c, NULL, 0); /* the pipelined requests that waited */
        return;
    }
    if (rc_conn_queue_cost(c) <= RC_HTTP_PAUSE_BYTES / 2)
        http_resume(s, c);
    else /* the client is not reading its responses: the usual backpressure deadline */
        rc_conn_set_deadline(s, c, s->now_ms + s->cfg->request_timeout_ms);
}

/* Parses and routes complete requests in p[0..n). Returns bytes consumed. */
static size_t http_process(struct rc_shard *s, struct rc_conn *c, uint8_t *p, size_t n) {
    size_t off = 0;
    while (off < n && c->state == RC_CONN_HTTP && !(c->flags & (RC_CF_END_AFTER_SEND | RC_CF_PUB_WAIT))) {
        if (rc_conn_queue_cost(c) > RC_HTTP_PAUSE_BYTES) { /* its responses are not being read */
            http_pause(s, c);
            return off;
        }
        struct rc_http_request req;
        ssize_t r = rc_http_parse_request((const char *)p + off, n - off, &s->http_limits, &req);
        if (r == -EAGAIN) return off;
        if (r < 0) {
            int status = (int)-r;
            const char *msg = status == 431 ? "request header fields too large"
                              : status == 414 ? "request line too long"
                              : status == 505 ? "HTTP version not supported"
                              : status == 501 ? "transfer coding not implemented"
                                              : "malformed request";
            rc_http_respond_error(s, c, status, msg, NULL, false);
            return n;
        }
        if (req.minor_version == 1 && !host_header_ok(&req)) {
            rc_http_respond_error(s, c, 400, "exactly one Host header is required", NULL, false);
            return n;
        }
        if (req.chunked) {
            rc_http_respond_error(s, c, 411, "chunked request bodies are not supported; send Content-Length",
                                  NULL, false);
            return n;
        }
        uint64_t body_len = req.content_length > 0 ? (uint64_t)req.content_length : 0;
        if (body_len > s->cfg->max_publish_bytes) {
            /* Answer at once, without reading the body. */
            rc_http_respond_error(s, c, 413, "request body too large", NULL, false);
            return n;
        }
        if ((uint64_t)(n - off - (size_t)r) < body_len) return off; /* wait for the body */
        rc_http_route(s, c, &req, p + off + r, (size_t)body_len);
        off += (size_t)r + (size_t)body_len;
    }
    if (c->state == RC_CONN_WS) off += ws_process(s, c, p + off, n - off);
    return c->state == RC_CONN_HTTP && (c->flags & RC_CF_END_AFTER_SEND) ? n : off;
}

/* ---- input ---- */

/*
 * Unfinished input is bounded in time and, node-wide, in bytes. A WebSocket
 * message (or frame header) begun and not finished within
 * --message-timeout-ms is closed 1008; an HTTP request not complete by then
 * (or by its --request-timeout-ms, whichever is first) gets 408. Past
 * --max-partial-bytes the largest holders go first.
 */
static void track_unfinished(struct rc_shard *s, struct rc_conn *c) {
    if (c->state == RC_CONN_WS && !(c->flags & RC_CF_CLOSE_SENT)) {
        bool unfinished = c->dec.msg_opcode || c->dec.in_frame || c->carry_len;
        if (unfinished && !c->deadline_ms)
            rc_conn_set_deadline(s, c, s->now_ms + s->cfg->message_timeout_ms);
        else if (!unfinished && c->deadline_ms)
            rc_conn_set_deadline(s, c, 0);
    } else if ((c->flags & RC_CF_PUB_WAIT) && c->state == RC_CONN_HTTP) {
        if (c->carry_len > RC_HTTP_PAUSE_BYTES) http_pause(s, c); /* pipelining far ahead of the answers */
    } else if (c->state == RC_CONN_HTTP && c->carry_len && !(c->flags & (RC_CF_READ_PAUSED | RC_CF_END_AFTER_SEND))) {
        uint64_t by = s->now_ms + s->cfg->message_timeout_ms;
        if (!c->deadline_ms || c->deadline_ms > by) rc_conn_set_deadline(s, c, by);
    }
    if (atomic_load_explicit(&s->srv->partial_bytes, memory_order_relaxed) > s->cfg->max_partial_bytes)
        rc_conn_enforce_partial_budget(s);
}

/* c held too much unfinished input, or held it too long: it goes, with a
 * clear answer (WebSocket 1008, HTTP `status`). */
static void close_for_input(struct rc_shard *s, struct rc_conn *c, int status, const char *why) {
    release_input(s, c);
    c->flags |= RC_CF_RESET;
    if (c->state == RC_CONN_WS && !(c->flags & RC_CF_CLOSE_SENT))
        ws_fail(s, c, RC_WS_CLOSE_POLICY, why);
    else if (c->state == RC_CONN_HTTP && !(c->flags & RC_CF_END_AFTER_SEND))
        rc_http_respond_error(s, c, status, why, NULL, false);
    else
        rc_conn_abort(s, c);
}

void rc_conn_enforce_partial_budget(struct rc_shard *s) {
    while (atomic_load_explicit(&s->srv->partial_bytes, memory_order_relaxed) > s->cfg->max_partial_bytes) {
        /* Holders of unfinished input all have a deadline, so they are on
         * the (short) deadline list. */
        struct rc_conn *big = NULL;
        for (struct rc_conn *c = s->timed.timed_next; c != &s->timed; c = c->timed_next)
            if (input_held(c) && (!big || input_held(c) > input_held(big))) big = c;
        if (!big) return; /* this shard holds none: the others close theirs */
        RC_METRIC_ADD(&s->metrics, partial_input_closes_total, 1);
        RC_INFO("conn %u: closed for holding %llu bytes of unfinished input while the node is over "
                "--max-partial-bytes %llu",
                big->idx, (unsigned long long)input_held(big), (unsigned long long)s->cfg->max_partial_bytes);
        close_for_input(s, big, 503, "server busy: unfinished input over the node's budget");
    }
}

static int carry_store(struct rc_shard *s, struct rc_conn *c, const uint8_t *p, size_t n, size_t keep) {
    /* keep: bytes already in carry that stay in front */
    size_t need = keep + n;
    if (need > c->carry_cap) {
        size_t cap = c->carry_cap ? c->carry_cap : 256;
        while (cap < need) cap *= 2;
        uint8_t *q = realloc(c->carry, cap);
        if (!q) return -ENOMEM;
        partial_charge(s, (int64_t)cap - (int64_t)c->carry_cap);
        c->carry = q;
        c->carry_cap = (uint32_t)cap;
    }
    memmove(c->carry + keep, p, n);
    c->carry_len = (uint32_t)need;
    return 0;
}

static void carry_drop(struct rc_shard *s, struct rc_conn *c) {
    partial_charge(s, -(int64_t)c->carry_cap);
    free(c->carry);
    c->carry = NULL;
    c->carry_len = c->carry_cap = 0;
}

void rc_conn_on_recv(struct rc_shard *s, struct rc_conn *c, uint8_t *data, size_t len) {
    if (c->tls) { /* liveness counts from the decrypted bytes (rc_conn_on_plain) */
        rc_tls_on_recv(s, c, data, len);
        return;
    }
    rc_conn_on_plain(s, c, data, len);
}

void rc_conn_on_plain(struct rc_shard *s, struct rc_conn *c, uint8_t *data, size_t len) {
    if (c->state == RC_CONN_DEAD || c->state == RC_CONN_LINGER || (c->flags & RC_CF_DECODER_DEAD))
        return; /* discarded */
    c->last_rx_s = s->clock_s; /* any client bytes count as liveness */
    c->flags &= ~RC_CF_PINGED;
    uint8_t *p = data;
    size_t n = len;
    if (c->carry_len) {
        if (len && carry_store(s, c, data, len, c->carry_len) < 0) {
            rc_conn_abort(s, c);
            return;
        }
        p = c->carry;
        n = c->carry_len;
    }
    size_t used = c->state == RC_CONN_HTTP ? http_process(s, c, p, n) : ws_process(s, c, p, n);
    if (c->state == RC_CONN_DEAD) return;
    size_t left = n - used;
    if (left == 0) {
        if (c->carry) carry_drop(s, c);
        track_unfinished(s, c);
        return;
    } else if (p == c->carry) {
        memmove(c->carry, c->carry + used, left);
        c->carry_len = (uint32_t)left;
        track_unfinished(s, c);
        return;
    } else if (carry_store(s, c, p + used, left, 0) < 0) {
        rc_conn_abort(s, c);
        return;
    }
    track_unfinished(s, c);
}
