/* db_pool: see db_pool.h. Each slot remembers which statements it has prepared, so a reset
 * connection prepares them again. */
#include "db_pool.h"

#include "log.h"
#include "pg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_MAX_STMTS 160

struct db_slot {
    PGconn *conn;
    bool busy;
    const struct db_stmt *prepared[DB_MAX_STMTS];
    int nprepared;
};

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size;
    struct db_slot *slots;
};

struct db_pool *db_pool_new(const char *url, int size, int timeout_s, char *err, size_t errlen)
{
    struct db_pool *p = calloc(1, sizeof *p);
    if (!p || size < 1) {
        snprintf(err, errlen, "out of memory");
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->slots = calloc((size_t)size, sizeof *p->slots);
    if (!p->slots) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->size = size;
    for (int i = 0; i < size; i++) {
        p->slots[i].conn = pgx_connect(url, timeout_s, err, errlen);
        if (!p->slots[i].conn)
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
    for (int i = 0; p->slots && i < p->size; i++)
        if (p->slots[i].conn)
            PQfinish(p->slots[i].conn);
    free(p->slots);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static struct db_slot *slot_of(struct db_pool *p, PGconn *conn)
{
    for (int i = 0; i < p->size; i++)
        if (p->slots[i].conn == conn)
            return &p->slots[i];
    return NULL;
}

/* Whether PostgreSQL closed conn while it sat in the pool (a restart, a failover, an idle
 * timeout): libpq learns it only when a statement fails, which would cost the request that
 * happens to get the connection a 503 after the database is back. Reads what is pending. */
static bool conn_lost(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return true;
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    if (pfd.fd < 0)
        return true;
    if (poll(&pfd, 1, 0) <= 0)
        return false; /* nothing to read: as alive as it can be told without a round trip */
    return !PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK;
}

PGconn *db_pool_get(struct db_pool *p, long wait_ms)
{
    struct timespec until;
    PGconn *conn = NULL;
    struct db_slot *slot = NULL;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int i = 0; i < p->size; i++) {
            if (!p->slots[i].busy) {
                p->slots[i].busy = true;
                slot = &p->slots[i];
                conn = slot->conn;
                goto out;
            }
        }
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT)
            goto out;
    }
out:
    pthread_mutex_unlock(&p->mu);
    if (conn && conn_lost(conn)) { /* the slot is ours: reconnect outside the lock */
        log_warn("database connection lost; reconnecting");
        PQreset(conn);
        slot->nprepared = 0;
    }
    return conn;
}

void db_pool_put(struct db_pool *p, PGconn *conn)
{
    if (!conn)
        return;
    struct db_slot *s = slot_of(p, conn);
    if (!s)
        return;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE && PQstatus(conn) == CONNECTION_OK) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        log_warn("database connection lost; reconnecting");
        PQreset(conn);
        s->nprepared = 0;
    }
    pthread_mutex_lock(&p->mu);
    s->busy = false;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

PGresult *db_exec(struct db_pool *p, PGconn *conn, const struct db_stmt *st, int nparams,
                  const char *const *params)
{
    struct db_slot *s = slot_of(p, conn);
    bool prepared = false;
    for (int i = 0; s && i < s->nprepared; i++)
        if (s->prepared[i] == st)
            prepared = true;
    if (!prepared) {
        PGresult *r = PQprepare(conn, st->name, st->sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return r;
        PQclear(r);
        if (s && s->nprepared < DB_MAX_STMTS)
            s->prepared[s->nprepared++] = st;
    }
    return PQexecPrepared(conn, st->name, nparams, params, NULL, NULL, 0);
}
