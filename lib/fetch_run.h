/* fetch_run: what google-sync and azure-sync share. A fetch service consumes
 * panel.sync.requests for its own source (running every request once, in order), and
 * turns each request into one run on panel.source.events: RunStarted, the observations,
 * then exactly one of RunCompleted / RunFailed with the counts. The run is spread over the
 * topic's partitions (counted once at its start): RunStarted and RunCompleted / RunFailed go
 * to every partition (key = tenant), a person's or device's observations to the partition of
 * fetch_partition_of(tenant, source id) (key = "<tenant>/<source id>"), the org unit tree's to
 * the tenant's partition (key = tenant). See docs/events.md. During a run
 * the provider code calls back into this module for authorised GETs (token from auth's
 * POST /internal/token, again after a 401; retries, backoff, Retry-After and the run's time
 * budget), page parsing, publishing and skip accounting. Providers only supply URLs,
 * paging, error classification and mapping tables. */
#ifndef PANEL_FETCH_RUN_H
#define PANEL_FETCH_RUN_H

#include "buf.h"
#include "http_client.h"
#include "kafka.h"
#include "panel/v1/pb_short_names.h"
#include "svc.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct fetch_service;
struct fetch_run;
struct fmap_spec;

typedef Panel__V1__RunFailureReason fetch_reason;

/* The provider's part of a run. */
struct fetch_source_ops {
    /* Retry decision for a provider response (401 is handled before this is asked). */
    enum http_retry (*classify)(long status, const struct buf *body, void *ctx);
    /* Why a final non-2xx response ends the run; msg gets the provider's explanation. */
    fetch_reason (*failure)(long status, const struct buf *body, char *msg, size_t msglen);
    /* Optional: the kind RunStarted announces (default full). */
    Panel__V1__RunKind (*plan)(struct fetch_run *run, void *ctx);
    /* Run one sync: 0 when the listing is complete, -1 after fetch_run_fail(). It sets the
     * kind RunCompleted reports (fetch_run_set_kind) when it differs from the plan. */
    int (*run)(struct fetch_run *run, void *ctx);
    /* Optional: called once RunCompleted is confirmed by Kafka (Azure stores its delta
     * link then, so a crash never skips changes). */
    void (*completed)(struct fetch_run *run, void *ctx);
    void *ctx; /* borrowed */
};

struct fetch_config {
    const char *brokers;
    const char *auth_url;       /* base of auth's internal routes */
    const char *service_secret; /* Bearer for auth; never logged */
    const char *provider;       /* "google" | "azure" (token requests, metrics labels) */
    Panel__V1__Source source;
    const char *group_id; /* consumer group on panel.sync.requests */
    long run_budget_s;    /* wall-clock budget of one run */
    long http_timeout_ms; /* per attempt */
    int max_attempts;     /* per request */
    long backoff_base_ms;
    long backoff_max_ms;
    long retry_after_max_ms; /* longest Retry-After honoured; a longer one fails the run */
    long max_page_bytes;     /* cap on one response body */
};

/* The environment both fetchers read; a service embeds this struct and puts
 * FETCH_ENV_OPTIONS(its config type, member, default group) in its option table. */
struct fetch_env {
    char *brokers;
    char *auth_url;
    char *service_secret;
    char *group;
    long long run_budget_s;
    long long http_timeout_ms;
    long long max_attempts;
    long long backoff_base_ms;
    long long backoff_max_ms;
    long long retry_after_max_ms;
    long long max_page_bytes;
};

/* clang-format off */
#define FETCH_ENV_OPTIONS(type, m, group_default)                                                 \
    KAFKA_CFG_BROKERS(type, m.brokers),                                                           \
    {"PANEL_KAFKA_GROUP", CFG_STRING, group_default, 0, 128, offsetof(type, m.group),             \
     "Consumer group on panel.sync.requests"},                                                    \
    {"PANEL_AUTH_URL", CFG_STRING, "http://127.0.0.1:8081", 0, 1024, offsetof(type, m.auth_url),  \
     "Base URL of the auth service (POST /internal/token)"},                                      \
    {"PANEL_SERVICE_SECRET", CFG_SECRET, NULL, 16, 512, offsetof(type, m.service_secret),         \
     "This fetcher's own secret for auth's /internal/token (Bearer; listed in auth's callers)"},  \
    {"PANEL_FETCH_RUN_BUDGET_S", CFG_INT, "3600", 1, 86400, offsetof(type, m.run_budget_s),       \
     "Wall-clock budget of one run; past it the run fails (budget_exhausted)"},                   \
    {"PANEL_FETCH_HTTP_TIMEOUT_MS", CFG_INT, "60000", 100, 600000,                                \
     offsetof(type, m.http_timeout_ms), "Timeout of one HTTP attempt to the provider"},           \
    {"PANEL_FETCH_MAX_ATTEMPTS", CFG_INT, "10", 1, 1000, offsetof(type, m.max_attempts),          \
     "Attempts per provider request (throttling, 5xx, resets) before the run fails"},             \
    {"PANEL_FETCH_BACKOFF_BASE_MS", CFG_INT, "500", 1, 60000, offsetof(type, m.backoff_base_ms),  \
     "First retry wait; doubles per retry, with jitter"},                                         \
    {"PANEL_FETCH_BACKOFF_MAX_MS", CFG_INT, "30000", 1, 600000, offsetof(type, m.backoff_max_ms), \
     "Longest retry wait of the fetcher's own backoff"},                                          \
    {"PANEL_FETCH_RETRY_AFTER_MAX_MS", CFG_INT, "600000", 1000, 3600000,                          \
     offsetof(type, m.retry_after_max_ms),                                                        \
     "Longest Retry-After a provider may ask for; a longer one fails the run as throttled"},      \
    {"PANEL_FETCH_MAX_PAGE_BYTES", CFG_INT, "33554432", 65536, 1073741824,                        \
     offsetof(type, m.max_page_bytes), "Cap on one provider response body"}
/* clang-format on */

/* Fill cfg from env (strings borrowed from env). */
void fetch_config_from_env(struct fetch_config *cfg, const struct fetch_env *env,
                           const char *provider, Panel__V1__Source source);

/* Start the consumer and producer. Everything in cfg and ops is borrowed and must outlive
 * the service. NULL with a message in err. */
struct fetch_service *fetch_service_new(const struct fetch_config *cfg,
                                        const struct fetch_source_ops *ops, struct svc *svc,
                                        char *err, size_t errlen);
/* Wait up to timeout_ms for one sync request and run it when it is ours. 0, or -1 on a
 * consumer error that was logged (the caller keeps polling). */
int fetch_service_poll(struct fetch_service *fs, int timeout_ms);
/* Mark the service ready and serve sync requests until SIGTERM/SIGINT. */
void fetch_service_serve(struct fetch_service *fs, struct svc *svc);
void fetch_service_destroy(struct fetch_service *fs);
/* A fetcher's main() after its own set-up: the service from env (borrowed), serving until
 * SIGTERM/SIGINT, then destroyed. 0, or 1 after logging why it could not start. */
int fetch_service_main(struct svc *svc, const struct fetch_env *env, const char *provider,
                       Panel__V1__Source source, const struct fetch_source_ops *ops);

/* ---- a provider's error bodies, both providers' shape of them ---- */
/* Parse an error body (NULL when empty or not JSON; caller json_decref()s). An OAuth-style
 * body {"error":"invalid_grant","error_description":...} sets *code and *message; otherwise
 * they are "" and *error is the "error" object for the provider to read (borrowed from the
 * result), or NULL. */
json_t *fetch_error_parse(const struct buf *body, const json_t **error, const char **code,
                          const char **message);
/* A provider's reader of its error bodies (google_error, graph_error): the parse as
 * fetch_error_parse's, *code and *message borrowed from the result. */
typedef json_t *(*fetch_error_reader)(const struct buf *body, const char **code,
                                      const char **message);
/* Whether the error in body, as read reads it, is the one test looks for (code and message
 * are "" when absent; ctx passed through). */
bool fetch_error_is(const struct buf *body, fetch_error_reader read,
                    bool (*test)(const char *code, const char *message, const void *ctx),
                    const void *ctx);
/* "code: message" (either part alone when the other is empty) into msg. */
void fetch_error_text(char *msg, size_t msglen, const char *code, const char *message);
/* Why a final error ends the run: 429 or throttled: THROTTLED; 401 or revoked: REVOKED;
 * 403: FORBIDDEN; anything else PROVIDER_ERROR. */
fetch_reason fetch_failure_reason(long status, bool throttled, bool revoked);

/* The partition of panel.source.events (0 .. partitions-1) that carries the observations of
 * object source_id of tenant: a stable hash (FNV-1a of tenant, a 0 byte and source_id, then
 * splitmix64's finaliser) modulo partitions, the same in every run and process. source_id
 * NULL: the tenant's partition (its org unit tree). partitions <= 1: 0. */
int32_t fetch_partition_of(const char *tenant, const char *source_id, int32_t partitions);

/* ---- for the provider during a run (all strings borrowed, valid during the run) ---- */
const char *fetch_run_tenant(const struct fetch_run *r);
const char *fetch_run_id(const struct fetch_run *r);
/* The provider's tenant as auth reported it (Azure tenant id), or "". */
const char *fetch_run_provider_tenant(const struct fetch_run *r);
bool fetch_run_force_full(const struct fetch_run *r);
bool fetch_run_preview(const struct fetch_run *r);
Panel__V1__RunKind fetch_run_kind(const struct fetch_run *r);
const char *fetch_run_delta_link(const struct fetch_run *r); /* NULL when none */
void fetch_run_set_kind(struct fetch_run *r, Panel__V1__RunKind kind);
/* Change the run's kind mid-run and publish RunStarted again with it: what follows is
 * applied as that kind (Azure: a delta run whose token expired goes on as a full listing, so
 * the merger must not take the listing for changes). 0, or -1 after failing the run. */
int fetch_run_restart_as(struct fetch_run *r, Panel__V1__RunKind kind)
    __attribute__((warn_unused_result));
/* Azure: the delta link RunCompleted carries (copied). 0 or -1. */
int fetch_run_set_delta_link(struct fetch_run *r, const char *link)
    __attribute__((warn_unused_result));

/* GET url with the run's access token and extra headers (NULL-terminated, may be NULL),
 * retrying as the provider's classify() says within the run's budget; a 401 fetches a new
 * token and retries once. 0: resp holds a response (look at its status); -1: the run failed
 * (reason recorded: budget, transport, revoked, shutdown). */
int fetch_run_get(struct fetch_run *r, const char *url, const char *const *headers,
                  struct http_response *resp) __attribute__((warn_unused_result));
/* ---- one listing, page after page (both providers' paging) ----
 * The next page is downloaded and parsed (on a second thread) while the current one is
 * published: once a page is taken its cursor is read and the next request started, then the
 * page's objects are published. At most one page is ahead, so memory holds two pages at most.
 * Pages are published in order; after a failure nothing more is requested and a request in
 * flight is abandoned. */

/* What fetch_run_pages() does with a response (fetch_listing.check). */
enum fetch_page_action {
    FETCH_PAGE_USE = 0, /* a page (2xx) or a final answer (non-2xx: the listing fails) */
    FETCH_PAGE_RETRY,   /* ask for the same page again after a backoff */
    FETCH_PAGE_RESTART, /* the page token expired: the listing starts over from its first page */
    FETCH_PAGE_END,     /* stop the listing without using the answer: fetch_run_pages() = 1 */
};

/* Where a listing stands when check() is asked. */
struct fetch_page_state {
    bool first_page; /* the request carried no cursor */
    int retries;     /* FETCH_PAGE_RETRY answers for this page so far */
    int restarts;    /* FETCH_PAGE_RESTART answers for this listing so far */
};

/* A listing as the provider describes it. Strings are borrowed for the call. */
struct fetch_listing {
    const char *name;         /* pages metric label, logs and failure messages */
    const char *refused_name; /* the listing a refusal (403) names; NULL = name */
    const char *first_url;
    const char *const *headers; /* extra headers of every request (NULL-terminated), or NULL */
    /* Optional: the top-level member of a page that holds next()'s cursor as a plain string.
     * It is then read from the raw page and the next page is asked for before this one is
     * parsed; next() must return the same cursor (otherwise the run fails as malformed). */
    const char *cursor_member;
    /* Optional: classify a response before it is used (NULL: always FETCH_PAGE_USE). */
    enum fetch_page_action (*check)(const struct http_response *resp,
                                    const struct fetch_page_state *st, void *ctx);
    /* The next page's cursor (borrowed from page), NULL or "" on the last page. */
    const char *(*next)(const json_t *page, void *ctx);
    /* The next page's URL from its cursor into url (reset by the caller). On -1, why and msg
     * say why: the run fails with them after the current page is published. */
    int (*next_url)(const char *cursor, struct buf *url, fetch_reason *why, char *msg,
                    size_t msglen, void *ctx);
    /* Publish one page's objects. 0 or -1 (run failed). */
    int (*publish)(struct fetch_run *run, const json_t *page, void *ctx);
    /* Optional: after the last page was published (Graph keeps its deltaLink). 0 or -1. */
    int (*last)(struct fetch_run *run, const json_t *page, void *ctx);
    void *ctx; /* borrowed */
};

/* Read a listing from first_url to its last page. 0: done, or refused with the run going on
 * (fetch_run_listing_failed); 1: check() said FETCH_PAGE_END; -1: the run failed. */
int fetch_run_pages(struct fetch_run *r, const struct fetch_listing *l)
    __attribute__((warn_unused_result));

/* One of the independent listings fetch_run_concurrently() runs at once: 0, or -1 after
 * fetch_run_fail() on run (the listing's own view of the run). */
typedef int (*fetch_run_task)(struct fetch_run *run, void *arg);

#define FETCH_RUN_MAX_CONCURRENT 4

/* Run task(view, args[i]) for i < n (1 to FETCH_RUN_MAX_CONCURRENT) at once, each on a thread
 * of its own with its own connection to the provider, and wait for all: a provider's round
 * trips then overlap instead of adding up. Each view is the run's (tenant, run id, token,
 * deadline) with counts, failure and refused listings of its own, added to the run's once
 * every task has ended, so the run's end is published after all their events. A failing task
 * stops the others at their next page; the run reports the first failure. A refused listing
 * (fetch_run_listing_failed) leaves the others going, as in a sequential run. Tasks only use
 * their view (no fetch_run_set_kind / delta link) and publish with the thread-safe
 * fetch_run_publish* functions. Memory: each task holds up to two pages (fetch_run_pages).
 * 0, or -1 with the run failed. */
int fetch_run_concurrently(struct fetch_run *r, fetch_run_task task, void *const *args, size_t n)
    __attribute__((warn_unused_result));

/* Listing names as one line ("orgunits, devices") in out (always terminated when outlen > 0).
 * Only whole names: false when they did not all fit (then "..." ends the line if room). */
bool fetch_listings_join(const char *const *names, size_t n, char *out, size_t outlen);
/* Fail the run with a final non-2xx response, using the provider's failure(). Returns -1. */
int fetch_run_fail_response(struct fetch_run *r, const struct http_response *resp);
/* A final non-2xx response to one listing (name borrowed, copied). When failure() says
 * FORBIDDEN (a scope or admin privilege is missing for this listing) the listing is recorded
 * and 1 is returned: the caller goes on with its other listings, and the run then ends with
 * RunFailed(FORBIDDEN, forbidden_listings). Otherwise as fetch_run_fail_response(): -1. */
int fetch_run_listing_failed(struct fetch_run *r, const char *listing,
                             const struct http_response *resp) __attribute__((warn_unused_result));
/* Parse a 2xx page. NULL after failing the run as malformed. Caller json_decref()s. */
json_t *fetch_run_parse_page(struct fetch_run *r, const struct http_response *resp,
                             const char *listing);
/* Record the failure (the first one wins) and return -1. */
int fetch_run_fail(struct fetch_run *r, fetch_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Publish one observation: msg is a Person, OrgUnit or Device (borrowed). 0 or -1 (run
 * failed). */
int fetch_run_publish(struct fetch_run *r, const ProtobufCMessage *msg)
    __attribute__((warn_unused_result));
/* Map one provider object by spec (flags as fmap_map()) and publish it; an object that
 * cannot be mapped is skipped (fetch_run_skip() under listing). 0 or -1 (run failed). */
int fetch_run_map_publish(struct fetch_run *r, const struct fmap_spec *spec, const json_t *obj,
                          int flags, const char *listing) __attribute__((warn_unused_result));
/* Publish an ObjectRemoved. 0 or -1. */
int fetch_run_publish_removed(struct fetch_run *r, Panel__V1__ObjectKind kind, const char *id,
                              Panel__V1__RemovalReason reason) __attribute__((warn_unused_result));
/* Count a skipped object and log why. */
void fetch_run_skip(struct fetch_run *r, const char *listing, const char *reason);
/* Count truncated/ignored fields of mapped objects. */
void fetch_run_note_truncated(struct fetch_run *r, unsigned truncated, unsigned ignored);
/* Count one page of a listing. */
void fetch_run_page_done(struct fetch_run *r, const char *listing);
/* Wait before repeating a request ourselves (backoff number `retry`); -1 when the budget or
 * a stop request ends the run. */
int fetch_run_backoff(struct fetch_run *r, int retry) __attribute__((warn_unused_result));
/* True while no stop was requested. */
bool fetch_run_running(const struct fetch_run *r);

#endif
