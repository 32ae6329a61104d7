#include "outbox.h"
#include "log.h"
#include "pg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Advisory lock key of the relay (any constant shared by every replica). */
#define OUTBOX_LOCK_KEY "7304212"

struct outbox_relay {
    char *pg_url;
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

/* One round: publish up to batch rows. Returns rows sent, or -1. */
static long relay_round(struct outbox_relay *r, PGconn *pg, char *err, size_t errlen)
{
    long sent = -1;
    PGresult *res = NULL;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", r->batch);
    const char *params[1] = {lim};
    if (pgx_exec(pg, "BEGIN", err, errlen))
        return -1;
    res = PQexec(pg, "SELECT pg_try_advisory_xact_lock(" OUTBOX_LOCK_KEY ")");
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto rollback;
    if (PQgetvalue(res, 0, 0)[0] != 't') { /* another replica is relaying */
        sent = 0;
        goto rollback;
    }
    PQclear(res);
    res = PQexecParams(pg,
                       "SELECT outbox_id, topic, msg_key, payload FROM outbox"
                       " WHERE sent_at IS NULL ORDER BY outbox_id LIMIT $1::int",
                       1, NULL, params, NULL, NULL, 1);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto rollback;
    int n = PQntuples(res);
    if (n == 0) {
        sent = 0;
        goto rollback;
    }
    for (int i = 0; i < n; i++) {
        const char *topic = PQgetvalue(res, i, 1), *key = PQgetvalue(res, i, 2);
        if (kafka_produce(r->producer, topic, key, (size_t)PQgetlength(res, i, 2),
                          PQgetvalue(res, i, 3), (size_t)PQgetlength(res, i, 3), err, errlen))
            goto rollback;
    }
    long failed = kafka_producer_flush(r->producer, 30000);
    if (failed != 0) {
        snprintf(err, errlen, "%ld outbox deliveries failed or timed out", failed);
        goto rollback;
    }
    /* binary result: outbox_id is an 8-byte big-endian integer; mark exactly these rows */
    size_t cap = (size_t)n * 21 + 3, used = 0;
    char *ids = malloc(cap);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        goto rollback;
    }
    ids[used++] = '{';
    for (int i = 0; i < n; i++) {
        const unsigned char *v = (const unsigned char *)PQgetvalue(res, i, 0);
        long long id = 0;
        for (int k = 0; k < 8; k++)
            id = (id << 8) | v[k];
        used += (size_t)snprintf(ids + used, cap - used, "%s%lld", i ? "," : "", id);
    }
    snprintf(ids + used, cap - used, "}");
    const char *p2[1] = {ids};
    PQclear(res);
    res = PQexecParams(pg, "UPDATE outbox SET sent_at = now() WHERE outbox_id = ANY($1::bigint[])",
                       1, NULL, p2, NULL, NULL, 0);
    free(ids);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, errlen))
        goto rollback;
    PQclear(res);
    res = NULL;
    if (pgx_exec(pg, "COMMIT", err, errlen))
        return -1;
    return n;
rollback:
    PQclear(res);
    {
        char e2[256];
        if (pgx_exec(pg, "ROLLBACK", e2, sizeof e2))
            log_warn("outbox rollback failed: %s", e2);
    }
    return sent;
}

static void *relay_main(void *arg)
{
    struct outbox_relay *r = arg;
    PGconn *pg = NULL;
    char err[512];
    while (!atomic_load(&r->stop)) {
        if (!pg || PQstatus(pg) != CONNECTION_OK) {
            if (pg)
                PQfinish(pg);
            pg = pgx_connect(r->pg_url, 5, err, sizeof err);
            if (!pg) {
                log_warn("outbox relay: %s", err);
                sleep_ms(r, 1000);
                continue;
            }
        }
        long n = relay_round(r, pg, err, sizeof err);
        PGresult *lag = PQexec(pg, "SELECT count(*), coalesce(extract(epoch FROM now() -"
                                   " min(created_at)), 0) FROM outbox WHERE sent_at IS NULL");
        if (PQresultStatus(lag) == PGRES_TUPLES_OK && PQntuples(lag) == 1) {
            metrics_gauge_set(r->metrics, "merger_outbox_unsent", NULL,
                              strtod(PQgetvalue(lag, 0, 0), NULL));
            metrics_gauge_set(r->metrics, "merger_outbox_oldest_unsent_seconds", NULL,
                              strtod(PQgetvalue(lag, 0, 1), NULL));
        }
        PQclear(lag);
        if (n < 0) {
            log_warn("outbox relay: %s", err);
            metrics_counter_add(r->metrics, "merger_outbox_errors_total", NULL, 1);
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
    if (!r || !(r->pg_url = strdup(pg_url))) {
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
    free(r);
}
