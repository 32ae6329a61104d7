#include "relay.h"
#include "log.h"
#include "pg.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Advisory lock key of the relay (any constant shared by every replica). */
#define OUTBOX_LOCK_KEY "7304212"
/* Headers every published outbox row carries (docs/events.md). */
#define HDR_OUTBOX_ID "x-panel-outbox-id"
#define HDR_EVENT_ID  "x-panel-event-id"
/* Reconciliation reads this many rounds' worth of messages from the end of each partition. */
#define RECONCILE_ROUNDS     4
#define RECONCILE_TIMEOUT_MS 60000

/* Every topic an outbox row may name: the merger's and the api's events, and auth's
 * AuthEvents (written by auth in the transaction of the connection's change). */
static const char *const public_topics[] = {TOPIC_PEOPLE_EVENTS, TOPIC_ASSETS_EVENTS,
                                            TOPIC_ORGUNIT_EVENTS, TOPIC_SYNC_EVENTS,
                                            TOPIC_AUTH_EVENTS};

struct outbox_relay {
    char *pg_url, *brokers;
    struct kafka_producer *producer;
    struct metrics *metrics;
    int batch, idle_ms;
    atomic_bool stop;
    pthread_t thread;
};

static void sleep_ms(struct outbox_relay *r, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&r->stop); waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static long long be64(const char *p)
{
    const unsigned char *v = (const unsigned char *)p;
    long long id = 0;
    for (int k = 0; k < 8; k++)
        id = (id << 8) | v[k];
    return id;
}

/* "{1,2,3}" of ids[0..n). Caller frees. */
static char *id_array(const long long *ids, size_t n)
{
    size_t cap = n * 21 + 3, used = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[used++] = '{';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s%lld", i ? "," : "", ids[i]);
    snprintf(s + used, cap - used, "}");
    return s;
}

static int mark_sent(PGconn *pg, const long long *ids, size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    char *arr = id_array(ids, n);
    if (!arr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p[1] = {arr};
    PGresult *res = PQexecParams(pg,
                                 "UPDATE outbox SET sent_at = now()"
                                 " WHERE outbox_id = ANY($1::bigint[]) AND sent_at IS NULL",
                                 1, NULL, p, NULL, NULL, 0);
    free(arr);
    int rc = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) ? 0 : -1;
    PQclear(res);
    return rc;
}

/* ---------------------------------------------------------------- reconciliation */

struct unsent {
    long long id;
    char event_id[37];
    bool found;
};

static int cmp_unsent(const void *a, const void *b)
{
    long long x = ((const struct unsent *)a)->id, y = ((const struct unsent *)b)->id;
    return x < y ? -1 : x > y;
}

/* Header value as a NUL-terminated string in buf, or -1 when absent or too long. */
static int header_str(const rd_kafka_message_t *m, const char *name, char *buf, size_t cap)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !v ||
        len >= cap)
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return 0;
}

static void match_message(const rd_kafka_message_t *m, struct unsent *u, size_t n)
{
    char idbuf[24], ev[40];
    if (header_str(m, HDR_OUTBOX_ID, idbuf, sizeof idbuf) ||
        header_str(m, HDR_EVENT_ID, ev, sizeof ev))
        return;
    char *end = NULL;
    long long id = strtoll(idbuf, &end, 10);
    if (end == idbuf || *end)
        return;
    struct unsent key = {.id = id};
    struct unsent *hit = bsearch(&key, u, n, sizeof *u, cmp_unsent);
    /* the event id guards against ids of another database (a restored or recreated one) */
    if (hit && strcmp(hit->event_id, ev) == 0)
        hit->found = true;
}

/* Read the last `window` messages of every partition of the public topics and set found on
 * the rows of u that are there. 0, or -1 with a message. */
static int scan_tails(struct outbox_relay *r, struct unsent *u, size_t n, long window, char *err,
                      size_t errlen)
{
    int rc = -1;
    char e[256];
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(16);
    const struct rd_kafka_metadata *md = NULL;
    int64_t *ends = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (kafka_conf_apply_client(conf, e, sizeof e) ||
        rd_kafka_conf_set(conf, "bootstrap.servers", r->brokers, e, sizeof e) ||
        rd_kafka_conf_set(conf, "client.id", "panel-merger-outbox-reconcile", e, sizeof e) ||
        rd_kafka_conf_set(conf, "group.id", "panel-merger-outbox-reconcile", e, sizeof e) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", e, sizeof e) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", e, sizeof e) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", e, sizeof e)) {
        snprintf(err, errlen, "reconcile consumer config: %.200s", e);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    kafka_conf_use_log(conf);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        snprintf(err, errlen, "reconcile consumer: %.200s", e);
        rd_kafka_conf_destroy(conf);
        goto out;
    }
    for (size_t t = 0; t < sizeof public_topics / sizeof public_topics[0]; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, public_topics[t], NULL);
        rd_kafka_resp_err_t me =
            rkt ? rd_kafka_metadata(rk, 0, rkt, &md, 10000) : RD_KAFKA_RESP_ERR__FAIL;
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        if (me != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
            snprintf(err, errlen, "metadata of %s: %s", public_topics[t], rd_kafka_err2str(me));
            goto out;
        }
        if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            rd_kafka_metadata_destroy(md); /* nothing was ever published there */
            md = NULL;
            continue;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++) {
            int32_t pid = md->topics[0].partitions[p].id;
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t we =
                rd_kafka_query_watermark_offsets(rk, public_topics[t], pid, &lo, &hi, 10000);
            if (we != RD_KAFKA_RESP_ERR_NO_ERROR) {
                snprintf(err, errlen, "watermarks of %s/%d: %s", public_topics[t], (int)pid,
                         rd_kafka_err2str(we));
                goto out;
            }
            if (hi <= lo)
                continue;
            int64_t from = hi - window > lo ? hi - window : lo;
            rd_kafka_topic_partition_list_add(parts, public_topics[t], pid)->offset = from;
        }
        rd_kafka_metadata_destroy(md);
        md = NULL;
    }
    if (parts->cnt == 0) {
        rc = 0;
        goto out;
    }
    /* where each partition ends now: stop there (later messages are not ours to find) */
    ends = calloc((size_t)parts->cnt, sizeof *ends);
    if (!ends) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo = 0;
        if (rd_kafka_query_watermark_offsets(rk, parts->elems[i].topic, parts->elems[i].partition,
                                             &lo, &ends[i], 10000)) {
            snprintf(err, errlen, "watermarks of %s", parts->elems[i].topic);
            goto out;
        }
    }
    rd_kafka_resp_err_t ae = rd_kafka_assign(rk, parts);
    if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "reconcile assign: %s", rd_kafka_err2str(ae));
        goto out;
    }
    int remaining = parts->cnt;
    bool *done = calloc((size_t)parts->cnt, sizeof *done);
    if (!done) {
        snprintf(err, errlen, "out of memory");
        goto unassign;
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (remaining > 0 && !atomic_load(&r->stop)) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (elapsed > RECONCILE_TIMEOUT_MS) {
            snprintf(err, errlen, "reading the public topics' tails took more than %d ms",
                     RECONCILE_TIMEOUT_MS);
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        int idx = -1;
        for (int i = 0; m->rkt && i < parts->cnt; i++)
            if (parts->elems[i].partition == m->partition &&
                strcmp(parts->elems[i].topic, rd_kafka_topic_name(m->rkt)) == 0)
                idx = i;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            snprintf(err, errlen, "reading %s: %s",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : "public topics",
                     rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            break;
        }
        if (!m->err)
            match_message(m, u, n);
        if (idx >= 0 && !done[idx] &&
            (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->offset + 1 >= ends[idx])) {
            done[idx] = true;
            remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    free(done);
    if (remaining == 0)
        rc = 0;
    else if (atomic_load(&r->stop))
        snprintf(err, errlen, "stopping");
unassign:
    rd_kafka_assign(rk, NULL);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    free(ends);
    rd_kafka_topic_partition_list_destroy(parts);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

/* Before publishing again: mark sent every unsent row that already is on a public topic (it
 * was delivered, but the relay died or lost PostgreSQL before marking it). Must run with the
 * relay lock held and the producer's queue empty. Returns rows marked, or -1. */
static long reconcile(struct outbox_relay *r, PGconn *pg, char *err, size_t errlen)
{
    long marked = -1;
    long window = (long)r->batch * RECONCILE_ROUNDS;
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", window);
    const char *params[1] = {lim};
    struct unsent *u = NULL;
    long long *ids = NULL;
    /* rows are published strictly in outbox_id order, a round at a time: what can be out
     * there unmarked is among the first unsent rows */
    PGresult *res = PQexecParams(pg,
                                 "SELECT outbox_id, event_id::text FROM outbox"
                                 " WHERE sent_at IS NULL ORDER BY outbox_id LIMIT $1::bigint",
                                 1, NULL, params, NULL, NULL, 0);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    size_t n = (size_t)PQntuples(res);
    if (n == 0) {
        marked = 0;
        goto out;
    }
    u = calloc(n, sizeof *u);
    ids = calloc(n, sizeof *ids);
    if (!u || !ids) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        u[i].id = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
        snprintf(u[i].event_id, sizeof u[i].event_id, "%s", PQgetvalue(res, (int)i, 1));
    }
    PQclear(res);
    res = NULL;
    qsort(u, n, sizeof *u, cmp_unsent);
    if (scan_tails(r, u, n, window, err, errlen))
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (u[i].found)
            ids[k++] = u[i].id;
    if (mark_sent(pg, ids, k, err, errlen))
        goto out;
    marked = (long)k;
out:
    PQclear(res);
    free(u);
    free(ids);
    return marked;
}

/* ---------------------------------------------------------------- publishing */

static int produce_row(struct outbox_relay *r, const char *topic, const char *key, size_t keylen,
                       const char *value, size_t len, long long id, const char *event_id, char *err,
                       size_t errlen)
{
    if (len > KAFKA_MAX_MESSAGE) {
        snprintf(err, errlen, "outbox row %lld: %zu bytes exceed the message limit", id, len);
        return -1;
    }
    rd_kafka_t *rk = kafka_producer_handle(r->producer);
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%lld", id);
    for (int attempt = 0; attempt < 600; attempt++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(HDR_OUTBOX_ID, idbuf, (ssize_t)strlen(idbuf)),
            RD_KAFKA_V_HEADER(HDR_EVENT_ID, event_id, (ssize_t)strlen(event_id)), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(err, errlen, "produce to %s: %s", topic, rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(rk, 100);
    }
    snprintf(err, errlen, "produce to %s: local queue stayed full for 60 s", topic);
    return -1;
}

/* One round: publish the first `batch` unsent rows in outbox_id order, wait for every
 * delivery, then mark them sent. The caller holds the relay lock. Returns rows sent, or -1. */
static long relay_round(struct outbox_relay *r, PGconn *pg, char *err, size_t errlen)
{
    long sent = -1;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", r->batch);
    const char *params[1] = {lim};
    long long *ids = NULL;
    PGresult *res = PQexecParams(pg,
                                 "SELECT outbox_id, topic, msg_key, payload, event_id::text"
                                 " FROM outbox WHERE sent_at IS NULL ORDER BY outbox_id"
                                 " LIMIT $1::int",
                                 1, NULL, params, NULL, NULL, 1);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    int n = PQntuples(res);
    if (n == 0) {
        sent = 0;
        goto out;
    }
    ids = calloc((size_t)n, sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        ids[i] = be64(PQgetvalue(res, i, 0));
        if (produce_row(r, PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                        (size_t)PQgetlength(res, i, 2), PQgetvalue(res, i, 3),
                        (size_t)PQgetlength(res, i, 3), ids[i], PQgetvalue(res, i, 4), err, errlen))
            goto out;
    }
    long failed = kafka_producer_flush(r->producer, 30000);
    if (failed != 0) {
        snprintf(err, errlen, "%ld outbox deliveries failed or timed out", failed);
        goto out;
    }
    if (mark_sent(pg, ids, (size_t)n, err, errlen))
        goto out;
    sent = n;
out:
    PQclear(res);
    free(ids);
    return sent;
}

/* Wait until nothing the producer queued is still in flight (delivered or failed), so that
 * a reconciliation sees the final state of the topics. false when stopping. */
static bool drain_producer(struct outbox_relay *r)
{
    while (!atomic_load(&r->stop)) {
        long failed = kafka_producer_flush(r->producer, 1000);
        if (failed >= 0 && rd_kafka_outq_len(kafka_producer_handle(r->producer)) == 0)
            return true;
    }
    return false;
}

enum outbox_gauge_action outbox_gauge_next(long round_rows, int batch, double now_s,
                                           double last_count_s)
{
    if (round_rows >= 0 && round_rows < batch)
        return OUTBOX_GAUGE_ZERO;
    if (last_count_s < 0 || now_s - last_count_s >= OUTBOX_GAUGE_COUNT_INTERVAL_S)
        return OUTBOX_GAUGE_COUNT;
    return OUTBOX_GAUGE_KEEP;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* After a round that published round_rows (-1: failed): the backlog gauges, counted only when
 * the round does not tell (outbox_gauge_next). *last_count_s: when they were last counted. */
static void update_gauges(struct outbox_relay *r, PGconn *pg, long round_rows, double *last_count_s)
{
    double now = monotonic_s();
    switch (outbox_gauge_next(round_rows, r->batch, now, *last_count_s)) {
    case OUTBOX_GAUGE_ZERO:
        metrics_gauge_set(r->metrics, "merger_outbox_unsent", NULL, 0);
        metrics_gauge_set(r->metrics, "merger_outbox_oldest_unsent_seconds", NULL, 0);
        return;
    case OUTBOX_GAUGE_KEEP:
        return;
    case OUTBOX_GAUGE_COUNT:
        break;
    }
    *last_count_s = now;
    PGresult *lag = PQexec(pg, "SELECT count(*), coalesce(extract(epoch FROM now() -"
                               " min(created_at)), 0) FROM outbox WHERE sent_at IS NULL");
    if (PQresultStatus(lag) == PGRES_TUPLES_OK && PQntuples(lag) == 1) {
        metrics_gauge_set(r->metrics, "merger_outbox_unsent", NULL,
                          strtod(PQgetvalue(lag, 0, 0), NULL));
        metrics_gauge_set(r->metrics, "merger_outbox_oldest_unsent_seconds", NULL,
                          strtod(PQgetvalue(lag, 0, 1), NULL));
    }
    PQclear(lag);
}

/* The relay holds a session-level advisory lock for as long as its connection lives: only
 * the holder publishes. Whenever it (re)takes the lock, and after any failed round, it
 * reconciles with the topics before publishing again. */
static void *relay_main(void *arg)
{
    struct outbox_relay *r = arg;
    PGconn *pg = NULL;
    bool locked = false, need_reconcile = true;
    double gauges_counted_s = -1; /* never */
    char err[512];
    while (!atomic_load(&r->stop)) {
        if (!pg || PQstatus(pg) != CONNECTION_OK) {
            if (pg)
                PQfinish(pg); /* a lost session released its lock */
            locked = false;
            pg = pgx_connect(r->pg_url, 5, err, sizeof err);
            if (!pg) {
                log_warn("outbox relay: %s", err);
                sleep_ms(r, 1000);
                continue;
            }
        }
        if (!locked) {
            PGresult *res = PQexec(pg, "SELECT pg_try_advisory_lock(" OUTBOX_LOCK_KEY ")");
            bool ok = pgx_ok(res, PGRES_TUPLES_OK, err, sizeof err);
            locked = ok && PQgetvalue(res, 0, 0)[0] == 't';
            PQclear(res);
            if (!ok)
                log_warn("outbox relay: %s", err);
            if (!locked) { /* another replica relays, or PostgreSQL is away */
                sleep_ms(r, ok ? r->idle_ms : 1000);
                continue;
            }
            need_reconcile = true;
        }
        if (need_reconcile) {
            if (!drain_producer(r))
                break;
            long m = reconcile(r, pg, err, sizeof err);
            if (m < 0) {
                log_warn("outbox relay: reconciliation with the topics failed: %s", err);
                metrics_counter_add(r->metrics, "merger_outbox_errors_total", NULL, 1);
                sleep_ms(r, 1000);
                continue;
            }
            if (m > 0) {
                log_info("outbox relay: %ld rows were already published; marked sent", m);
                metrics_counter_add(r->metrics, "merger_outbox_reconciled_total", NULL, (double)m);
            }
            need_reconcile = false;
        }
        long n = relay_round(r, pg, err, sizeof err);
        update_gauges(r, pg, n, &gauges_counted_s);
        if (n < 0) {
            log_warn("outbox relay: %s", err);
            metrics_counter_add(r->metrics, "merger_outbox_errors_total", NULL, 1);
            need_reconcile = true;
            sleep_ms(r, 1000);
        } else if (n > 0) {
            metrics_counter_add(r->metrics, "merger_outbox_published_total", NULL, (double)n);
        } else {
            sleep_ms(r, r->idle_ms);
        }
    }
    if (pg)
        PQfinish(pg);
    return NULL;
}

struct outbox_relay *outbox_relay_start(const char *pg_url, const char *brokers, int batch,
                                        int idle_ms, struct metrics *metrics, char *err,
                                        size_t errlen)
{
    struct outbox_relay *r = calloc(1, sizeof *r);
    if (!r || !(r->pg_url = strdup(pg_url)) || !(r->brokers = strdup(brokers))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    r->batch = batch;
    r->idle_ms = idle_ms;
    r->metrics = metrics;
    atomic_init(&r->stop, false);
    r->producer = kafka_producer_new(brokers, "panel-merger-outbox", NULL, err, errlen);
    if (!r->producer)
        goto fail;
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        snprintf(err, errlen, "cannot start the outbox relay thread");
        goto fail;
    }
    return r;
fail:
    if (r) {
        kafka_producer_destroy(r->producer);
        free(r->pg_url);
        free(r->brokers);
    }
    free(r);
    return NULL;
}

void outbox_relay_stop(struct outbox_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    kafka_producer_destroy(r->producer);
    free(r->pg_url);
    free(r->brokers);
    free(r);
}
