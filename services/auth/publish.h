/* publish: auth events (through the outbox) and sync requests on panel.sync.requests.
 * A sync request is first a sync_runs row (status 'requested', publish_pending) written in a
 * transaction; publish_pending_requests then sends every pending row and clears the flag, so
 * a crash in between re-sends the same run id instead of losing or doubling the run. */
#ifndef AUTH_PUBLISH_H
#define AUTH_PUBLISH_H

#include "ctx.h"
#include "events.h"

#include "db.h"
#include <stdbool.h>
#include <stddef.h>

/* "google" / "azure" -> the Source enum (UNSPECIFIED for anything else). */
Panel__V1__Source publish_source(const char *provider);

/* Inside the caller's transaction (the one that changes the connection): write an AuthEvent
 * (scopes may be NULL; message and actor may be NULL) to the outbox, for panel.auth.events
 * keyed by the district. The merger's outbox relay publishes it once the transaction commits,
 * also when Kafka was away at that moment (docs/auth.md "AuthEvents"). 0 or -1 with a
 * message. */
int outbox_auth_event(struct db_conn *db, const char *tenant, const char *provider,
                      Panel__V1__AuthEventKind kind, const char *const *scopes, size_t nscopes,
                      const char *message, const char *actor, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Inside the caller's transaction: unless a run of (tenant, provider) is already in flight
 * (requested within c->run_start_wait_s, or running and started within c->run_stale_s;
 * older ones are expired by sync_requests_expire), insert a sync_runs row to be
 * published. run_id gets the new or the in-flight run id; *coalesced says which. Takes a
 * transaction-scoped advisory lock on (tenant, provider) so that replicas do not race.
 * 0 or -1 with a message. */
int sync_request_add(struct auth_ctx *c, struct db_conn *db, const char *tenant,
                     const char *provider, const char *reason, bool preview,
                     const char *requested_by, char run_id[37], bool *coalesced, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* Expire the runs that cannot be waited for any longer: requested ones no fetcher started
 * within c->run_start_wait_s (failure_reason 'not_started'; an unpublished one is not
 * published any more) and running ones whose end did not arrive within c->run_stale_s of
 * their start ('not_finished'). Each gets status 'expired', finished_at and a message, so it
 * stops absorbing new requests and the admin sees why. Returns how many, or -1. */
long sync_requests_expire(struct auth_ctx *c, struct db_conn *db, char *err, size_t errlen);

/* Publish every pending sync request (oldest first, Google before Azure), each row claimed
 * with FOR UPDATE SKIP LOCKED. Returns the number published, or -1 with a message. */
long publish_pending_requests(struct auth_ctx *c, struct db_conn *db, char *err, size_t errlen);

#endif
