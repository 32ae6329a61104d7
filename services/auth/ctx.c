/* ctx: shared state and per-thread resources. */
#include "ctx.h"

#include "oauth_http.h"
#include "pg.h"

#include <stdio.h>

static void pg_done(void *p)
{
    if (p)
        PQfinish(p);
}

static void http_done(void *p)
{
    if (p)
        http_client_destroy(p);
}

int ctx_init(struct auth_ctx *c)
{
    if (pthread_key_create(&c->pg_key, pg_done))
        return -1;
    if (pthread_key_create(&c->http_key, http_done)) {
        pthread_key_delete(c->pg_key);
        return -1;
    }
    return 0;
}

PGconn *ctx_pg(struct auth_ctx *c, char *err, size_t errlen)
{
    PGconn *pg = pthread_getspecific(c->pg_key);
    if (pg && PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) == PQTRANS_IDLE)
        return pg;
    if (pg) {
        /* A broken connection or a transaction left open by an error path: start over. */
        PQfinish(pg);
        pthread_setspecific(c->pg_key, NULL);
    }
    pg = pgx_connect(c->pg_url, 5, err, errlen);
    if (!pg)
        return NULL;
    if (pthread_setspecific(c->pg_key, pg)) {
        PQfinish(pg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return pg;
}

struct http_client *ctx_http(struct auth_ctx *c, char *err, size_t errlen)
{
    struct http_client *h = pthread_getspecific(c->http_key);
    if (h)
        return h;
    h = oauth_http_client_new(err, errlen);
    if (h && pthread_setspecific(c->http_key, h)) {
        http_client_destroy(h);
        h = NULL;
    }
    return h;
}

void ctx_thread_done(struct auth_ctx *c)
{
    pg_done(pthread_getspecific(c->pg_key));
    pthread_setspecific(c->pg_key, NULL);
    http_done(pthread_getspecific(c->http_key));
    pthread_setspecific(c->http_key, NULL);
}

void ctx_fini(struct auth_ctx *c)
{
    ctx_thread_done(c);
    pthread_key_delete(c->pg_key);
    pthread_key_delete(c->http_key);
}

PGresult *ctx_query(PGconn *pg, ExecStatusType want, const char *sql, int nparams,
                    const char *const *params, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!pgx_ok(res, want, err, errlen)) {
        PQclear(res);
        return NULL;
    }
    return res;
}
