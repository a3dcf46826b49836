/*
 * redis.c — the I/O-free parts of the Redis link: URL parsing, cluster
 * slots, RESP command buffers (see ringcast/redis.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ringcast/redis.h"

static int fail(char *err, size_t cap, const char *fmt, ...) {
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies p[0..n) %-decoded into out (NUL-terminated). */
static int decode(const char *p, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            int a = i + 1 < n ? hexval(p[i + 1]) : -1, b = i + 2 < n ? hexval(p[i + 2]) : -1;
            if (a < 0 || b < 0) return -1;
            c = (char)(a * 16 + b);
            i += 2;
        }
        if (c == 0 || k + 1 >= cap) return -1;
        out[k++] = c;
    }
    out[k] = 0;
    return 0;
}

int rc_redis_url_parse(const char *url, struct rc_redis_url *out, char *err, size_t errcap) {
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url || !*url) return fail(err, errcap, "empty Redis URL");
    if (!strncmp(url, "rediss://", 9))
        return fail(err, errcap, "rediss:// (TLS to Redis) is not supported: use redis:// on a trusted network");
    if (strncmp(url, "redis://", 8) != 0)
        return fail(err, errcap, "want redis://[[user]:password@]host[:port][/db], got \"%s\"", url);
    const char *p = url + 8;
    const char *end = p + strlen(p);
    if (strpbrk(p, "?#")) return fail(err, errcap, "query strings are not supported in the Redis URL");
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = NULL;
    for (const char *q = p; q < (slash ? slash : end); q++)
        if (*q == '@') auth_end = q; /* the last @ before the path: passwords may hold '@' %-encoded or not */
    if (auth_end) {
        const char *colon = memchr(p, ':', (size_t)(auth_end - p));
        if (!colon) return fail(err, errcap, "want user:password@ or :password@ before the host");
        if (decode(p, (size_t)(colon - p), out->user, sizeof out->user) < 0 ||
            decode(colon + 1, (size_t)(auth_end - colon - 1), out->password, sizeof out->password) < 0)
            return fail(err, errcap, "bad %%-encoding or length in the Redis URL's user or password");
        out->has_password = true;
        p = auth_end + 1;
    }
    const char *host_end = slash ? slash : end;
    const char *port_sep = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(host_end - p));
        if (!rb) return fail(err, errcap, "unclosed [ in the Redis URL's host");
        if ((size_t)(rb - p - 1) >= sizeof out->host || rb == p + 1) return fail(err, errcap, "bad IPv6 host");
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        if (rb + 1 < host_end) {
            if (rb[1] != ':') return fail(err, errcap, "junk after ] in the Redis URL's host");
            port_sep = rb + 1;
        }
    } else {
        port_sep = memchr(p, ':', (size_t)(host_end - p));
        const char *he = port_sep ? port_sep : host_end;
        if (he == p) return fail(err, errcap, "the Redis URL has no host");
        if ((size_t)(he - p) >= sizeof out->host) return fail(err, errcap, "the Redis URL's host is too long");
        memcpy(out->host, p, (size_t)(he - p));
        for (const char *q = out->host; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '.' ||
                  *q == '-' || *q == '_'))
                return fail(err, errcap, "bad character in the Redis URL's host \"%s\"", out->host);
    }
    if (port_sep) {
        unsigned long v = 0;
        const char *q = port_sep + 1;
        if (q == host_end) return fail(err, errcap, "empty port in the Redis URL");
        for (; q < host_end; q++) {
            if (*q < '0' || *q > '9') return fail(err, errcap, "bad port in the Redis URL");
            v = v * 10 + (unsigned long)(*q - '0');
            if (v > 65535) return fail(err, errcap, "port out of range in the Redis URL");
        }
        if (v == 0) return fail(err, errcap, "port 0 in the Redis URL");
        out->port = (uint16_t)v;
    }
    if (slash && slash + 1 < end) {
        unsigned long v = 0;
        for (const char *q = slash + 1; q < end; q++) {
            if (*q < '0' || *q > '9') return fail(err, errcap, "the Redis URL's path must be a database number");
            v = v * 10 + (unsigned long)(*q - '0');
            if (v > 100000) return fail(err, errcap, "database number out of range");
        }
        out->db = (unsigned)v;
    }
    return 0;
}

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial 0, as Redis Cluster
 * specifies for key slots. */
static uint16_t crc16(const char *p, size_t n) {
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned rc_redis_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        const char *close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close && close > open + 1) return crc16(open + 1, (size_t)(close - open - 1)) & 16383;
    }
    return crc16(key, len) & 16383;
}

static int reserve(struct rc_rbuf *b, size_t more) {
    if (b->head && b->head == b->len) b->head = b->len = 0;
    if (b->len + more <= b->cap) return 0;
    if (b->head) { /* compact before growing */
        memmove(b->data, b->data + b->head, b->len - b->head);
        b->len -= b->head;
        b->head = 0;
        if (b->len + more <= b->cap) return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int rc_rbuf_command(struct rc_rbuf *b, int argc, const char **argv, const size_t *argvlen) {
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0 || !cmd) return -ENOMEM;
    int ret = reserve(b, (size_t)n);
    if (ret == 0) {
        memcpy(b->data + b->len, cmd, (size_t)n);
        b->len += (size_t)n;
    }
    free(cmd);
    return ret;
}

int rc_rbuf_channel_command(struct rc_rbuf *b, const char *verb, const char *name, size_t len) {
    char stack[RC_REDIS_PREFIX_LEN + 256];
    char *ch = len + RC_REDIS_PREFIX_LEN <= sizeof stack ? stack : malloc(len + RC_REDIS_PREFIX_LEN);
    if (!ch) return -ENOMEM;
    memcpy(ch, RC_REDIS_PREFIX, RC_REDIS_PREFIX_LEN);
    memcpy(ch + RC_REDIS_PREFIX_LEN, name, len);
    const char *argv[2] = {verb, ch};
    size_t argvlen[2] = {strlen(verb), len + RC_REDIS_PREFIX_LEN};
    int ret = rc_rbuf_command(b, 2, argv, argvlen);
    if (ch != stack) free(ch);
    return ret;
}

void rc_rbuf_consume(struct rc_rbuf *b, size_t n) {
    b->head += n;
    if (b->head >= b->len) b->head = b->len = 0;
}

void rc_rbuf_reset(struct rc_rbuf *b) { b->head = b->len = 0; }

void rc_rbuf_free(struct rc_rbuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
