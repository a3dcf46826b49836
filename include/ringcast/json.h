/*
 * ringcast/json.h — strict RFC 8259 JSON in front of cJSON: a byte scan for
 * what cJSON lets through and the standard forbids, and a parse that
 * accepts nothing but whitespace after the value.
 *
 * Place in the data flow: the client protocol on /ws (src/proto) and the
 * HTTP publish body (src/ingest) call rc_json_parse() on the complete
 * message before they walk the tree; proto also asks rc_json_scan() for the
 * decoded length of strings that cJSON's NUL-terminated copies cut short.
 *
 * Owns nothing: a parsed tree belongs to the caller (cJSON_Delete). No
 * state of its own, so any thread may call (cJSON records the position of
 * a parse error in a process-wide variable; nothing here reads it).
 */
#ifndef RINGCAST_JSON_H
#define RINGCAST_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Options of rc_json_scan() and rc_json_parse(), or-ed together. */
enum rc_json_flags {
    /* Strings must be well-formed UTF-8 (no overlongs, surrogates or code
     * points above U+10FFFF): for text forwarded to WebSocket clients,
     * which drop the connection on invalid UTF-8. Without it, bytes >= 0x80
     * inside strings pass unchecked (the caller validated them already). */
    RC_JSON_UTF8 = 1 << 0,
    /* Decode \uXXXX escapes here: one without four hex digits is rejected,
     * and strings holding "\u0000" are counted and measured (see
     * struct rc_json_nul_string). Without it, escapes are left to cJSON. */
    RC_JSON_NUL = 1 << 1,
};

/* A string whose text contains a "\u0000" escape: its position among all
 * strings of the message (keys included, in document order) and its length
 * once decoded, which strlen() on cJSON's copy cannot tell. */
struct rc_json_nul_string {
    size_t ordinal;
    size_t decoded_len;
};

/*
 * Walks s[0..n) once. Returns false on what RFC 8259 forbids and cJSON lets
 * through: control bytes other than JSON whitespace outside strings (cJSON
 * skips every byte <= 0x20), any control byte inside a string, bytes >= 0x80
 * outside strings (cJSON skips a UTF-8 BOM) and numbers such as 01, 1. or
 * -01; plus what flags add. Structure, literals and which escapes exist are
 * left to cJSON, so true does not mean the text is JSON.
 *
 * With RC_JSON_NUL, records up to cap strings containing "\u0000" into out
 * (ascending ordinals) and, when nnul is not NULL, counts all of them in
 * *nnul (0 without RC_JSON_NUL). out may be NULL when cap is 0.
 */
bool rc_json_scan(const char *s, size_t n, unsigned flags, struct rc_json_nul_string *out,
                  size_t cap, size_t *nnul);

/*
 * Full validation of s[0..n): rc_json_scan() with flags, cJSON, then only
 * JSON whitespace after the value. Returns the tree, which the caller owns
 * and frees with cJSON_Delete(), or NULL when the text is not JSON (or
 * cJSON ran out of memory). *nnul as in rc_json_scan(); NULL to ignore.
 */
struct cJSON *rc_json_parse(const char *s, size_t n, unsigned flags, size_t *nnul);

/* The code unit of the \uXXXX escape whose 'u' is at s[i], or -1 when
 * s[i + 1 .. i + 4] are not four hex digits inside s[0..n). i <= n. */
long rc_json_hex4(const char *s, size_t n, size_t i);

#endif
