/*
 * test_config.c — flags, environment, precedence and clear refusals.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rc_test.h"
#include "ringcast/config.h"

static int parse(struct rc_config *cfg, int argc, const char **argv) {
    FILE *saved = stderr;
    stderr = fopen("/dev/null", "w"); /* the refusals are expected here */
    int r = rc_config_parse(cfg, argc, (char **)argv);
    fclose(stderr);
    stderr = saved;
    return r;
}

int main(void) {
    struct rc_config cfg;
    unsetenv("PORT");
    unsetenv("RINGCAST_LISTEN");

    const char *a0[] = {"ringcast"};
    CHECK_EQ(parse(&cfg, 1, a0), 0);
    CHECK_EQ(cfg.max_message_bytes, 16u << 20);
    CHECK_EQ(cfg.max_queue_bytes, 1u << 20);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&cfg.listen_addr)->sin_port), 8080);
    CHECK(!cfg.echo);
    CHECK(cfg.shards >= 1);

    const char *a1[] = {"ringcast", "--listen", "127.0.0.1:9000", "--shards=2", "--echo", "--max-message-bytes", "1M"};
    CHECK_EQ(parse(&cfg, 7, a1), 0);
    CHECK_EQ(cfg.shards, 2);
    CHECK(cfg.echo);
    CHECK_EQ(cfg.max_message_bytes, 1u << 20);
    struct sockaddr_in *sin = (struct sockaddr_in *)&cfg.listen_addr;
    CHECK_EQ(ntohs(sin->sin_port), 9000);
    CHECK_EQ(ntohl(sin->sin_addr.s_addr), 0x7f000001);

    /* environment, and flags beating it */
    setenv("RINGCAST_SHARDS", "3", 1);
    setenv("PORT", "7001", 1);
    CHECK_EQ(parse(&cfg, 1, a0), 0);
    CHECK_EQ(cfg.shards, 3);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&cfg.listen_addr)->sin_port), 7001);
    const char *a2[] = {"ringcast", "--shards", "1"};
    CHECK_EQ(parse(&cfg, 3, a2), 0);
    CHECK_EQ(cfg.shards, 1);
    setenv("RINGCAST_SHARDS", "zero", 1);
    CHECK_EQ(parse(&cfg, 1, a0), -EINVAL);
    unsetenv("RINGCAST_SHARDS");
    unsetenv("PORT");

    /* refusals */
    const char *bad1[] = {"ringcast", "--nope"};
    CHECK_EQ(parse(&cfg, 2, bad1), -EINVAL);
    const char *bad2[] = {"ringcast", "--shards"};
    CHECK_EQ(parse(&cfg, 2, bad2), -EINVAL);
    const char *bad3[] = {"ringcast", "--listen", "localhost:80"};
    CHECK_EQ(parse(&cfg, 3, bad3), -EINVAL);
    const char *bad4[] = {"ringcast", "--shards", "0"};
    CHECK_EQ(parse(&cfg, 3, bad4), -EINVAL);
    const char *bad5[] = {"ringcast", "--recv-bufs", "1000"};
    CHECK_EQ(parse(&cfg, 3, bad5), -EINVAL);
    const char *bad6[] = {"ringcast", "--echo=maybe"};
    CHECK_EQ(parse(&cfg, 2, bad6), -EINVAL);

    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(rc_parse_listen_addr("[::1]:8080", &ss, &len), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
    CHECK_EQ(rc_parse_listen_addr(":8080", &ss, &len), 0);
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(rc_parse_listen_addr("1.2.3.4:70000", &ss, &len), -EINVAL);
    CHECK_EQ(rc_parse_listen_addr("1.2.3.4", &ss, &len), -EINVAL);

    /* Redis: REDIS_URL (the seeds' name), RINGCAST_REDIS and --redis, in
     * rising precedence; a bad URL or a sharded link without one is refused
     * at start-up. */
    unsetenv("RINGCAST_REDIS");
    unsetenv("REDIS_URL");
    CHECK_EQ(parse(&cfg, 1, a0), 0);
    CHECK(cfg.redis == NULL);
    setenv("REDIS_URL", "redis://127.0.0.1:6379", 1);
    CHECK_EQ(parse(&cfg, 1, a0), 0);
    CHECK(cfg.redis && !strcmp(cfg.redis, "redis://127.0.0.1:6379"));
    setenv("RINGCAST_REDIS", "redis://10.0.0.1:7000/2", 1);
    CHECK_EQ(parse(&cfg, 1, a0), 0);
    CHECK(!strcmp(cfg.redis, "redis://10.0.0.1:7000/2"));
    const char *r1[] = {"ringcast", "--redis", "redis://:pw@h:1"};
    CHECK_EQ(parse(&cfg, 3, r1), 0);
    CHECK(!strcmp(cfg.redis, "redis://:pw@h:1"));
    CHECK(!cfg.redis_sharded);
    unsetenv("RINGCAST_REDIS");
    unsetenv("REDIS_URL");
    const char *r2[] = {"ringcast", "--redis", "127.0.0.1:6379"};
    CHECK_EQ(parse(&cfg, 3, r2), -EINVAL);
    const char *r3[] = {"ringcast", "--redis-sharded"};
    CHECK_EQ(parse(&cfg, 2, r3), -EINVAL);
    const char *r4[] = {"ringcast", "--redis-sharded", "--redis", "redis://h:7000/1"};
    CHECK_EQ(parse(&cfg, 4, r4), -EINVAL);
    const char *r5[] = {"ringcast", "--redis-sharded", "--redis", "redis://h:7000"};
    CHECK_EQ(parse(&cfg, 4, r5), 0);
    CHECK(cfg.redis_sharded);
    const char *r6[] = {"ringcast", "--redis", ""}; /* empty: single node */
    CHECK_EQ(parse(&cfg, 3, r6), 0);
    CHECK(cfg.redis == NULL);

    /* TLS: a listener needs its certificate and key, and its own port */
    const char *t1[] = {"ringcast", "--tls-listen", "127.0.0.1:8443"};
    CHECK_EQ(parse(&cfg, 3, t1), -EINVAL);
    const char *t2[] = {"ringcast", "--tls-cert", "c.pem", "--tls-key", "k.pem"};
    CHECK_EQ(parse(&cfg, 5, t2), -EINVAL);
    const char *t3[] = {"ringcast", "--listen", "127.0.0.1:8443", "--tls-listen", "0.0.0.0:8443", "--tls-cert", "c", "--tls-key", "k"};
    CHECK_EQ(parse(&cfg, 9, t3), -EINVAL);
    const char *t4[] = {"ringcast", "--listen", "127.0.0.1:8080", "--tls-listen", "127.0.0.1:8443", "--tls-cert", "c", "--tls-key", "k"};
    CHECK_EQ(parse(&cfg, 9, t4), 0);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&cfg.tls_listen_addr)->sin_port), 8443);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&cfg.listen_addr)->sin_port), 8080);
    CHECK(!strcmp(cfg.tls_listen_text, "127.0.0.1:8443"));
    CHECK_EQ(cfg.tls_handshake_timeout_ms, 10000u);

    /* Trust: lists add up on the command line and replace the environment's */
    unsetenv("JWT_SECRET");
    unsetenv("RINGCAST_JWT_SECRET");
    const char *k0[] = {"ringcast"};
    CHECK_EQ(parse(&cfg, 1, k0), 0);
    CHECK(cfg.publish_token == NULL && !cfg.publish_open && cfg.firehose == RC_FIREHOSE_ALLOW);
    CHECK_EQ(cfg.redis_timeout_ms, 2000u);
    setenv("RINGCAST_PUBLISH_TOKEN", "env1,env2", 1);
    CHECK_EQ(parse(&cfg, 1, k0), 0);
    CHECK(!strcmp(cfg.publish_token, "env1,env2"));
    const char *k1[] = {"ringcast", "--publish-token", "a", "--publish-token=b", "--admin-token", "x"};
    CHECK_EQ(parse(&cfg, 6, k1), 0);
    CHECK(!strcmp(cfg.publish_token, "a,b")); /* the environment's went */
    CHECK(!strcmp(cfg.admin_token, "x"));
    unsetenv("RINGCAST_PUBLISH_TOKEN");
    const char *k2[] = {"ringcast", "--firehose", "deny", "--redis-timeout-ms", "500", "--publish-open"};
    CHECK_EQ(parse(&cfg, 6, k2), 0);
    CHECK_EQ(cfg.firehose, RC_FIREHOSE_DENY);
    CHECK_EQ(cfg.redis_timeout_ms, 500u);
    CHECK(cfg.publish_open);
    const char *k3[] = {"ringcast", "--firehose", "maybe"};
    CHECK_EQ(parse(&cfg, 3, k3), -EINVAL);
    const char *k4[] = {"ringcast", "--private-topics", "orders:*"}; /* nothing could open them */
    CHECK_EQ(parse(&cfg, 3, k4), -EINVAL);
    const char *k5[] = {"ringcast", "--firehose", "token"};
    CHECK_EQ(parse(&cfg, 3, k5), -EINVAL);
    setenv("JWT_SECRET", "seed-003-secret", 1); /* the seed's name */
    CHECK_EQ(parse(&cfg, 3, k4), 0);
    CHECK(!strcmp(cfg.jwt_secret, "seed-003-secret"));
    CHECK(!strcmp(cfg.private_topics, "orders:*"));
    const char *k6[] = {"ringcast", "--firehose", "token", "--jwt-secret", "flag-wins"};
    CHECK_EQ(parse(&cfg, 5, k6), 0);
    CHECK(!strcmp(cfg.jwt_secret, "flag-wins"));
    CHECK_EQ(cfg.firehose, RC_FIREHOSE_TOKEN);
    unsetenv("JWT_SECRET");
    const char *k7[] = {"ringcast", "--redis-timeout-ms", "50"};
    CHECK_EQ(parse(&cfg, 3, k7), -EINVAL);
    RC_TEST_MAIN_END("config");
}
