/*
 * log.c — line-oriented logging to stderr and the process clocks.
 *
 * Any thread may call. Each line is formatted into a stack buffer and
 * written with one write(2), so lines from different shards never interleave.
 */
#include "ringcast/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int rc_log_threshold = RC_LOG_INFO;
_Thread_local int rc_log_shard = -1;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void rc_iso8601_now(char out[32]) {
    char tmp[64];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    memcpy(out, tmp, 31);
    out[31] = 0;
}

static void vlog(int level, const char *fmt, va_list ap) {
    char line[1024];
    char when[32];
    rc_iso8601_now(when);
    int n;
    if (rc_log_shard >= 0)
        n = snprintf(line, sizeof line, "%s %s [shard %d] ", when, level_names[level], rc_log_shard);
    else
        n = snprintf(line, sizeof line, "%s %s [main] ", when, level_names[level]);
    if (n < 0) return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void rc_log(int level, const char *fmt, ...) {
    if (level > rc_log_threshold) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void rc_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(RC_LOG_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}

uint64_t rc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t rc_now_ms(void) { return rc_now_ns() / 1000000ull; }

void *rc_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) rc_die("out of memory allocating %zu bytes", n);
    return p;
}

void *rc_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) rc_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}
