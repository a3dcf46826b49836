/*
 * test_utf8.c — rc_utf8_validate(): RFC 3629 boundary cases (Markus Kuhn's
 * stress-test classes), every split point giving the same answer as one
 * call, the 8-byte ASCII fast path at every alignment, and an exhaustive
 * comparison with a straightforward code-point decoder for all inputs of up
 * to three bytes.
 */
#include <stdint.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/ws.h"

enum verdict { VALID, INVALID, INCOMPLETE };

static enum verdict verdict_of(uint32_t state)
{
    if (state == RC_UTF8_ACCEPT)
        return VALID;
    if (state == RC_UTF8_REJECT)
        return INVALID;
    return INCOMPLETE;
}

static enum verdict check(const void *s, size_t n)
{
    return verdict_of(rc_utf8_validate(RC_UTF8_ACCEPT, s, n));
}

#define V(lit) check(lit, sizeof lit - 1)

/*
 * Reference: decodes code points the obvious way. INCOMPLETE when the input
 * ends inside a sequence that some continuation bytes could still complete
 * into a valid scalar value; INVALID when no completion could (the
 * validator must reject as early as that).
 */
static enum verdict reference(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t b = p[i];
        size_t need;
        uint32_t cp, min, max;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            need = 1, cp = b & 0x1F, min = 0x80, max = 0x7FF;
        } else if ((b & 0xF0) == 0xE0) {
            need = 2, cp = b & 0x0F, min = 0x800, max = 0xFFFF;
        } else if ((b & 0xF8) == 0xF0) {
            need = 3, cp = b & 0x07, min = 0x10000, max = 0x10FFFF;
        } else {
            return INVALID;
        }
        size_t have = 0;
        while (have < need && i + 1 + have < n) {
            uint8_t c = p[i + 1 + have];
            if ((c & 0xC0) != 0x80)
                return INVALID;
            cp = cp << 6 | (c & 0x3F);
            have++;
        }
        /* Range of code points still reachable from this prefix. */
        unsigned missing_bits = 6 * (unsigned)(need - have);
        uint32_t lo = cp << missing_bits;
        uint32_t hi = lo | ((UINT32_C(1) << missing_bits) - 1);
        if (lo < min)
            lo = min;
        if (hi > max)
            hi = max;
        if (lo > hi)
            return INVALID;
        if (lo >= 0xD800 && hi <= 0xDFFF)
            return INVALID; /* only surrogates reachable */
        if (have < need)
            return INCOMPLETE;
        i += 1 + need;
    }
    return VALID;
}

/* Same verdict for one call, every two-way split, and byte by byte. */
static void check_splits(const uint8_t *p, size_t n, enum verdict expect)
{
    uint32_t whole = rc_utf8_validate(RC_UTF8_ACCEPT, p, n);
    CHECK_EQ(verdict_of(whole), expect);
    for (size_t i = 0; i <= n; i++) {
        uint32_t s = rc_utf8_validate(RC_UTF8_ACCEPT, p, i);
        s = rc_utf8_validate(s, p + i, n - i);
        CHECK_EQ(s, whole);
    }
    uint32_t s = RC_UTF8_ACCEPT;
    for (size_t i = 0; i < n; i++)
        s = rc_utf8_validate(s, p + i, 1);
    CHECK_EQ(s, whole);
}

struct sample {
    const char *bytes;
    size_t len;
    enum verdict expect;
};

#define S(lit, v) {lit, sizeof lit - 1, v}

static const struct sample samples[] = {
    /* Boundaries of each sequence length (RFC 3629 §4 table). */
    S("", VALID),
    S("\x00", VALID),
    S("\x7f", VALID),                 /* U+007F */
    S("\xc2\x80", VALID),             /* U+0080 */
    S("\xdf\xbf", VALID),             /* U+07FF */
    S("\xe0\xa0\x80", VALID),         /* U+0800 */
    S("\xed\x9f\xbf", VALID),         /* U+D7FF */
    S("\xee\x80\x80", VALID),         /* U+E000 */
    S("\xef\xbf\xbd", VALID),         /* U+FFFD */
    S("\xef\xbf\xbf", VALID),         /* U+FFFF (noncharacter, still valid) */
    S("\xf0\x90\x80\x80", VALID),     /* U+10000 */
    S("\xf4\x8f\xbf\xbf", VALID),     /* U+10FFFF */
    S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID), /* "κόσμε" */
    S("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!", VALID),
    S("\xf0\x9f\x98\x80 grin \xe2\x82\xac euro", VALID),
    /* Beyond U+10FFFF. */
    S("\xf4\x90\x80\x80", INVALID), /* U+110000 */
    S("\xf5\x80\x80\x80", INVALID),
    S("\xf7\xbf\xbf\xbf", INVALID),
    S("\xf8\x88\x80\x80\x80", INVALID), /* old 5-byte form */
    S("\xfc\x84\x80\x80\x80\x80", INVALID), /* old 6-byte form */
    S("\xfe", INVALID),
    S("\xff", INVALID),
    S("\xfe\xfe\xff\xff", INVALID),
    /* Surrogates, single and paired. */
    S("\xed\xa0\x80", INVALID), /* U+D800 */
    S("\xed\xad\xbf", INVALID), /* U+DB7F */
    S("\xed\xae\x80", INVALID),
    S("\xed\xaf\xbf", INVALID),
    S("\xed\xb0\x80", INVALID), /* U+DC00 */
    S("\xed\xbf\xbf", INVALID), /* U+DFFF */
    S("\xed\xa0\x80\xed\xb0\x80", INVALID),
    S("\xed\xaf\xbf\xed\xbf\xbf", INVALID),
    /* Overlongs: "/" in every longer form, and the largest overlongs. */
    S("\xc0\xaf", INVALID),
    S("\xe0\x80\xaf", INVALID),
    S("\xf0\x80\x80\xaf", INVALID),
    S("\xc0\x80", INVALID), /* U+0000 as two bytes */
    S("\xc1\xbf", INVALID),
    S("\xe0\x9f\xbf", INVALID),
    S("\xf0\x8f\xbf\xbf", INVALID),
    /* Stray continuation bytes. */
    S("\x80", INVALID),
    S("\xbf", INVALID),
    S("a\x80", INVALID),
    S("\xc2\x80\x80", INVALID),
    S("\x80\xbf\x80\xbf", INVALID),
    /* A lead byte followed by something other than a continuation. */
    S("\xc2\x41", INVALID),
    S("\xc2 ", INVALID),
    S("\xe1\x80\x41", INVALID),
    S("\xf1\x80\x80\x41", INVALID),
    S("\xe1\xc2\x80", INVALID),
    /* Inputs that end inside a character. */
    S("\xc2", INCOMPLETE),
    S("\xe0\xa0", INCOMPLETE),
    S("\xe1\x80", INCOMPLETE),
    S("\xed\x9f", INCOMPLETE),
    S("\xf0\x90\x80", INCOMPLETE),
    S("\xf4\x8f\xbf", INCOMPLETE),
    S("abc\xce", INCOMPLETE),
    /* ...but known-bad prefixes are rejected without waiting. */
    S("\xe0\x80", INVALID),
    S("\xed\xa0", INVALID),
    S("\xf0\x80", INVALID),
    S("\xf4\x90", INVALID),
    /* Autobahn 6.x style: valid text then a bad byte. */
    S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", INVALID),
};

static void test_samples(void)
{
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const struct sample *s = &samples[i];
        enum verdict got = check(s->bytes, s->len);
        if (got != s->expect)
            fprintf(stderr, "sample %zu: got %d want %d\n", i, (int)got, (int)s->expect);
        CHECK_EQ(got, s->expect);
        CHECK_EQ(reference((const uint8_t *)s->bytes, s->len), s->expect);
        check_splits((const uint8_t *)s->bytes, s->len, s->expect);
    }
}

static void test_named_cases(void)
{
    CHECK_EQ(V("\x7f"), VALID);
    CHECK_EQ(V("\xc2\x80"), VALID);
    CHECK_EQ(V("\xdf\xbf"), VALID);
    CHECK_EQ(V("\xe0\xa0\x80"), VALID);
    CHECK_EQ(V("\xef\xbf\xbf"), VALID);
    CHECK_EQ(V("\xf0\x90\x80\x80"), VALID);
    CHECK_EQ(V("\xf4\x8f\xbf\xbf"), VALID);
    CHECK_EQ(V("\xf4\x90\x80\x80"), INVALID);
    CHECK_EQ(V("\xed\xa0\x80"), INVALID);
    CHECK_EQ(V("\xc0\x80"), INVALID);

    /* REJECT is sticky, and the intermediate states are neither 0 nor 12. */
    CHECK_EQ(rc_utf8_validate(RC_UTF8_REJECT, (const uint8_t *)"abc", 3), RC_UTF8_REJECT);
    CHECK_EQ(rc_utf8_validate(RC_UTF8_REJECT, NULL, 0), RC_UTF8_REJECT);
    CHECK_EQ(rc_utf8_validate(RC_UTF8_ACCEPT, NULL, 0), RC_UTF8_ACCEPT);
    uint32_t mid = rc_utf8_validate(RC_UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2);
    CHECK(mid != RC_UTF8_ACCEPT && mid != RC_UTF8_REJECT);
    CHECK_EQ(rc_utf8_validate(mid, (const uint8_t *)"\xac", 1), RC_UTF8_ACCEPT);
    CHECK_EQ(rc_utf8_validate(mid, (const uint8_t *)"a", 1), RC_UTF8_REJECT);
}

/* The 8-byte ASCII skip must never run while inside a character, and must
 * see a non-ASCII byte at any offset. */
static void test_fast_path(void)
{
    uint8_t buf[80];

    for (size_t len = 1; len <= 64; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            memset(buf, 'a', sizeof buf);
            buf[pos] = 0xFF;
            CHECK_EQ(check(buf, len), INVALID);
            buf[pos] = 0x80;
            CHECK_EQ(check(buf, len), INVALID);
            if (pos + 1 < len) {
                buf[pos] = 0xC3;
                buf[pos + 1] = 0xA9;
                CHECK_EQ(check(buf, len), VALID);
            }
            if (pos + 3 < len) {
                memcpy(buf + pos, "\xf0\x9f\x98\x80", 4);
                CHECK_EQ(check(buf, len), VALID);
            }
        }
    }
    /* A lead byte, then a long ASCII run: rejected at the first ASCII byte
     * even though the run is 8-byte aligned ASCII. */
    memset(buf, 'a', sizeof buf);
    uint32_t s = rc_utf8_validate(RC_UTF8_ACCEPT, (const uint8_t *)"\xe2", 1);
    CHECK_EQ(rc_utf8_validate(s, buf, 64), RC_UTF8_REJECT);
    s = rc_utf8_validate(RC_UTF8_ACCEPT, (const uint8_t *)"\xe2\x82", 2);
    CHECK_EQ(rc_utf8_validate(s, buf, 64), RC_UTF8_REJECT);
    /* A character completed and then 8-byte ASCII runs. */
    memcpy(buf, "\xac", 1);
    CHECK_EQ(rc_utf8_validate(s, buf, 64), RC_UTF8_ACCEPT);
    /* Pure ASCII of every length, including all 128 ASCII values. */
    for (size_t len = 0; len <= 80; len++) {
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)((i * 37) & 0x7F);
        CHECK_EQ(check(buf, len), VALID);
    }
}

/* Every input of 1, 2 and 3 bytes, plus 4-byte inputs over a grid, against
 * the reference decoder; a long random stream split at every point. */
static void test_exhaustive(void)
{
    long mismatches = 0;
    uint8_t b[4];

    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        mismatches += check(b, 1) != reference(b, 1);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            mismatches += check(b, 2) != reference(b, 2);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                mismatches += check(b, 3) != reference(b, 3);
            }
        }
    }
    static const uint8_t grid[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    for (unsigned x = 0xC0; x < 256; x++) {
        for (unsigned y = 0; y < 256; y++) {
            for (size_t i = 0; i < sizeof grid; i++) {
                for (size_t j = 0; j < sizeof grid; j++) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = grid[i], b[3] = grid[j];
                    mismatches += check(b, 4) != reference(b, 4);
                }
            }
        }
    }
    CHECK_EQ(mismatches, 0);

    /* Pseudo-random mostly-valid text, split at every point. */
    uint8_t text[300];
    uint32_t seed = 12345;
    size_t n = 0;
    while (n + 4 <= sizeof text) {
        seed = seed * 1103515245 + 12345;
        uint32_t cp = (seed >> 8) % 0x110000;
        if (cp >= 0xD800 && cp <= 0xDFFF)
            cp = 'x';
        if ((seed & 3) == 0)
            cp &= 0x7F;
        if (cp < 0x80) {
            text[n++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            text[n++] = (uint8_t)(0xC0 | cp >> 6);
            text[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            text[n++] = (uint8_t)(0xE0 | cp >> 12);
            text[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            text[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        } else {
            text[n++] = (uint8_t)(0xF0 | cp >> 18);
            text[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            text[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            text[n++] = (uint8_t)(0x80 | (cp & 0x3F));
        }
    }
    check_splits(text, n, VALID);
    CHECK_EQ(reference(text, n), VALID);
    /* Corrupt one byte at a time: validator and reference still agree, and
     * splitting never changes the answer. */
    for (size_t i = 0; i < n; i += 7) {
        uint8_t saved = text[i];
        text[i] = (uint8_t)(saved ^ 0x40);
        enum verdict want = reference(text, n);
        check_splits(text, n, want);
        text[i] = saved;
    }
}

int main(void)
{
    test_samples();
    test_named_cases();
    test_fast_path();
    test_exhaustive();
    RC_TEST_MAIN_END("test_utf8");
}
