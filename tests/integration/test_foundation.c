/* Foundation integration tests against the real PostgreSQL and Kafka started by tests/run.py
 * (PANEL_PG_URL, PANEL_KAFKA_BROKERS) and a local HTTP server from lib/httpd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "http_client.h"
#include "httpd.h"
#include "kafka.h"
#include "pg.h"

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        fail_msg("%s is not set: run through `make test` (tests/run.py starts the servers)", name);
    return v;
}

/* ------------------------------------------------------------------ Kafka */

/* Read topic from its beginning as a new member of group until n messages arrived (60 s at
 * most), handing each to seen with its arrival index i. Returns how many arrived. */
static int consume_n(const char *brokers, const char *topic, const char *group, int n,
                     void (*seen)(const rd_kafka_message_t *m, int i, void *arg), void *arg)
{
    char err[512];
    const char *topics[] = {topic, NULL};
    struct kafka_consumer_opts o = {.brokers = brokers, .group_id = group, .topics = topics};
    rd_kafka_t *c = kafka_consumer_new(&o, err, sizeof err);
    assert_non_null(c);
    int got = 0;
    time_t deadline = time(NULL) + 60;
    while (got < n && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 1000);
        if (!m)
            continue;
        if (!m->err)
            seen(m, got++, arg);
        rd_kafka_message_destroy(m);
    }
    kafka_consumer_destroy(c);
    return got;
}

struct produced {
    const char *tenant;
    const char (*ids)[EVENTS_ID_LEN]; /* in the order produced */
};

/* One key = one partition = the order it was produced in: message i is ids[i]'s. */
static void seen_in_order(const rd_kafka_message_t *m, int i, void *arg)
{
    const struct produced *want = arg;
    char err[512], serial[32];
    Envelope *env = events_decode(m->payload, m->len, err, sizeof err);
    assert_non_null(env);
    assert_string_equal(env->tenant_id, want->tenant);
    assert_string_equal(env->event_id, want->ids[i]);
    snprintf(serial, sizeof serial, "SN%04d", i);
    assert_string_equal(env->device_observed->device->serial_number, serial);
    events_free(env);
}

static void envelopes_roundtrip_through_the_broker(void **state)
{
    (void)state;
    const char *brokers = env_or_fail("PANEL_KAFKA_BROKERS");
    char err[512], topic[64], tenant[64], group[64];
    snprintf(topic, sizeof topic, "panel.test.roundtrip.%d", (int)getpid());
    snprintf(tenant, sizeof tenant, "tenant-%d", (int)getpid());
    snprintf(group, sizeof group, "test-%d", (int)getpid());
    struct kafka_topic_spec spec = {topic, 3, NULL};
    assert_int_equal(kafka_create_topics(brokers, &spec, 1, 15000, err, sizeof err), 0);
    /* Creating it again is a no-op, not an error. */
    assert_int_equal(kafka_create_topics(brokers, &spec, 1, 15000, err, sizeof err), 0);

    struct kafka_producer *p = kafka_producer_new(brokers, "test", NULL, err, sizeof err);
    assert_non_null(p);
    enum { N = 50 };
    char ids[N][EVENTS_ID_LEN];
    for (int i = 0; i < N; i++) {
        Envelope env;
        Panel__V1__DeviceObserved dobs = PANEL__V1__DEVICE_OBSERVED__INIT;
        Panel__V1__Device dev = PANEL__V1__DEVICE__INIT;
        char serial[32];
        snprintf(serial, sizeof serial, "SN%04d", i);
        dev.device_id = serial;
        dev.serial_number = serial;
        dobs.device = &dev;
        assert_int_equal(events_envelope_init(&env, ids[i], tenant, PB_SOURCE_GOOGLE, "run-1"), 0);
        env.payload_case = PB_PAYLOAD_DEVICE_OBSERVED;
        env.device_observed = &dobs;
        assert_int_equal(events_publish(p, topic, tenant, &env, err, sizeof err), 0);
    }
    assert_int_equal(kafka_producer_flush(p, 30000), 0);
    kafka_producer_destroy(p);

    struct produced want = {tenant, (const char(*)[EVENTS_ID_LEN])ids};
    int got = consume_n(brokers, topic, group, N, seen_in_order, &want);
    assert_int_equal(got, N);
}

/* Counts each message on its partition (of 3); the same key went to all three, so this is
 * the partition asked for, not the partitioner's. */
static void seen_on_partition(const rd_kafka_message_t *m, int i, void *arg)
{
    (void)i;
    assert_in_range(m->partition, 0, 2);
    ((int *)arg)[m->partition]++;
}

/* The partition count from the brokers' metadata, and events on an explicit partition. */
static void events_go_to_the_partition_asked_for(void **state)
{
    (void)state;
    const char *brokers = env_or_fail("PANEL_KAFKA_BROKERS");
    char err[512] = "", topic[64], group[64];
    snprintf(topic, sizeof topic, "panel.test.partitions.%d", (int)getpid());
    snprintf(group, sizeof group, "test-partitions-%d", (int)getpid());
    struct kafka_topic_spec spec = {topic, 3, NULL};
    assert_int_equal(kafka_create_topics(brokers, &spec, 1, 15000, err, sizeof err), 0);
    struct kafka_producer *p = kafka_producer_new(brokers, "test", NULL, err, sizeof err);
    assert_non_null(p);
    rd_kafka_t *rk = kafka_producer_handle(p);
    int32_t n = -1;
    /* a new topic reaches every broker's metadata shortly after it was created */
    for (time_t deadline = time(NULL) + 30; n != 3 && time(NULL) < deadline;)
        n = kafka_topic_partition_count(rk, topic, 5000, err, sizeof err);
    assert_int_equal(n, 3);
    assert_int_equal(
        kafka_topic_partition_count(rk, "panel.test.no-such-topic", 5000, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not exist"));
    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        Envelope env;
        char id[EVENTS_ID_LEN];
        Panel__V1__RunStarted st = PANEL__V1__RUN_STARTED__INIT;
        assert_int_equal(events_envelope_init(&env, id, "tenant-p", PB_SOURCE_GOOGLE, "run-p"), 0);
        env.payload_case = PB_PAYLOAD_RUN_STARTED;
        env.run_started = &st;
        assert_int_equal(
            events_publish_partition(p, topic, i % 3, "tenant-p", &env, err, sizeof err), 0);
    }
    assert_int_equal(kafka_producer_flush(p, 30000), 0);
    kafka_producer_destroy(p);
    int per_partition[3] = {0};
    int got = consume_n(brokers, topic, group, N, seen_on_partition, per_partition);
    assert_int_equal(got, N);
    for (int i = 0; i < 3; i++)
        assert_int_equal(per_partition[i], 2);
}

/* ------------------------------------------------------------------ PostgreSQL */

static void migrations_apply_once_on_an_empty_database(void **state)
{
    (void)state;
    const char *url = env_or_fail("PANEL_PG_URL");
    char err[1024], db[64], sql[160], dburl[1024];
    snprintf(db, sizeof db, "panel_migtest_%d", (int)getpid());
    PGconn *admin = pgx_connect(url, 10, err, sizeof err);
    assert_non_null(admin);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    assert_int_equal(pgx_exec(admin, sql, err, sizeof err), 0);

    /* Same server, the new database. */
    const char *slash = strrchr(url, '/');
    assert_non_null(slash);
    snprintf(dburl, sizeof dburl, "%.*s/%s", (int)(slash - url), url, db);
    PGconn *conn = pgx_connect(dburl, 10, err, sizeof err);
    assert_non_null(conn);
    assert_int_equal(pgx_schema_version(conn, err, sizeof err), 0);
    assert_int_equal(pgx_check_schema(conn, err, sizeof err), -1);
    assert_non_null(strstr(err, "run the migrations"));

    int applied = -1;
    assert_int_equal(pgx_migrate(conn, "db/migrations", &applied, err, sizeof err), 0);
    assert_true(applied >= 1);
    assert_int_equal(pgx_check_schema(conn, err, sizeof err), 0);
    /* A second run is a no-op. */
    assert_int_equal(pgx_migrate(conn, "db/migrations", &applied, err, sizeof err), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(pgx_schema_version(conn, err, sizeof err), PANEL_SCHEMA_VERSION);
    PQfinish(conn);

    snprintf(sql, sizeof sql, "DROP DATABASE %s", db);
    assert_int_equal(pgx_exec(admin, sql, err, sizeof err), 0);
    PQfinish(admin);
}

/* A connection lost and reset keeps pgx_connect's statement_timeout (PQreset alone drops the
 * session's SET, and a reset merger connection then ran with no timeout at all). */
static void a_reset_connection_keeps_its_statement_timeout(void **state)
{
    (void)state;
    const char *url = env_or_fail("PANEL_PG_URL");
    char err[1024], sql[96];
    long before = pgx_statement_timeout_ms();
    pgx_set_statement_timeout_ms(4321);
    PGconn *conn = pgx_connect(url, 10, err, sizeof err);
    PGconn *admin = pgx_connect(url, 10, err, sizeof err);
    assert_non_null(conn);
    assert_non_null(admin);
    PGresult *res = PQexec(conn, "SHOW statement_timeout");
    assert_true(pgx_ok(res, PGRES_TUPLES_OK, err, sizeof err));
    assert_string_equal(PQgetvalue(res, 0, 0), "4321ms");
    PQclear(res);

    /* The server ends the session, as a PostgreSQL restart or an idle-session kill does. */
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(conn));
    assert_int_equal(pgx_exec(admin, sql, err, sizeof err), 0);
    res = PQexec(conn, "SELECT 1");
    PQclear(res);
    assert_int_equal(PQstatus(conn), CONNECTION_BAD);

    assert_int_equal(pgx_reset(conn, err, sizeof err), 0);
    res = PQexec(conn, "SHOW statement_timeout");
    assert_true(pgx_ok(res, PGRES_TUPLES_OK, err, sizeof err));
    assert_string_equal(PQgetvalue(res, 0, 0), "4321ms");
    PQclear(res);
    PQfinish(conn);
    PQfinish(admin);
    pgx_set_statement_timeout_ms(before);
}

/* ------------------------------------------------------------------ HTTP client retries */

struct flaky_server {
    atomic_int hits;
    double times[8];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1st request: 429 Retry-After 1; 2nd: 503; then 200. */
static int flaky_handler(struct mg_connection *conn, void *ctx)
{
    struct flaky_server *s = ctx;
    int n = atomic_fetch_add(&s->hits, 1);
    if (n < 8)
        s->times[n] = now_s();
    if (n == 0)
        return httpd_reply(conn, 429, "application/json", "{}", 2, "Retry-After: 1\r\n");
    if (n == 1)
        return httpd_reply(conn, 503, "application/json", "{}", 2, NULL);
    return httpd_reply(conn, 200, "application/json", "{\"ok\":true}", 11, NULL);
}

static int throttle_handler(struct mg_connection *conn, void *ctx)
{
    (void)ctx;
    return httpd_reply(conn, 429, "application/json", "{}", 2, "Retry-After: 30\r\n");
}

static int big_handler(struct mg_connection *conn, void *ctx)
{
    (void)ctx;
    static char body[100000];
    memset(body, 'x', sizeof body);
    return httpd_reply(conn, 200, "text/plain", body, sizeof body, NULL);
}

static void client_retries_and_honours_retry_after(void **state)
{
    (void)state;
    char err[512], url[128];
    struct flaky_server fs = {0};
    struct httpd_opts ho = {.addr = "127.0.0.1", .port = 0, .threads = 2};
    struct httpd *h = httpd_new(&ho, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(httpd_route(h, "/flaky", "flaky", flaky_handler, &fs), 0);
    assert_int_equal(httpd_route(h, "/throttle", "throttle", throttle_handler, NULL), 0);
    assert_int_equal(httpd_route(h, "/big", "big", big_handler, NULL), 0);

    struct http_client_opts co = {.backoff_base_ms = 10, .backoff_max_ms = 50, .max_body = 50000};
    struct http_client *c = http_client_new(&co, err, sizeof err);
    struct http_response r;
    http_response_init(&r);

    snprintf(url, sizeof url, "http://127.0.0.1:%ld/flaky", httpd_port(h));
    struct http_request req = {.url = url};
    assert_int_equal(http_client_do(c, &req, &r, err, sizeof err), HTTP_RESULT_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "{\"ok\":true}");
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.throttled, 1);
    assert_int_equal(r.retried_errors, 1);
    /* The second request waited for Retry-After (1 s) although the backoff is 10 ms. */
    assert_true(fs.times[1] - fs.times[0] >= 0.95);

    /* A Retry-After beyond the deadline stops at once instead of sleeping past it. */
    snprintf(url, sizeof url, "http://127.0.0.1:%ld/throttle", httpd_port(h));
    req.deadline_ms = http_now_ms() + 2000;
    assert_int_equal(http_client_do(c, &req, &r, err, sizeof err), HTTP_RESULT_DEADLINE);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.attempts, 1);

    /* Responses over the cap fail cleanly. */
    snprintf(url, sizeof url, "http://127.0.0.1:%ld/big", httpd_port(h));
    req.deadline_ms = 0;
    assert_int_equal(http_client_do(c, &req, &r, err, sizeof err), HTTP_RESULT_TOO_LARGE);

    http_response_free(&r);
    http_client_destroy(c);
    httpd_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(envelopes_roundtrip_through_the_broker),
        cmocka_unit_test(events_go_to_the_partition_asked_for),
        cmocka_unit_test(migrations_apply_once_on_an_empty_database),
        cmocka_unit_test(a_reset_connection_keeps_its_statement_timeout),
        cmocka_unit_test(client_retries_and_honours_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
