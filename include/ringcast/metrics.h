/*
 * ringcast/metrics.h — per-shard counters, summed into Prometheus text by
 * GET /metrics.
 *
 * Each shard writes only its own block, with relaxed atomic load+store (a
 * plain add on x86, no locked instruction); any shard may read every block
 * to answer /metrics. Counters only grow; gauges are set by their shard.
 */
#ifndef RINGCAST_METRICS_H
#define RINGCAST_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#define RC_METRICS(X)                                                                                        \
    X(counter, connections_accepted_total, "TCP connections accepted")                                      \
    X(counter, ws_upgrades_total, "WebSocket handshakes completed")                                         \
    X(counter, http_requests_total, "HTTP requests answered (including errors)")                            \
    X(counter, publish_denied_total, "publish requests refused before reading the body: origin, token, loopback-only or Content-Type (401/403/415)") \
    X(counter, subscribe_denied_total, "subscribe messages refused by policy: private topics, the firehose")  \
    X(counter, messages_published_total, "messages accepted for publishing (HTTP, demo, test endpoint)")   \
    X(counter, frames_built_total, "broadcast frames built (one per topic per batch window)")              \
    X(counter, deliveries_total, "messages queued to subscribers (a frame of k messages to one socket is k)") \
    X(counter, delivery_bytes_total, "bytes of broadcast frames queued to subscribers")                     \
    X(counter, frames_conflated_total, "queued frames dropped for a slow reader of a conflatable topic")  \
    X(counter, messages_conflated_total, "messages inside the dropped frames")                             \
    X(counter, slow_consumer_closes_total, "connections closed (1008 for a WebSocket) for exceeding --max-queue-bytes")      \
    X(counter, connections_refused_total, "client connections answered 503 at --max-conns") \
    X(counter, stall_closes_total, "connections closed because their socket took no bytes for --stall-timeout-s") \
    X(counter, message_timeouts_total, "WebSocket messages and HTTP requests not completed within --message-timeout-ms (1008 / 408)") \
    X(counter, partial_input_closes_total, "connections closed for holding the most unfinished input while the node was over --max-partial-bytes") \
    X(counter, ws_pings_sent_total, "liveness pings sent to WebSocket clients silent for half of --idle-timeout-s") \
    X(counter, idle_closes_total, "connections closed for silence longer than --idle-timeout-s")           \
    X(counter, client_messages_total, "WebSocket messages received from clients")                         \
    X(counter, client_errors_total, "error replies sent to clients")                                       \
    X(counter, bytes_sent_total, "bytes the kernel accepted on client sockets")                           \
    X(counter, compressions_total, "messages compressed for broadcast (once per frame, shared by subscribers)") \
    X(counter, compressed_deliveries_total, "compressed messages queued to subscribers that negotiated permessage-deflate") \
    X(counter, frames_deflated_total, "frames that got a deflated variant")                                  \
    X(counter, sends_total, "SENDMSG operations completed")                                                 \
    X(counter, redis_connects_total, "Redis links established: shard 0 subscriber link and each shard publisher link")             \
    X(counter, redis_disconnects_total, "established Redis links lost")                                    \
    X(counter, redis_connect_failures_total, "failed attempts to establish the Redis link")               \
    X(counter, redis_messages_total, "messages received from Redis and published on this node")          \
    X(counter, redis_dropped_total, "messages from Redis dropped: invalid UTF-8, bad channel or too large") \
    X(counter, redis_published_total, "PUBLISH/SPUBLISH commands sent for HTTP publishes")              \
    X(counter, redis_publish_rejected_total, "HTTP publish items (and /ws/test broadcasts) refused because the Redis link was down")    \
    X(counter, redis_publish_dropped_total, "PUBLISH commands unanswered when the link was lost (publisher answered 503)") \
    X(counter, redis_publish_acked_total, "PUBLISH commands Redis acknowledged (publisher answered 2xx)")       \
    X(counter, redis_publish_errors_total, "PUBLISH commands Redis answered with an error (publisher answered 503)") \
    X(counter, redis_publish_timeouts_total, "PUBLISH commands unanswered within --redis-timeout-ms (publisher answered 504)") \
    X(counter, redis_stalls_total, "times the Redis link stalled: a command unanswered for over a second")     \
    X(counter, tls_handshakes_total, "TLS handshakes completed")                                           \
    X(counter, tls_handshake_failures_total, "TLS handshakes that failed (bad input, alerts, no common cipher)") \
    X(counter, tls_handshake_timeouts_total, "TLS clients closed for not finishing the handshake in --tls-handshake-timeout-ms") \
    X(counter, tls_offloads_total, "TLS sessions handed from wolfSSL to ringcast's own ChaCha20-Poly1305 record layer after the handshake") \
    X(counter, tls_plain_http_total, "plain HTTP requests on the TLS port (answered 400 in clear)")        \
    X(gauge, tls_connections, "open connections on the TLS listener")                                     \
    X(gauge, redis_up, "1 while the Redis link is established (only with --redis)")                       \
    X(gauge, redis_ready, "1 while the Redis link is established, answering and taking publishes (/readyz)") \
    X(gauge, redis_channels, "Redis channels and patterns this node is subscribed to")                    \
    X(gauge, connections, "open connections")                                                               \
    X(gauge, ws_connections, "open WebSocket connections on /ws")                                           \
    X(gauge, subscriptions, "(connection, topic) subscriptions")                                            \
    X(gauge, queued_bytes, "bytes waiting in send queues")                                                  \
    X(gauge, partial_input_bytes, "bytes held for unfinished input (partial messages, request heads and bodies)")

struct rc_metrics {
#define RC_METRIC_FIELD(kind, name, help) _Atomic uint64_t name;
    RC_METRICS(RC_METRIC_FIELD)
#undef RC_METRIC_FIELD
};

/* Owner shard only. */
#define RC_METRIC_ADD(m, field, v)                                                                   \
    atomic_store_explicit(&(m)->field, atomic_load_explicit(&(m)->field, memory_order_relaxed) + (v), \
                          memory_order_relaxed)
#define RC_METRIC_SUB(m, field, v)                                                                   \
    atomic_store_explicit(&(m)->field, atomic_load_explicit(&(m)->field, memory_order_relaxed) - (v), \
                          memory_order_relaxed)
#define RC_METRIC_GET(m, field) atomic_load_explicit(&(m)->field, memory_order_relaxed)

#endif
