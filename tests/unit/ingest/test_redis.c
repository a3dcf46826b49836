/*
 * test_redis.c — the I/O-free parts of the Redis link: --redis URLs,
 * cluster key slots (values from `redis-cli CLUSTER KEYSLOT` on Redis 7.0),
 * and RESP command buffers read back with hiredis' own reader.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rc_test.h"
#include "ringcast/redis.h"

static void url_ok(const char *text, const char *host, unsigned port, const char *user, const char *pw, unsigned db) {
    struct rc_redis_url u;
    char err[200] = "";
    CHECK_EQ(rc_redis_url_parse(text, &u, err, sizeof err), 0);
    CHECK(!strcmp(u.host, host));
    CHECK_EQ(u.port, port);
    CHECK(!strcmp(u.user, user));
    CHECK_EQ(u.has_password, pw != NULL);
    if (pw) CHECK(!strcmp(u.password, pw));
    CHECK_EQ(u.db, db);
}

static void url_bad(const char *text, const char *why) {
    struct rc_redis_url u;
    char err[200] = "";
    CHECK_EQ(rc_redis_url_parse(text, &u, err, sizeof err), -EINVAL);
    CHECK(strstr(err, why) != NULL);
}

/* Reads every command in b back with hiredis' reader (as Redis would
 * parse a multibulk request): returns how many, checking the first. */
static int read_back(struct rc_rbuf *b, const char *a0, const char *a1, size_t a1len) {
    redisReader *rd = redisReaderCreate();
    redisReaderFeed(rd, b->data + b->head, rc_rbuf_pending(b));
    int n = 0;
    void *reply;
    while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
        redisReply *x = reply;
        if (n == 0) {
            CHECK_EQ(x->type, REDIS_REPLY_ARRAY);
            CHECK(x->elements >= 2);
            CHECK(!strcmp(x->element[0]->str, a0));
            CHECK_EQ(x->element[1]->len, a1len);
            CHECK(!memcmp(x->element[1]->str, a1, a1len));
        }
        freeReplyObject(x);
        n++;
    }
    redisReaderFree(rd);
    return n;
}

int main(void) {
    url_ok("redis://127.0.0.1:6379", "127.0.0.1", 6379, "", NULL, 0);
    url_ok("redis://localhost", "localhost", 6379, "", NULL, 0);
    url_ok("redis://redis.default.svc.cluster.local:7000/", "redis.default.svc.cluster.local", 7000, "", NULL, 0);
    url_ok("redis://:secret@127.0.0.1:16379/3", "127.0.0.1", 16379, "", "secret", 3);
    url_ok("redis://app:p%40ss%3Aw@10.0.0.1/15", "10.0.0.1", 6379, "app", "p@ss:w", 15);
    url_ok("redis://:a@b@host:1", "host", 1, "", "a@b", 0); /* the last @ ends the credentials */
    url_ok("redis://[::1]:6380/2", "::1", 6380, "", NULL, 2);
    url_ok("redis://[::1]", "::1", 6379, "", NULL, 0);
    url_ok("redis://:@h", "h", 6379, "", "", 0);

    url_bad("", "empty");
    url_bad("rediss://h:6379", "TLS");
    url_bad("http://h:6379", "want redis://");
    url_bad("127.0.0.1:6379", "want redis://");
    url_bad("redis://", "no host");
    url_bad("redis://:6379", "no host");
    url_bad("redis://h:", "empty port");
    url_bad("redis://h:0", "port 0");
    url_bad("redis://h:65536", "out of range");
    url_bad("redis://h:12x", "bad port");
    url_bad("redis://h/db1", "database number");
    url_bad("redis://h?timeout=1", "query");
    url_bad("redis://user@h", "password@");
    url_bad("redis://:p%zz@h", "%-encoding");
    url_bad("redis://:p%00@h", "%-encoding");
    url_bad("redis://[::1", "unclosed");
    url_bad("redis://[::1]x", "junk");
    url_bad("redis://h h", "bad character");

    /* CLUSTER KEYSLOT, Redis 7.0.15 */
    CHECK_EQ(rc_redis_slot("foo", 3), 12182u);
    CHECK_EQ(rc_redis_slot("ringcast:A", 10), 4010u);
    CHECK_EQ(rc_redis_slot("ringcast:B", 10), 16329u);
    CHECK_EQ(rc_redis_slot("ringcast:C", 10), 12264u);
    CHECK_EQ(rc_redis_slot("ringcast:D", 10), 7951u);
    CHECK_EQ(rc_redis_slot("{user1000}.following", 20), 3443u);
    CHECK_EQ(rc_redis_slot("user1000", 8), 3443u);
    CHECK_EQ(rc_redis_slot("a{}b", 4), 13694u); /* an empty tag hashes the whole key */
    CHECK_EQ(rc_redis_slot("{}", 2), 15257u);
    CHECK_EQ(rc_redis_slot("x{y", 3), 2740u);
    CHECK_EQ(rc_redis_slot("", 0), 0u);

    /* command buffers: formatted by hiredis, consumed from the front,
     * binary-safe, compacted and grown as needed */
    struct rc_rbuf b = {0};
    CHECK_EQ(rc_rbuf_channel_command(&b, "SUBSCRIBE", "BTC-USD", 7), 0);
    CHECK_EQ(read_back(&b, "SUBSCRIBE", "ringcast:BTC-USD", 16), 1);
    const char bin[] = {'a', 0, '\r', '\n', 'b'};
    const char *argv[3] = {"PUBLISH", "ringcast:x", bin};
    size_t lens[3] = {7, 10, sizeof bin};
    for (int i = 0; i < 2000; i++) CHECK_EQ(rc_rbuf_command(&b, 3, argv, lens), 0);
    CHECK_EQ(read_back(&b, "SUBSCRIBE", "ringcast:BTC-USD", 16), 2001);
    size_t first = strlen("*2\r\n$9\r\nSUBSCRIBE\r\n$16\r\nringcast:BTC-USD\r\n");
    rc_rbuf_consume(&b, first);
    CHECK_EQ(read_back(&b, "PUBLISH", "ringcast:x", 10), 2000);
    rc_rbuf_consume(&b, rc_rbuf_pending(&b));
    CHECK_EQ(rc_rbuf_pending(&b), 0u);
    CHECK_EQ(b.head, 0u);
    char big[600];
    memset(big, 'T', sizeof big);
    CHECK_EQ(rc_rbuf_channel_command(&b, "SSUBSCRIBE", big, sizeof big), 0); /* past the stack buffer */
    char want[9 + sizeof big];
    memcpy(want, "ringcast:", 9);
    memcpy(want + 9, big, sizeof big);
    CHECK_EQ(read_back(&b, "SSUBSCRIBE", want, sizeof want), 1);
    rc_rbuf_free(&b);
    CHECK(b.data == NULL);

    RC_TEST_MAIN_END("test_redis");
}
