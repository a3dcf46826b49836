/*
 * rc_test.h — the whole unit-test harness: a check macro that records the
 * failure with file:line and keeps going, and a summary that sets the exit
 * status (0 pass, 1 fail), liburing-test style.
 */
#ifndef RC_TEST_H
#define RC_TEST_H

#include <stdio.h>
#include <string.h>

static int rc_test_failures;
static int rc_test_checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        rc_test_checks++;                                                            \
        if (!(cond)) {                                                               \
            rc_test_failures++;                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                        \
    do {                                                                                      \
        long long rc_a_ = (long long)(a), rc_b_ = (long long)(b);                             \
        rc_test_checks++;                                                                     \
        if (rc_a_ != rc_b_) {                                                                 \
            rc_test_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__,   \
                    __LINE__, #a, #b, rc_a_, rc_b_);                                          \
        }                                                                                     \
    } while (0)

#define CHECK_MEM(p, lit, n)                                                        \
    do {                                                                            \
        rc_test_checks++;                                                           \
        if (memcmp((p), (lit), (n)) != 0) {                                         \
            rc_test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK_MEM failed: %s\n", __FILE__, __LINE__, #p); \
        }                                                                           \
    } while (0)

#define RC_TEST_MAIN_END(name)                                                              \
    do {                                                                                    \
        fprintf(stderr, "%s: %d checks, %d failed\n", (name), rc_test_checks, rc_test_failures); \
        return rc_test_failures ? 1 : 0;                                                    \
    } while (0)

#endif
