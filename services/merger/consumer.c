#include "consumer.h"
#include "apply.h"
#include "dlq.h"
#include "events.h"
#include "intake.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "table_stats.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cctx {
    const struct consumer_opts *o;
    PGconn *pg;
    bool revoked;             /* a revocation happened while a batch was being collected */
    int32_t topic_partitions; /* of the source topic, as last learned; 0: not known */
};

/* Learn the source topic's partition count (at start, and when a run's end names more than
 * known: partitions are only ever added). True when it is now known to be larger. */
static bool learn_topic_partitions(struct cctx *c, rd_kafka_t *rk)
{
    char err[256];
    int32_t n = kafka_topic_partition_count(rk, TOPIC_SOURCE_EVENTS, 5000, err, sizeof err);
    if (n < 0) {
        log_warn("partitions of %s not known: %s", TOPIC_SOURCE_EVENTS, err);
        return false;
    }
    bool grew = n > c->topic_partitions;
    c->topic_partitions = n;
    return grew;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set each partition's offset to the stored next_offset (earliest when none). */
static int load_offsets(struct cctx *c, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        char p[16];
        snprintf(p, sizeof p, "%d", (int)parts->elems[i].partition);
        const char *params[3] = {c->o->group, parts->elems[i].topic, p};
        PGresult *r = PQexecParams(c->pg,
                                   "SELECT next_offset FROM consumer_offsets WHERE group_id = $1"
                                   " AND topic = $2 AND partition = $3::int",
                                   3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_error("reading stored offsets: %s", PQerrorMessage(c->pg));
            PQclear(r);
            return -1;
        }
        parts->elems[i].offset =
            PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : RD_KAFKA_OFFSET_BEGINNING;
        PQclear(r);
    }
    return 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct cctx *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (load_offsets(c, parts))
            log_error("partitions assigned without stored offsets; starting from the log");
        for (int i = 0; i < parts->cnt; i++)
            log_info("assigned %s[%d] at offset %lld", parts->elems[i].topic,
                     (int)parts->elems[i].partition, (long long)parts->elems[i].offset);
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            log_error("incremental assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        c->revoked = true;
        for (int i = 0; i < parts->cnt; i++)
            log_info("revoked %s[%d]", parts->elems[i].topic, (int)parts->elems[i].partition);
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    }
}

/* Seek the still-assigned partitions of a dropped batch back to where PostgreSQL says. */
/* Nothing of a failed batch was committed: read its partitions again. The stored offsets say
 * where (another replica may have moved on); when PostgreSQL cannot be read, the batch's own
 * first offsets do — never skip past messages that were not applied. */
static void rewind_batch(struct cctx *c, rd_kafka_t *rk, rd_kafka_message_t **msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *assigned = NULL, *seek = NULL, *stored = NULL;
    if (n == 0 || rd_kafka_assignment(rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    seek = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < n; i++) {
        const char *topic = rd_kafka_topic_name(msgs[i]->rkt);
        if (!rd_kafka_topic_partition_list_find(assigned, topic, msgs[i]->partition) ||
            rd_kafka_topic_partition_list_find(seek, topic, msgs[i]->partition))
            continue;
        /* Messages of one partition arrive in order: the first seen is the batch's first. */
        rd_kafka_topic_partition_list_add(seek, topic, msgs[i]->partition)->offset =
            msgs[i]->offset;
    }
    if (seek->cnt > 0) {
        stored = rd_kafka_topic_partition_list_copy(seek);
        if (load_offsets(c, stored) == 0) {
            rd_kafka_topic_partition_list_destroy(seek);
            seek = stored;
            stored = NULL;
        } else {
            log_warn("stored offsets unreadable; re-reading the failed batch from its start");
        }
        rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, seek, 10000);
        if (e) {
            log_warn("seek: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    if (stored)
        rd_kafka_topic_partition_list_destroy(stored);
    rd_kafka_topic_partition_list_destroy(seek);
    rd_kafka_topic_partition_list_destroy(assigned);
}

static bool db_healthy(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT 1");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

static void free_batch(rd_kafka_message_t **msgs, Envelope **envs, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        events_free(envs[i]);
        envs[i] = NULL;
        rd_kafka_message_destroy(msgs[i]);
    }
    *n = 0;
}

/* One member of the group. lettered (borrowed): the dead letters this process sent, shared
 * with the other workers: a partition that moves from one worker to another while a batch
 * was being collected is read again by the other, whose dead letters must not go twice. */
static int member_run(const struct consumer_opts *o, struct intake_lettered *lettered, char *err,
                      size_t errlen)
{
    int rc = -1;
    struct cctx c = {.o = o};
    rd_kafka_t *rk = NULL;
    struct kafka_producer *dlq = NULL;
    size_t cap = (size_t)o->batch_max, n = 0;
    rd_kafka_message_t **msgs = calloc(cap, sizeof *msgs);
    Envelope **envs = calloc(cap, sizeof *envs);
    bool *dead = calloc(cap, sizeof *dead);
    char(*reasons)[256] = calloc(cap, sizeof *reasons);
    struct apply_msg *am = calloc(cap, sizeof *am);
    const char *topics[] = {TOPIC_SOURCE_EVENTS, NULL};
    if (!msgs || !envs || !am || !dead || !reasons) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    c.pg = pgx_connect(o->pg_url, 30, err, errlen);
    if (!c.pg)
        goto out;
    dlq = kafka_producer_new(o->brokers, "panel-merger-dlq", NULL, err, errlen);
    if (!dlq)
        goto out;
    struct kafka_consumer_opts ko = {
        .brokers = o->brokers,
        .group_id = o->group,
        .client_id = "panel-merger",
        .topics = topics,
        .enable_auto_commit = 0,
        .auto_offset_reset = "earliest",
        .rebalance_cb = rebalance_cb,
        .opaque = &c,
    };
    rk = kafka_consumer_new(&ko, err, errlen);
    if (!rk)
        goto out;
    learn_topic_partitions(&c, rk);
    struct table_stats stats = {0};
    struct intake_failures failures = {0};
    while (o->running(o->arg)) {
        int64_t first_at = 0;
        size_t limit = intake_batch_limit(&failures, cap);
        c.revoked = false;
        while (n < limit && o->running(o->arg)) {
            int wait_ms = intake_poll_wait_ms(first_at, first_at ? now_ms() : 0, o->batch_ms);
            if (wait_ms < 0)
                break;
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, wait_ms);
            if (!m)
                continue;
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    log_warn("consume: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                continue;
            }
            if (!first_at)
                first_at = now_ms();
            char *why = reasons[n];
            Envelope *env = NULL;
            enum intake_verdict v =
                intake_check(m->payload, m->len, c.topic_partitions, &env, why, sizeof reasons[n]);
            if (v == INTAKE_INVALID &&
                apply_end_partition_count(env) > (uint32_t)c.topic_partitions &&
                learn_topic_partitions(&c, rk)) /* the topic grew since: judge it again */
                v = apply_validate(env, c.topic_partitions, why, sizeof reasons[n]) ? INTAKE_INVALID
                                                                                    : INTAKE_APPLY;
            dead[n] = v == INTAKE_INVALID; /* kept so that its run learns it is incomplete */
            if (v != INTAKE_APPLY && !intake_lettered_already(lettered, m->partition, m->offset)) {
                char e2[256];
                log_warn("dead-lettering %s[%d]@%lld: %s", rd_kafka_topic_name(m->rkt),
                         (int)m->partition, (long long)m->offset, why);
                if (dlq_send(dlq, m->key, m->key_len, m->payload, m->len, m->partition, m->offset,
                             why, e2, sizeof e2))
                    log_error("%s", e2);
                else /* queued: the producer delivers it (the flush below waits for it) */
                    intake_lettered_note(lettered, m->partition, m->offset);
                metrics_counter_add(o->metrics, "merger_dead_letters_total", NULL, 1);
            }
            msgs[n] = m;
            envs[n] = env;
            n++;
        }
        if (!o->running(o->arg))
            break; /* abandon: nothing of this batch was committed */
        if (c.revoked) {
            log_info("partitions revoked while collecting: dropping %zu events", n);
            rewind_batch(&c, rk, msgs, n);
            free_batch(msgs, envs, &n);
            continue;
        }
        if (n == 0)
            continue;
        if (kafka_producer_flush(dlq, 30000) != 0) {
            log_error("dead letters not confirmed yet: retrying the batch (the producer still "
                      "delivers them)");
            rewind_batch(&c, rk, msgs, n);
            free_batch(msgs, envs, &n);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            am[i].partition = msgs[i]->partition;
            am[i].offset = msgs[i]->offset;
            am[i].env = dead[i] ? NULL : envs[i];
            am[i].dead = dead[i] ? envs[i] : NULL;
            am[i].dead_reason = dead[i] ? reasons[i] : NULL;
        }
        struct apply_stats st = {0};
        char aerr[1024];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        enum apply_result ar =
            apply_batch(c.pg, o->group, TOPIC_SOURCE_EVENTS, am, n, &st, aerr, sizeof aerr);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (ar == APPLY_OK) {
            intake_applied(&failures, n);
            metrics_counter_add(o->metrics, "merger_events_applied_total", NULL, (double)n);
            metrics_counter_add(o->metrics, "merger_batches_total", "result=\"ok\"", 1);
            metrics_observe(o->metrics, "merger_batch_seconds", NULL,
                            (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
            log_debug("applied %zu events, %ld rows changed", n, st.rows_changed);
            int analyzed = table_stats_note(c.pg, &stats, st.rows_changed, aerr, sizeof aerr);
            if (analyzed < 0)
                log_warn("%s", aerr);
            else if (analyzed)
                log_debug("analyzed the directory tables after %lld rows changed",
                          stats.changed_total);
        } else {
            metrics_counter_add(o->metrics, "merger_batches_total",
                                ar == APPLY_FENCED     ? "result=\"fenced\""
                                : ar == APPLY_CONFLICT ? "result=\"conflict\""
                                                       : "result=\"error\"",
                                1);
            log_warn("batch of %zu events not applied (%s): %s", n, apply_result_str(ar), aerr);
            bool db_up = PQstatus(c.pg) == CONNECTION_OK && db_healthy(c.pg);
            /* A batch that ran into the statement timeout met a slow or locked database, not a
             * poisonous event: it does not count either. */
            long limit_ms = pgx_statement_timeout_ms();
            long took_ms =
                (long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
            bool timed_out = limit_ms > 0 && took_ms >= limit_ms;
            if (!db_up) {
                char rerr[256];
                if (pgx_reset(c.pg, rerr, sizeof rerr) != 0)
                    log_warn("%s", rerr);
            } else if (timed_out)
                log_warn("the batch ran into the %ld ms statement timeout; retrying it", limit_ms);
            enum intake_next next = intake_failed(&failures, ar, db_up, timed_out, n);
            if (next == INTAKE_ISOLATE) {
                /* Find the event that fails: take the batch's events one at a time. */
                log_warn("isolating the next %zu events one by one", n);
            } else if (next == INTAKE_DEAD_LETTER) {
                /* The database is fine and this one event keeps failing: it is poison. */
                char reason[1200], e2[256];
                snprintf(reason, sizeof reason, "apply failed %d times: %s", failures.fails, aerr);
                if (dlq_send(dlq, msgs[0]->key, msgs[0]->key_len, msgs[0]->payload, msgs[0]->len,
                             msgs[0]->partition, msgs[0]->offset, reason, e2, sizeof e2) == 0 &&
                    kafka_producer_flush(dlq, 30000) == 0) {
                    am[0].env = NULL; /* only the offset moves on; its run is incomplete */
                    am[0].dead = envs[0];
                    am[0].dead_reason = reason;
                    if (apply_batch(c.pg, o->group, TOPIC_SOURCE_EVENTS, am, 1, &st, aerr,
                                    sizeof aerr) == APPLY_OK) {
                        metrics_counter_add(o->metrics, "merger_dead_letters_total", NULL, 1);
                        log_error("dead-lettered %s[%d]@%lld: %s", TOPIC_SOURCE_EVENTS,
                                  (int)msgs[0]->partition, (long long)msgs[0]->offset, reason);
                        intake_dead_lettered(&failures);
                        free_batch(msgs, envs, &n);
                        continue;
                    }
                }
            }
            rewind_batch(&c, rk, msgs, n);
            if (ar == APPLY_ERROR)
                for (int i = 0; i < 10 && o->running(o->arg); i++) {
                    struct timespec ts = {0, 100 * 1000000L};
                    nanosleep(&ts, NULL);
                }
        }
        free_batch(msgs, envs, &n);
    }
    rc = 0;
out:
    free_batch(msgs, envs, &n);
    if (rk)
        kafka_consumer_destroy(rk);
    kafka_producer_destroy(dlq);
    if (c.pg)
        PQfinish(c.pg);
    free(msgs);
    free(envs);
    free(dead);
    free(reasons);
    free(am);
    return rc;
}

int consumer_run(const struct consumer_opts *o, char *err, size_t errlen)
{
    struct intake_lettered *lettered = intake_lettered_new();
    if (!lettered) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = member_run(o, lettered, err, errlen);
    intake_lettered_destroy(lettered);
    return rc;
}

/* ---------------------------------------------------------------- workers */

struct worker {
    struct consumer_opts opts; /* the caller's, with running() that also sees a failure */
    const struct consumer_opts *outer;
    struct intake_lettered *lettered; /* borrowed: the process's, shared by its workers */
    atomic_bool *failed;
    pthread_t thread;
    int rc;
    char err[1024];
};

static bool worker_running(void *arg)
{
    const struct worker *w = arg;
    return !atomic_load(w->failed) && w->outer->running(w->outer->arg);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->rc = member_run(&w->opts, w->lettered, w->err, sizeof w->err);
    if (w->rc)
        atomic_store(w->failed, true);
    return NULL;
}

int consumer_run_workers(const struct consumer_opts *o, int workers, char *err, size_t errlen)
{
    if (workers < 1 || workers > CONSUMER_WORKERS_MAX) {
        snprintf(err, errlen, "workers must be 1..%d", CONSUMER_WORKERS_MAX);
        return -1;
    }
    if (workers == 1)
        return consumer_run(o, err, errlen);
    struct worker *w = calloc((size_t)workers, sizeof *w);
    struct intake_lettered *lettered = intake_lettered_new();
    atomic_bool failed = false;
    int started = 0, rc = 0;
    if (!w || !lettered) {
        snprintf(err, errlen, "out of memory");
        free(w);
        intake_lettered_destroy(lettered);
        return -1;
    }
    for (; started < workers; started++) {
        w[started].opts = *o;
        w[started].opts.running = worker_running;
        w[started].opts.arg = &w[started];
        w[started].outer = o;
        w[started].lettered = lettered;
        w[started].failed = &failed;
        if (pthread_create(&w[started].thread, NULL, worker_main, &w[started]) != 0) {
            snprintf(err, errlen, "cannot start consumer worker %d", started + 1);
            atomic_store(&failed, true);
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < started; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].rc && rc == 0) {
            snprintf(err, errlen, "worker %d: %s", i + 1, w[i].err);
            rc = -1;
        }
    }
    free(w);
    intake_lettered_destroy(lettered); /* every worker has stopped */
    return rc;
}
