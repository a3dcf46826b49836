/*
 * tests/unit/util/test_json.c — unit tests for src/util/json.c: what the
 * strict pre-scan rejects that cJSON would accept (control bytes, a BOM,
 * lenient numbers), what each flag adds (UTF-8 inside strings; \u escape
 * hex digits and the decoded length of strings holding "\u0000"), the
 * parse with nothing but whitespace after the value, and rc_json_hex4().
 *
 * Every text is scanned from an exactly-sized heap copy, so a read past n
 * shows up under ASan. proto's and publish's own tests cover how their
 * callers use this; here only the module's contract.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/json.h"

static char *dup_n(const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, s, n);
    return copy;
}

static bool scan_n(const char *s, size_t n, unsigned flags, struct rc_json_nul_string *out,
                   size_t cap, size_t *nnul)
{
    char *copy = dup_n(s, n);
    bool ok = rc_json_scan(copy, n, flags, out, cap, nnul);
    free(copy);
    return ok;
}

/* String literals, including ones with embedded NUL bytes. */
#define SCAN(lit, flags) scan_n((lit), sizeof(lit) - 1, (flags), NULL, 0, NULL)

/* rc_json_parse() on a copy: the root's type, or 0 when NULL. */
static int parse_type(const char *s, size_t n, unsigned flags)
{
    char *copy = dup_n(s, n);
    cJSON *root = rc_json_parse(copy, n, flags, NULL);
    int type = root != NULL ? root->type & 0xff : 0;
    cJSON_Delete(root);
    free(copy);
    return type;
}

#define PARSE(lit, flags) parse_type((lit), sizeof(lit) - 1, (flags))

static void test_scan_outside_strings(void)
{
    static const unsigned all[] = { 0, RC_JSON_UTF8, RC_JSON_NUL, RC_JSON_UTF8 | RC_JSON_NUL };
    for (size_t f = 0; f < sizeof(all) / sizeof(all[0]); f++) {
        unsigned flags = all[f];
        CHECK(SCAN("{\"a\": [1, -2, 0, -0, 0.5, 1e9, 1E+9, -1.25e-3, true, null]}", flags));
        CHECK(SCAN(" \t\r\n{}\n", flags));
        CHECK(SCAN("", flags));

        CHECK(!SCAN("\xef\xbb\xbf{}", flags)); /* a BOM, which cJSON skips */
        CHECK(!SCAN("{}\x01", flags));         /* cJSON skips every byte <= 0x20 */
        CHECK(!SCAN("{\"a\":\x0b" "1}", flags));
        CHECK(!SCAN("\0{}", flags));

        CHECK(!SCAN("01", flags));
        CHECK(!SCAN("-01", flags));
        CHECK(!SCAN("1.", flags));
        CHECK(!SCAN("1.e5", flags));
        CHECK(!SCAN("1e", flags));
        CHECK(!SCAN("1e+", flags));
        CHECK(!SCAN("-", flags));
        CHECK(!SCAN("[1-2]", flags));
        CHECK(!SCAN("[1.5.5]", flags));
    }
}

static void test_scan_inside_strings(void)
{
    CHECK(SCAN("\"a\\\"b\\\\c\\n\"", 0));
    CHECK(SCAN("\"a\\u00e9\"", 0));
    CHECK(!SCAN("\"a\tb\"", 0)); /* raw control byte: cJSON keeps it */
    CHECK(!SCAN("\"a\nb\"", RC_JSON_UTF8));
    CHECK(!SCAN("\"a\0b\"", RC_JSON_NUL));
    CHECK(!SCAN("\"abc", 0)); /* unterminated */
    CHECK(!SCAN("\"abc\\", 0));
    CHECK(!SCAN("\"abc\\\"", 0));
    CHECK(SCAN("\"\\q\"", 0)); /* which escapes exist is cJSON's check */
    CHECK(!PARSE("\"\\q\"", 0));
}

static void test_scan_utf8(void)
{
    /* Well-formed: 2, 3 and 4 bytes, the edges of each range. */
    CHECK(SCAN("\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf\"", RC_JSON_UTF8));

    static const char *const bad[] = {
        "\"\xc3\"",             /* truncated by the quote */
        "\"\xc0\x80\"",         /* overlong NUL */
        "\"\xe0\x80\xaf\"",     /* overlong '/' */
        "\"\xed\xa0\x80\"",     /* UTF-16 surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xf5\x80\x80\x80\"",
        "\"\x80\"", /* lone continuation byte */
        "\"\xff\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!scan_n(bad[i], strlen(bad[i]), RC_JSON_UTF8, NULL, 0, NULL));
        /* Without the flag the caller has validated UTF-8: bytes pass. */
        CHECK(scan_n(bad[i], strlen(bad[i]), RC_JSON_NUL, NULL, 0, NULL));
    }
    /* Truncated at the very end of the text, not only by the quote. */
    CHECK(!SCAN("\"\xe2\x82", RC_JSON_UTF8));
    /* Outside strings, bytes >= 0x80 are wrong with or without the flag. */
    CHECK(!SCAN("[1]\xc3\xa9", RC_JSON_UTF8));
    CHECK(!SCAN("[1]\xc3\xa9", 0));
}

static void test_scan_nul_strings(void)
{
    struct rc_json_nul_string out[4];
    size_t nnul = 99;

    /* Keys count as strings: ordinals in document order. */
    static const char two[] = "{\"a\\u0000b\":\"x\",\"k\":\"\\u0000\\u00e9\\u20ac\\ud83d\\ude00z\"}";
    memset(out, 0xff, sizeof(out));
    CHECK(scan_n(two, sizeof(two) - 1, RC_JSON_NUL, out, 4, &nnul));
    CHECK_EQ(nnul, 2);
    CHECK_EQ(out[0].ordinal, 0);
    CHECK_EQ(out[0].decoded_len, 3);
    CHECK_EQ(out[1].ordinal, 3);
    CHECK_EQ(out[1].decoded_len, 1 + 2 + 3 + 4 + 1);

    /* Fewer slots than strings: all are counted, cap are recorded. */
    static const char three[] = "[\"\\u0000\",\"a\",\"\\u0000a\",\"\\u0000ab\"]";
    memset(out, 0xff, sizeof(out));
    CHECK(scan_n(three, sizeof(three) - 1, RC_JSON_NUL, out, 1, &nnul));
    CHECK_EQ(nnul, 3);
    CHECK_EQ(out[0].ordinal, 0);
    CHECK_EQ(out[0].decoded_len, 1);
    CHECK_EQ(out[1].ordinal, (size_t)-1); /* untouched */
    CHECK(scan_n(three, sizeof(three) - 1, RC_JSON_NUL, NULL, 0, &nnul));
    CHECK_EQ(nnul, 3);

    /* A lone high surrogate is one 3-byte character, the next escape its own. */
    static const char lone[] = "[\"\\ud83d\\u0000\"]";
    CHECK(scan_n(lone, sizeof(lone) - 1, RC_JSON_NUL, out, 4, &nnul));
    CHECK_EQ(nnul, 1);
    CHECK_EQ(out[0].decoded_len, 4);

    /* Without RC_JSON_NUL nothing is counted and escapes are cJSON's. */
    CHECK(scan_n(three, sizeof(three) - 1, RC_JSON_UTF8, NULL, 0, &nnul));
    CHECK_EQ(nnul, 0);
    CHECK(SCAN("[\"\\u12G4\"]", RC_JSON_UTF8));
    CHECK(SCAN("[\"\\u12\"]", 0));
    CHECK(!SCAN("[\"\\u12G4\"]", RC_JSON_NUL));
    CHECK(!SCAN("[\"\\u12\"]", RC_JSON_NUL));
    CHECK(!SCAN("\"\\u123", RC_JSON_NUL));
}

static void test_parse(void)
{
    CHECK_EQ(PARSE("{\"a\":1}", 0), cJSON_Object);
    CHECK_EQ(PARSE(" [1,2] \r\n\t", RC_JSON_UTF8), cJSON_Array);
    CHECK_EQ(PARSE("\"s\"", RC_JSON_NUL), cJSON_String);
    CHECK_EQ(PARSE("{} {}", 0), 0);
    CHECK_EQ(PARSE("{}x", 0), 0);
    CHECK_EQ(PARSE("{}\0", 0), 0);
    CHECK_EQ(PARSE("{\"a\":}", 0), 0);
    CHECK_EQ(PARSE("", 0), 0);
    CHECK_EQ(PARSE("[01]", 0), 0);           /* the scan's verdict */
    CHECK_EQ(PARSE("[\"\xc0\x80\"]", RC_JSON_UTF8), 0);
    CHECK_EQ(PARSE("[\"\xc3\xa9\"]", RC_JSON_UTF8), cJSON_Array);

    size_t nnul = 99;
    static const char nul[] = "{\"t\":\"a\\u0000b\"}";
    char *copy = dup_n(nul, sizeof(nul) - 1);
    cJSON *root = rc_json_parse(copy, sizeof(nul) - 1, RC_JSON_NUL, &nnul);
    CHECK(root != NULL);
    CHECK_EQ(nnul, 1);
    if (root != NULL)
        CHECK_EQ(strlen(cJSON_GetObjectItemCaseSensitive(root, "t")->valuestring), 1);
    cJSON_Delete(root);
    free(copy);
}

static void test_hex4(void)
{
    CHECK_EQ(rc_json_hex4("u0000", 5, 0), 0);
    CHECK_EQ(rc_json_hex4("uFfFf", 5, 0), 0xffff);
    CHECK_EQ(rc_json_hex4("\\u00e9", 6, 1), 0xe9);
    CHECK_EQ(rc_json_hex4("xu12aBy", 7, 1), 0x12ab);
    CHECK_EQ(rc_json_hex4("u12G4", 5, 0), -1);
    CHECK_EQ(rc_json_hex4("u123", 4, 0), -1);
    CHECK_EQ(rc_json_hex4("u1234", 4, 0), -1); /* n cuts the last digit */
    CHECK_EQ(rc_json_hex4("ab", 2, 2), -1);    /* i == n */
}

int main(void)
{
    test_scan_outside_strings();
    test_scan_inside_strings();
    test_scan_utf8();
    test_scan_nul_strings();
    test_parse();
    test_hex4();
    RC_TEST_MAIN_END("test_json");
}
