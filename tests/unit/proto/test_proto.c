/*
 * tests/unit/proto/test_proto.c — unit tests for src/proto/proto.c: topic
 * name rules, every accepted client message and key, the key preference
 * (markets, then channels, then topics), every error string byte for byte,
 * strict JSON (trailing garbage, control bytes, lenient numbers), strings
 * with a "\u0000" escape, and the exact bytes of acks and error replies.
 *
 * Messages are parsed from exactly-sized heap copies that are freed before
 * the result is inspected: a read past len shows up under ASan, and the
 * topic names must live in the command, not in the message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rc_test.h"
#include "ringcast/proto.h"

#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        rc_test_checks++;                                                                      \
        if (strcmp(g_, w_) != 0) {                                                             \
            rc_test_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK_STR failed: got \"%s\", want \"%s\"\n", __FILE__,    \
                    __LINE__, g_, w_);                                                         \
        }                                                                                      \
    } while (0)

#define CHECK_NAME(tn, lit)                                     \
    do {                                                        \
        size_t lit_len_ = strlen(lit);                          \
        CHECK_EQ((tn).len, lit_len_);                           \
        CHECK((tn).name != NULL);                               \
        if ((tn).name != NULL && (tn).len == lit_len_)          \
            CHECK_MEM((tn).name, (lit), lit_len_);              \
    } while (0)

static struct rc_cmd cmd;
static char err[256];

static int parse_n(const char *s, size_t n, size_t max_topics)
{
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, s, n);
    rc_cmd_free(&cmd);
    memset(err, 'X', sizeof(err));
    int r = rc_proto_parse(copy, n, max_topics, &cmd, err, sizeof(err));
    free(copy);
    return r;
}

/* String literals, including ones with embedded NUL bytes. */
#define PARSE(lit) parse_n((lit), sizeof(lit) - 1, 8)
#define PARSE_MAX(lit, max) parse_n((lit), sizeof(lit) - 1, (max))

/* A formatter's return value and output against a literal. */
#define CHECK_FMT(call, lit)                                  \
    do {                                                      \
        ssize_t n_ = (call);                                  \
        CHECK_EQ(n_, strlen(lit));                            \
        if (n_ == (ssize_t)strlen(lit))                       \
            CHECK_MEM(out, (lit), strlen(lit));               \
    } while (0)

#define CHECK_ERR(lit, want)                                         \
    do {                                                             \
        CHECK_EQ(PARSE(lit), -EINVAL);                               \
        CHECK_STR(err, (want));                                      \
        CHECK(cmd.root == NULL && cmd.topics == NULL && cmd.ntopics == 0); \
    } while (0)

static const char e_json[] = "Invalid JSON";
static const char e_obj[] = "Message must be a JSON object with a string \"type\"";
static const char e_needs[] =
    "subscribe needs \"markets\", \"channels\" or \"topics\": an array of strings";

static void test_key_names(void)
{
    CHECK_STR(rc_topic_key_name(RC_KEY_MARKETS), "markets");
    CHECK_STR(rc_topic_key_name(RC_KEY_CHANNELS), "channels");
    CHECK_STR(rc_topic_key_name(RC_KEY_TOPICS), "topics");
}

static void test_topic_name_valid(void)
{
    char name[RC_TOPIC_MAX_LEN + 1];
    memset(name, 'a', sizeof(name));

    CHECK(rc_topic_name_valid("a", 1));
    CHECK(rc_topic_name_valid("*", 1));
    CHECK(rc_topic_name_valid("team-arsenal", 12));
    CHECK(rc_topic_name_valid("!~#$%&'()*+,-./:;<=>?@[]^_`{|}", 30));
    CHECK(rc_topic_name_valid(name, RC_TOPIC_MAX_LEN));
    CHECK(!rc_topic_name_valid(name, RC_TOPIC_MAX_LEN + 1));
    CHECK(!rc_topic_name_valid("", 0));
    CHECK(!rc_topic_name_valid(NULL, 0));
    CHECK(!rc_topic_name_valid("a b", 3));
    CHECK(!rc_topic_name_valid("a\"b", 3));
    CHECK(!rc_topic_name_valid("a\\b", 3));
    CHECK(!rc_topic_name_valid("a\x7f", 2));
    CHECK(!rc_topic_name_valid("a\t", 2));
    CHECK(!rc_topic_name_valid("caf\xc3\xa9", 5));
    CHECK(!rc_topic_name_valid("a\0b", 3));
    /* only len bytes count */
    CHECK(rc_topic_name_valid("ab cd", 2));
}

static void test_subscribe_forms(void)
{
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\":[\"team-arsenal\",\"player-saka\"]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_SUBSCRIBE);
    CHECK_EQ(cmd.key, RC_KEY_MARKETS);
    CHECK_EQ(cmd.ntopics, 2);
    CHECK(cmd.root != NULL);
    if (cmd.ntopics == 2) {
        CHECK_NAME(cmd.topics[0], "team-arsenal");
        CHECK_NAME(cmd.topics[1], "player-saka");
    }

    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"channels\":[\"binance_prices\"]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_SUBSCRIBE);
    CHECK_EQ(cmd.key, RC_KEY_CHANNELS);
    CHECK_EQ(cmd.ntopics, 1);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "binance_prices");

    CHECK_EQ(PARSE("{\"topics\":[\"x\",\"*\"],\"type\":\"subscribe\"}"), 0);
    CHECK_EQ(cmd.key, RC_KEY_TOPICS);
    CHECK_EQ(cmd.ntopics, 2);
    if (cmd.ntopics == 2) {
        CHECK_NAME(cmd.topics[0], "x");
        CHECK_NAME(cmd.topics[1], "*");
    }

    CHECK_EQ(PARSE("{\"type\":\"unsubscribe\",\"markets\":[\"team-arsenal\"]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_UNSUBSCRIBE);
    CHECK_EQ(cmd.key, RC_KEY_MARKETS);
    CHECK_EQ(cmd.ntopics, 1);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "team-arsenal");

    CHECK_EQ(PARSE("{\"type\":\"unsubscribe\",\"channels\":[\"a\"]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_UNSUBSCRIBE);
    CHECK_EQ(cmd.key, RC_KEY_CHANNELS);

    /* empty array: a no-op that still gets an ack */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\":[]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_SUBSCRIBE);
    CHECK_EQ(cmd.ntopics, 0);
    CHECK(cmd.topics == NULL);
    CHECK_EQ(PARSE("{\"type\":\"unsubscribe\",\"topics\":[ ]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_UNSUBSCRIBE);
    CHECK_EQ(cmd.key, RC_KEY_TOPICS);
    CHECK_EQ(cmd.ntopics, 0);

    /* duplicates are kept; the caller's set removes them */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\":[\"a\",\"a\"]}"), 0);
    CHECK_EQ(cmd.ntopics, 2);

    /* whitespace everywhere JSON allows it, unknown keys ignored */
    CHECK_EQ(PARSE(" \r\n\t{ \"type\" : \"subscribe\" ,\n \"id\": 7, \"markets\" : [ \"a\" ,\"b\" ] }\n "), 0);
    CHECK_EQ(cmd.ntopics, 2);

    /* escapes are decoded before the name is judged */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\":[\"\\u0061b\\/c\"]}"), 0);
    CHECK_EQ(cmd.ntopics, 1);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "ab/c");

    /* escaped key names are the same keys */
    CHECK_EQ(PARSE("{\"\\u0074ype\":\"subscribe\",\"m\\u0061rkets\":[\"a\"]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_SUBSCRIBE);
    CHECK_EQ(cmd.key, RC_KEY_MARKETS);
    CHECK_EQ(cmd.ntopics, 1);

    /* a 200-byte name is fine */
    {
        char msg[400];
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"markets\":[\"%0200d\"]}", 0);
        CHECK_EQ(parse_n(msg, (size_t)n, 8), 0);
        CHECK_EQ(cmd.ntopics, 1);
        if (cmd.ntopics == 1)
            CHECK_EQ(cmd.topics[0].len, 200);
    }

    /* exactly max_topics */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"]}"), 0);
    CHECK_EQ(cmd.ntopics, 8);
    if (cmd.ntopics == 8)
        CHECK_NAME(cmd.topics[7], "8");
}

static void test_key_preference(void)
{
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"topics\":[\"t\"],\"channels\":[\"c\"],\"markets\":[\"m\"]}"), 0);
    CHECK_EQ(cmd.key, RC_KEY_MARKETS);
    CHECK_EQ(cmd.ntopics, 1);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "m");

    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"topics\":[\"t\"],\"channels\":[\"c\"]}"), 0);
    CHECK_EQ(cmd.key, RC_KEY_CHANNELS);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "c");

    /* the preferred key decides even when its value is wrong */
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":\"m\",\"channels\":[\"c\"]}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"channels\":null,\"topics\":[\"t\"]}", e_needs);
    /* ... and when it holds an invalid name */
    CHECK_ERR("{\"type\":\"subscribe\",\"channels\":[\"c\"],\"markets\":[\"a b\"]}",
              "Invalid topic name: a b");

    /* duplicate keys: the first one counts */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\":[\"first\"],\"markets\":[\"second\"]}"), 0);
    CHECK_EQ(cmd.ntopics, 1);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "first");
    CHECK_EQ(PARSE("{\"type\":\"ping\",\"type\":\"subscribe\"}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_PING);

    /* keys are case-sensitive */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"Markets\":[\"M\"],\"topics\":[\"t\"]}"), 0);
    CHECK_EQ(cmd.key, RC_KEY_TOPICS);
    CHECK_ERR("{\"Type\":\"ping\"}", e_obj);
}

static void test_other_commands(void)
{
    CHECK_EQ(PARSE("{\"type\":\"subscribe_all\"}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_SUBSCRIBE_ALL);
    CHECK_EQ(cmd.key, RC_KEY_MARKETS);
    CHECK_EQ(cmd.ntopics, 0);

    CHECK_EQ(PARSE("{\"type\":\"unsubscribe_all\"}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_UNSUBSCRIBE_ALL);
    CHECK_EQ(cmd.key, RC_KEY_MARKETS);

    CHECK_EQ(PARSE("{\"type\":\"ping\"}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_PING);

    /* extra keys, even malformed topic lists, are ignored */
    CHECK_EQ(PARSE("{\"type\":\"ping\",\"markets\":\"junk\",\"ts\":1.5e3,\"x\":{\"y\":[null,true]}}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_PING);
    CHECK_EQ(cmd.ntopics, 0);
    CHECK_EQ(PARSE("{\"type\":\"subscribe_all\",\"channels\":[\"not valid\"]}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_SUBSCRIBE_ALL);
    CHECK_EQ(cmd.ntopics, 0);
    CHECK_EQ(PARSE("{\"channels\":[1],\"type\":\"unsubscribe_all\"}"), 0);
    CHECK_EQ(cmd.type, RC_CMD_UNSUBSCRIBE_ALL);

    /* numbers far beyond double precision are still JSON */
    CHECK_EQ(PARSE("{\"type\":\"ping\",\"n\":1.0000000000000000000000000000000000000000000000000000000000000000000000000000000001}"), 0);
    CHECK_EQ(PARSE("{\"type\":\"ping\",\"n\":-0.5E-7,\"m\":0,\"k\":12345678901234567890}"), 0);
}

static void test_invalid_json(void)
{
    CHECK_EQ(parse_n("", 0, 8), -EINVAL);
    CHECK_STR(err, e_json);
    CHECK_ERR(" ", e_json);
    CHECK_ERR("ping", e_json);
    CHECK_ERR("{", e_json);
    CHECK_ERR("{\"type\":\"ping\"", e_json);
    CHECK_ERR("{\"type\":\"ping\",}", e_json);
    CHECK_ERR("{\"type\":'ping'}", e_json);
    CHECK_ERR("{type:\"ping\"}", e_json);
    /* trailing garbage */
    CHECK_ERR("{\"type\":\"ping\"} x", e_json);
    CHECK_ERR("{\"type\":\"ping\"}{}", e_json);
    CHECK_ERR("{\"type\":\"ping\"}\0", e_json);
    CHECK_ERR("{\"type\":\"ping\"},", e_json);
    /* what RFC 8259 forbids and cJSON alone would accept */
    CHECK_ERR("{\"type\":\"ping\",\"n\":01}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"n\":1.}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"n\":-01}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"n\":1.e5}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"n\":1e}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"n\":-}", e_json);
    CHECK_ERR("\xef\xbb\xbf{\"type\":\"ping\"}", e_json);
    CHECK_ERR("{\x01\"type\":\"ping\"}", e_json);
    CHECK_ERR("{\"type\":\"ping\"}\x0b", e_json);
    CHECK_ERR("\0{\"type\":\"ping\"}", e_json);
    CHECK_ERR("{\"type\":\"pi\tng\"}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"x\":\"a\nb\"}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"x\":\"a\0b\"}", e_json);
    /* escapes */
    CHECK_ERR("{\"type\":\"ping\",\"x\":\"\\x41\"}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"x\":\"\\u12\"}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"x\":\"\\udc00\"}", e_json);
    CHECK_ERR("{\"type\":\"ping\",\"x\":\"\\", e_json);
}

static void test_not_an_object(void)
{
    CHECK_ERR("[]", e_obj);
    CHECK_ERR("[{\"type\":\"ping\"}]", e_obj);
    CHECK_ERR("\"ping\"", e_obj);
    CHECK_ERR("42", e_obj);
    CHECK_ERR("null", e_obj);
    CHECK_ERR("{}", e_obj);
    CHECK_ERR("{\"type\":1}", e_obj);
    CHECK_ERR("{\"type\":null}", e_obj);
    CHECK_ERR("{\"type\":[\"ping\"]}", e_obj);
    CHECK_ERR("{\"type\":{\"ping\":1}}", e_obj);
    CHECK_ERR("{\"markets\":[\"a\"]}", e_obj);
    /* a key that decodes to "type" plus a NUL is not "type" */
    CHECK_ERR("{\"type\\u0000\":\"ping\"}", e_obj);
    CHECK_ERR("{\"type\\u0000x\":\"ping\",\"Type\":\"ping\"}", e_obj);
}

static void test_unknown_type(void)
{
    CHECK_ERR("{\"type\":\"hello\"}", "Unknown message type: hello");
    CHECK_ERR("{\"type\":\"\"}", "Unknown message type: ");
    CHECK_ERR("{\"type\":\"PING\"}", "Unknown message type: PING");
    CHECK_ERR("{\"type\":\"ping \"}", "Unknown message type: ping ");
    CHECK_ERR("{\"type\":\"subscribed\"}", "Unknown message type: subscribed");
    CHECK_ERR("{\"type\":\"a\\\"b\\\\c\"}", "Unknown message type: a\"b\\c");
    CHECK_ERR("{\"type\":\"a\\nb\\u0001\"}", "Unknown message type: a?b?");
    /* one '?' per UTF-8 character */
    CHECK_ERR("{\"type\":\"caf\xc3\xa9!\"}", "Unknown message type: caf?!");
    CHECK_ERR("{\"type\":\"\\u20ac\\ud83d\\ude00x\"}", "Unknown message type: ??x");
    /* a NUL does not cut the type short */
    CHECK_ERR("{\"type\":\"ping\\u0000\"}", "Unknown message type: ping?");
    CHECK_ERR("{\"type\":\"subscribe\\u0000x\",\"markets\":[\"a\"]}",
              "Unknown message type: subscribe?x");
    /* truncated to 64 bytes */
    CHECK_ERR("{\"type\":\"01234567890123456789012345678901234567890123456789012345678901234\"}",
              "Unknown message type: 0123456789012345678901234567890123456789012345678901234567890123");
    CHECK_ERR("{\"type\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
              "Unknown message type: 0123456789012345678901234567890123456789012345678901234567890123");
    CHECK_ERR("{\"type\":\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
              "Unknown message type: 0123456789012345678901234567890123456789012345678901234567890123");
}

static void test_needs_topics(void)
{
    CHECK_ERR("{\"type\":\"subscribe\"}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"market\":[\"a\"]}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":\"a\"}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":{}}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":null}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[1]}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"a\",null]}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[[\"a\"]]}", e_needs);
    CHECK_ERR("{\"type\":\"subscribe\",\"channels\":[true]}", e_needs);
    /* unsubscribe gets the same text (the contract lists one) */
    CHECK_ERR("{\"type\":\"unsubscribe\"}", e_needs);
    CHECK_ERR("{\"type\":\"unsubscribe\",\"topics\":[{}]}", e_needs);
    /* a key holding a NUL is not "markets" */
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\\u0000\":[\"a\"]}", e_needs);
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"markets\\u0000\":[\"a\"],\"channels\":[\"c\"]}"), 0);
    CHECK_EQ(cmd.key, RC_KEY_CHANNELS);
}

static void test_invalid_topic(void)
{
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"a b\"]}", "Invalid topic name: a b");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"ok\",\"\"]}", "Invalid topic name: ");
    CHECK_ERR("{\"type\":\"unsubscribe\",\"channels\":[\"a\\\"b\"]}", "Invalid topic name: a\"b");
    CHECK_ERR("{\"type\":\"subscribe\",\"topics\":[\"a\\\\b\"]}", "Invalid topic name: a\\b");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"\\t\"]}", "Invalid topic name: ?");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"\\u007f\"]}", "Invalid topic name: ?");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"caf\xc3\xa9\"]}", "Invalid topic name: caf?");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"\xf0\x9f\x98\x80-x\"]}", "Invalid topic name: ?-x");
    /* a NUL inside a name is seen, and the whole name echoed */
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"a\\u0000b\"]}", "Invalid topic name: a?b");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"ok\\u0000\"]}", "Invalid topic name: ok?");
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"\\u0000\"]}", "Invalid topic name: ?");
    /* decoded length across multi-byte escapes: C3 A9 00 E2 82 AC F0 9F 98 80 */
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"\\u00e9\\u0000\\u20ac\\ud83d\\ude00z\"]}",
              "Invalid topic name: ????z");
    /* NUL strings elsewhere (nested, in keys) do not confuse which is which */
    CHECK_ERR("{\"a\":{\"b\":[\"\\u0000\",{\"c\\u0000\":\"d\\u0000\"}]},\"type\":\"subscribe\","
              "\"topics\":[\"ok\",\"x\\u0000y\"]}",
              "Invalid topic name: x?y");
    CHECK_EQ(PARSE("{\"a\":[\"\\u0000\"],\"type\":\"subscribe\",\"z\\u0000\":1,\"markets\":[\"ok\"],"
                   "\"w\":\"\\u0000\"}"),
             0);
    CHECK_EQ(cmd.ntopics, 1);
    if (cmd.ntopics == 1)
        CHECK_NAME(cmd.topics[0], "ok");
    /* too long: echoed truncated to 64 bytes */
    {
        char msg[400];
        int n = snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"markets\":[\"%0201d\"]}", 7);
        CHECK_EQ(parse_n(msg, (size_t)n, 8), -EINVAL);
        CHECK_STR(err, "Invalid topic name: 0000000000000000000000000000000000000000000000000000000000000000");
    }
    /* the first bad one is reported */
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"ok\",\"b a d\",\"w o r s e\"]}",
              "Invalid topic name: b a d");
}

static void test_too_many(void)
{
    CHECK_ERR("{\"type\":\"subscribe\",\"markets\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}",
              "Too many topics in one message (max 8)");
    /* counted before the names are judged */
    CHECK_ERR("{\"type\":\"unsubscribe\",\"channels\":[1,2,3,4,5,6,7,8,9,10]}",
              "Too many topics in one message (max 8)");
    CHECK_EQ(PARSE_MAX("{\"type\":\"subscribe\",\"markets\":[\"a\",\"b\"]}", 1), -EINVAL);
    CHECK_STR(err, "Too many topics in one message (max 1)");
    CHECK_EQ(PARSE_MAX("{\"type\":\"subscribe\",\"markets\":[\"a\"]}", 0), -EINVAL);
    CHECK_STR(err, "Too many topics in one message (max 0)");
    CHECK_EQ(PARSE_MAX("{\"type\":\"subscribe\",\"markets\":[]}", 0), 0);
    CHECK_EQ(PARSE_MAX("{\"type\":\"subscribe\",\"markets\":[\"a\",\"b\"]}", 2), 0);
    CHECK_EQ(cmd.ntopics, 2);
    CHECK_EQ(PARSE_MAX("{\"type\":\"subscribe\",\"markets\":[\"a\",\"b\",\"c\"]}", 1000), 0);
    CHECK_EQ(cmd.ntopics, 3);
}

static void test_err_buffer(void)
{
    struct rc_cmd c;
    char small[8];
    memset(small, 'X', sizeof(small));
    CHECK_EQ(rc_proto_parse("{\"type\":\"x\"}", 12, 8, &c, small, sizeof(small)), -EINVAL);
    CHECK_STR(small, "Unknown");
    CHECK(c.root == NULL && c.topics == NULL);
    CHECK_EQ(rc_proto_parse("nope", 4, 8, &c, NULL, 0), -EINVAL);
    CHECK_EQ(rc_proto_parse("{\"type\":\"ping\"}", 15, 8, &c, NULL, 0), 0);
    CHECK_EQ(c.type, RC_CMD_PING);
    rc_cmd_free(&c);
    CHECK(c.root == NULL);
    rc_cmd_free(&c); /* zeroed: fine twice */
    rc_cmd_free(NULL);

    /* success leaves an empty message */
    CHECK_EQ(PARSE("{\"type\":\"ping\"}"), 0);
    CHECK_STR(err, "");
}

static void test_format_subscribed(void)
{
    char out[128];
    struct rc_topic_name names[] = { { "team-arsenal", 12 }, { "player-saka", 11 }, { "*xyz", 1 } };
    static const char two[] = "{\"type\":\"subscribed\",\"markets\":[\"team-arsenal\",\"player-saka\"]}";

    memset(out, 'X', sizeof(out));
    CHECK_EQ(rc_proto_format_subscribed(out, sizeof(out), RC_KEY_MARKETS, names, 2), sizeof(two) - 1);
    CHECK_MEM(out, two, sizeof(two));
    CHECK_STR(out, two);

    CHECK_FMT(rc_proto_format_subscribed(out, sizeof(out), RC_KEY_CHANNELS, NULL, 0),
              "{\"type\":\"subscribed\",\"channels\":[]}");
    CHECK_FMT(rc_proto_format_subscribed(out, sizeof(out), RC_KEY_TOPICS, names + 2, 1),
              "{\"type\":\"subscribed\",\"topics\":[\"*\"]}");
    CHECK_FMT(rc_proto_format_subscribed(out, sizeof(out), RC_KEY_MARKETS, NULL, 0),
              "{\"type\":\"subscribed\",\"markets\":[]}");
    CHECK_FMT(rc_proto_format_subscribed(out, sizeof(out), RC_KEY_MARKETS, names + 2, 1),
              "{\"type\":\"subscribed\",\"markets\":[\"*\"]}");
    CHECK_STR(out, "{\"type\":\"subscribed\",\"markets\":[\"*\"]}");

    /* exactly the length: fits, no NUL written */
    memset(out, 'X', sizeof(out));
    CHECK_EQ(rc_proto_format_subscribed(out, sizeof(two) - 1, RC_KEY_MARKETS, names, 2), sizeof(two) - 1);
    CHECK_MEM(out, two, sizeof(two) - 1);
    CHECK_EQ(out[sizeof(two) - 1], 'X');
    /* one byte short: -ENOSPC, nothing past cap touched */
    memset(out, 'X', sizeof(out));
    CHECK_EQ(rc_proto_format_subscribed(out, sizeof(two) - 2, RC_KEY_MARKETS, names, 2), -ENOSPC);
    CHECK_EQ(out[sizeof(two) - 2], 'X');
    CHECK_EQ(rc_proto_format_subscribed(out, 0, RC_KEY_MARKETS, names, 2), -ENOSPC);
    CHECK_EQ(rc_proto_format_subscribed(NULL, 0, RC_KEY_MARKETS, NULL, 0), -ENOSPC);

    /* names from a parsed command go straight back out */
    CHECK_EQ(PARSE("{\"type\":\"subscribe\",\"channels\":[\"b\",\"a\"]}"), 0);
    CHECK_FMT(rc_proto_format_subscribed(out, sizeof(out), cmd.key, cmd.topics, cmd.ntopics), "{\"type\":\"subscribed\",\"channels\":[\"b\",\"a\"]}");
}

static void test_format_error(void)
{
    char out[256];
    static const char plain[] = "{\"type\":\"error\",\"message\":\"Invalid JSON\"}";

    CHECK_EQ(rc_proto_format_error(out, sizeof(out), "Invalid JSON"), sizeof(plain) - 1);
    CHECK_STR(out, plain);

    static const char esc[] =
        "{\"type\":\"error\",\"message\":\"a\\\"b\\\\c\\u000a\\u0001\\u001f\\u0009\x7f caf\xc3\xa9 \xe2\x82\xac\"}";
    CHECK_EQ(rc_proto_format_error(out, sizeof(out), "a\"b\\c\n\x01\x1f\t\x7f caf\xc3\xa9 \xe2\x82\xac"),
             sizeof(esc) - 1);
    CHECK_STR(out, esc);

    CHECK_FMT(rc_proto_format_error(out, sizeof(out), ""), "{\"type\":\"error\",\"message\":\"\"}");
    CHECK_FMT(rc_proto_format_error(out, sizeof(out), NULL), "{\"type\":\"error\",\"message\":\"\"}");

    memset(out, 'X', sizeof(out));
    CHECK_EQ(rc_proto_format_error(out, sizeof(plain) - 1, "Invalid JSON"), sizeof(plain) - 1);
    CHECK_EQ(out[sizeof(plain) - 1], 'X');
    memset(out, 'X', sizeof(out));
    CHECK_EQ(rc_proto_format_error(out, sizeof(plain) - 2, "Invalid JSON"), -ENOSPC);
    CHECK_EQ(out[sizeof(plain) - 2], 'X');
    /* an escape that would straddle the end does not fit either */
    CHECK_EQ(rc_proto_format_error(out, 27 + 6 + 3 + 2, "\x01\x01"), -ENOSPC);
    CHECK_EQ(rc_proto_format_error(out, 27 + 12 + 1, "\x01\x01"), -ENOSPC);
    CHECK_FMT(rc_proto_format_error(out, 27 + 12 + 2, "\x01\x01"),
              "{\"type\":\"error\",\"message\":\"\\u0001\\u0001\"}");

    /* every parse error, formatted, is JSON that decodes to the same text */
    CHECK_EQ(PARSE("{\"type\":\"\\\"\\\\\\u0001\\u0000\xc3\xa9x\"}"), -EINVAL);
    CHECK_STR(err, "Unknown message type: \"\\???x");
    ssize_t n = rc_proto_format_error(out, sizeof(out), err);
    CHECK(n > 0);
    cJSON *j = cJSON_ParseWithLength(out, (size_t)(n > 0 ? n : 0));
    CHECK(j != NULL);
    if (j != NULL) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
        CHECK(cJSON_IsString(m) && strcmp(m->valuestring, err) == 0);
        CHECK(cJSON_IsString(t) && strcmp(t->valuestring, "error") == 0);
        cJSON_Delete(j);
    }
}

int main(void)
{
    test_key_names();
    test_topic_name_valid();
    test_subscribe_forms();
    test_key_preference();
    test_other_commands();
    test_invalid_json();
    test_not_an_object();
    test_unknown_type();
    test_needs_topics();
    test_invalid_topic();
    test_too_many();
    test_err_buffer();
    test_format_subscribed();
    test_format_error();
    rc_cmd_free(&cmd);
    RC_TEST_MAIN_END("test_proto");
}
