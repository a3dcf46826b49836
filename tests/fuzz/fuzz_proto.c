/*
 * tests/fuzz/fuzz_proto.c — libFuzzer driver for the two JSON parsers:
 * the /ws client protocol (src/proto/proto.c, max_topics 8) and the body
 * of POST /api/v1/publish (src/ingest/publish.c, max_items 16). Every
 * input goes through both; abort()s on any broken promise:
 *   proto:   on success the type and key are known values, at most 8
 *            topics, each a valid name; the ack formats to exactly the
 *            computed length; on failure the command is zeroed and the
 *            reason is one of the documented texts, printable ASCII (it
 *            goes to the client in a text frame), and its error reply is
 *            JSON that decodes back to the same text;
 *   publish: the count equals the callbacks; every span lies inside the
 *            body; a topic is a valid, escape-free name and a broadcast
 *            has none; every data span is on its own one complete JSON
 *            value with no surrounding whitespace; a body that publishes
 *            is JSON to cJSON too; on failure no callback ran and the
 *            reason is documented; a failing callback's code comes back.
 *   message: the one check every frame passes (rc_message_check): the
 *            input split into a topic and data passes iff the topic is a
 *            valid name (or it is a broadcast), the data is valid UTF-8
 *            (an independent decoder says so) and within the size limit;
 *            every item a publish body yields passes it.
 * ASan/UBSan catch reads past the input (libFuzzer hands us an
 * exactly-sized heap copy) and LeakSanitizer any leak.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *          src/proto/proto.c src/ingest/publish.c tests/fuzz/fuzz_proto.c -o fuzz_proto -lcjson
 * Run:   ./fuzz_proto -dict=tests/fuzz/proto.dict WORKDIR tests/fuzz/corpus/proto
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ringcast/message.h"
#include "ringcast/proto.h"
#include "ringcast/publish.h"
#include "ringcast/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TOPICS 8
#define MAX_ITEMS 16

#define REQUIRE(cond)                                                                  \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_proto: invariant violated: %s (line %d)\n", #cond,  \
                    __LINE__);                                                         \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static bool inside(const char *base, size_t len, const char *p, size_t n)
{
    return p != NULL && p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool printable_ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* ---- proto ------------------------------------------------------------------ */

static bool proto_error_documented(const char *e)
{
    return strcmp(e, "Invalid JSON") == 0 ||
           strcmp(e, "Message must be a JSON object with a string \"type\"") == 0 ||
           strcmp(e, "subscribe needs \"markets\", \"channels\" or \"topics\": an array of strings") == 0 ||
           strcmp(e, "Too many topics in one message (max 8)") == 0 ||
           (starts_with(e, "Unknown message type: ") && strlen(e) <= 22 + 64) ||
           (starts_with(e, "Invalid topic name: ") && strlen(e) <= 20 + 64);
}

static void check_error_reply(const char *message)
{
    char out[512];
    ssize_t n = rc_proto_format_error(out, sizeof(out), message);
    REQUIRE(n > 0 && (size_t)n < sizeof(out));
    REQUIRE(rc_proto_format_error(out, (size_t)n - 1, message) == -ENOSPC);
    cJSON *j = cJSON_ParseWithLength(out, (size_t)n);
    REQUIRE(j != NULL);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    REQUIRE(cJSON_IsString(m) && strcmp(m->valuestring, message) == 0);
    cJSON_Delete(j);
}

static void fuzz_proto(const char *msg, size_t len)
{
    struct rc_cmd cmd;
    char err[256];
    memset(err, 'X', sizeof(err));
    int r = rc_proto_parse(msg, len, MAX_TOPICS, &cmd, err, sizeof(err));

    if (r < 0) {
        REQUIRE(r == -EINVAL || r == -ENOMEM);
        REQUIRE(cmd.root == NULL && cmd.topics == NULL && cmd.ntopics == 0);
        REQUIRE(memchr(err, '\0', sizeof(err)) != NULL);
        if (r == -EINVAL) {
            REQUIRE(proto_error_documented(err));
            REQUIRE(printable_ascii(err));
            check_error_reply(err);
        }
        /* a short buffer gets a NUL-terminated prefix of the same text */
        char small[6];
        struct rc_cmd again;
        REQUIRE(rc_proto_parse(msg, len, MAX_TOPICS, &again, small, sizeof(small)) == r);
        REQUIRE(strlen(small) < sizeof(small) && strncmp(small, err, strlen(small)) == 0);
        rc_cmd_free(&cmd); /* zeroed: must be harmless */
        return;
    }

    REQUIRE(r == 0);
    REQUIRE(err[0] == '\0');
    REQUIRE(cmd.root != NULL);
    REQUIRE(cmd.type >= RC_CMD_SUBSCRIBE && cmd.type <= RC_CMD_PING);
    REQUIRE(cmd.key == RC_KEY_MARKETS || cmd.key == RC_KEY_CHANNELS || cmd.key == RC_KEY_TOPICS);
    if (cmd.type == RC_CMD_SUBSCRIBE || cmd.type == RC_CMD_UNSUBSCRIBE) {
        REQUIRE(cmd.ntopics <= MAX_TOPICS);
        REQUIRE((cmd.ntopics == 0) == (cmd.topics == NULL));
        size_t want = strlen("{\"type\":\"subscribed\",\"\":[]}") + strlen(rc_topic_key_name(cmd.key));
        for (size_t i = 0; i < cmd.ntopics; i++) {
            REQUIRE(rc_topic_name_valid(cmd.topics[i].name, cmd.topics[i].len));
            want += cmd.topics[i].len + 2 + (i > 0);
        }
        char out[2048];
        ssize_t n = rc_proto_format_subscribed(out, sizeof(out), cmd.key, cmd.topics, cmd.ntopics);
        REQUIRE(n >= 0 && (size_t)n == want);
        REQUIRE(rc_proto_format_subscribed(out, want - 1, cmd.key, cmd.topics, cmd.ntopics) == -ENOSPC);
        cJSON *j = cJSON_ParseWithLength(out, (size_t)n);
        REQUIRE(j != NULL);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, rc_topic_key_name(cmd.key));
        REQUIRE(cJSON_IsArray(arr) && (size_t)cJSON_GetArraySize(arr) == cmd.ntopics);
        cJSON_Delete(j);
    } else {
        REQUIRE(cmd.ntopics == 0 && cmd.topics == NULL && cmd.key == RC_KEY_MARKETS);
    }
    rc_cmd_free(&cmd);
    REQUIRE(cmd.root == NULL && cmd.topics == NULL);
}

/* ---- publish ---------------------------------------------------------------- */

struct pub_ctx {
    const char *body;
    size_t len;
    int calls;
    int fail_at;
};

static int check_item(void *arg, const struct rc_pub_item *item)
{
    struct pub_ctx *c = arg;
    REQUIRE(inside(c->body, c->len, item->data, item->data_len));
    REQUIRE(item->data_len > 0);
    REQUIRE(strchr(" \t\r\n", item->data[0]) == NULL);
    REQUIRE(strchr(" \t\r\n", item->data[item->data_len - 1]) == NULL);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(item->data, item->data_len, &end, 0);
    REQUIRE(j != NULL && end == item->data + item->data_len);
    cJSON_Delete(j);

    if (item->broadcast) {
        REQUIRE(item->topic == NULL && item->topic_len == 0);
    } else {
        REQUIRE(inside(c->body, c->len, item->topic, item->topic_len));
        REQUIRE(rc_topic_name_valid(item->topic, item->topic_len));
        REQUIRE(item->topic > c->body && item->topic[-1] == '"' &&
                (size_t)(item->topic - c->body) + item->topic_len < c->len &&
                item->topic[item->topic_len] == '"');
    }
    return c->calls++ == c->fail_at ? -EPIPE : 0;
}

static bool publish_error_documented(const char *e)
{
    if (strcmp(e, "invalid JSON") == 0 ||
        strcmp(e, "body must be an object or an array of objects") == 0 ||
        strcmp(e, "too many items (max 16)") == 0)
        return true;
    unsigned n;
    int used = 0;
    if (sscanf(e, "item %u: %n", &n, &used) != 1 || used == 0 || n >= MAX_ITEMS)
        return false;
    e += used;
    return strcmp(e, "missing \"data\"") == 0 ||
           strcmp(e, "missing \"topic\" (or \"broadcast\":true)") == 0 ||
           strcmp(e, "\"topic\" must be a string") == 0 ||
           strcmp(e, "invalid topic name") == 0 || strcmp(e, "\"broadcast\" must be true") == 0;
}

static void fuzz_publish(const char *body, size_t len)
{
    struct pub_ctx c = { body, len, 0, -1 };
    char err[256];
    memset(err, 'X', sizeof(err));
    ssize_t r = rc_publish_parse(body, len, MAX_ITEMS, check_item, &c, err, sizeof(err));

    if (r < 0) {
        REQUIRE(r == -EINVAL || r == -ENOMEM);
        REQUIRE(c.calls == 0);
        REQUIRE(memchr(err, '\0', sizeof(err)) != NULL);
        if (r == -EINVAL)
            REQUIRE(publish_error_documented(err));
        return;
    }
    REQUIRE(r <= MAX_ITEMS && r == c.calls);
    REQUIRE(err[0] == '\0');
    cJSON *j = cJSON_ParseWithLength(body, len);
    REQUIRE(j != NULL);
    cJSON_Delete(j);

    /* a failing callback stops the walk at once and its code comes back */
    if (r > 0) {
        struct pub_ctx f = { body, len, 0, (int)(len % (size_t)r) };
        REQUIRE(rc_publish_parse(body, len, MAX_ITEMS, check_item, &f, err, sizeof(err)) == -EPIPE);
        REQUIRE(f.calls == f.fail_at + 1);
    }
}

/* An independent UTF-8 oracle (RFC 3629 by hand, no DFA). */
static bool utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t c = p[i];
        size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
        if (k == 9 || i + k >= n) /* not a lead byte, or the sequence is cut */
            return false;
        if (k) {
            c &= 0x3f >> k;
            for (size_t j = 1; j <= k; j++) {
                if ((p[i + j] & 0xc0) != 0x80)
                    return false;
                c = c << 6 | (p[i + j] & 0x3f);
            }
            static const uint32_t min[4] = { 0, 0x80, 0x800, 0x10000 };
            if (c < min[k] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return false;
        }
        i += k + 1;
    }
    return true;
}

/* Byte 0: the topic's length (0 = a broadcast) and the size limit's
 * choice; the topic, then the data, follow. */
static void fuzz_message(const uint8_t *p, size_t n)
{
    if (n < 1)
        return;
    static const uint64_t limits[4] = { 0, 16, 4096, 1u << 20 };
    size_t tlen = (size_t)(p[0] & 0x3f) * 4 % (n);
    uint64_t max_len = limits[p[0] >> 6];
    struct rc_message m = { .topic = (const char *)p + 1, .topic_len = tlen, .data = p + 1 + tlen,
                            .len = n - 1 - tlen, .broadcast = tlen == 0 };
    const char *why = rc_message_check(&m, max_len);
    bool want = (m.broadcast || rc_topic_name_valid(m.topic, m.topic_len)) && m.len <= max_len &&
                utf8_ok(m.data, m.len);
    REQUIRE((why == NULL) == want);
    REQUIRE(m.checked == want);
    REQUIRE(why == NULL || strlen(why) > 0);
}

/* Every item a publish body yields passes the message check. */
static int check_gate(void *ctx, const struct rc_pub_item *it)
{
    (void)ctx;
    struct rc_message m = { .topic = it->topic, .topic_len = it->topic_len, .data = it->data,
                            .len = it->data_len, .broadcast = it->broadcast };
    REQUIRE(rc_message_check(&m, UINT64_MAX) == NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[160];
    fuzz_proto((const char *)data, size);
    fuzz_publish((const char *)data, size);
    fuzz_message(data, size);
    rc_publish_parse((const char *)data, size, MAX_ITEMS, check_gate, NULL, err, sizeof(err));
    return 0;
}
