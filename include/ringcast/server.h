/*
 * ringcast/server.h — the server: a set of shards (one thread and one
 * io_uring each) serving one configuration.
 *
 * The main thread creates and starts the server, waits for a signal, asks
 * it to stop, and joins it. Nothing here is called from a shard.
 */
#ifndef RINGCAST_SERVER_H
#define RINGCAST_SERVER_H

#include "ringcast/config.h"

struct rc_server;

/* Allocates the server and its shards (not started). NULL when out of
 * memory or when the TLS certificate or key cannot be loaded (logged). */
struct rc_server *rc_server_create(const struct rc_config *cfg);

/* Starts every shard thread and waits until each is listening. Returns 0,
 * or -errno after logging why a shard could not start (the shards that did
 * start are stopped again). */
int rc_server_start(struct rc_server *srv);

/* Begins the graceful stop: shards stop accepting, /readyz answers 503,
 * WebSocket clients get close 1001, and each shard exits once its
 * connections are gone or the drain budget (--drain-s) is spent.
 * Safe to call more than once. */
void rc_server_stop(struct rc_server *srv);

/* Main thread, on SIGHUP: re-reads --publish-token-file (the next publish
 * checks against the new tokens) and --tls-cert/--tls-key (new handshakes
 * use them, open connections keep theirs). Returns 0, or -EINVAL (logged;
 * what failed to load stays as it was). */
int rc_server_reload(struct rc_server *srv);

/* Joins every shard thread. Returns 0 when all exited cleanly. */
int rc_server_wait(struct rc_server *srv);

/* Frees the server. Accepts NULL. Call after rc_server_wait. */
void rc_server_destroy(struct rc_server *srv);

#endif
