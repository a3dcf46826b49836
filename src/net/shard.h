/*
 * shard.h — types shared by the shard loop (shard.c), the connection
 * lifecycle (conn.c) and the HTTP routes (routes.c). Internal to src/net.
 *
 * A shard owns a thread, an io_uring, a provided-buffer ring for recv, a
 * SO_REUSEPORT listener, its connections and their send queues. Every field
 * here is touched only by the shard's own thread, except `stop_requested`
 * and `wake_fd`, which the main thread uses to ask it to stop.
 */
#ifndef RINGCAST_NET_SHARD_H
#define RINGCAST_NET_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ringcast/config.h"
#include "ringcast/demo.h"
#include "ringcast/fanout.h"
#include "ringcast/http.h"
#include "ringcast/message.h"
#include "ringcast/metrics.h"
#include "ringcast/pubsub.h"
#include "ringcast/ring.h"
#include "ringcast/sendq.h"
#include "ringcast/ws.h"

#define RC_SEND_IOV_MAX 64
#define RC_PUBLISH_MAX_ITEMS 100000 /* messages in one POST /api/v1/publish */
#define RC_DRAIN_IDLE_GRACE_MS 1000 /* idle keep-alive connections stay this long into a drain */
#define RC_DRAIN_LINGER_MS 500      /* lingering after a final response, while draining */

/*
 * What one connection can cost at most (docs/operations.md has the table):
 *   user memory   ≤ sizeof(struct rc_conn)
 *                 + its send queue: --max-queue-bytes, each queued buffer
 *                   counted with RC_QUEUE_NODE_COST of bookkeeping on top
 *                   of its bytes (plus one shared broadcast frame that may
 *                   exceed the cap when the queue is empty)
 *                 + unfinished input: one message (--max-client-message-bytes
 *                   on /ws, --max-message-bytes on /echo) or one request head
 *                   and body (--max-head-bytes + --max-publish-bytes), all of
 *                   it inside the node's --max-partial-bytes budget and
 *                   --message-timeout-ms deadline
 *                 + TLS: wolfSSL's session until the hand-off, one record
 *   kernel memory ≤ 2 × (--sndbuf + --rcvbuf) (Linux doubles SO_SNDBUF and
 *                   SO_RCVBUF for its bookkeeping); a socket that takes no
 *                   bytes for --stall-timeout-s is reset.
 */
#define RC_QUEUE_NODE_COST 64          /* bytes a queued buffer costs beyond its own */
#define RC_HTTP_PAUSE_BYTES (64u << 10) /* HTTP: no request is parsed while more than this is unsent */
#define RC_INFLATE_PER_S_MESSAGES 16    /* /ws: inflated bytes a second, in messages of the size cap */
#define RC_ADMIN_MAX_CONNS 64          /* the admin listener's own cap: past it the oldest goes */
#define RC_REFUSED_MAX 32              /* refused sockets lingering per shard so their 503 arrives */
#define RC_REFUSED_LINGER_MS 1000

enum rc_conn_state {
    RC_CONN_HTTP,     /* reading a request head (and body) */
    RC_CONN_WS,       /* upgraded: WebSocket frames */
    RC_CONN_CLOSING,  /* our close frame is queued or sent; waiting for the peer's */
    RC_CONN_LINGER,   /* write side shut after a final response; discarding input until EOF */
    RC_CONN_DEAD,     /* cancelling; freed when the last completion arrives */
};

enum rc_conn_flag {
    RC_CF_RECV_ARMED = 1u << 0,   /* a multishot recv is in flight */
    RC_CF_SENDING = 1u << 1,      /* a SENDMSG is in flight */
    RC_CF_DIRTY = 1u << 2,        /* on the shard's flush list */
    RC_CF_CLOSE_SENT = 1u << 3,   /* a close frame was queued */
    RC_CF_CLOSE_RCVD = 1u << 4,   /* the peer's close frame arrived */
    RC_CF_END_AFTER_SEND = 1u << 5, /* when the queue drains: shut down (LINGER) or close */
    RC_CF_DECODER_DEAD = 1u << 6, /* a protocol error: ignore every further byte */
    RC_CF_PEER_EOF = 1u << 7,     /* recv saw EOF */
    RC_CF_FIREHOSE = 1u << 8,     /* subscribed to "*": gets every topic's frames */
    RC_CF_PINGED = 1u << 9,       /* a liveness ping went out since the client's last bytes */
    RC_CF_ADMIN = 1u << 10,       /* accepted on --admin-listen: not counted against --max-conns */
    RC_CF_READ_PAUSED = 1u << 11, /* HTTP backpressure: recv cancelled until the queue drains */
    RC_CF_RESET = 1u << 12,       /* close with a reset: a stalled or abusive peer's buffers go at once */
    RC_CF_PUB_WAIT = 1u << 13,    /* a publish waits for Redis' answer: nothing more is parsed */
    RC_CF_PEER_KNOWN = 1u << 14,  /* trust.c looked at the peer's address … */
    RC_CF_PEER_LOOPBACK = 1u << 15, /* … and it is loopback */
};

/* What an upgraded connection does with its messages. */
enum rc_endpoint {
    RC_EP_NONE = 0,
    RC_EP_ECHO, /* --echo's /echo */
    RC_EP_WS,   /* /ws: the JSON subscribe protocol (seeds 002 and 001) */
};

struct rc_send_ctx {
    struct rc_send_ctx *next_free;
    struct msghdr msg;
    struct iovec iov[RC_SEND_IOV_MAX];
};

struct rc_conn {
    int fd;
    uint32_t idx; /* slot in shard->conns */
    uint32_t gen; /* generation of the slot, in every user_data */
    uint8_t state;
    uint8_t endpoint;
    uint16_t flags;
    uint16_t inflight; /* io_uring requests not yet completed */
    uint16_t sending_nodes; /* queue nodes the SENDMSG in flight covers: never dropped */
    uint8_t topic_key;      /* enum rc_topic_key the client last used, for acks */
    uint8_t pmd_bits;       /* permessage-deflate negotiated: our window bits (8..15); 0 = off */
    uint16_t last_tx_s;     /* shard clock (s, mod 2^16) the socket last took bytes or output became pending: stalls */
    struct rc_ws_decoder dec;

    /* Bytes of an incomplete request head, frame header or control frame,
     * carried to the next recv. NULL while empty (the usual case). */
    uint8_t *carry;
    uint32_t carry_len, carry_cap;

    /* The message (or HTTP body) being assembled. msg_buf holds
     * RC_WS_MAX_HEADER bytes of headroom before the payload so an echo can
     * put its frame header in front without copying. */
    uint8_t *msg_buf;
    uint64_t msg_len, msg_cap;
    uint32_t inflated;      /* /ws: bytes inflated in second inflate_s of the shard clock */
    uint16_t inflate_s;

    struct rc_sendq sq;
    struct rc_send_ctx *sctx; /* while RC_CF_SENDING */

    struct rc_conn *next_dirty;
    struct rc_conn *timed_prev, *timed_next; /* on the shard's deadline list */
    uint64_t deadline_ms;                    /* 0 = none */

    /* /ws subscribers */
    struct rc_subset subs;  /* topics, in subscription order */
    uint32_t ws_pos;        /* index in shard->wsconns */
    uint32_t last_rx_s;     /* shard clock (s) of the last bytes received: liveness */
    struct rc_tls *tls;     /* TLS state (tls.c) on the --tls-listen port; NULL on plain TCP */
};

struct rc_server;

struct rc_shard {
    int id;
    struct rc_server *srv;
    const struct rc_config *cfg;
    pthread_t thread;
    struct io_uring ring;
    unsigned ring_flags;
    struct rc_bufring rbufs;
    int listen_fd;
    bool accept_armed;
    int tls_listen_fd;            /* --tls-listen, -1 without */
    bool tls_accept_armed;
    struct WOLFSSL_CTX *tls_ctx;  /* this shard's reference to the current certificate context */
    char *tls_plain;              /* decrypted bytes of one wolfSSL_read */
    uint8_t *tls_stage;           /* small queued buffers gathered into one record */
    bool accept_paused; /* fd exhaustion: re-armed on the next tick */
    int admin_fd;                 /* --admin-listen (shard 0 only), -1 without */
    bool admin_accept_armed;
    uint32_t admin_conns;
    struct rc_conn *admin[RC_ADMIN_MAX_CONNS]; /* its open admin connections, oldest first */
    uint32_t nfresh;              /* slots ever used: free_slots holds the freed ones below it */
    struct { int fd; uint64_t until_ms; } refused[RC_REFUSED_MAX]; /* 503 sent, closed at until_ms */
    uint32_t nrefused;

    int wake_fd; /* eventfd: the main thread writes to ask for a stop */
    uint64_t wake_val;
    atomic_bool stop_requested;
    bool draining;     /* phase 1: not accepting, window flushed */
    bool drain_closed; /* phase 2: every shard flushed; 1001 sent */
    uint64_t drain_deadline_ms;
    bool timer_armed;
    struct __kernel_timespec tick;

    struct rc_conn **conns; /* slot table, max_conns_per_shard entries */
    struct rc_claims **claims; /* by slot: a WebSocket client's verified token (--jwt-secret only, else NULL) */
    uint32_t *gens;         /* generation per slot, survives the conn */
    uint32_t *free_slots;   /* stack of free slot indices */
    uint32_t nfree;
    uint32_t nslots;
    uint32_t nconns;
    uint32_t inflight_shard; /* accept/timer/wake requests in flight */

    struct rc_redis *redis;        /* --redis: this shard's link (shard 0: srv->redis, the full one; else publisher-only) */
    atomic_int redis_health;       /* that link's enum rc_redis_health, read by /readyz on any shard */
    char redis_why[160];           /* why it refuses publishes, written before redis_health says so */
    struct rc_pubwait *pubwaits; /* routes.c: publish requests waiting for Redis' answers, by slot */
    uint32_t npubwaits, pubwaits_free; /* slots allocated; head of the free list (UINT32_MAX: none) */

    struct rc_conn *dirty; /* connections with queued bytes and no send in flight */
    struct rc_conn timed;  /* sentinel of the deadline list */

    struct rc_sendq_pool sq_pool;
    struct rc_send_ctx *free_sctx;

    struct rc_http_limits http_limits;
    uint64_t now_ms;   /* refreshed once per loop pass */
    uint64_t start_ms;
    uint32_t clock_s;  /* seconds since start, for liveness */
    uint64_t next_sweep_ms;
    bool trim_wanted;      /* a connection freed a large buffer: memory may go back to the system */
    uint64_t next_trim_ms; /* when it may next */
    uint64_t rx_touched;   /* recv buffer bytes (whole pages) filled since the last trim */
    uint64_t rx_recent;    /* ... in the current 2 s period: input has calmed when this is small */

    /* Broadcast engine */
    struct rc_topic_table topics;
    uint64_t firehose_hash; /* rc_topic_hash("*"), looked up for every frame */
    struct rc_view_pool views;
    struct rc_inbox inbox;          /* woken through wake_fd */
    struct rc_msg **out_pub;        /* per destination shard: publish records it owns */
    struct rc_msg **out_frames;     /* per destination shard: frames for its subscribers */
    struct rc_topic *dirty_topics;  /* owned topics with a frame in the current window */
    bool window_armed;
    struct __kernel_timespec window_ts;
    struct rc_conn **wsconns;       /* every /ws connection (broadcast targets) */
    uint32_t nws, wscap;

    /* --demo: the demo topics this shard owns */
    struct rc_demo demo;
    unsigned *demo_owned;
    unsigned ndemo_owned, demo_next;
    double demo_rate; /* messages/s for this shard's share */
    uint64_t demo_start_ns, demo_made;
    struct __kernel_timespec demo_ts;
    char *demo_buf;
    size_t demo_buf_cap;

    /* permessage-deflate: one compressor and one inflater per shard */
    struct rc_deflater *deflater;
    struct rc_inflater *inflater;
    uint8_t *deflate_scratch;
    size_t deflate_scratch_cap;
    uint8_t *inflate_buf; /* the largest endpoint message size seen, allocated on first use */
    size_t inflate_cap;

    _Alignas(64) struct rc_metrics metrics;

    /* start-up hand-shake with the main thread */
    int start_status;
    atomic_int started;
};

struct rc_server {
    struct rc_config cfg;
    unsigned nshards;
    struct rc_shard *shards;
    atomic_bool draining; /* readiness: false once a stop was requested */
    char **conflate;      /* --conflate globs, NULL-terminated */
    atomic_uint pmd_firehose; /* firehose subscribers that negotiated compression, all shards */
    atomic_uint pmd_ws;       /* /ws connections that negotiated compression, all shards */
    atomic_uint drain_flushed; /* shards that flushed their window and outboxes for a drain */
    struct rc_redis *redis;    /* --redis: the link, run by shard 0; NULL without Redis */
    atomic_bool redis_up;      /* the link is established: publishes may go through it */
    atomic_int redis_hold;     /* subscriptions announced or sent, not yet confirmed: PUB sockets hold their bytes */
    atomic_uint client_conns;  /* connections counted against --max-conns, all shards */
    atomic_uint_fast64_t partial_bytes; /* unfinished input held, all shards (--max-partial-bytes) */
    atomic_uint refused_unlogged;       /* refusals since the last log line */
    atomic_uint_fast64_t refused_log_ms; /* when that line was written */
    struct WOLFSSL_CTX *tls_ctx; /* main thread's reference to the current TLS context */
    struct rc_trust *trust;      /* trust.c: tokens, origins, topic policy */
};

/* trust.c: who may do what (see the top of that file). Each check returns
 * 0 when allowed, else the HTTP status to answer with and why. */
struct rc_http_request;
struct rc_claims;
int rc_trust_init(struct rc_server *srv, char *err, size_t errcap); /* main thread, at start */
int rc_trust_reload(struct rc_server *srv);                          /* main thread, SIGHUP */
void rc_trust_free(struct rc_server *srv);
/* A publish (POST /api/v1/publish, /ws/test): 403 for a disallowed Origin
 * or a non-loopback peer without tokens configured, 401 for a missing or
 * wrong token, 415 for a body that is not application/json. */
int rc_trust_publish(const struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                     size_t body_len, const char **why);
/* An operator endpoint: 401 without the --admin-token (when one is set). */
int rc_trust_admin(const struct rc_shard *s, const struct rc_http_request *req);
/* A WebSocket upgrade: 403 for a disallowed Origin, 401 for a presented
 * token that does not verify; *claims gets a verified token's claims (the
 * caller owns them) or NULL. */
int rc_trust_upgrade(const struct rc_shard *s, const struct rc_http_request *req, struct rc_claims **claims,
                     char *why, size_t whycap);
/* A WebSocket upgrade on the admin listener (the dashboard's live view):
 * 401 without the admin token, 403 from a page of another origin. */
int rc_trust_admin_upgrade(const struct rc_shard *s, const struct rc_http_request *req, char *why, size_t whycap);
/* A subscription to topic (firehose "*" included) by a connection holding
 * claims (maybe NULL): NULL when allowed, else the reason for the client. */
const char *rc_trust_subscribe(const struct rc_shard *s, const struct rc_claims *claims, const char *topic,
                               size_t len);

/* redis_link.c: the Redis link (see the top of that file). Main thread:
 * create/destroy; everything else on shard 0. */
struct rc_redis;
/* pub_only: a shard's own publisher link (PUB sockets only, answers its
 * shard's tickets without a hop through shard 0); shard 0 runs the full one. */
struct rc_redis *rc_redis_create(struct rc_server *srv, const char *url, bool sharded, bool pub_only, char *err,
                                 size_t errcap);
void rc_redis_destroy(struct rc_redis *r);
void rc_redis_start(struct rc_redis *r, struct rc_shard *s0);
void rc_redis_stop(struct rc_redis *r);
void rc_redis_on_cqe(struct rc_redis *r, const struct io_uring_cqe *cqe);
void rc_redis_flush(struct rc_redis *r);
void rc_redis_tick(struct rc_redis *r);
void rc_redis_interest(struct rc_redis *r, const char *topic, size_t len, int delta);
/* Sends PUBLISH (SPUBLISH) and, when Redis has answered it, answers the
 * publisher behind ticket through rc_publish_answered: 200, or 503 when
 * refused (link down, Redis not keeping up, a Redis error, the link lost),
 * 504 when Redis did not answer within --redis-timeout-ms. Every ticket is
 * answered exactly once, possibly before this returns. */
void rc_redis_publish(struct rc_redis *r, uint64_t ticket, const char *topic, size_t len, const void *data,
                      size_t dlen, bool broadcast);
bool rc_redis_sharded(const struct rc_redis *r);
bool rc_redis_up(const struct rc_redis *r); /* established: publishes may go (the link's own shard) */
/* What readiness says of a Redis link (shard->redis_health). */
enum rc_redis_health { RC_REDIS_DOWN = 0, RC_REDIS_READY, RC_REDIS_STALLED, RC_REDIS_REFUSING };
/* Any thread: the node's Redis health for /readyz, the worst of every
 * shard's link. */
enum rc_redis_health rc_redis_node_health(struct rc_server *srv);

/* conn.c */
struct rc_conn *rc_conn_open(struct rc_shard *s, int fd, bool tls, bool admin);
/* The admin listener is full: its oldest connection is reset to make room,
 * so whoever holds it open cannot lock the probes out. */
void rc_conn_evict_oldest_admin(struct rc_shard *s);
/* Plaintext input: the recv path on plain TCP, and tls.c after decryption. */
void rc_conn_on_plain(struct rc_shard *s, struct rc_conn *c, uint8_t *data, size_t len);
/* Bytes still to leave: a send in flight, queued buffers, or ciphertext. */
bool rc_conn_output_pending(const struct rc_conn *c);
void rc_conn_on_recv(struct rc_shard *s, struct rc_conn *c, uint8_t *data, size_t len);
void rc_conn_on_send(struct rc_shard *s, struct rc_conn *c, int res);
void rc_conn_on_eof(struct rc_shard *s, struct rc_conn *c);
void rc_conn_abort(struct rc_shard *s, struct rc_conn *c);
void rc_conn_complete(struct rc_shard *s, struct rc_conn *c); /* one request of c finished */
void rc_conn_flush(struct rc_shard *s, struct rc_conn *c);
void rc_conn_arm_recv(struct rc_shard *s, struct rc_conn *c);
int rc_conn_queue(struct rc_shard *s, struct rc_conn *c, struct rc_buf *b);
void rc_conn_ws_close(struct rc_shard *s, struct rc_conn *c, uint16_t code, const char *reason);
void rc_conn_ws_ping(struct rc_shard *s, struct rc_conn *c); /* liveness probe (idle sweep) */
void rc_conn_set_deadline(struct rc_shard *s, struct rc_conn *c, uint64_t deadline_ms);
void rc_conn_on_deadline(struct rc_shard *s, struct rc_conn *c);
void rc_conn_begin_drain(struct rc_shard *s, struct rc_conn *c);
/* A request of c waits for an answer from elsewhere (a publish through
 * Redis): reading and parsing stop until rc_conn_http_release(), which
 * the caller calls after queueing the response. */
void rc_conn_http_hold(struct rc_shard *s, struct rc_conn *c);
void rc_conn_http_release(struct rc_shard *s, struct rc_conn *c);
/* What c's send queue costs against --max-queue-bytes. */
uint64_t rc_conn_queue_cost(const struct rc_conn *c);
/* The periodic sweep's look at c: liveness ping, idle close, stalled socket. */
void rc_conn_sweep(struct rc_shard *s, struct rc_conn *c);
/* Over --max-partial-bytes: closes this shard's largest holders of
 * unfinished input until the node is back under it. */
void rc_conn_enforce_partial_budget(struct rc_shard *s);

/* conn.c: queues a view of a broadcast frame on a subscriber, applying the
 * queue cap (conflation, then slow-consumer close). */
void rc_conn_deliver(struct rc_shard *s, struct rc_conn *c, struct rc_buf *view);

/* shard.c: a connection that negotiated compression subscribed to (+1) or
 * left (-1) topic t: keeps the owner told whether to build deflated
 * variants of t's frames. */
void rc_shard_pmd_interest(struct rc_shard *s, struct rc_topic *t, int delta);

/* shard.c: publishes one message (HTTP, /ws/test, Redis, demo) from this
 * shard, after the one check every frame passes (rc_message_check, unless
 * m->checked): appended to the topic's frame when this shard owns the topic,
 * else sent to the owner at the end of the loop pass. Broadcasts are owned
 * by shard 0. Returns 0, -EINVAL with *why set, or -ENOMEM. */
int rc_shard_publish(struct rc_shard *s, struct rc_message *m, const char **why);

/* shard.c, with --redis: this shard gained its first (+1) or lost its last
 * (-1) subscriber of topic t ("*" = the firehose): shard 0's link follows. */
void rc_shard_redis_interest(struct rc_shard *s, const struct rc_topic *t, int delta);

/* shard.c, with --redis: publishes through this shard's Redis link after
 * the same check; the link answers ticket (rc_redis_publish). Returns 0, or
 * -EINVAL with *why set (nothing sent, nothing answered). */
int rc_shard_redis_publish(struct rc_shard *s, struct rc_message *m, uint64_t ticket, const char **why);

/* routes.c: the answer for one PUBLISH of a request waiting on this shard
 * (status 200, 503 or 504, with Redis' or the link's words in text). A
 * ticket names the request: its wait slot's generation (24 bits) and index;
 * the shard's own Redis link carries it and answers it there. */
void rc_publish_answered(struct rc_shard *s, uint64_t ticket, int status, const char *text, size_t len);
/* routes.c: frees what the shard's waiting publish requests hold (teardown). */
void rc_publish_waits_free(struct rc_shard *s);

/* tls.c (see the top of that file) */
struct WOLFSSL_CTX;
void rc_tls_global_init(void);
void rc_tls_global_cleanup(void);
struct WOLFSSL_CTX *rc_tls_ctx_load(const char *cert, const char *key, char *err, size_t errcap); /* main thread */
int rc_tls_ctx_hold(struct WOLFSSL_CTX *ctx);
void rc_tls_ctx_release(struct WOLFSSL_CTX *ctx);
int rc_tls_conn_init(struct rc_shard *s, struct rc_conn *c);
void rc_tls_conn_free(struct rc_shard *s, struct rc_conn *c);
void rc_tls_on_recv(struct rc_shard *s, struct rc_conn *c, const uint8_t *data, size_t len);
void rc_tls_flush(struct rc_shard *s, struct rc_conn *c);
bool rc_tls_on_send(struct rc_shard *s, struct rc_conn *c, int res);
bool rc_tls_out_pending(const struct rc_conn *c);
bool rc_tls_handshake_done(const struct rc_conn *c);
/* Queues a close_notify alert once; true when there is now output to wait for. */
bool rc_tls_close_notify(struct rc_shard *s, struct rc_conn *c);
/* The peer closed: counted as a failed handshake when it was mid-way. */
void rc_tls_on_eof(struct rc_shard *s, struct rc_conn *c);

/* dashboard.c: the page GET / serves. */
extern const char rc_dashboard_html[];
extern const size_t rc_dashboard_html_len;

/* routes.c: handles one complete request (head + body). Returns bytes of
 * input the request used beyond what the caller already consumed (always 0
 * today) or a negative errno when the connection was torn down. */
void rc_http_route(struct rc_shard *s, struct rc_conn *c, const struct rc_http_request *req,
                   const uint8_t *body, size_t body_len);
/* Queues a response; ends the connection after it when !keep_alive. */
void rc_http_respond(struct rc_shard *s, struct rc_conn *c, int status, const char *content_type,
                     const char *extra_headers, const void *body, size_t body_len, bool keep_alive);
void rc_http_respond_error(struct rc_shard *s, struct rc_conn *c, int status, const char *message,
                           const char *extra_headers, bool keep_alive);

#endif
