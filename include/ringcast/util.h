/*
 * ringcast/util.h — logging, clocks and small helpers every module uses.
 *
 * Logging writes one line per call to stderr (atomic for lines < PIPE_BUF),
 * tagged with the calling shard, so any thread may log. Nothing here
 * allocates on the hot path.
 */
#ifndef RINGCAST_UTIL_H
#define RINGCAST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define RC_LIKELY(x) __builtin_expect(!!(x), 1)
#define RC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RC_MAX(a, b) ((a) > (b) ? (a) : (b))

enum rc_log_level { RC_LOG_ERROR = 0, RC_LOG_WARN, RC_LOG_INFO, RC_LOG_DEBUG };

/* Global threshold; set once at start-up from --log-level. */
extern int rc_log_threshold;
/* Shard id of the calling thread (-1 for the main thread); set by each shard. */
extern _Thread_local int rc_log_shard;

void rc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define RC_ERROR(...) rc_log(RC_LOG_ERROR, __VA_ARGS__)
#define RC_WARN(...) rc_log(RC_LOG_WARN, __VA_ARGS__)
#define RC_INFO(...) rc_log(RC_LOG_INFO, __VA_ARGS__)
#define RC_DEBUG(...)                                                      \
    do {                                                                   \
        if (RC_UNLIKELY(rc_log_threshold >= RC_LOG_DEBUG)) rc_log(RC_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

/* Logs the message and exits with status 1: start-up failures and broken
 * invariants only. The message should say what to fix. */
_Noreturn void rc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock. */
uint64_t rc_now_ns(void);
uint64_t rc_now_ms(void);

/* Wall clock as "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 chars + NUL). */
void rc_iso8601_now(char out[32]);

/* malloc/realloc that abort with a clear message when memory runs out:
 * used only where the caller cannot degrade (start-up, pools). */
void *rc_xmalloc(size_t n);
void *rc_xcalloc(size_t n, size_t size);

#endif
