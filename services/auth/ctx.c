/* ctx: shared state and per-thread resources. */
#include "ctx.h"

#include "oauth_http.h"

#include <stdio.h>

static void http_done(void *p)
{
    if (p)
        http_client_destroy(p);
}

int ctx_init(struct auth_ctx *c)
{
    if (pthread_key_create(&c->http_key, http_done))
        return -1;
    return 0;
}

struct db_conn *ctx_db(struct auth_ctx *c, char *err, size_t errlen)
{
    struct db_conn *db = NULL;
    if (db_get(c->db, AUTH_DB_WAIT_MS, &db, err, errlen) != DB_OK)
        return NULL;
    return db;
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
    http_done(pthread_getspecific(c->http_key));
    pthread_setspecific(c->http_key, NULL);
}

void ctx_fini(struct auth_ctx *c)
{
    ctx_thread_done(c);
    pthread_key_delete(c->http_key);
}
