/*
 * ringcast/config.h — the server's configuration: command-line flags, each
 * also readable from the environment as RINGCAST_<NAME> (dashes become
 * underscores), plus the seeds' PORT. Flags win over the environment.
 *
 * Parsed once by the main thread before any shard starts; read-only after.
 */
#ifndef RINGCAST_CONFIG_H
#define RINGCAST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RINGCAST_VERSION "0.1.0"

struct rc_config {
    struct sockaddr_storage listen_addr;
    socklen_t listen_addr_len;
    char listen_text[96]; /* as given, for logs */

    unsigned shards;            /* --shards, default: online CPUs */
    bool echo;                  /* --echo: /echo endpoint */
    uint64_t max_message_bytes; /* --max-message-bytes, default 16 MiB */
    uint64_t max_queue_bytes;   /* --max-queue-bytes, default 1 MiB */
    uint64_t max_publish_bytes; /* --max-publish-bytes, HTTP request bodies, default 1 MiB */
    size_t max_head_bytes;      /* --max-head-bytes, default 8192 */
    size_t max_headers;         /* --max-headers, default 64 */
    size_t max_line_bytes;      /* --max-line-bytes, default 4096 */
    unsigned max_conns;         /* --max-conns, per process; default from RLIMIT_NOFILE */
    unsigned drain_s;           /* --drain-s, graceful shutdown budget, default 10 */
    unsigned request_timeout_ms;/* --request-timeout-ms, HTTP head/body and keep-alive idle, default 10000 */
    unsigned close_timeout_ms;  /* --close-timeout-ms, wait for the peer's close frame / FIN, default 3000 */
    unsigned ring_entries;      /* --ring-entries, SQ size per shard, default 4096 */
    unsigned recv_buf_count;    /* --recv-bufs, provided recv buffers per shard, default 1024 */
    unsigned recv_buf_size;     /* --recv-buf-size, bytes each, default 16384 */
    int log_level;              /* --log-level error|warn|info|debug */

    /* Broadcast engine */
    unsigned batch_ms;           /* --batch-ms, batch window; 0 = end of each loop pass */
    unsigned max_topics_per_conn;/* --max-topics-per-conn, default 1024 */
    const char *conflate;        /* --conflate, comma-separated globs of conflatable topics (demo:* always) */
    unsigned idle_sweep_s;       /* --idle-sweep-s, default 30 */
    unsigned idle_timeout_s;     /* --idle-timeout-s, default 90 */
    bool demo;                   /* --demo */
    unsigned demo_rate;          /* --demo-rate, messages/s over all demo topics, default 1000 */
    unsigned demo_size;          /* --demo-size, bytes per demo message, default 256 */
    unsigned demo_topics;        /* --demo-topics, default 32 */

    /* permessage-deflate */
    bool deflate;                /* --deflate on|off, default on */
    unsigned deflate_min_bytes;  /* --deflate-min-bytes, default 256 */
    unsigned deflate_level;      /* --deflate-level, default 1 */

    /* TLS: a second listener (wss://, https://); same layout as listen_* */
    struct sockaddr_storage tls_listen_addr; /* --tls-listen ADDR:PORT */
    socklen_t tls_listen_addr_len;           /* 0 = no TLS listener */
    char tls_listen_text[96];
    const char *tls_cert;                    /* --tls-cert PEM (chain: leaf first) */
    const char *tls_key;                     /* --tls-key PEM */
    unsigned tls_handshake_timeout_ms;       /* --tls-handshake-timeout-ms, default 10000 */

    /* Bounds on what one client can cost (docs/operations.md, "What one
     * connection can cost") */
    uint64_t max_client_message_bytes; /* --max-client-message-bytes: /ws and dialect paths, default 64 KiB */
    uint64_t max_partial_bytes;  /* --max-partial-bytes: node budget for unfinished input, default 256 MiB */
    unsigned message_timeout_ms; /* --message-timeout-ms: unfinished WebSocket message or HTTP body, default 10000 */
    unsigned stall_timeout_s;    /* --stall-timeout-s: socket took no bytes this long → closed, default 30 */
    uint64_t sndbuf;             /* --sndbuf: SO_SNDBUF of client sockets (0 = kernel autotuning), default 128 KiB */
    uint64_t rcvbuf;             /* --rcvbuf: SO_RCVBUF of client sockets (0 = kernel autotuning), default 128 KiB */
    bool reuse_port;             /* --reuse-port: share listening addresses with another process */

    /* The operator listener: probes, metrics, dashboard; never counted
     * against --max-conns. Same layout as listen_*. */
    struct sockaddr_storage admin_listen_addr; /* --admin-listen ADDR:PORT|off */
    socklen_t admin_listen_addr_len;           /* 0 = off */
    char admin_listen_text[96];

    /* Redis */
    const char *redis;           /* --redis URL (also REDIS_URL); NULL = single node */
    bool redis_sharded;          /* --redis-sharded: Redis Cluster SSUBSCRIBE/SPUBLISH */
    unsigned redis_timeout_ms;   /* --redis-timeout-ms: a PUBLISH unanswered this long → 504, link dropped; default 2000 */

    /* Trust (docs/operations.md, "Who may do what"). Lists are comma-separated;
     * a repeated flag adds to its list. */
    const char *publish_token;      /* --publish-token: accepted publish tokens; NULL = none */
    const char *publish_token_file; /* --publish-token-file: more of them, one per line, re-read on SIGHUP */
    bool publish_open;              /* --publish-open: anyone may publish without a token */
    const char *admin_token;        /* --admin-token: guards /metrics, the dashboard, operator endpoints */
    const char *allowed_origins;    /* --allowed-origins: browser origins allowed (WebSocket paths, publish) */
    int firehose;                   /* --firehose allow|deny|token: RC_FIREHOSE_* */
    const char *private_topics;     /* --private-topics: globs only a token's claims open */
    const char *jwt_secret;         /* --jwt-secret (also JWT_SECRET): HS256 key of client tokens */

    /* Room for the lists a repeated flag joins ("a" + "b" → "a,b"). The
     * joined strings point in here: a copy of the configuration must not
     * outlive the one it was copied from (main's lives as long as the
     * process). */
    char joined[4096];
    size_t joined_len;
};

enum { RC_FIREHOSE_ALLOW = 0, RC_FIREHOSE_DENY, RC_FIREHOSE_TOKEN };

/*
 * Fills *cfg from defaults, the environment, then argv. Returns 0 on
 * success, 1 when --help or --version was handled (the caller exits 0), or
 * -EINVAL after printing a clear message naming the bad flag to stderr.
 */
int rc_config_parse(struct rc_config *cfg, int argc, char **argv);

/* Parses "ADDR:PORT", "[v6]:PORT" or ":PORT" into a socket address.
 * Returns 0 or -EINVAL. */
int rc_parse_listen_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len);

#endif
