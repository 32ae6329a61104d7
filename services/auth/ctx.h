/* ctx: what every part of auth shares — configuration, the keyring, the Kafka producer, the
 * database pool — plus the per-thread resource that is not thread-safe (an HTTP client per
 * civetweb worker or background thread). */
#ifndef AUTH_CTX_H
#define AUTH_CTX_H

#include "callers.h"
#include "consent_identity.h"
#include "db.h"
#include "google_oauth.h"
#include "grants.h"
#include "http_client.h"
#include "kafka.h"
#include "metrics.h"
#include "ms_consent.h"

#include <pthread.h>
#include <stddef.h>

struct auth_ctx {
    struct db_pool *db; /* borrowed */
    /* Borrowed: who may call the internal routes. */
    const struct callers *callers;
    const char *admin_url;   /* where the browser lands after a callback */
    long state_ttl_s;        /* OAuth state lifetime */
    long run_stale_s;        /* a running run without an end this long after its start expires */
    long run_start_wait_s;   /* a requested run not started this long after it expires */
    long default_interval_s; /* used when the tenant row has none */
    struct grants *grants;   /* borrowed */
    struct kafka_producer *producer; /* borrowed; thread-safe */
    struct metrics *metrics;         /* borrowed; thread-safe; may be NULL (docs/auth.md) */
    struct google_cfg google;
    struct consent_id_cfg google_identity; /* who consents, for which Workspace */
    struct ms_cfg ms;
    pthread_key_t http_key;
};

/* How long a request waits for a pooled connection before it is answered 503. */
#define AUTH_DB_WAIT_MS 5000

/* Create the thread key. 0 or -1. */
int ctx_init(struct auth_ctx *c) __attribute__((warn_unused_result));
/* Borrow a connection of the pool, waiting up to AUTH_DB_WAIT_MS; give it back with db_put.
 * NULL with a message when none became free or the database is unreachable. */
struct db_conn *ctx_db(struct auth_ctx *c, char *err, size_t errlen);
/* This thread's HTTP client for provider calls. Borrowed; NULL on failure. */
struct http_client *ctx_http(struct auth_ctx *c, char *err, size_t errlen);
/* Release this thread's resources now (for threads that are not civetweb's). */
void ctx_thread_done(struct auth_ctx *c);
void ctx_fini(struct auth_ctx *c);

#endif
