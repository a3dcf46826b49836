/*
 * ringcast/auth.h — the I/O-free parts of authentication and subscription
 * policy: constant-time secret comparison, sets of accepted tokens
 * (--publish-token, --publish-token-file, --admin-token), '*' globs
 * (--private-topics, the JWT "topics" claim) and HS256 JWT verification
 * (--jwt-secret).
 *
 * Place in the data flow: config builds token sets, glob lists and keeps
 * the JWT secret at start-up (and builds a fresh token set on SIGHUP); the
 * router checks a publish or admin request's presented credential with
 * rc_token_set_match(); the WebSocket upgrade verifies a presented JWT with
 * rc_jwt_verify() and keeps the claims with the connection; a subscribe
 * asks rc_globs_match() whether a topic is private and rc_claims_cover()
 * whether the connection's claims allow it.
 *
 * Ownership: a token set, a glob list and claims own copies of every byte
 * they hold; nothing points into the caller's buffers. They are immutable
 * once built, so any number of threads may read one concurrently (the
 * caller publishes a new set and frees the old one when no reader is left).
 * No global state: any thread may call any function.
 *
 * Errors are negative errno values; functions taking err/errcap also write
 * a short reason, NUL-terminated, into err[0..errcap) (err may be NULL).
 * Reasons never contain a secret.
 */
#ifndef RINGCAST_AUTH_H
#define RINGCAST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest accepted token in a token set (bytes). */
#define RC_TOKEN_MAX 512
/* Longest accepted JWT (bytes, the whole header.payload.signature). */
#define RC_JWT_MAX 8192
/* Bounds of the JWT "topics" claim: bytes per glob, globs per token. */
#define RC_JWT_TOPIC_MAX 200
#define RC_JWT_TOPICS_MAX 256

/* ---- constant-time comparison ---- */

/*
 * True when a[0..alen) equals b[0..blen). Reads max(alen, blen) bytes of
 * each side's worth with no data-dependent branch or early exit, so the
 * time taken depends only on the two lengths, never on the contents.
 * a or b may be NULL when its length is 0.
 */
bool rc_token_equal(const void *a, size_t alen, const void *b, size_t blen);

/* ---- token sets ---- */

/* A set of accepted secrets (publish tokens, admin tokens). */
struct rc_token_set;

/* An empty set, or NULL when out of memory. */
struct rc_token_set *rc_token_set_new(void);

/*
 * Adds a copy of tok[0..len). Returns 0, -EINVAL when the token is empty,
 * longer than RC_TOKEN_MAX bytes, or holds a space or a control byte
 * (0x00-0x20, 0x7f), or -ENOMEM. A token already in the set is not added
 * twice (returns 0).
 */
int rc_token_set_add(struct rc_token_set *ts, const char *tok, size_t len);

/*
 * Adds every token of a comma-separated list (the RINGCAST_PUBLISH_TOKEN
 * form: "t1,t2"); spaces and tabs around each entry are trimmed. Returns 0,
 * -EINVAL when the list is NULL or an entry is empty or invalid (see
 * rc_token_set_add), or -ENOMEM. On error the set is left as it was.
 */
int rc_token_set_add_list(struct rc_token_set *ts, const char *comma_separated);

/*
 * Adds the tokens of a file: one per line, surrounding whitespace
 * (including a CR before the LF) trimmed, blank lines and lines whose first
 * non-blank byte is '#' ignored, a UTF-8 BOM at the start skipped. Files
 * over 1 MiB are refused. Returns 0, or:
 *   -errno  the file cannot be opened or read ("cannot read FILE: ...");
 *   -EFBIG  the file is larger than 1 MiB;
 *   -EINVAL a line holds an invalid token ("FILE:LINE: ..."; the token
 *           itself is not quoted) or the file holds no token at all
 *           ("no token in FILE");
 *   -ENOMEM.
 * On error the set is left as it was.
 */
int rc_token_set_load_file(struct rc_token_set *ts, const char *path, char *err, size_t errcap);

/* Number of distinct tokens in the set (0 for NULL). */
size_t rc_token_set_count(const struct rc_token_set *ts);

/*
 * True when tok[0..len) is one of the set's tokens. Compares against EVERY
 * entry with rc_token_equal() (no early exit), so the time taken depends
 * on the set's size and lengths, not on which entry matched or how much of
 * it. False for a NULL or empty set.
 */
bool rc_token_set_match(const struct rc_token_set *ts, const char *tok, size_t len);

/* Frees the set and wipes its tokens. NULL is a no-op. */
void rc_token_set_free(struct rc_token_set *ts);

/* ---- globs ---- */

/*
 * True when s[0..slen) matches the glob pat[0..plen): '*' matches any run
 * of bytes (including none); every other byte matches itself (no '?', no
 * classes, no escapes). Iterative, O(plen * slen) in the worst case, no
 * recursion and no allocation.
 */
bool rc_glob_match(const char *pat, size_t plen, const char *s, size_t slen);

/* A list of globs; each pat[i] is a NUL-terminated copy of len[i] bytes. */
struct rc_globs {
    char **pat;
    size_t *len;
    size_t n;
};

/*
 * Fills *g (overwritten, not freed first) from a comma-separated flag value
 * such as "portfolio:*,orders:*"; spaces and tabs around each entry are
 * trimmed. Returns 0, -EINVAL when the value is NULL or an entry is empty,
 * or -ENOMEM. On error *g is left empty ({0}) and owns nothing.
 */
int rc_globs_parse(struct rc_globs *g, const char *comma_separated);

/* True when one of g's globs matches s[0..slen); false for an empty list. */
bool rc_globs_match(const struct rc_globs *g, const char *s, size_t slen);

/* Frees what g holds and leaves it empty. */
void rc_globs_free(struct rc_globs *g);

/* ---- JWT (HS256) ---- */

/* Verified claims: copies of the "topics" globs and "exp". */
struct rc_claims;

/*
 * Verifies an HS256 JWT tok[0..len) (RFC 7519 / RFC 7515 compact form):
 *   - at most RC_JWT_MAX bytes; exactly three base64url parts (no padding,
 *     no other alphabet, unused trailing bits zero) — "malformed token";
 *   - header: a JSON object with "alg":"HS256" — "alg must be HS256" for a
 *     missing alg, "none" or any other; "typ" optional; "crit" refused;
 *   - signature: HMAC-SHA256(secret, header_b64 "." payload_b64), compared
 *     in constant time — "bad signature";
 *   - payload: a JSON object (strict JSON, UTF-8, no duplicate member, no
 *     "\u0000" in a string); "exp", when present, a number > now_s ("token
 *     expired"); "nbf", when present, a number <= now_s ("token not yet
 *     valid"); "topics", when present, an array of at most RC_JWT_TOPICS_MAX
 *     strings of 1..RC_JWT_TOPIC_MAX bytes, each a glob as for
 *     rc_glob_match() ("\"topics\" must be an array of strings", ...).
 * The signature is checked before the payload is parsed. Returns 0 and
 * *out (free with rc_claims_free), or, with *out NULL and a short reason in
 * err: -EINVAL (the token, or an empty secret: "no JWT secret"), -ENOMEM,
 * or -EIO when wolfCrypt's HMAC fails ("HMAC failed"; not expected).
 */
int rc_jwt_verify(const char *tok, size_t len, const void *secret, size_t secret_len, int64_t now_s,
                  struct rc_claims **out, char *err, size_t errcap);

/*
 * True when one of the claims' "topics" globs matches topic[0..len).
 * Nothing is implied: the firehose, named "*", is covered only by a glob
 * matching the literal string "*" (so "*" or "**" does, "demo:*" does not).
 * False for NULL claims or claims without "topics".
 */
bool rc_claims_cover(const struct rc_claims *c, const char *topic, size_t len);

/* The claims' "exp" in whole seconds (rounded down, saturated to
 * INT64_MAX), or 0 when the token has none. */
int64_t rc_claims_exp(const struct rc_claims *c);

/* Frees the claims. NULL is a no-op. */
void rc_claims_free(struct rc_claims *c);

#endif
