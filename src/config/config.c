/*
 * config.c — flag and environment parsing (see ringcast/config.h).
 *
 * One table describes every option: its flag, its kind, where it lands in
 * struct rc_config, and its help text, so --help, the environment names and
 * the parser can never disagree. Main thread, start-up only.
 */
#include "ringcast/config.h"
#include "ringcast/redis.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "ringcast/util.h"

enum opt_kind { OPT_BOOL, OPT_UINT, OPT_SIZE, OPT_LISTEN, OPT_LOGLEVEL, OPT_STRING, OPT_LIST, OPT_FIREHOSE };

struct opt {
    const char *name; /* flag without the leading dashes */
    enum opt_kind kind;
    size_t offset;
    size_t width; /* of the target field, for OPT_UINT / OPT_SIZE */
    uint64_t min, max;
    const char *help;
};

#define F(field) offsetof(struct rc_config, field), sizeof(((struct rc_config *)0)->field)

static const struct opt opts[] = {
    {"listen", OPT_LISTEN, F(listen_addr), 0, 0, "ADDR:PORT of the plain ws:// and HTTP listener (default 0.0.0.0:8080; env PORT sets the port)"},
    {"shards", OPT_UINT, F(shards), 1, 256, "shard threads, one io_uring each (default: online CPUs)"},
    {"echo", OPT_BOOL, F(echo), 0, 1, "serve /echo, a WebSocket endpoint echoing every message (conformance testing)"},
    {"max-message-bytes", OPT_SIZE, F(max_message_bytes), 125, 1u << 30, "largest client message; bigger closes with 1009 (default 16777216)"},
    {"max-queue-bytes", OPT_SIZE, F(max_queue_bytes), 4096, 1ull << 32, "per-connection send queue cap (default 1048576)"},
    {"max-publish-bytes", OPT_SIZE, F(max_publish_bytes), 0, 1u << 30, "largest HTTP request body (publish); bigger gets 413, unread (default 1048576)"},
    {"max-head-bytes", OPT_SIZE, F(max_head_bytes), 256, 1u << 20, "largest HTTP request head; bigger gets 431 (default 8192)"},
    {"max-headers", OPT_SIZE, F(max_headers), 1, 100, "most HTTP request headers; more gets 431 (default 64)"},
    {"max-line-bytes", OPT_SIZE, F(max_line_bytes), 64, 1u << 20, "longest request or header line; longer gets 414/431 (default 4096)"},
    {"max-conns", OPT_UINT, F(max_conns), 1, 10000000, "most concurrent connections (default: RLIMIT_NOFILE minus a reserve)"},
    {"drain-s", OPT_UINT, F(drain_s), 0, 3600, "seconds SIGTERM/SIGINT waits for clients to close before exiting (default 10)"},
    {"request-timeout-ms", OPT_UINT, F(request_timeout_ms), 100, 3600000, "HTTP request and keep-alive idle timeout (default 10000)"},
    {"close-timeout-ms", OPT_UINT, F(close_timeout_ms), 10, 600000, "wait for the peer's close after ours (default 3000)"},
    {"ring-entries", OPT_UINT, F(ring_entries), 64, 32768, "io_uring submission queue size per shard (default 4096)"},
    {"recv-bufs", OPT_UINT, F(recv_buf_count), 16, 32768, "provided receive buffers per shard, a power of two (default 1024)"},
    {"recv-buf-size", OPT_UINT, F(recv_buf_size), 1024, 1u << 20, "bytes per provided receive buffer (default 16384)"},
    {"log-level", OPT_LOGLEVEL, F(log_level), 0, 0, "error, warn, info or debug (default info)"},
    {"batch-ms", OPT_UINT, F(batch_ms), 0, 10000, "batch window in ms: a topic's messages in one window share one frame; 0 = end of each loop pass (default 0)"},
    {"max-topics-per-conn", OPT_UINT, F(max_topics_per_conn), 1, 1000000, "most topics one connection may subscribe (default 1024)"},
    {"conflate", OPT_STRING, F(conflate), 0, 0, "comma-separated glob patterns of conflatable topics: a slow reader gets the latest frame instead of being closed (demo:* always)"},
    {"idle-sweep-s", OPT_UINT, F(idle_sweep_s), 1, 3600, "seconds between idle sweeps (default 30)"},
    {"idle-timeout-s", OPT_UINT, F(idle_timeout_s), 1, 86400, "close WebSocket connections silent this long; they get a ping at half of it (default 90)"},
    {"demo", OPT_BOOL, F(demo), 0, 1, "publish a synthetic market feed on topics demo:<SYMBOL>"},
    {"demo-rate", OPT_UINT, F(demo_rate), 1, 100000000, "demo messages per second over all demo topics (default 1000)"},
    {"demo-size", OPT_UINT, F(demo_size), 0, 1u << 20, "bytes per demo message (default 256)"},
    {"demo-topics", OPT_UINT, F(demo_topics), 1, 100000, "number of demo topics (default 32)"},
    {"deflate", OPT_BOOL, F(deflate), 0, 1, "on|off: negotiate permessage-deflate (RFC 7692); each frame is compressed once for all its subscribers (default on)"},
    {"deflate-min-bytes", OPT_UINT, F(deflate_min_bytes), 0, 1u << 30, "messages smaller than this go out uncompressed (default 256)"},
    {"deflate-level", OPT_UINT, F(deflate_level), 0, 12, "compression level of the deflate library (default 1)"},
    {"tls-listen", OPT_LISTEN, F(tls_listen_addr), 0, 0, "ADDR:PORT of a TLS listener (wss://, https://) beside the plain one; needs --tls-cert and --tls-key (default: none)"},
    {"tls-cert", OPT_STRING, F(tls_cert), 0, 0, "PEM certificate for --tls-listen, or a chain file (leaf first); re-read on SIGHUP"},
    {"tls-key", OPT_STRING, F(tls_key), 0, 0, "PEM private key of --tls-cert; re-read on SIGHUP"},
    {"tls-handshake-timeout-ms", OPT_UINT, F(tls_handshake_timeout_ms), 100, 600000, "close TLS clients that have not finished their handshake in this time (default 10000)"},
    {"max-client-message-bytes", OPT_SIZE, F(max_client_message_bytes), 125, 1u << 30, "largest client message on /ws (the client protocols: control messages); bigger closes with 1009, and a compressed one is inflated no further (default 65536)"},
    {"max-partial-bytes", OPT_SIZE, F(max_partial_bytes), 65536, 1ull << 40, "node-wide budget for unfinished input (partial WebSocket messages, HTTP bodies); over it the largest holders are closed first (default 268435456)"},
    {"message-timeout-ms", OPT_UINT, F(message_timeout_ms), 100, 3600000, "an unfinished WebSocket message or HTTP body older than this is closed (1008) or answered 408 (default 10000)"},
    {"stall-timeout-s", OPT_UINT, F(stall_timeout_s), 1, 36000, "close a connection whose socket has taken no bytes of its pending output for this long (1008 \"stalled\") (default 30)"},
    {"sndbuf", OPT_SIZE, F(sndbuf), 0, 1u << 30, "SO_SNDBUF of client sockets, bounding the kernel memory one connection pins (the kernel doubles it; 0 = autotuning) (default 131072)"},
    {"rcvbuf", OPT_SIZE, F(rcvbuf), 0, 1u << 30, "SO_RCVBUF of client sockets (the kernel doubles it; 0 = autotuning) (default 131072)"},
    {"reuse-port", OPT_BOOL, F(reuse_port), 0, 1, "share the listening addresses with another process (hand a port over from an old to a new ringcast); without it an address in use fails the start"},
    {"admin-listen", OPT_LISTEN, F(admin_listen_addr), 0, 0, "ADDR:PORT of the operator listener (/metrics, /healthz, /readyz, dashboard), never counted against --max-conns; off to disable (default 127.0.0.1:9090)"},
    {"redis", OPT_STRING, F(redis), 0, 0, "redis://[[user]:password@]host[:port][/db]: nodes sharing this Redis deliver every publish once each (env REDIS_URL too; default: none, single node)"},
    {"redis-sharded", OPT_BOOL, F(redis_sharded), 0, 1, "--redis names a Redis Cluster node: use sharded pub/sub (SSUBSCRIBE/SPUBLISH)"},
    {"redis-timeout-ms", OPT_UINT, F(redis_timeout_ms), 100, 600000, "a publish Redis has not answered in this time gets 504 and the link is dropped as stalled (default 2000)"},
    {"publish-token", OPT_LIST, F(publish_token), 0, 0, "token required on every publish (Authorization: Bearer T or X-API-Key: T); repeat or comma-separate for rotation (default: none: publish from loopback only)"},
    {"publish-token-file", OPT_STRING, F(publish_token_file), 0, 0, "file of publish tokens, one per line ('#' comments), re-read on SIGHUP"},
    {"publish-open", OPT_BOOL, F(publish_open), 0, 1, "anyone who reaches a listener may publish without a token (explicit opt-out)"},
    {"admin-token", OPT_LIST, F(admin_token), 0, 0, "token required for /metrics, the dashboard and operator endpoints (Bearer, X-API-Key or ?token=); repeatable"},
    {"allowed-origins", OPT_LIST, F(allowed_origins), 0, 0, "browser origins allowed on WebSocket paths and publish: https://app.example.com, https://*.example.com or * (default: any on WebSocket paths, none on publish)"},
    {"firehose", OPT_FIREHOSE, F(firehose), 0, 0, "allow|deny|token: who may subscribe to every topic (\"*\", subscribe_all); token = a client token whose topics claim has \"*\" (default allow)"},
    {"private-topics", OPT_LIST, F(private_topics), 0, 0, "topic globs (orders:*,portfolio:*) only a client token whose topics claim covers them may subscribe; needs --jwt-secret"},
    {"jwt-secret", OPT_STRING, F(jwt_secret), 0, 0, "HMAC key of HS256 client tokens (?token= or Authorization: Bearer on the upgrade; env JWT_SECRET too)"},
};

static void usage(FILE *f) {
    fprintf(f,
            "ringcast %s: WebSocket broadcast engine on io_uring\n\n"
            "usage: ringcast [flags]\n\n"
            "Every flag can also be set in the environment as RINGCAST_<NAME>\n"
            "(e.g. RINGCAST_LISTEN=127.0.0.1:9000, RINGCAST_ECHO=1); flags win.\n\n",
            RINGCAST_VERSION);
    for (size_t i = 0; i < RC_ARRAY_LEN(opts); i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", opts[i].name, opts[i].kind == OPT_BOOL ? "" : " V");
        fprintf(f, "  %-26s %s\n", flag, opts[i].help);
    }
    fprintf(f, "  %-26s %s\n  %-26s %s\n", "--help", "this text", "--version", "print the version");
}

int rc_parse_listen_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len) {
    char host[64];
    const char *port_s;
    memset(ss, 0, sizeof *ss);
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host) return -EINVAL;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = 0;
        port_s = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host) return -EINVAL;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = 0;
        port_s = colon + 1;
    }
    char *endp;
    errno = 0;
    unsigned long port = strtoul(port_s, &endp, 10);
    if (errno || *port_s == 0 || *endp || port > 65535) return -EINVAL;
    if (host[0] == 0) strcpy(host, "0.0.0.0");
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return -EINVAL; /* names are not resolved: a blocking lookup has no place here */
}

/* Parses a size with an optional K/M/G suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s)) return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -EINVAL;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024ull * 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B' || *end == 'b') end++;
    if (*end == 'B') end++;
    if (*end) return -EINVAL;
    if (v > UINT64_MAX / mul) return -EINVAL;
    *out = v * mul;
    return 0;
}

static bool is_bool_word(const char *v) {
    static const char *const words[] = {"on", "off", "true", "false", "yes", "no", "1", "0"};
    for (size_t i = 0; i < RC_ARRAY_LEN(words); i++)
        if (!strcasecmp(v, words[i])) return true;
    return false;
}

static int apply(struct rc_config *cfg, const struct opt *o, const char *val, const char *source) {
    char *field = (char *)cfg + o->offset;
    switch (o->kind) {
    case OPT_BOOL: {
        bool v;
        if (!val || !strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") || !strcasecmp(val, "on"))
            v = true;
        else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no") || !strcasecmp(val, "off") || !*val)
            v = false;
        else {
            fprintf(stderr, "ringcast: %s: --%s takes no value or one of 1/0/true/false, got \"%s\"\n", source, o->name, val);
            return -EINVAL;
        }
        *(bool *)field = v;
        return 0;
    }
    case OPT_UINT:
    case OPT_SIZE: {
        uint64_t v;
        if (parse_size(val, &v) < 0 || v < o->min || v > o->max) {
            fprintf(stderr, "ringcast: %s: --%s wants a number from %llu to %llu, got \"%s\"\n", source,
                    o->name, (unsigned long long)o->min, (unsigned long long)o->max, val);
            return -EINVAL;
        }
        if (o->width == sizeof(uint64_t))
            *(uint64_t *)field = v;
        else
            *(unsigned *)field = (unsigned)v;
        return 0;
    }
    case OPT_LISTEN: {
        /* field is listen_addr, tls_listen_addr or admin_listen_addr; the
         * length and the text follow it in the same layout */
        socklen_t *len = (socklen_t *)(field + (offsetof(struct rc_config, listen_addr_len) -
                                                offsetof(struct rc_config, listen_addr)));
        char *text = field + (offsetof(struct rc_config, listen_text) - offsetof(struct rc_config, listen_addr));
        if (field != (char *)&cfg->listen_addr && (!strcasecmp(val, "off") || !*val)) {
            *len = 0; /* an optional listener, turned off */
            text[0] = 0;
            return 0;
        }
        if (rc_parse_listen_addr(val, (struct sockaddr_storage *)field, len) < 0) {
            fprintf(stderr, "ringcast: %s: --%s wants ADDR:PORT with a numeric address (e.g. 127.0.0.1:8080 or [::]:8080), got \"%s\"\n", source, o->name, val);
            return -EINVAL;
        }
        snprintf(text, sizeof cfg->listen_text, "%s", val);
        return 0;
    }
    case OPT_STRING:
        *(const char **)field = val;
        return 0;
    case OPT_LIST: { /* a repeated flag adds: kept as one comma-separated list */
        const char *old = *(const char **)field;
        if (!old || !*old) {
            *(const char **)field = val;
            return 0;
        }
        if (!*val) return 0;
        size_t n = strlen(old) + strlen(val) + 2;
        if (n > sizeof cfg->joined - cfg->joined_len) {
            fprintf(stderr, "ringcast: %s: --%s: the values given add up to more than %zu bytes\n", source, o->name,
                    sizeof cfg->joined);
            return -EINVAL;
        }
        char *joined = cfg->joined + cfg->joined_len;
        snprintf(joined, n, "%s,%s", old, val);
        cfg->joined_len += n;
        *(const char **)field = joined;
        return 0;
    }
    case OPT_FIREHOSE: {
        static const char *const names[] = {"allow", "deny", "token"};
        for (int i = 0; i < 3; i++)
            if (!strcasecmp(val, names[i])) {
                *(int *)field = i;
                return 0;
            }
        fprintf(stderr, "ringcast: %s: --firehose wants allow, deny or token, got \"%s\"\n", source, val);
        return -EINVAL;
    }
    case OPT_LOGLEVEL: {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (!strcasecmp(val, names[i])) {
                cfg->log_level = i;
                return 0;
            }
        fprintf(stderr, "ringcast: %s: --log-level wants error, warn, info or debug, got \"%s\"\n", source, val);
        return -EINVAL;
    }
    }
    return -EINVAL;
}

static void defaults(struct rc_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    rc_parse_listen_addr("0.0.0.0:8080", &cfg->listen_addr, &cfg->listen_addr_len);
    strcpy(cfg->listen_text, "0.0.0.0:8080");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->shards = n > 0 ? (unsigned)n : 1;
    cfg->max_message_bytes = 16u << 20;
    cfg->max_queue_bytes = 1u << 20;
    cfg->max_publish_bytes = 1u << 20;
    cfg->max_topics_per_conn = 1024;
    cfg->conflate = "";
    cfg->idle_sweep_s = 30;
    cfg->idle_timeout_s = 90;
    cfg->demo_rate = 1000;
    cfg->demo_size = 256;
    cfg->demo_topics = 32;
    cfg->deflate = true;
    cfg->deflate_min_bytes = 256;
    cfg->deflate_level = 1;
    cfg->max_head_bytes = 8192;
    cfg->max_headers = 64;
    cfg->max_line_bytes = 4096;
    cfg->drain_s = 10;
    cfg->request_timeout_ms = 10000;
    cfg->close_timeout_ms = 3000;
    cfg->ring_entries = 4096;
    cfg->recv_buf_count = 1024;
    cfg->recv_buf_size = 16384;
    cfg->log_level = RC_LOG_INFO;
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->max_client_message_bytes = 64u << 10;
    cfg->max_partial_bytes = 256u << 20;
    cfg->message_timeout_ms = 10000;
    cfg->stall_timeout_s = 30;
    cfg->sndbuf = 128u << 10;
    cfg->rcvbuf = 128u << 10;
    rc_parse_listen_addr("127.0.0.1:9090", &cfg->admin_listen_addr, &cfg->admin_listen_addr_len);
    strcpy(cfg->admin_listen_text, "127.0.0.1:9090");
    cfg->redis_timeout_ms = 2000;
    cfg->firehose = RC_FIREHOSE_ALLOW;
}

/* Two listeners collide when their ports match and either address is a
 * wildcard or both are the same. */
static bool same_port(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    uint16_t pa = a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port : ((const struct sockaddr_in *)a)->sin_port;
    uint16_t pb = b->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)b)->sin6_port : ((const struct sockaddr_in *)b)->sin_port;
    return pa == pb;
}

int rc_config_parse(struct rc_config *cfg, int argc, char **argv) {
    defaults(cfg);

    const char *port = getenv("PORT");
    if (port && *port) {
        char text[32];
        snprintf(text, sizeof text, "0.0.0.0:%s", port);
        if (apply(cfg, &opts[0], text, "environment PORT") < 0) return -EINVAL;
    }
    const char *redis_url = getenv("REDIS_URL"); /* the seeds' name; RINGCAST_REDIS and --redis win */
    if (redis_url && *redis_url) cfg->redis = redis_url;
    const char *jwt = getenv("JWT_SECRET"); /* seed 003's name; RINGCAST_JWT_SECRET and --jwt-secret win */
    if (jwt && *jwt) cfg->jwt_secret = jwt;
    for (size_t i = 0; i < RC_ARRAY_LEN(opts); i++) {
        char env[80] = "RINGCAST_";
        size_t k = strlen(env);
        for (const char *p = opts[i].name; *p && k < sizeof env - 1; p++)
            env[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[k] = 0;
        const char *v = getenv(env);
        if (v && apply(cfg, &opts[i], v, env) < 0) return -EINVAL;
    }

    bool cli_list_seen[RC_ARRAY_LEN(opts)] = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("ringcast %s\n", RINGCAST_VERSION);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "ringcast: unexpected argument \"%s\" (see --help)\n", a);
            return -EINVAL;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = NULL;
        for (size_t j = 0; j < RC_ARRAY_LEN(opts); j++)
            if (strlen(opts[j].name) == nlen && !strncmp(opts[j].name, name, nlen)) o = &opts[j];
        if (!o) {
            fprintf(stderr, "ringcast: unknown flag \"%s\" (see --help)\n", a);
            return -EINVAL;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val && o->kind == OPT_BOOL && i + 1 < argc && is_bool_word(argv[i + 1])) val = argv[++i];
        if (!val && o->kind != OPT_BOOL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "ringcast: --%s needs a value (see --help)\n", o->name);
                return -EINVAL;
            }
            val = argv[++i];
        }
        if (o->kind == OPT_LIST && !cli_list_seen[o - opts]) { /* the command line's list replaces the environment's */
            cli_list_seen[o - opts] = true;
            *(const char **)((char *)cfg + o->offset) = NULL;
        }
        if (apply(cfg, o, val, "command line") < 0) return -EINVAL;
    }

    if (cfg->recv_buf_count & (cfg->recv_buf_count - 1)) {
        fprintf(stderr, "ringcast: --recv-bufs must be a power of two, got %u\n", cfg->recv_buf_count);
        return -EINVAL;
    }
    if (cfg->max_headers > 100) cfg->max_headers = 100;
    if (cfg->tls_cert && !*cfg->tls_cert) cfg->tls_cert = NULL;
    if (cfg->tls_key && !*cfg->tls_key) cfg->tls_key = NULL;
    if (cfg->tls_listen_addr_len && (!cfg->tls_cert || !cfg->tls_key)) {
        fprintf(stderr, "ringcast: --tls-listen needs --tls-cert FILE and --tls-key FILE (PEM)\n");
        return -EINVAL;
    }
    if (cfg->tls_listen_addr_len && same_port(&cfg->listen_addr, &cfg->tls_listen_addr)) {
        /* SO_REUSEPORT would let both bind and split connections between them */
        fprintf(stderr, "ringcast: --tls-listen %s uses the port of --listen %s: give TLS its own port\n",
                cfg->tls_listen_text, cfg->listen_text);
        return -EINVAL;
    }
    if (cfg->admin_listen_addr_len && (same_port(&cfg->listen_addr, &cfg->admin_listen_addr) ||
                                       (cfg->tls_listen_addr_len && same_port(&cfg->tls_listen_addr, &cfg->admin_listen_addr)))) {
        fprintf(stderr, "ringcast: --admin-listen %s uses the port of another listener: give it its own port (or off)\n",
                cfg->admin_listen_text);
        return -EINVAL;
    }
    if (!cfg->tls_listen_addr_len && (cfg->tls_cert || cfg->tls_key)) {
        fprintf(stderr, "ringcast: --tls-cert/--tls-key given without --tls-listen ADDR:PORT\n");
        return -EINVAL;
    }
    if (cfg->redis && !*cfg->redis) cfg->redis = NULL;
    if (cfg->redis) {
        struct rc_redis_url url;
        char err[200];
        if (rc_redis_url_parse(cfg->redis, &url, err, sizeof err) < 0) {
            fprintf(stderr, "ringcast: --redis: %s\n", err);
            return -EINVAL;
        }
        if (cfg->redis_sharded && url.db) {
            fprintf(stderr, "ringcast: --redis-sharded: Redis Cluster has only database 0: drop /%u from the URL\n", url.db);
            return -EINVAL;
        }
    } else if (cfg->redis_sharded) {
        fprintf(stderr, "ringcast: --redis-sharded needs --redis URL (a cluster node)\n");
        return -EINVAL;
    }
    if (cfg->jwt_secret && !*cfg->jwt_secret) cfg->jwt_secret = NULL;
    if (cfg->private_topics && !*cfg->private_topics) cfg->private_topics = NULL;
    if (cfg->publish_token_file && !*cfg->publish_token_file) cfg->publish_token_file = NULL;
    if (!cfg->jwt_secret && (cfg->private_topics || cfg->firehose == RC_FIREHOSE_TOKEN)) {
        fprintf(stderr, "ringcast: %s needs --jwt-secret (or JWT_SECRET): only a verified client token can open it\n",
                cfg->private_topics ? "--private-topics" : "--firehose token");
        return -EINVAL;
    }
    if (cfg->max_conns == 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        rlim_t n = rl.rlim_cur > 64 ? rl.rlim_cur - 64 : 16;
        cfg->max_conns = n > 10000000 ? 10000000 : (unsigned)n;
    }
    return 0;
}
