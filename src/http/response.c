/*
 * src/http/response.c — small HTTP/1.1 response builder.
 *
 * Place in the data flow: the router (src/net) and the REST endpoints call
 * these to turn a status, a few headers and a body into the exact bytes
 * queued on the socket; parse errors from rc_http_parse_request() come back
 * here as JSON error responses.
 *
 * Owns nothing: it writes into the caller's buffer and allocates nothing.
 * Any thread may call it.
 *
 * Every response carries "Server: ringcast" and a Content-Length (even 0),
 * so the peer never has to read to EOF to find the end of a response —
 * except 1xx and 204, which RFC 9110 §8.6 forbids to carry Content-Length,
 * and 304, whose Content-Length would describe the unsent representation.
 * None of the three may carry a body: asking for one returns -EINVAL, as
 * does a status outside 100..999.
 */
#include "ringcast/http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *rc_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Appends into out[0..cap), remembering overflow instead of failing at
 * each step, so the formatting code reads straight through. */
struct writer {
    char *out;
    size_t cap;
    size_t len;
    bool overflow;
};

static void put(struct writer *w, const void *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    if (n > 0)
        memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void put_str(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_u64(struct writer *w, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", v);
    put(w, tmp, (size_t)n);
}

static bool has_no_content(int status)
{
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/* Status line and headers through the blank line; the body follows. */
static int put_head(struct writer *w, int status, const char *content_type,
                    const char *extra_headers, size_t body_len, bool keep_alive)
{
    if (status < 100 || status > 999)
        return -EINVAL;
    if (has_no_content(status) && body_len > 0)
        return -EINVAL;

    put_str(w, "HTTP/1.1 ");
    put_u64(w, (unsigned long long)status);
    put_str(w, " ");
    put_str(w, rc_http_status_text(status));
    put_str(w, "\r\nServer: ringcast\r\n");
    if (content_type != NULL) {
        put_str(w, "Content-Type: ");
        put_str(w, content_type);
        put_str(w, "\r\n");
    }
    if (!has_no_content(status)) {
        put_str(w, "Content-Length: ");
        put_u64(w, (unsigned long long)body_len);
        put_str(w, "\r\n");
    }
    if (!keep_alive)
        put_str(w, "Connection: close\r\n");
    if (extra_headers != NULL)
        put_str(w, extra_headers);
    put_str(w, "\r\n");
    return 0;
}

ssize_t rc_http_format_response(char *out, size_t cap, int status, const char *content_type,
                                const char *extra_headers, const void *body, size_t body_len,
                                bool keep_alive)
{
    struct writer w = {out, cap, 0, false};
    int r = put_head(&w, status, content_type, extra_headers, body_len, keep_alive);
    if (r != 0)
        return r;
    put(&w, body, body_len);
    return w.overflow ? -ENOSPC : (ssize_t)w.len;
}

/* A message byte that survives into the JSON string: control bytes (and
 * DEL) are dropped rather than escaped, '"' and '\\' take a backslash. */
static size_t json_escaped_len(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            continue;
        n += (c == '"' || c == '\\') ? 2 : 1;
    }
    return n;
}

static void put_json_escaped(struct writer *w, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            continue;
        if (c == '"' || c == '\\')
            put(w, "\\", 1);
        put(w, s, 1);
    }
}

ssize_t rc_http_format_error(char *out, size_t cap, int status, const char *message,
                             const char *extra_headers, bool keep_alive)
{
    if (message == NULL)
        message = rc_http_status_text(status);

    char status_digits[24];
    int digits_len = snprintf(status_digits, sizeof status_digits, "%d", status);
    static const char json_open[] = "{\"error\":\"";
    static const char middle[] = "\",\"status\":";
    size_t body_len = (sizeof json_open - 1) + json_escaped_len(message) + (sizeof middle - 1) +
                      (size_t)digits_len + 1;

    struct writer w = {out, cap, 0, false};
    int r = put_head(&w, status, "application/json", extra_headers, body_len, keep_alive);
    if (r != 0)
        return r;
    put_str(&w, json_open);
    put_json_escaped(&w, message);
    put_str(&w, middle);
    put(&w, status_digits, (size_t)digits_len);
    put_str(&w, "}");
    return w.overflow ? -ENOSPC : (ssize_t)w.len;
}
