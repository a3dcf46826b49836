/*
 * tests/unit/ingest/test_publish.c — unit tests for src/ingest/publish.c:
 * single, broadcast and batched items; the exact bytes of every "data"
 * span (numbers beyond double precision, escapes, nested whitespace);
 * duplicate and escaped keys; every error string byte for byte; that a
 * body wrong anywhere publishes nothing; and that a callback's negative
 * return stops the walk and comes back unchanged.
 *
 * Bodies are parsed from exactly-sized heap copies, so a read past len
 * shows up under ASan; spans are checked to point into that copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/publish.h"

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

/* A span of the body against a literal, and that it lies inside the body. */
#define CHECK_SPAN(ptr, len, lit)                                                     \
    do {                                                                              \
        size_t lit_len_ = strlen(lit);                                                \
        CHECK_EQ((len), lit_len_);                                                    \
        CHECK((ptr) != NULL && (ptr) >= body && (ptr) + (len) <= body + body_len);    \
        if ((ptr) != NULL && (len) == lit_len_)                                       \
            CHECK_MEM((ptr), (lit), lit_len_);                                        \
        if ((len) != lit_len_ && (ptr) != NULL)                                       \
            fprintf(stderr, "    got span \"%.*s\"\n", (int)(len), (ptr));            \
    } while (0)

#define MAX_SEEN 64

struct seen {
    int calls;
    int fail_at; /* the call that returns fail_code; -1 for none */
    int fail_code;
    struct rc_pub_item items[MAX_SEEN];
};

static int collect(void *ctx, const struct rc_pub_item *item)
{
    struct seen *s = ctx;
    int call = s->calls++;
    if (call < MAX_SEEN)
        s->items[call] = *item;
    return call == s->fail_at ? s->fail_code : 0;
}

static char *body;       /* the current exactly-sized copy; spans point into it */
static size_t body_len;
static struct seen seen;
static char err[256];

static ssize_t pub_n(const char *s, size_t n, size_t max_items)
{
    free(body);
    body = malloc(n ? n : 1);
    if (body == NULL)
        abort();
    memcpy(body, s, n);
    body_len = n;
    memset(&seen, 0, sizeof(seen));
    seen.fail_at = -1;
    memset(err, 'X', sizeof(err));
    return rc_publish_parse(body, n, max_items, collect, &seen, err, sizeof(err));
}

#define PUB(lit) pub_n((lit), sizeof(lit) - 1, 16)
#define PUB_MAX(lit, max) pub_n((lit), sizeof(lit) - 1, (max))

/* An error, its exact text, and not a single callback. */
#define CHECK_ERR(lit, want)              \
    do {                                  \
        CHECK_EQ(PUB(lit), -EINVAL);      \
        CHECK_STR(err, (want));           \
        CHECK_EQ(seen.calls, 0);          \
    } while (0)

/* One topic item with the given data text. */
#define CHECK_TOPIC_ITEM(i, topic_lit, data_lit)                               \
    do {                                                                       \
        CHECK(!seen.items[i].broadcast);                                       \
        CHECK_SPAN(seen.items[i].topic, seen.items[i].topic_len, topic_lit);   \
        CHECK_SPAN(seen.items[i].data, seen.items[i].data_len, data_lit);      \
    } while (0)

#define CHECK_BROADCAST_ITEM(i, data_lit)                                      \
    do {                                                                       \
        CHECK(seen.items[i].broadcast);                                        \
        CHECK(seen.items[i].topic == NULL);                                    \
        CHECK_EQ(seen.items[i].topic_len, 0);                                  \
        CHECK_SPAN(seen.items[i].data, seen.items[i].data_len, data_lit);      \
    } while (0)

static const char e_json[] = "invalid JSON";
static const char e_shape[] = "body must be an object or an array of objects";

static void test_single(void)
{
    CHECK_EQ(PUB("{\"topic\":\"prices\",\"data\":{\"a\":1}}"), 1);
    CHECK_EQ(seen.calls, 1);
    CHECK_TOPIC_ITEM(0, "prices", "{\"a\":1}");
    CHECK_STR(err, "");

    CHECK_EQ(PUB("{\"broadcast\":true,\"data\":[1,2]}"), 1);
    CHECK_EQ(seen.calls, 1);
    CHECK_BROADCAST_ITEM(0, "[1,2]");

    /* both: a broadcast, whatever the topic says */
    CHECK_EQ(PUB("{\"topic\":\"t\",\"broadcast\":true,\"data\":0}"), 1);
    CHECK_BROADCAST_ITEM(0, "0");
    CHECK_EQ(PUB("{\"broadcast\":true,\"topic\":5,\"data\":0}"), 1);
    CHECK_BROADCAST_ITEM(0, "0");

    /* key order does not matter; unknown keys are ignored */
    CHECK_EQ(PUB("{\"data\":\"x\",\"id\":[1,{\"topic\":\"no\"}],\"topic\":\"*\"}"), 1);
    CHECK_TOPIC_ITEM(0, "*", "\"x\"");
    /* keys of nested objects are not the item's */
    CHECK_EQ(PUB("{\"meta\":{\"data\":1,\"topic\":\"inner\"},\"topic\":\"outer\",\"data\":2}"), 1);
    CHECK_TOPIC_ITEM(0, "outer", "2");
    CHECK_EQ(PUB("{\"topic\":\"a\",\"data\":{\"topic\":\"b\",\"data\":{\"broadcast\":false}}}"), 1);
    CHECK_TOPIC_ITEM(0, "a", "{\"topic\":\"b\",\"data\":{\"broadcast\":false}}");

    /* a 200-byte topic */
    {
        char b[400];
        int n = snprintf(b, sizeof(b), "{\"topic\":\"%0200d\",\"data\":1}", 5);
        CHECK_EQ(pub_n(b, (size_t)n, 16), 1);
        CHECK_EQ(seen.items[0].topic_len, 200);
        CHECK(seen.items[0].topic == body + 10);
    }

    /* topic characters: all printable ASCII but quote and backslash */
    CHECK_EQ(PUB("{\"topic\":\"!#$%&'()*+,-./0:;<=>?@AZ[]^_`az{|}~\",\"data\":1}"), 1);
    CHECK_TOPIC_ITEM(0, "!#$%&'()*+,-./0:;<=>?@AZ[]^_`az{|}~", "1");
}

static void test_data_spans(void)
{
    /* numbers are never re-serialised */
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":1.0000000000000000001}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "1.0000000000000000001");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":12345678901234567890}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "12345678901234567890");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":-0.0e-0}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "-0.0e-0");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":1E+400}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "1E+400");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":[0.1,2e-5,-3,99999999999999999999999999999999999999999999999999999999999999999999999999999999.5]}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "[0.1,2e-5,-3,99999999999999999999999999999999999999999999999999999999999999999999999999999999.5]");

    /* a string value is JSON text: its quotes and escapes are kept */
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":\"a\\\"b\\\\c\\u00e9\\n\\/\"}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "\"a\\\"b\\\\c\\u00e9\\n\\/\"");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":\"\"}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "\"\"");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":\"\\u0000\\ud83d\\ude00 caf\xc3\xa9 \xf0\x9f\x98\x80\"}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "\"\\u0000\\ud83d\\ude00 caf\xc3\xa9 \xf0\x9f\x98\x80\"");

    /* literals */
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":true}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "true");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":false }"), 1);
    CHECK_TOPIC_ITEM(0, "t", "false");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":\nnull\n}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "null");

    /* nested values with whitespace inside keep it; around them it is not data */
    CHECK_EQ(PUB("{ \"topic\" : \"t\" , \"data\" :  { \"x\" : [ 1 , { \"y\" : null } ] ,\n\t\"z\" : \"}]\" }  }"), 1);
    CHECK_TOPIC_ITEM(0, "t", "{ \"x\" : [ 1 , { \"y\" : null } ] ,\n\t\"z\" : \"}]\" }");
    CHECK_EQ(PUB("{\"data\":[ ],\"topic\":\"t\"}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "[ ]");
    CHECK_EQ(PUB("{\"topic\":\"t\",\"data\":{}}"), 1);
    CHECK_TOPIC_ITEM(0, "t", "{}");

    /* deep nesting */
    {
        char b[1200];
        size_t n = 0;
        n += (size_t)sprintf(b + n, "{\"topic\":\"d\",\"data\":");
        size_t start = n;
        for (int i = 0; i < 400; i++)
            b[n++] = '[';
        for (int i = 0; i < 400; i++)
            b[n++] = ']';
        size_t end = n;
        b[n++] = '}';
        CHECK_EQ(pub_n(b, n, 16), 1);
        CHECK(seen.items[0].data == body + start);
        CHECK_EQ(seen.items[0].data_len, end - start);
    }
}

static void test_arrays(void)
{
    CHECK_EQ(PUB("[{\"topic\":\"a\",\"data\":1},{\"broadcast\":true,\"data\":\"x\"},"
                 "{\"topic\":\"b\",\"data\":{\"k\":[]}},{\"data\":[{}],\"topic\":\"a\"}]"),
             4);
    CHECK_EQ(seen.calls, 4);
    CHECK_TOPIC_ITEM(0, "a", "1");
    CHECK_BROADCAST_ITEM(1, "\"x\"");
    CHECK_TOPIC_ITEM(2, "b", "{\"k\":[]}");
    CHECK_TOPIC_ITEM(3, "a", "[{}]");

    /* top-level whitespace */
    CHECK_EQ(PUB(" \n\t\r[ {\"topic\":\"a\",\"data\":1} ,\n {\"broadcast\":true,\"data\":2}\n]\r\n "), 2);
    CHECK_TOPIC_ITEM(0, "a", "1");
    CHECK_BROADCAST_ITEM(1, "2");
    CHECK_EQ(PUB("\n {\"topic\":\"a\",\"data\":1} \n"), 1);
    CHECK_TOPIC_ITEM(0, "a", "1");

    /* empty: nothing to do */
    CHECK_EQ(PUB("[]"), 0);
    CHECK_EQ(seen.calls, 0);
    CHECK_EQ(PUB(" [ \n ] "), 0);
    CHECK_EQ(seen.calls, 0);
    CHECK_EQ(PUB_MAX("[]", 0), 0);

    /* exactly max_items */
    CHECK_EQ(PUB_MAX("[{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\",\"data\":2}]", 2), 2);
    CHECK_EQ(seen.calls, 2);
    CHECK_TOPIC_ITEM(1, "b", "2");
    /* a single object is not bounded by max_items */
    CHECK_EQ(PUB_MAX("{\"topic\":\"a\",\"data\":1}", 0), 1);
}

static void test_keys(void)
{
    /* duplicates: the first occurrence counts, as in cJSON */
    CHECK_EQ(PUB("{\"topic\":\"a\",\"topic\":\"b\",\"data\":1,\"data\":2}"), 1);
    CHECK_TOPIC_ITEM(0, "a", "1");
    CHECK_EQ(PUB("{\"topic\":\"a\",\"topic\":5,\"data\":1}"), 1);
    CHECK_TOPIC_ITEM(0, "a", "1");
    CHECK_EQ(PUB("{\"topic\":\"a\",\"broadcast\":true,\"broadcast\":false,\"data\":1}"), 1);
    CHECK_BROADCAST_ITEM(0, "1");
    CHECK_ERR("{\"topic\":\"a\",\"broadcast\":false,\"broadcast\":true,\"data\":1}",
              "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"topic\":5,\"topic\":\"a\",\"data\":1}", "item 0: \"topic\" must be a string");

    /* keys are compared decoded */
    CHECK_EQ(PUB("{\"\\u0074opic\":\"a\",\"d\\u0061t\\u0061\":[1],\"broad\\u0063ast\":true}"), 1);
    CHECK_BROADCAST_ITEM(0, "[1]");
    CHECK_EQ(PUB("{\"to\\u0070ic\":\"a\",\"\\u0064ata\":1}"), 1);
    CHECK_TOPIC_ITEM(0, "a", "1");
    /* ... so a NUL or anything else makes a different key */
    CHECK_ERR("{\"topic\\u0000\":\"a\",\"data\":1}", "item 0: missing \"topic\" (or \"broadcast\":true)");
    CHECK_ERR("{\"topic\":\"a\",\"data\\u0000\":1}", "item 0: missing \"data\"");
    CHECK_ERR("{\"topic\":\"a\",\"Data\":1}", "item 0: missing \"data\"");
    CHECK_ERR("{\"topic\":\"a\",\"data \":1}", "item 0: missing \"data\"");
    CHECK_ERR("{\"topic\":\"a\",\"dat\":1}", "item 0: missing \"data\"");
    CHECK_ERR("{\"topic\":\"a\",\"datas\":1}", "item 0: missing \"data\"");
    CHECK_ERR("{\"topic\":\"a\",\"d\\u00e1ta\":1}", "item 0: missing \"data\"");
}

static void test_invalid_json(void)
{
    CHECK_EQ(pub_n("", 0, 16), -EINVAL);
    CHECK_STR(err, e_json);
    CHECK_ERR(" ", e_json);
    CHECK_ERR("{", e_json);
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1,}", e_json);
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},]", e_json);
    CHECK_ERR("{\"topic\":\"a\" \"data\":1}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":undefined}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":tru}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":NaN}", e_json);
    /* trailing garbage */
    CHECK_ERR("{\"topic\":\"a\",\"data\":1} x", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1}{\"topic\":\"b\",\"data\":2}", e_json);
    CHECK_ERR("[]]", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1}\0", e_json);
    /* numbers cJSON alone would take */
    CHECK_ERR("{\"topic\":\"a\",\"data\":01}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":-01}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1.}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1.e3}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":.5}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":+1}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1e+}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":[1,02]}", e_json);
    /* bytes cJSON would skip or keep */
    CHECK_ERR("\xef\xbb\xbf{\"topic\":\"a\",\"data\":1}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\x01\"data\":1}", e_json);
    CHECK_ERR("\0{\"topic\":\"a\",\"data\":1}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"x\0y\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"tab\there\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"line\nbreak\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\x1f\"}", e_json);
    /* not UTF-8: would make every receiving client close (RFC 6455 §8.1) */
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\xff\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\xc0\xaf\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\xe0\x80\xaf\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\xed\xa0\x80\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\xf4\x90\x80\x80\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\xe2\x82\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\x80\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":1,\"x\":\"\xc3\"}", e_json);
    /* escapes */
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\\x41\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\\u12g4\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\\ud800\"}", e_json);
    CHECK_ERR("{\"topic\":\"a\",\"data\":\"\\", e_json);
    /* all of these fail an otherwise fine array too */
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\",\"data\":01}]", e_json);
}

static void test_shape(void)
{
    CHECK_ERR("\"text\"", e_shape);
    CHECK_ERR("5", e_shape);
    CHECK_ERR("null", e_shape);
    CHECK_ERR("true", e_shape);
    CHECK_ERR(" 5 ", e_shape);
    CHECK_ERR("[[]]", e_shape);
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},5]", e_shape);
    CHECK_ERR("[null,{\"topic\":\"a\",\"data\":1}]", e_shape);
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},[{\"topic\":\"a\",\"data\":1}]]", e_shape);
    /* the shape is judged before the items */
    CHECK_ERR("[{\"data\":1},\"x\"]", e_shape);
}

static void test_item_errors(void)
{
    CHECK_ERR("{\"topic\":\"a\"}", "item 0: missing \"data\"");
    CHECK_ERR("{}", "item 0: missing \"data\"");
    CHECK_ERR("{\"broadcast\":true}", "item 0: missing \"data\"");
    CHECK_ERR("{\"data\":1}", "item 0: missing \"topic\" (or \"broadcast\":true)");
    CHECK_ERR("{\"data\":1,\"channel\":\"a\"}", "item 0: missing \"topic\" (or \"broadcast\":true)");
    CHECK_ERR("{\"topic\":5,\"data\":1}", "item 0: \"topic\" must be a string");
    CHECK_ERR("{\"topic\":null,\"data\":1}", "item 0: \"topic\" must be a string");
    CHECK_ERR("{\"topic\":[\"a\"],\"data\":1}", "item 0: \"topic\" must be a string");
    CHECK_ERR("{\"topic\":{},\"data\":1}", "item 0: \"topic\" must be a string");
    CHECK_ERR("{\"topic\":true,\"data\":1}", "item 0: \"topic\" must be a string");
    CHECK_ERR("{\"topic\":\"\",\"data\":1}", "item 0: invalid topic name");
    CHECK_ERR("{\"topic\":\"a b\",\"data\":1}", "item 0: invalid topic name");
    CHECK_ERR("{\"topic\":\"caf\xc3\xa9\",\"data\":1}", "item 0: invalid topic name");
    CHECK_ERR("{\"topic\":\"\x7f\",\"data\":1}", "item 0: invalid topic name");
    /* no escapes in names, even ones that decode to valid names */
    CHECK_ERR("{\"topic\":\"\\u0061\",\"data\":1}", "item 0: invalid topic name");
    CHECK_ERR("{\"topic\":\"a\\/b\",\"data\":1}", "item 0: invalid topic name");
    CHECK_ERR("{\"topic\":\"a\\\"b\",\"data\":1}", "item 0: invalid topic name");
    CHECK_ERR("{\"topic\":\"a\\\\b\",\"data\":1}", "item 0: invalid topic name");
    {
        char b[400];
        int n = snprintf(b, sizeof(b), "{\"topic\":\"%0201d\",\"data\":1}", 5);
        CHECK_EQ(pub_n(b, (size_t)n, 16), -EINVAL);
        CHECK_STR(err, "item 0: invalid topic name");
        CHECK_EQ(seen.calls, 0);
    }
    CHECK_ERR("{\"broadcast\":false,\"data\":1}", "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"broadcast\":false,\"topic\":\"a\",\"data\":1}", "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"broadcast\":\"true\",\"data\":1}", "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"broadcast\":1,\"data\":1}", "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"broadcast\":null,\"data\":1}", "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"broadcast\":[true],\"data\":1}", "item 0: \"broadcast\" must be true");
    CHECK_ERR("{\"broadcast\":{},\"data\":1}", "item 0: \"broadcast\" must be true");

    /* N counts from 0 in an array, wherever the bad item is; nothing is published */
    CHECK_ERR("[{\"data\":1},{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\",\"data\":2}]",
              "item 0: missing \"topic\" (or \"broadcast\":true)");
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\"},{\"topic\":\"c\",\"data\":3}]",
              "item 1: missing \"data\"");
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},{\"broadcast\":true,\"data\":2},{\"topic\":\"c\",\"data\":3},"
              "{\"topic\":\"d\",\"data\":4},{\"topic\":\"e e\",\"data\":5}]",
              "item 4: invalid topic name");
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\",\"data\":2},{\"topic\":7,\"data\":3}]",
              "item 2: \"topic\" must be a string");
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},{\"broadcast\":false,\"data\":2}]",
              "item 1: \"broadcast\" must be true");
    /* the first bad item is reported */
    CHECK_ERR("[{\"topic\":\"a\",\"data\":1},{\"topic\":\"\",\"data\":2},{\"data\":3}]",
              "item 1: invalid topic name");
    /* double-digit N */
    CHECK_ERR("[{\"topic\":\"a\",\"data\":0},{\"topic\":\"a\",\"data\":1},{\"topic\":\"a\",\"data\":2},"
              "{\"topic\":\"a\",\"data\":3},{\"topic\":\"a\",\"data\":4},{\"topic\":\"a\",\"data\":5},"
              "{\"topic\":\"a\",\"data\":6},{\"topic\":\"a\",\"data\":7},{\"topic\":\"a\",\"data\":8},"
              "{\"topic\":\"a\",\"data\":9},{\"topic\":\"a\",\"data\":10},{\"topic\":\"a\"}]",
              "item 11: missing \"data\"");
}

static void test_too_many(void)
{
    CHECK_EQ(PUB_MAX("[{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\",\"data\":2},{\"topic\":\"c\",\"data\":3}]", 2),
             -EINVAL);
    CHECK_STR(err, "too many items (max 2)");
    CHECK_EQ(seen.calls, 0);
    /* counted before shape and items are judged */
    CHECK_EQ(PUB_MAX("[1,2,3]", 2), -EINVAL);
    CHECK_STR(err, "too many items (max 2)");
    CHECK_EQ(PUB_MAX("[{}]", 0), -EINVAL);
    CHECK_STR(err, "too many items (max 0)");
    CHECK_EQ(seen.calls, 0);
    /* but not before the JSON is known to be valid */
    CHECK_EQ(PUB_MAX("[1,2,3", 2), -EINVAL);
    CHECK_STR(err, e_json);
}

static void test_callback(void)
{
    static const char three[] =
        "[{\"topic\":\"a\",\"data\":1},{\"topic\":\"b\",\"data\":2},{\"topic\":\"c\",\"data\":3}]";

    /* a negative return stops the walk and is returned as is */
    pub_n(three, sizeof(three) - 1, 16); /* sets up body */
    memset(&seen, 0, sizeof(seen));
    seen.fail_at = 1;
    seen.fail_code = -EPIPE;
    CHECK_EQ(rc_publish_parse(body, body_len, 16, collect, &seen, err, sizeof(err)), -EPIPE);
    CHECK_EQ(seen.calls, 2);
    CHECK_TOPIC_ITEM(0, "a", "1");

    memset(&seen, 0, sizeof(seen));
    seen.fail_at = 0;
    seen.fail_code = -12345;
    CHECK_EQ(rc_publish_parse(body, body_len, 16, collect, &seen, err, sizeof(err)), -12345);
    CHECK_EQ(seen.calls, 1);

    memset(&seen, 0, sizeof(seen));
    seen.fail_at = 2;
    seen.fail_code = -ENOMEM;
    CHECK_EQ(rc_publish_parse(body, body_len, 16, collect, &seen, err, sizeof(err)), -ENOMEM);
    CHECK_EQ(seen.calls, 3);

    /* positive returns are not errors */
    memset(&seen, 0, sizeof(seen));
    seen.fail_at = 0;
    seen.fail_code = 7;
    CHECK_EQ(rc_publish_parse(body, body_len, 16, collect, &seen, err, sizeof(err)), 3);
    CHECK_EQ(seen.calls, 3);

    /* no callback: validation only */
    CHECK_EQ(rc_publish_parse(body, body_len, 16, NULL, NULL, err, sizeof(err)), 3);
    CHECK_EQ(rc_publish_parse(body, body_len, 2, NULL, NULL, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "too many items (max 2)");

    /* no room for a reason, or a short one */
    CHECK_EQ(rc_publish_parse("{\"data\":1}", 10, 16, NULL, NULL, NULL, 0), -EINVAL);
    char small[8];
    CHECK_EQ(rc_publish_parse("{\"data\":1}", 10, 16, NULL, NULL, small, sizeof(small)), -EINVAL);
    CHECK_STR(small, "item 0:");
}

int main(void)
{
    test_single();
    test_data_spans();
    test_arrays();
    test_keys();
    test_invalid_json();
    test_shape();
    test_item_errors();
    test_too_many();
    test_callback();
    free(body);
    RC_TEST_MAIN_END("test_publish");
}
