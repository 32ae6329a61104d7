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
    /* Directory extension holding a student's graduation year
     * (extension_<appId without dashes>_<name>), or NULL / "" (not read, not selected).
     * Borrowed. */
    const char *graduation_year_attribute;
    /* Filled by graph_prepare(): the users listing as configured. */
    struct fmap_field user_configured[1];
    struct fmap_spec user_spec;
    char select[1024];
    /* per run */
    char *stored_link;
};

extern const struct fmap_spec graph_user_spec;

/* Check the configured extension attribute and build the users listing from it (the mapping
 * table plus the configured attribute, which is added to $select only when configured).
 * 0, or -1 with err filled. */
int graph_prepare(struct graph *g, char *err, size_t errlen) __attribute__((warn_unused_result));

/* error.code and error.message of a Graph error body (borrowed from the returned parsed
 * body, which the caller json_decref()s; "" when absent). */
json_t *graph_error(const struct buf *body, const char **code, const char **message);
fetch_reason graph_failure(long status, const struct buf *body, char *msg, size_t msglen);
/* True when a delta request says its token is no longer usable (400 syncStateNotFound in any
 * case, 410 Gone, resyncRequired): drop it and run a full sync. */
bool graph_delta_expired(long status, const struct buf *body);

/* True for 400 Directory_ExpiredPageToken: a full run's listing starts over. */
bool graph_page_token_expired(long status, const struct buf *body);

/* True when url is under g->graph_url (the same scheme, host and port, then a '/' or
 * nothing): the only links a round follows, since each request carries the access token. */
bool graph_link_inside(const struct graph *g, const char *url);

/* One entry of a page's "value" array, as a delta round reads it. */
enum graph_entry {
    GRAPH_ENTRY_OBJECT,           /* no @removed: a user to map */
    GRAPH_ENTRY_REMOVED,          /* @removed with a usable id: an ObjectRemoved */
    GRAPH_ENTRY_REMOVAL_UNUSABLE, /* @removed without an id (or one past FMAP_MAX_ID): skipped */
    GRAPH_ENTRY_IGNORED,          /* @removed in a full listing (graph_entry_read) */
};
/* Classify obj; for GRAPH_ENTRY_REMOVED, *id (borrowed from obj) and *reason (DELETED for
 * @removed.reason "deleted", else CHANGED: Graph's "changed" is a soft delete) are set. */
enum graph_entry graph_entry_kind(const json_t *obj, const char **id,
                                  Panel__V1__RemovalReason *reason);
/* How a listing reads one entry: as graph_entry_kind(), except that a full listing (delta
 * false) never deletes by report, so every @removed entry of it is GRAPH_ENTRY_IGNORED.
 * *flags gets fmap_map()'s flags for an object (FMAP_PARTIAL in a delta round). */
enum graph_entry graph_entry_read(const json_t *obj, bool delta, const char **id,
                                  Panel__V1__RemovalReason *reason, int *flags);

/* fetch_source_ops callbacks; ctx is a struct graph. */
Panel__V1__RunKind graph_plan(struct fetch_run *run, void *ctx);
int graph_run(struct fetch_run *run, void *ctx);
void graph_completed(struct fetch_run *run, void *ctx);

#endif
