/* db: see db.h. The pool keeps one table of statement names (name -> SQL text) shared by
 * its connections, and each connection a table of the names it has prepared; both grow as
 * needed. */
#include "db.h"

#include "hash.h"
#include "log.h"
#include "pg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An open-addressing set of statements keyed by name (the first one seen under a name). */
struct stmt_set {
    const struct db_stmt **slots;
    size_t cap; /* a power of two, or 0 */
    size_t count;
};

struct db_conn {
    struct db_pool *pool;
    PGconn *pg;               /* NULL after it broke: opened again by the next db_get */
    int busy;                 /* borrowed */
    struct stmt_set prepared; /* prepared on this connection (names only count) */
};

struct db_pool {
    pthread_mutex_t mu; /* busy flags and names */
    pthread_cond_t cv;
    char *url;
    int size;
    struct db_conn *conns;
    struct stmt_set names; /* every statement name used in this pool with its SQL */
};

const char *db_result_str(enum db_result r)
{
    switch (r) {
    case DB_OK:
        return "ok";
    case DB_BUSY:
        return "no database connection free";
    case DB_DOWN:
        return "database unavailable";
    }
    return "?";
}

/* ------------------------------------------------------------------ statement sets */

static size_t name_hash(const char *s)
{
    return (size_t)hash_fnv1a64_str(HASH_FNV1A64_BASIS, s);
}

/* The slot holding name, or the empty slot where it would go (cap must be > count). */
static const struct db_stmt **set_slot(const struct stmt_set *s, const char *name)
{
    size_t i = name_hash(name) & (s->cap - 1);
    while (s->slots[i] && strcmp(s->slots[i]->name, name) != 0)
        i = (i + 1) & (s->cap - 1);
    return &s->slots[i];
}

static const struct db_stmt *set_find(const struct stmt_set *s, const char *name)
{
    return s->cap ? *set_slot(s, name) : NULL;
}

/* Add st (its name is not in s yet). 0, or -1 out of memory. */
static int set_add(struct stmt_set *s, const struct db_stmt *st)
{
    if ((s->count + 1) * 2 > s->cap) { /* keep it at most half full */
        struct stmt_set bigger = {NULL, s->cap ? s->cap * 2 : 64, s->count};
        bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
        if (!bigger.slots)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                *set_slot(&bigger, s->slots[i]->name) = s->slots[i];
        free(s->slots);
        *s = bigger;
    }
    *set_slot(s, st->name) = st;
    s->count++;
    return 0;
}

static void set_clear(struct stmt_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ the pool */

struct db_pool *db_pool_new(const char *url, int size, int connect_timeout_s, char *err,
                            size_t errlen)
{
    struct db_pool *p = NULL;
    if (size < 1) {
        snprintf(err, errlen, "a pool needs at least one connection");
        return NULL;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->url = strdup(url);
    p->conns = calloc((size_t)size, sizeof *p->conns);
    if (!p->url || !p->conns) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->size = size;
    for (int i = 0; i < size; i++) {
        p->conns[i].pool = p;
        p->conns[i].pg = pgx_connect(url, connect_timeout_s, err, errlen);
        if (!p->conns[i].pg)
            goto fail;
    }
    return p;
fail:
    db_pool_destroy(p);
    return NULL;
}

void db_pool_destroy(struct db_pool *p)
{
    if (!p)
        return;
    for (int i = 0; p->conns && i < p->size; i++) {
        if (p->conns[i].pg)
            PQfinish(p->conns[i].pg);
        set_clear(&p->conns[i].prepared);
    }
    free(p->conns);
    set_clear(&p->names);
    free(p->url);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int db_pool_size(const struct db_pool *p)
{
    return p->size;
}

/* Whether PostgreSQL closed pg while it sat in the pool (a restart, a failover, an idle
 * timeout): libpq learns it only when a statement fails, which would cost the request that
 * happens to borrow the connection a 503 after the database is back. Reads what is pending,
 * without a round trip. */
static bool conn_lost(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return true;
    struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
    if (pfd.fd < 0)
        return true;
    if (poll(&pfd, 1, 0) <= 0)
        return false; /* nothing to read: as alive as it can be told without a round trip */
    return !PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK;
}

enum db_result db_get(struct db_pool *p, long wait_ms, struct db_conn **out, char *err,
                      size_t errlen)
{
    struct timespec until;
    struct db_conn *c = NULL;
    *out = NULL;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (!c) {
        /* A connection that is open first: opening one again is the slow path. */
        for (int i = 0; i < p->size; i++)
            if (!p->conns[i].busy && (!c || (!c->pg && p->conns[i].pg)))
                c = &p->conns[i];
        if (!c && pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT)
            break;
    }
    if (c)
        c->busy = 1;
    pthread_mutex_unlock(&p->mu);
    if (!c) {
        snprintf(err, errlen, "no database connection became free within %ld ms", wait_ms);
        return DB_BUSY;
    }
    if (c->pg && conn_lost(c->pg)) { /* the connection is ours: open it again below */
        log_warn("database connection lost while idle; opening it again");
        PQfinish(c->pg);
        c->pg = NULL;
        set_clear(&c->prepared);
    }
    if (!c->pg) { /* broke earlier: one attempt, the caller answers "try again" */
        c->pg = pgx_connect(p->url, 0, err, errlen);
        if (!c->pg) {
            db_put(c);
            return DB_DOWN;
        }
        log_info("database connection opened again");
    }
    *out = c;
    return DB_OK;
}

void db_put(struct db_conn *c)
{
    if (!c)
        return;
    struct db_pool *p = c->pool;
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
    if (c->pg && PQstatus(c->pg) != CONNECTION_OK) {
        /* Not PQreset: a new connection must get pgx_connect's session settings again. */
        log_warn("database connection lost; it is opened again when next needed");
        PQfinish(c->pg);
        c->pg = NULL;
        set_clear(&c->prepared);
    }
    pthread_mutex_lock(&p->mu);
    c->busy = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

PGconn *db_pg(struct db_conn *c)
{
    return c->pg;
}

/* ------------------------------------------------------------------ statements */

/* 0 when st's name is free in the pool or stands for the same SQL text; -1 (logged) when
 * the name already stands for another text: two declarations that must not both exist. */
static int claim_name(struct db_pool *p, const struct db_stmt *st)
{
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    const struct db_stmt *known = set_find(&p->names, st->name);
    if (!known)
        rc = set_add(&p->names, st) == 0 ? 0 : 1;
    else if (known->sql != st->sql && strcmp(known->sql, st->sql) != 0)
        rc = -1;
    pthread_mutex_unlock(&p->mu);
    if (rc < 0)
        log_error("statement name '%s' is declared with two different SQL texts: \"%s\" and "
                  "\"%s\"; give one of them another name",
                  st->name, known->sql, st->sql);
    return rc < 0 ? -1 : 0; /* out of memory for the check itself: checked next time */
}

/* A failure of our own: an error result without a server message (never the connection's
 * last one, which belongs to another statement). */
static PGresult *failed(void)
{
    return PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
}

PGresult *db_exec(struct db_conn *c, const struct db_stmt *st, int nparams,
                  const char *const *params)
{
    const struct db_stmt *done = set_find(&c->prepared, st->name);
    if (done && done->sql != st->sql && strcmp(done->sql, st->sql) != 0 &&
        claim_name(c->pool, st) != 0)
        return failed();
    if (!done) {
        if (claim_name(c->pool, st) != 0)
            return failed();
        PGresult *r = PQprepare(c->pg, st->name, st->sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            /* 42P05: prepared already (an earlier set_add ran out of memory): it is this
             * name's one text, so it can run. */
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (!state || strcmp(state, "42P05") != 0)
                return r;
        }
        PQclear(r);
        (void)set_add(&c->prepared, st); /* out of memory: prepared again next time (42P05) */
    }
    return PQexecPrepared(c->pg, st->name, nparams, params, NULL, NULL, 0);
}

PGresult *db_query(struct db_conn *c, ExecStatusType want, const struct db_stmt *st, int nparams,
                   const char *const *params, char *err, size_t errlen)
{
    PGresult *res = db_exec(c, st, nparams, params);
    if (!pgx_ok(res, want, err, errlen)) {
        if (PQresultStatus(res) == PGRES_FATAL_ERROR && !*PQresultErrorMessage(res))
            snprintf(err, errlen, "statement %s cannot run (see the error logged before)",
                     st->name);
        PQclear(res);
        return NULL;
    }
    return res;
}

int db_run(struct db_conn *c, const struct db_stmt *st, int nparams, const char *const *params,
           char *err, size_t errlen)
{
    PGresult *res = db_exec(c, st, nparams, params);
    int ok = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) || pgx_ok(res, PGRES_TUPLES_OK, NULL, 0);
    PQclear(res);
    return ok ? 0 : -1;
}
