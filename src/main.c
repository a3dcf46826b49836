/*
 * main.c — process start-up: configuration, resource limits, signals, and
 * the server's start / wait / stop.
 *
 * The main thread owns no connection. It blocks every signal (so shard
 * threads inherit the mask and never see one), starts the shards, then
 * waits in sigwait(): SIGINT or SIGTERM begins the graceful drain; a second
 * one is not needed — the drain budget (--drain-s) bounds the exit.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "ringcast/config.h"
#include "ringcast/server.h"
#include "ringcast/util.h"

/* Connection counts are bounded by descriptors: take the hard limit. */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    raise_nofile();
    /* Buffers of 128 KiB and more (big messages, queued replies of a flood)
     * are mmapped and go back to the system when freed: pinning the
     * threshold stops glibc from raising it after such frees, which would
     * keep them in the heap (memory that shard 0's trim returns otherwise). */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    struct rc_config cfg;
    int ret = rc_config_parse(&cfg, argc, argv);
    if (ret == 1) return 0;
    if (ret < 0) return 2;
    rc_log_threshold = cfg.log_level;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct rc_server *srv = rc_server_create(&cfg);
    if (!srv) return 2; /* the reason is logged (bad certificate, out of memory) */
    ret = rc_server_start(srv);
    if (ret < 0) {
        rc_server_destroy(srv);
        return ret == -EADDRINUSE ? 2 : 1; /* 2: fix the configuration (the address is taken) */
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGINT || sig == SIGTERM) {
            RC_INFO("%s: draining (up to %us)", sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.drain_s);
            break;
        }
        if (sig == SIGHUP) rc_server_reload(srv); /* publish tokens, certificate and key; connections stay */
        /* SIGPIPE: nothing to do (sends use MSG_NOSIGNAL). */
    }
    rc_server_stop(srv);
    rc_server_wait(srv);
    rc_server_destroy(srv);
    RC_INFO("exiting");
    return 0;
}
