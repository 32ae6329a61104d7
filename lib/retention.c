/* retention: see retention.h. */
#include "retention.h"
#include "log.h"
#include "pg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A round deletes at most this many batches per table, so that one huge backlog does not
 * keep the lock (and the connection) for hours; the next round goes on. */
#define MAX_BATCHES_PER_ROUND 1000

struct retention {
    char *owner, *pg_url;
    struct retention_rule *rules;
    size_t nrules;
    long long lock_key;
    int batch, interval_s;
    struct metrics *metrics;
    atomic_bool stop;
    pthread_t thread;
};

static void sleep_s(struct retention *r, int s)
{
    for (long waited = 0; waited < s * 1000L && !atomic_load(&r->stop); waited += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Rows deleted by one batch, or -1 with a message. */
static long prune_batch(struct retention *r, PGconn *pg, const struct retention_rule *rule,
                        char *err, size_t errlen)
{
    char age[24], lim[24];
    snprintf(age, sizeof age, "%lld", rule->age_s);
    snprintf(lim, sizeof lim, "%d", r->batch);
    const char *params[2] = {age, lim};
    PGresult *res = PQexecParams(pg, rule->sql, 2, NULL, params, NULL, NULL, 0);
    long n = -1;
    if (pgx_ok(res, PGRES_COMMAND_OK, err, errlen))
        n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

/* Every rule in order until a batch deletes fewer rows than asked. */
static void prune_round(struct retention *r, PGconn *pg)
{
    char err[512], label[128];
    for (size_t i = 0; i < r->nrules && !atomic_load(&r->stop); i++) {
        const struct retention_rule *rule = &r->rules[i];
        if (rule->age_s <= 0)
            continue;
        snprintf(label, sizeof label, "table=\"%s\"", rule->table);
        long total = 0;
        for (int b = 0; b < MAX_BATCHES_PER_ROUND && !atomic_load(&r->stop); b++) {
            long n = prune_batch(r, pg, rule, err, sizeof err);
            if (n < 0) {
                log_warn("%s retention: %s: %s", r->owner, rule->table, err);
                metrics_counter_add(r->metrics, "retention_errors_total", label, 1);
                break;
            }
            total += n;
            metrics_counter_add(r->metrics, "retention_pruned_rows_total", label, (double)n);
            if (n < r->batch)
                break;
        }
        if (total > 0)
            log_info("%s retention: deleted %ld %s rows older than %llds", r->owner, total,
                     rule->table, rule->age_s);
    }
}

static void *retention_main(void *arg)
{
    struct retention *r = arg;
    char err[512], key[24];
    snprintf(key, sizeof key, "%lld", r->lock_key);
    const char *params[1] = {key};
    while (!atomic_load(&r->stop)) {
        PGconn *pg = pgx_connect(r->pg_url, 5, err, sizeof err);
        if (!pg) {
            log_warn("%s retention: %s", r->owner, err);
        } else {
            PGresult *res = PQexecParams(pg, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL,
                                         params, NULL, NULL, 0);
            bool ok = pgx_ok(res, PGRES_TUPLES_OK, err, sizeof err);
            bool locked = ok && PQgetvalue(res, 0, 0)[0] == 't';
            PQclear(res);
            if (!ok)
                log_warn("%s retention: %s", r->owner, err);
            if (locked) /* else another replica prunes */
                prune_round(r, pg);
            PQfinish(pg); /* releases the session lock */
        }
        sleep_s(r, r->interval_s);
    }
    return NULL;
}

struct retention *retention_start(const char *owner, long long lock_key, const char *pg_url,
                                  const struct retention_rule *rules, size_t nrules, int batch,
                                  int interval_s, struct metrics *metrics, char *err, size_t errlen)
{
    struct retention *r = calloc(1, sizeof *r);
    if (!r || !(r->owner = strdup(owner)) || !(r->pg_url = strdup(pg_url)) ||
        !(r->rules = calloc(nrules ? nrules : 1, sizeof *r->rules))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(r->rules, rules, nrules * sizeof *rules);
    r->nrules = nrules;
    r->lock_key = lock_key;
    r->batch = batch > 0 ? batch : 1000;
    r->interval_s = interval_s > 0 ? interval_s : 60;
    r->metrics = metrics;
    atomic_init(&r->stop, false);
    metrics_describe(metrics, "retention_pruned_rows_total", "counter",
                     "Rows deleted by the retention rounds, by table");
    metrics_describe(metrics, "retention_errors_total", "counter",
                     "Retention batches that failed, by table");
    for (size_t i = 0; i < nrules; i++) /* every table's series exists from the start */
        if (rules[i].age_s > 0) {
            char label[128];
            snprintf(label, sizeof label, "table=\"%s\"", rules[i].table);
            metrics_counter_add(metrics, "retention_pruned_rows_total", label, 0);
        }
    if (pthread_create(&r->thread, NULL, retention_main, r) != 0) {
        snprintf(err, errlen, "cannot start the retention thread");
        goto fail;
    }
    return r;
fail:
    if (r) {
        free(r->owner);
        free(r->pg_url);
        free(r->rules);
    }
    free(r);
    return NULL;
}

void retention_stop(struct retention *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    free(r->owner);
    free(r->pg_url);
    free(r->rules);
    free(r);
}
