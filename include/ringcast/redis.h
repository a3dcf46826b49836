/*
 * ringcast/redis.h — the I/O-free parts of the Redis link: the --redis URL,
 * Redis Cluster key slots, the channel naming, and a growable output buffer
 * of RESP commands (formatted by hiredis).
 *
 * The link itself (sockets on shard 0's io_uring, subscriptions, reconnects)
 * is src/net/redis_link.c; it uses hiredis only as a RESP formatter and
 * reader over its own socket, never hiredis' blocking or async I/O.
 *
 * Thread: any (no shared state).
 */
#ifndef RINGCAST_REDIS_H
#define RINGCAST_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Channel of topic T: RC_REDIS_PREFIX "T". The bare prefix (empty topic)
 * is the broadcast channel: its messages go to every /ws connection. */
#define RC_REDIS_PREFIX "ringcast:"
#define RC_REDIS_PREFIX_LEN 9
#define RC_REDIS_PATTERN RC_REDIS_PREFIX "*"

struct rc_redis_url {
    char host[256]; /* as written: an IP literal (no brackets) or a name */
    uint16_t port;  /* default 6379 */
    char user[128]; /* ACL user ("" = none: AUTH with the password only) */
    char password[256];
    bool has_password;
    unsigned db; /* default 0 */
};

/*
 * Parses redis://[[user]:password@]host[:port][/db] (user and password may
 * be %-encoded; an IPv6 host goes in brackets). Returns 0, or -EINVAL with
 * a reason in err.
 */
int rc_redis_url_parse(const char *url, struct rc_redis_url *out, char *err, size_t errcap);

/* The Redis Cluster hash slot of key (CRC16/XMODEM mod 16384, honouring a
 * {hash tag}). */
unsigned rc_redis_slot(const char *key, size_t len);

/* A growable byte buffer of formatted commands, consumed from `head`. */
struct rc_rbuf {
    char *data;
    size_t head, len, cap;
};

/* Appends one command (argc bulk strings). Returns 0 or -ENOMEM. */
int rc_rbuf_command(struct rc_rbuf *b, int argc, const char **argv, const size_t *argvlen);

/* Appends the command `verb` prefix+name (e.g. SUBSCRIBE ringcast:T). */
int rc_rbuf_channel_command(struct rc_rbuf *b, const char *verb, const char *name, size_t len);

/* Drops n consumed bytes from the front. */
void rc_rbuf_consume(struct rc_rbuf *b, size_t n);

static inline size_t rc_rbuf_pending(const struct rc_rbuf *b) { return b->len - b->head; }

void rc_rbuf_reset(struct rc_rbuf *b); /* empties, keeps the memory */
void rc_rbuf_free(struct rc_rbuf *b);

#endif
