/* graph: what is specific to Microsoft Graph — full runs as one /v1.0/users/delta round from
 * scratch (every user, whole, ending with a deltaLink), delta rounds from a stored delta link
 * (Prefer: return=minimal, only sent properties present, nulls as cleared fields, @removed as
 * ObjectRemoved), the fallback to a full run when the delta token expired, error
 * classification and the mapping table. */
#ifndef AZURE_SYNC_GRAPH_H
#define AZURE_SYNC_GRAPH_H

#include "delta_store.h"
#include "fetch_map.h"
#include "fetch_run.h"

#include <stdbool.h>
#include <stdint.h>

struct graph {
    const char *graph_url;     /* e.g. https://graph.microsoft.com (no trailing slash) */
    long page_size;            /* Prefer: odata.maxpagesize of /users/delta pages (<= 999) */
    long full_every_hours;     /* a delta run older than this since the last full becomes full */
    struct delta_store *store; /* borrowed; NULL = no durable delta links (every run full) */
    /* per run */
    char *stored_link;
};

extern const struct fmap_spec graph_user_spec;

/* error.code and error.message of a Graph error body (borrowed from the returned parsed
 * body, which the caller json_decref()s; "" when absent). */
json_t *graph_error(const struct buf *body, const char **code, const char **message);
/* 429 throttles; 500/502/503/504 retry (Retry-After honoured by the client). */
enum http_retry graph_classify(long status, const struct buf *body, void *ctx);
fetch_reason graph_failure(long status, const struct buf *body, char *msg, size_t msglen);
/* True when a delta request says its token is no longer usable (400 syncStateNotFound in any
 * case, 410 Gone, resyncRequired): drop it and run a full sync. */
bool graph_delta_expired(long status, const struct buf *body);

/* True for 400 Directory_ExpiredPageToken: a full run's listing starts over. */
bool graph_page_token_expired(long status, const struct buf *body);

/* fetch_source_ops callbacks; ctx is a struct graph. */
Panel__V1__RunKind graph_plan(struct fetch_run *run, void *ctx);
int graph_run(struct fetch_run *run, void *ctx);
void graph_completed(struct fetch_run *run, void *ctx);

#endif
