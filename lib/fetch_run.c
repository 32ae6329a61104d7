#include "fetch_run.h"

#include "crypto.h"
#include "events.h"
#include "fetch_map.h"
#include "hash.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "prefetch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX           8192
#define RECENT_RUNS         256 /* tenants whose last run id is remembered */
#define MAX_EXTRA_HDRS      8
#define FLUSH_TIMEOUT_MS    30000
#define MAX_FORBIDDEN       8 /* listings a run can report as refused */
#define METADATA_TIMEOUT_MS 10000

/* The last run this process ran to its end for a tenant: the same request delivered again
 * (auth re-publishing after a crash, Kafka redelivering after a lost commit) is not run twice. */
struct recent_run {
    char tenant[72];
    char run_id[72];
};

struct fetch_service {
    const struct fetch_config *cfg;
    const struct fetch_source_ops *ops;
    struct svc *svc;
    struct metrics *metrics;
    rd_kafka_t *consumer;
    struct kafka_producer *producer;
    struct http_client *api;
    struct http_client *auth;
    struct http_client_opts api_opts;
    char label[64]; /* source="google" */
    struct recent_run recent[RECENT_RUNS];
    size_t recent_next;
    atomic_bool abandon; /* the page in flight is no longer wanted (the run failed) */
};

struct run_failure {
    bool failed;
    fetch_reason reason;
    char message[512];
};

/* The listings of one run that fetch_run_concurrently() runs at once. */
struct run_group {
    atomic_bool failed;   /* one of them failed: the others stop at their next page */
    atomic_uint failures; /* the order in which they failed (the first one is reported) */
};

struct fetch_run {
    struct fetch_service *fs;
    const char *tenant;
    const char *run_id;
    const char *request_reason;
    bool preview;
    bool force_full;
    Panel__V1__RunKind kind;
    char *delta_link;
    Panel__V1__RunCounts counts;
    int32_t partitions; /* of panel.source.events, learnt at the start and fixed for the run */
    int64_t start_ms;
    int64_t deadline_ms;
    char token[TOKEN_MAX];
    char provider_tenant[128];
    struct run_failure failure;     /* the first failure of the run (RunFailed) */
    char *forbidden[MAX_FORBIDDEN]; /* listings the provider refused (RunFailed) */
    size_t nforbidden;
    char forbidden_msg[512]; /* the provider's words for the first refusal */
    struct http_client *api; /* provider requests: the service's, or a concurrent listing's */
    atomic_bool *abandon;    /* the page being prefetched is no longer wanted */
    struct run_group *group; /* NULL, or the concurrent listings this one is part of */
    unsigned failed_as;      /* in a group: 1 + how many listings had failed before this one */
};

void fetch_config_from_env(struct fetch_config *cfg, const struct fetch_env *env,
                           const char *provider, Panel__V1__Source source)
{
    *cfg = (struct fetch_config){
        .brokers = env->brokers,
        .auth_url = env->auth_url,
        .service_secret = env->service_secret,
        .provider = provider,
        .source = source,
        .group_id = env->group,
        .run_budget_s = (long)env->run_budget_s,
        .http_timeout_ms = (long)env->http_timeout_ms,
        .max_attempts = (int)env->max_attempts,
        .backoff_base_ms = (long)env->backoff_base_ms,
        .backoff_max_ms = (long)env->backoff_max_ms,
        .retry_after_max_ms = (long)env->retry_after_max_ms,
        .max_page_bytes = (long)env->max_page_bytes,
    };
}

static int stop_cb(void *ctx)
{
    return !svc_running(ctx);
}

/* Provider requests also stop when the run abandoned the page being prefetched. */
static int api_stop_cb(void *ctx)
{
    struct fetch_service *fs = ctx;
    return !svc_running(fs->svc) || atomic_load(&fs->abandon);
}

struct fetch_service *fetch_service_new(const struct fetch_config *cfg,
                                        const struct fetch_source_ops *ops, struct svc *svc,
                                        char *err, size_t errlen)
{
    struct fetch_service *fs = calloc(1, sizeof *fs);
    if (!fs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fs->cfg = cfg;
    fs->ops = ops;
    fs->svc = svc;
    fs->metrics = svc_metrics(svc);
    snprintf(fs->label, sizeof fs->label, "source=\"%s\"", cfg->provider);
    fs->api_opts = (struct http_client_opts){
        .timeout_ms = cfg->http_timeout_ms,
        .max_body = (size_t)cfg->max_page_bytes,
        .max_attempts = cfg->max_attempts,
        .backoff_base_ms = cfg->backoff_base_ms,
        .backoff_max_ms = cfg->backoff_max_ms,
        .retry_after_max_ms = cfg->retry_after_max_ms,
        .user_agent = "k12-panel-fetcher",
        .cancelled = api_stop_cb,
        .cancelled_ctx = fs,
    };
    struct http_client_opts auth_opts = {
        .timeout_ms = 30000,
        .max_body = 64 * 1024,
        .max_attempts = 3,
        .backoff_base_ms = cfg->backoff_base_ms,
        .cancelled = stop_cb,
        .cancelled_ctx = svc,
    };
    static const char *const topics[] = {TOPIC_SYNC_REQUESTS, NULL};
    /* A run can take longer than Kafka's default poll interval; the request is committed
     * only once its run is over. */
    static const char *const cons_extra[] = {"max.poll.interval.ms", "86400000", NULL};
    struct kafka_consumer_opts co = {
        .brokers = cfg->brokers,
        .group_id = cfg->group_id,
        .topics = topics,
        .enable_auto_commit = 0,
        .auto_offset_reset = "earliest",
        .extra_conf = cons_extra,
    };
    fs->api = http_client_new(&fs->api_opts, err, errlen);
    if (!fs->api)
        goto fail;
    fs->auth = http_client_new(&auth_opts, err, errlen);
    if (!fs->auth)
        goto fail;
    fs->producer = kafka_producer_new(cfg->brokers, cfg->group_id, NULL, err, errlen);
    if (!fs->producer)
        goto fail;
    fs->consumer = kafka_consumer_new(&co, err, errlen);
    if (!fs->consumer)
        goto fail;
    metrics_describe(fs->metrics, "panel_fetch_pages_total", "counter", "Pages fetched");
    metrics_describe(fs->metrics, "panel_fetch_objects_total", "counter", "Observations published");
    metrics_describe(fs->metrics, "panel_fetch_retries_total", "counter",
                     "Requests repeated after a transport error or a 5xx");
    metrics_describe(fs->metrics, "panel_fetch_throttles_total", "counter",
                     "Responses that said slow down (429, rate-limit 403)");
    metrics_describe(fs->metrics, "panel_fetch_skipped_total", "counter",
                     "Objects skipped (missing id or email)");
    metrics_describe(fs->metrics, "panel_fetch_truncated_total", "counter",
                     "Fields cut to their limit or left out for a wrong type");
    metrics_describe(fs->metrics, "panel_fetch_runs_total", "counter", "Runs by result");
    metrics_describe(fs->metrics, "panel_fetch_coalesced_total", "counter",
                     "Sync requests delivered again after their run ended (not run twice)");
    metrics_describe_histogram(fs->metrics, "panel_fetch_run_duration_seconds", "Duration of runs",
                               METRICS_BUCKETS_RUN);
    metrics_describe(fs->metrics, "panel_fetch_last_success_timestamp_seconds", "gauge",
                     "End of the last completed run per tenant");
    return fs;
fail:
    fetch_service_destroy(fs);
    return NULL;
}

void fetch_service_destroy(struct fetch_service *fs)
{
    if (!fs)
        return;
    if (fs->consumer)
        kafka_consumer_destroy(fs->consumer);
    if (fs->producer)
        kafka_producer_destroy(fs->producer);
    http_client_destroy(fs->api);
    http_client_destroy(fs->auth);
    free(fs);
}

/* ------------------------------------------------------------------ run helpers */

const char *fetch_run_tenant(const struct fetch_run *r)
{
    return r->tenant;
}

const char *fetch_run_id(const struct fetch_run *r)
{
    return r->run_id;
}

const char *fetch_run_provider_tenant(const struct fetch_run *r)
{
    return r->provider_tenant;
}

bool fetch_run_force_full(const struct fetch_run *r)
{
    return r->force_full;
}

bool fetch_run_preview(const struct fetch_run *r)
{
    return r->preview;
}

Panel__V1__RunKind fetch_run_kind(const struct fetch_run *r)
{
    return r->kind;
}

const char *fetch_run_delta_link(const struct fetch_run *r)
{
    return r->delta_link;
}

void fetch_run_set_kind(struct fetch_run *r, Panel__V1__RunKind kind)
{
    r->kind = kind;
}

static int publish_started(struct fetch_run *r);

int fetch_run_restart_as(struct fetch_run *r, Panel__V1__RunKind kind)
{
    r->kind = kind;
    if (publish_started(r))
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL,
                              "cannot publish the run's new start");
    return 0;
}

int fetch_run_set_delta_link(struct fetch_run *r, const char *link)
{
    char *copy = strdup(link);
    if (!copy)
        return -1;
    free(r->delta_link);
    r->delta_link = copy;
    return 0;
}

bool fetch_run_running(const struct fetch_run *r)
{
    return svc_running(r->fs->svc);
}

/* Record a failure unless one is already there (the first one wins). Returns -1. */
static int failure_vset(struct run_failure *f, fetch_reason reason, const char *fmt, va_list ap)
{
    if (f->failed)
        return -1;
    f->failed = true;
    f->reason = reason;
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    return -1;
}

int fetch_run_fail(struct fetch_run *r, fetch_reason reason, const char *fmt, ...)
{
    bool first = !r->failure.failed;
    va_list ap;
    va_start(ap, fmt);
    failure_vset(&r->failure, reason, fmt, ap);
    va_end(ap);
    if (first && r->group) {
        r->failed_as = atomic_fetch_add(&r->group->failures, 1) + 1;
        atomic_store(&r->group->failed, true);
    }
    return -1;
}

/* A failure noted away from the run (the prefetch thread), applied when the page is taken. */
static int failure_set(struct run_failure *f, fetch_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failure_set(struct run_failure *f, fetch_reason reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failure_vset(f, reason, fmt, ap);
    va_end(ap);
    return -1;
}

static int fetch_run_fail_with(struct fetch_run *r, const struct run_failure *f)
{
    if (!f->failed)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL,
                              "a request failed without a reason");
    return fetch_run_fail(r, f->reason, "%s", f->message);
}

static void label2(char *out, size_t n, const struct fetch_service *fs, const char *k,
                   const char *v)
{
    snprintf(out, n, "%s,%s=\"%s\"", fs->label, k, v);
}

void fetch_run_skip(struct fetch_run *r, const char *listing, const char *reason)
{
    char l[128];
    r->counts.skipped++;
    label2(l, sizeof l, r->fs, "listing", listing);
    metrics_counter_add(r->fs->metrics, "panel_fetch_skipped_total", l, 1);
    log_warn_t(r->tenant, r->run_id, "skipped one object of %s: %s", listing, reason);
}

void fetch_run_note_truncated(struct fetch_run *r, unsigned truncated, unsigned ignored)
{
    if (truncated + ignored == 0)
        return;
    metrics_counter_add(r->fs->metrics, "panel_fetch_truncated_total", r->fs->label,
                        (double)(truncated + ignored));
    log_debug_t(r->tenant, r->run_id, "%u field(s) truncated, %u of a wrong type left out",
                truncated, ignored);
}

void fetch_run_page_done(struct fetch_run *r, const char *listing)
{
    char l[128];
    r->counts.pages++;
    label2(l, sizeof l, r->fs, "listing", listing);
    metrics_counter_add(r->fs->metrics, "panel_fetch_pages_total", l, 1);
    kafka_producer_poll(r->fs->producer);
}

int fetch_run_backoff(struct fetch_run *r, int retry)
{
    long wait = http_backoff_ms(&r->fs->api_opts, retry, -1);
    if (http_now_ms() + wait > r->deadline_ms)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_BUDGET_EXHAUSTED,
                              "the run's budget of %ld s is exhausted", r->fs->cfg->run_budget_s);
    svc_sleep_ms(r->fs->svc, wait);
    if (!svc_running(r->fs->svc))
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_SHUTDOWN, "the fetcher is stopping");
    return 0;
}

/* ------------------------------------------------------------------ token */

static fetch_reason token_error_reason(long status, const json_t *body, char *msg, size_t n)
{
    const char *code = pjson_str(json_object_get(body, "error"), "code");
    snprintf(msg, n, "auth answered %ld%s%s", status, code ? ": " : "", code ? code : "");
    if (status == 404)
        return PB_RUN_FAILURE_REASON_NOT_CONNECTED;
    if (status == 409 && code && strcmp(code, "revoked") == 0)
        return PB_RUN_FAILURE_REASON_REVOKED;
    if (status == 409)
        return PB_RUN_FAILURE_REASON_FORBIDDEN;
    if (status == 502)
        return PB_RUN_FAILURE_REASON_PROVIDER_ERROR;
    return PB_RUN_FAILURE_REASON_INTERNAL;
}

/* Ask auth for a fresh access token for the run's tenant. 0 or -1 (the failure in f). */
static int get_token(struct fetch_run *r, struct run_failure *f)
{
    struct fetch_service *fs = r->fs;
    struct buf url, body, authz;
    struct http_response resp;
    json_t *reply = NULL;
    char err[512];
    int rc = -1;
    buf_init(&url, 4096);
    buf_init(&body, 4096);
    buf_init(&authz, 4096);
    http_response_init(&resp);
    if (buf_appendf(&url, "%s/internal/token", fs->cfg->auth_url) ||
        buf_appends(&body, "{\"tenant_id\":") || buf_append_json_string(&body, r->tenant) ||
        buf_appends(&body, ",\"provider\":") || buf_append_json_string(&body, fs->cfg->provider) ||
        buf_appends(&body, "}") ||
        buf_appendf(&authz, "Authorization: Bearer %s", fs->cfg->service_secret)) {
        failure_set(f, PB_RUN_FAILURE_REASON_INTERNAL, "token request too large");
        goto out;
    }
    const char *hdrs[] = {authz.data, "Content-Type: application/json", NULL};
    struct http_request req = {.method = "POST",
                               .url = url.data,
                               .headers = hdrs,
                               .body = body.data,
                               .body_len = body.len,
                               .deadline_ms = r->deadline_ms};
    enum http_result hr = http_client_do(fs->auth, &req, &resp, err, sizeof err);
    if (hr == HTTP_RESULT_STOPPED) {
        failure_set(f, PB_RUN_FAILURE_REASON_SHUTDOWN, "stopped while asking auth for a token");
        goto out;
    }
    if (hr != HTTP_RESULT_OK) {
        failure_set(f, PB_RUN_FAILURE_REASON_INTERNAL, "auth's token endpoint: %s", err);
        goto out;
    }
    reply = pjson_parse(resp.body.data ? resp.body.data : "", resp.body.len, err, sizeof err);
    if (resp.status != 200) {
        char msg[256];
        fetch_reason reason = token_error_reason(resp.status, reply, msg, sizeof msg);
        failure_set(f, reason, "no access token: %s", msg);
        goto out;
    }
    const char *tok = pjson_str(reply, "access_token");
    if (!tok || !*tok || strlen(tok) >= sizeof r->token) {
        failure_set(f, PB_RUN_FAILURE_REASON_INTERNAL,
                    "auth's token reply has no usable access_token");
        goto out;
    }
    snprintf(r->token, sizeof r->token, "%s", tok);
    const char *pt = pjson_str(reply, "provider_tenant");
    snprintf(r->provider_tenant, sizeof r->provider_tenant, "%s", pt ? pt : "");
    rc = 0;
out:
    json_decref(reply);
    buf_free(&url);
    buf_free(&body);
    buf_free(&authz);
    http_response_free(&resp);
    return rc;
}

/* ------------------------------------------------------------------ HTTP */

static enum http_retry classify_wrap(long status, const struct buf *body, void *ctx)
{
    const struct fetch_service *fs = ctx;
    if (status == 401)
        return HTTP_RETRY_NO;
    return fs->ops->classify(status, body, fs->ops->ctx);
}

/* fetch_run_get() without touching the run's failure: the prefetch thread runs it while the
 * run's thread publishes, and the failure counts only once the page is taken. */
static int run_get(struct fetch_run *r, const char *url, const char *const *headers,
                   struct http_response *resp, struct run_failure *f)
{
    struct fetch_service *fs = r->fs;
    char err[1024];
    struct buf authz;
    int rc = -1;
    buf_init(&authz, TOKEN_MAX + 64);
    for (int refreshed = 0;; refreshed++) {
        const char *hdrs[MAX_EXTRA_HDRS + 2];
        size_t n = 0;
        buf_reset(&authz);
        if (buf_appendf(&authz, "Authorization: Bearer %s", r->token)) {
            failure_set(f, PB_RUN_FAILURE_REASON_INTERNAL, "authorization header too large");
            goto out;
        }
        hdrs[n++] = authz.data;
        for (size_t i = 0; headers && headers[i] && n < MAX_EXTRA_HDRS + 1; i++)
            hdrs[n++] = headers[i];
        hdrs[n] = NULL;
        if (http_now_ms() >= r->deadline_ms) {
            failure_set(f, PB_RUN_FAILURE_REASON_BUDGET_EXHAUSTED,
                        "the run's budget of %ld s is exhausted", fs->cfg->run_budget_s);
            goto out;
        }
        struct http_request req = {.url = url,
                                   .headers = hdrs,
                                   .deadline_ms = r->deadline_ms,
                                   .classify = classify_wrap,
                                   .classify_ctx = fs};
        enum http_result hr = http_client_do(r->api, &req, resp, err, sizeof err);
        if (resp->retried_errors)
            metrics_counter_add(fs->metrics, "panel_fetch_retries_total", fs->label,
                                resp->retried_errors);
        if (resp->throttled)
            metrics_counter_add(fs->metrics, "panel_fetch_throttles_total", fs->label,
                                resp->throttled);
        switch (hr) {
        case HTTP_RESULT_OK:
            break;
        case HTTP_RESULT_DEADLINE:
            failure_set(f, PB_RUN_FAILURE_REASON_BUDGET_EXHAUSTED,
                        "the run's budget of %ld s is exhausted%s: %s", fs->cfg->run_budget_s,
                        resp->throttled ? " while throttled" : "", err);
            goto out;
        case HTTP_RESULT_TOO_LARGE:
            failure_set(f, PB_RUN_FAILURE_REASON_MALFORMED, "%s", err);
            goto out;
        case HTTP_RESULT_RETRY_AFTER_TOO_LONG:
            failure_set(f, PB_RUN_FAILURE_REASON_THROTTLED, "%s", err);
            goto out;
        case HTTP_RESULT_STOPPED:
            failure_set(f, PB_RUN_FAILURE_REASON_SHUTDOWN, "the fetcher is stopping");
            goto out;
        case HTTP_RESULT_TRANSPORT:
        default:
            failure_set(f, PB_RUN_FAILURE_REASON_PROVIDER_ERROR, "%s", err);
            goto out;
        }
        if (resp->status == 401 && refreshed == 0) {
            /* The access token expired during the run: one new token, one more try. */
            log_info_t(r->tenant, r->run_id, "access token rejected; asking auth for a new one");
            if (get_token(r, f))
                goto out;
            continue;
        }
        rc = 0;
        goto out;
    }
out:
    buf_free(&authz);
    return rc;
}

int fetch_run_get(struct fetch_run *r, const char *url, const char *const *headers,
                  struct http_response *resp)
{
    struct run_failure f = {0};
    int rc = run_get(r, url, headers, resp, &f);
    if (rc)
        return fetch_run_fail_with(r, &f);
    return 0;
}

int fetch_run_fail_response(struct fetch_run *r, const struct http_response *resp)
{
    char msg[400] = "";
    fetch_reason reason = r->fs->ops->failure(resp->status, &resp->body, msg, sizeof msg);
    return fetch_run_fail(r, reason, "HTTP %ld: %s", resp->status, msg);
}

int fetch_run_listing_failed(struct fetch_run *r, const char *listing,
                             const struct http_response *resp)
{
    char msg[400] = "";
    fetch_reason reason = r->fs->ops->failure(resp->status, &resp->body, msg, sizeof msg);
    if (reason != PB_RUN_FAILURE_REASON_FORBIDDEN)
        return fetch_run_fail(r, reason, "HTTP %ld: %s", resp->status, msg);
    if (r->nforbidden == MAX_FORBIDDEN)
        return fetch_run_fail(r, reason, "%s: HTTP %ld: %s", listing, resp->status, msg);
    char *name = strdup(listing);
    if (!name)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "out of memory");
    r->forbidden[r->nforbidden++] = name;
    if (!r->forbidden_msg[0])
        snprintf(r->forbidden_msg, sizeof r->forbidden_msg, "HTTP %ld: %s", resp->status, msg);
    log_warn_t(r->tenant, r->run_id,
               "%s: the provider refused the listing (HTTP %ld: %s); going on with the others",
               listing, resp->status, msg);
    return 1;
}

bool fetch_listings_join(const char *const *names, size_t n, char *out, size_t outlen)
{
    size_t off = 0;
    if (outlen == 0)
        return false;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t need = (i ? 2 : 0) + strlen(names[i]);
        if (off + need + 1 > outlen) {
            /* Whole names only: a cut name would name another listing. */
            if (off + 4 <= outlen)
                memcpy(out + off, "...", 4);
            return false;
        }
        snprintf(out + off, outlen - off, "%s%s", i ? ", " : "", names[i]);
        off += need;
    }
    return true;
}

/* After the listings: refused ones make the run fail (FORBIDDEN) with their names, so
 * nothing is removed and the connection can say what is missing. */
static void fail_forbidden(struct fetch_run *r)
{
    char names[256];
    (void)fetch_listings_join((const char *const *)r->forbidden, r->nforbidden, names,
                              sizeof names);
    fetch_run_fail(r, PB_RUN_FAILURE_REASON_FORBIDDEN,
                   "the provider refused the listing of %s (%s); the other listings were read",
                   names, r->forbidden_msg);
}

/* page: the parsed body, NULL when it is not JSON (err says why). Any thread. */
static json_t *parse_body(const struct http_response *resp, char *err, size_t errlen)
{
    return pjson_parse(resp->body.data ? resp->body.data : "", resp->body.len, err, errlen);
}

/* The run's side of a parse: fail the run unless page (taken) is a JSON object. */
static json_t *page_or_fail(struct fetch_run *r, json_t *page, const char *err, const char *listing)
{
    if (!page) {
        fetch_run_fail(r, PB_RUN_FAILURE_REASON_MALFORMED, "page %llu of %s is not valid JSON: %s",
                       (unsigned long long)r->counts.pages + 1, listing, err);
        return NULL;
    }
    if (!json_is_object(page)) {
        json_decref(page);
        fetch_run_fail(r, PB_RUN_FAILURE_REASON_MALFORMED, "page of %s is not a JSON object",
                       listing);
        return NULL;
    }
    return page;
}

json_t *fetch_run_parse_page(struct fetch_run *r, const struct http_response *resp,
                             const char *listing)
{
    char err[256];
    return page_or_fail(r, parse_body(resp, err, sizeof err), err, listing);
}

/* ------------------------------------------------------------------ paging */

/* One page request, run on the prefetch thread. */
struct page_job {
    struct fetch_run *run;
    const struct fetch_listing *listing;
    struct buf url;
    struct http_response resp;
    struct run_failure failure;
    int rc;
    json_t *page; /* a 2xx body parsed on the prefetch thread (owned until taken) */
    char parse_err[256];
    bool has_cursor; /* a 2xx body left unparsed: its cursor, read from the raw body, is here */
    struct buf cursor;
};

/* The page's cursor read from its raw body (listing's cursor_member): the run's thread can ask
 * for the next page before it parses this one. False when it is not there for sure. */
static bool read_raw_cursor(struct page_job *j)
{
    const char *member = j->listing->cursor_member, *v;
    size_t n;
    buf_reset(&j->cursor);
    return member && j->resp.body.data &&
           pjson_scan_member_string(j->resp.body.data, j->resp.body.len, member, &v, &n) && n > 0 &&
           memchr(v, '\0', n) == NULL && buf_append(&j->cursor, v, n) == 0;
}

static void page_job_run(void *job, void *ctx)
{
    struct page_job *j = job;
    (void)ctx;
    j->failure = (struct run_failure){0};
    j->page = NULL;
    j->parse_err[0] = '\0';
    j->has_cursor = false;
    j->rc = run_get(j->run, j->url.data, j->listing->headers, &j->resp, &j->failure);
    if (j->rc != 0 || j->resp.status < 200 || j->resp.status > 299)
        return;
    j->has_cursor = read_raw_cursor(j);
    if (!j->has_cursor) /* the last page, or a cursor only the parser can read */
        j->page = parse_body(&j->resp, j->parse_err, sizeof j->parse_err);
}

static int page_request(struct fetch_run *r, struct prefetch *pf, struct page_job *job)
{
    if (prefetch_start(pf, job))
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "cannot start a page request");
    return 0;
}

int fetch_run_pages(struct fetch_run *r, const struct fetch_listing *l)
{
    /* Two requests: while one page is parsed and published, the next one is downloaded. */
    struct page_job jobs[2] = {{.run = r, .listing = l}, {.run = r, .listing = l}};
    struct page_job *job = &jobs[0], *spare = &jobs[1];
    struct prefetch *pf = NULL;
    json_t *page = NULL;
    struct fetch_page_state st = {.first_page = true};
    char err[256];
    int rc = -1;
    int64_t started_ms = http_now_ms();
    unsigned long long npages = 0;
    for (int i = 0; i < 2; i++) {
        buf_init(&jobs[i].url, 16384);
        buf_init(&jobs[i].cursor, 16384);
        http_response_init(&jobs[i].resp);
    }
    atomic_store(r->abandon, false);
    pf = prefetch_new(page_job_run, NULL, err, sizeof err);
    if (!pf) {
        fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "%s", err);
        goto out;
    }
    if (buf_appends(&job->url, l->first_url)) {
        fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "%s: URL too long", l->name);
        goto out;
    }
    if (page_request(r, pf, job))
        goto out;
    for (;;) {
        (void)prefetch_wait(pf);
        if (r->group && atomic_load(&r->group->failed)) {
            /* Another listing of the run failed: this page is not wanted either. */
            fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL,
                           "%s: stopped because another listing of the run failed", l->name);
            goto out;
        }
        if (job->rc) {
            fetch_run_fail_with(r, &job->failure);
            goto out;
        }
        enum fetch_page_action act = l->check ? l->check(&job->resp, &st, l->ctx) : FETCH_PAGE_USE;
        if (act != FETCH_PAGE_USE) {
            json_decref(job->page); /* a page asked for again, or not wanted */
            job->page = NULL;
        }
        if (act == FETCH_PAGE_END) {
            rc = 1;
            goto out;
        }
        if (act == FETCH_PAGE_RETRY) {
            st.retries++;
            log_info_t(r->tenant, r->run_id, "%s: page answered HTTP %ld; asking again (%d)",
                       l->name, job->resp.status, st.retries);
            if (fetch_run_backoff(r, st.retries) || page_request(r, pf, job))
                goto out;
            continue;
        }
        if (act == FETCH_PAGE_RESTART) {
            /* The listing starts over: objects already published are published again (the
             * merge is idempotent). */
            st.restarts++;
            st.retries = 0;
            st.first_page = true;
            log_warn_t(r->tenant, r->run_id, "%s: page token expired; restarting the listing (%d)",
                       l->name, st.restarts);
            buf_reset(&job->url);
            if (buf_appends(&job->url, l->first_url) || page_request(r, pf, job))
                goto out;
            continue;
        }
        if (job->resp.status < 200 || job->resp.status > 299) {
            /* A refused listing (403) leaves the others to be read. */
            if (fetch_run_listing_failed(r, l->refused_name ? l->refused_name : l->name,
                                         &job->resp) > 0)
                rc = 0;
            goto out;
        }
        st.retries = 0;
        fetch_reason why = PB_RUN_FAILURE_REASON_INTERNAL;
        char msg[512] = "";
        bool early = false;
        if (job->has_cursor) {
            /* The cursor was read from the raw page: the next request goes out before this
             * page is parsed (the parse then checks it is the page's cursor). */
            buf_reset(&spare->url);
            if (l->next_url(job->cursor.data, &spare->url, &why, msg, sizeof msg, l->ctx) == 0) {
                st.first_page = false;
                if (page_request(r, pf, spare))
                    goto out;
                early = true;
            }
            job->page = parse_body(&job->resp, job->parse_err, sizeof job->parse_err);
            buf_free(&job->resp.body); /* parsed: two pages in memory, not three */
        }
        page = page_or_fail(r, job->page, job->parse_err, l->name);
        job->page = NULL;
        if (!page)
            goto out;
        const char *cursor = l->next(page, l->ctx);
        bool more = cursor && *cursor, bad_url = false;
        if (early) {
            if (!more || strcmp(cursor, job->cursor.data) != 0) {
                fetch_run_fail(r, PB_RUN_FAILURE_REASON_MALFORMED,
                               "%s: the page's cursor is not the one read before parsing it",
                               l->name);
                goto out;
            }
        } else if (more) {
            /* The next request goes out before this page is published. */
            buf_reset(&job->url);
            if (l->next_url(cursor, &job->url, &why, msg, sizeof msg, l->ctx)) {
                bad_url = true;
                more = false;
            } else {
                st.first_page = false;
                if (page_request(r, pf, job))
                    goto out;
            }
        }
        if (l->publish(r, page, l->ctx))
            goto out;
        fetch_run_page_done(r, l->name);
        npages++;
        if (bad_url) {
            fetch_run_fail(r, why, "%s", msg);
            goto out;
        }
        if (!more) {
            if (l->last && l->last(r, page, l->ctx))
                goto out;
            break;
        }
        json_decref(page);
        page = NULL;
        if (early) {
            struct page_job *t = job;
            job = spare;
            spare = t;
        }
    }
    rc = 0;
    log_info_t(r->tenant, r->run_id, "%s: %llu pages in %.2f s", l->name, npages,
               (double)(http_now_ms() - started_ms) / 1000.0);
out:
    if (pf && prefetch_busy(pf)) {
        /* The run failed while the next page was on its way: it is not wanted. */
        atomic_store(r->abandon, true);
        (void)prefetch_wait(pf);
        atomic_store(r->abandon, false);
    }
    prefetch_destroy(pf);
    json_decref(page);
    for (int i = 0; i < 2; i++) {
        json_decref(jobs[i].page);
        buf_free(&jobs[i].url);
        buf_free(&jobs[i].cursor);
        http_response_free(&jobs[i].resp);
    }
    return rc;
}

/* ------------------------------------------------------------------ concurrent listings */

/* One listing of fetch_run_concurrently(): a view of the run of its own. */
struct run_part {
    struct fetch_run run;
    atomic_bool abandon;
    fetch_run_task task;
    void *arg;
    int rc;
    pthread_t thread;
    bool started;
};

/* A part's requests also stop once another part of the run failed. */
static int part_stop_cb(void *ctx)
{
    struct run_part *p = ctx;
    return !svc_running(p->run.fs->svc) || atomic_load(&p->abandon) ||
           atomic_load(&p->run.group->failed);
}

static void *part_main(void *arg)
{
    struct run_part *p = arg;
    p->rc = p->task(&p->run, p->arg);
    if (p->rc && !p->run.failure.failed)
        fetch_run_fail(&p->run, PB_RUN_FAILURE_REASON_INTERNAL,
                       "a listing stopped without a reason");
    return NULL;
}

/* The part's view starts as the run's: same tenant, run id, token, deadline; nothing counted. */
static int part_init(struct run_part *p, struct fetch_run *r, struct run_group *g,
                     fetch_run_task task, void *arg, char *err, size_t errlen)
{
    Panel__V1__RunCounts none = PANEL__V1__RUN_COUNTS__INIT;
    p->run = *r;
    p->run.counts = none;
    p->run.failure = (struct run_failure){0};
    memset(p->run.forbidden, 0, sizeof p->run.forbidden);
    p->run.nforbidden = 0;
    p->run.forbidden_msg[0] = '\0';
    p->run.delta_link = NULL;
    p->run.group = g;
    p->run.failed_as = 0;
    p->run.abandon = &p->abandon;
    atomic_init(&p->abandon, false);
    p->task = task;
    p->arg = arg;
    struct http_client_opts o = r->fs->api_opts;
    o.cancelled = part_stop_cb;
    o.cancelled_ctx = p;
    p->run.api = http_client_new(&o, err, errlen);
    return p->run.api ? 0 : -1;
}

/* Fold a part's counts and refusals into the run. */
static void part_fold(struct fetch_run *r, struct run_part *p)
{
    Panel__V1__RunCounts *c = &r->counts;
    const Panel__V1__RunCounts *pc = &p->run.counts;
    c->people += pc->people;
    c->org_units += pc->org_units;
    c->devices += pc->devices;
    c->removals += pc->removals;
    c->skipped += pc->skipped;
    c->pages += pc->pages;
    for (size_t i = 0; i < p->run.nforbidden; i++) {
        if (r->nforbidden == MAX_FORBIDDEN) {
            fetch_run_fail(r, PB_RUN_FAILURE_REASON_FORBIDDEN, "%s: %s", p->run.forbidden[i],
                           p->run.forbidden_msg);
            free(p->run.forbidden[i]);
        } else {
            r->forbidden[r->nforbidden++] = p->run.forbidden[i];
        }
        p->run.forbidden[i] = NULL;
    }
    if (!r->forbidden_msg[0] && p->run.forbidden_msg[0])
        snprintf(r->forbidden_msg, sizeof r->forbidden_msg, "%s", p->run.forbidden_msg);
}

int fetch_run_concurrently(struct fetch_run *r, fetch_run_task task, void *const *args, size_t n)
{
    struct run_group group;
    struct run_part *parts = NULL;
    struct run_part *first_failed = NULL;
    char err[256];
    int rc = -1;
    atomic_init(&group.failed, false);
    atomic_init(&group.failures, 0);
    if (n == 0 || n > FETCH_RUN_MAX_CONCURRENT)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL,
                              "%zu concurrent listings (1 to %d)", n, FETCH_RUN_MAX_CONCURRENT);
    parts = calloc(n, sizeof *parts);
    if (!parts)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (part_init(&parts[i], r, &group, task, args[i], err, sizeof err)) {
            fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "%s", err);
            atomic_store(&group.failed, true);
            break;
        }
        if (pthread_create(&parts[i].thread, NULL, part_main, &parts[i])) {
            fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "cannot start a listing's thread");
            atomic_store(&group.failed, true);
            break;
        }
        parts[i].started = true;
    }
    for (size_t i = 0; i < n; i++) {
        struct run_part *p = &parts[i];
        if (p->started)
            pthread_join(p->thread, NULL);
        if (p->started)
            part_fold(r, p);
        if (p->run.failure.failed &&
            (!first_failed || p->run.failed_as < first_failed->run.failed_as))
            first_failed = p;
    }
    /* A token a part renewed is the run's token from now on (the run's next requests). */
    for (size_t i = 0; i < n; i++)
        if (parts[i].started && strcmp(parts[i].run.token, r->token) != 0)
            snprintf(r->token, sizeof r->token, "%s", parts[i].run.token);
    if (first_failed)
        fetch_run_fail_with(r, &first_failed->run.failure);
    else if (!r->failure.failed)
        rc = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < parts[i].run.nforbidden; k++)
            free(parts[i].run.forbidden[k]);
        http_client_destroy(parts[i].run.api);
        explicit_bzero(parts[i].run.token, sizeof parts[i].run.token);
    }
    free(parts);
    return rc;
}

/* ------------------------------------------------------------------ publishing */

int32_t fetch_partition_of(const char *tenant, const char *source_id, int32_t partitions)
{
    if (partitions <= 1)
        return 0;
    /* FNV-1a over the bytes of tenant, a 0 byte and source_id, then a 64-bit finaliser
     * (splitmix64) so that ids differing only in their last characters still spread. */
    uint64_t h = hash_fnv1a64_str(HASH_FNV1A64_BASIS, tenant);
    if (source_id)
        h = hash_fnv1a64_str(hash_fnv1a64_byte(h, 0), source_id);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (int32_t)(h % (uint64_t)partitions);
}

/* Publish one observation of the object source_id (NULL: of the org unit tree) on its
 * partition, keyed "<tenant>/<source_id>" (the tree: the tenant). */
static int publish(struct fetch_run *r, Envelope *env, const char *source_id)
{
    char err[256];
    struct buf key;
    int rc = 0;
    buf_init(&key, 1024);
    if (source_id ? buf_appendf(&key, "%s/%s", r->tenant, source_id)
                  : buf_appendf(&key, "%s", r->tenant)) {
        buf_free(&key);
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "an event key is too long");
    }
    int32_t part = fetch_partition_of(r->tenant, source_id, r->partitions);
    if (events_publish_partition(r->fs->producer, TOPIC_SOURCE_EVENTS, part, key.data, env, err,
                                 sizeof err))
        rc = fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "publishing: %s", err);
    buf_free(&key);
    return rc;
}

/* Publish a run control event (RunStarted, RunCompleted, RunFailed) once on every partition,
 * keyed by the tenant: each partition's consumer sees where the run starts and ends among
 * the observations it holds. Each copy has its own event id (consumers dedupe by event id,
 * and every copy must be applied); the copies differ in nothing else. 0, or -1 with a
 * message. */
static int publish_control(struct fetch_run *r, Envelope *env, char id[EVENTS_ID_LEN], char *err,
                           size_t errlen)
{
    for (int32_t part = 0; part < r->partitions; part++) {
        if (part > 0 && crypto_uuid(id)) {
            snprintf(err, errlen, "cannot create an event id");
            return -1;
        }
        env->event_id = id;
        if (events_publish_partition(r->fs->producer, TOPIC_SOURCE_EVENTS, part, r->tenant, env,
                                     err, errlen))
            return -1;
    }
    return 0;
}

/* How many partitions panel.source.events has; the run fails (nothing published yet) when
 * the brokers cannot say. */
static int learn_partitions(struct fetch_run *r)
{
    char err[256];
    int32_t n =
        kafka_topic_partition_count(kafka_producer_handle(r->fs->producer), TOPIC_SOURCE_EVENTS,
                                    METADATA_TIMEOUT_MS, err, sizeof err);
    if (n < 1)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "%s", err);
    r->partitions = n;
    return 0;
}

static int envelope(struct fetch_run *r, Envelope *env, char id[EVENTS_ID_LEN])
{
    if (events_envelope_init(env, id, r->tenant, r->fs->cfg->source, r->run_id))
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "cannot create an event id");
    return 0;
}

int fetch_run_publish(struct fetch_run *r, const ProtobufCMessage *msg)
{
    Envelope env;
    char id[EVENTS_ID_LEN];
    Panel__V1__PersonObserved po = PANEL__V1__PERSON_OBSERVED__INIT;
    Panel__V1__OrgUnitObserved oo = PANEL__V1__ORG_UNIT_OBSERVED__INIT;
    Panel__V1__DeviceObserved dobs = PANEL__V1__DEVICE_OBSERVED__INIT;
    const char *kind, *source_id = NULL;
    if (envelope(r, &env, id))
        return -1;
    if (msg->descriptor == &panel__v1__person__descriptor) {
        po.person = (Panel__V1__Person *)msg;
        env.payload_case = PB_PAYLOAD_PERSON_OBSERVED;
        env.person_observed = &po;
        source_id = po.person->source_id ? po.person->source_id : "";
        r->counts.people++;
        kind = "kind=\"person\"";
    } else if (msg->descriptor == &panel__v1__org_unit__descriptor) {
        oo.org_unit = (Panel__V1__OrgUnit *)msg;
        env.payload_case = PB_PAYLOAD_ORG_UNIT_OBSERVED;
        env.org_unit_observed = &oo;
        r->counts.org_units++;
        kind = "kind=\"org_unit\"";
    } else if (msg->descriptor == &panel__v1__device__descriptor) {
        dobs.device = (Panel__V1__Device *)msg;
        env.payload_case = PB_PAYLOAD_DEVICE_OBSERVED;
        env.device_observed = &dobs;
        source_id = dobs.device->device_id ? dobs.device->device_id : "";
        r->counts.devices++;
        kind = "kind=\"device\"";
    } else {
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "not an observation: %s",
                              msg->descriptor->name);
    }
    char l[128];
    snprintf(l, sizeof l, "%s,%s", r->fs->label, kind);
    metrics_counter_add(r->fs->metrics, "panel_fetch_objects_total", l, 1);
    return publish(r, &env, source_id); /* org units: NULL, the tree stays on one partition */
}

int fetch_run_map_publish(struct fetch_run *r, const struct fmap_spec *spec, const json_t *obj,
                          int flags, const char *listing)
{
    char why[256];
    struct fmap_stats st = {0};
    ProtobufCMessage *m = fmap_map(spec, obj, flags, &st, why, sizeof why);
    if (!m) {
        fetch_run_skip(r, listing, why);
        return 0;
    }
    fetch_run_note_truncated(r, st.truncated, st.ignored);
    int rc = fetch_run_publish(r, m);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int fetch_run_publish_removed(struct fetch_run *r, Panel__V1__ObjectKind kind, const char *id,
                              Panel__V1__RemovalReason reason)
{
    Envelope env;
    char eid[EVENTS_ID_LEN];
    Panel__V1__ObjectRemoved rem = PANEL__V1__OBJECT_REMOVED__INIT;
    if (envelope(r, &env, eid))
        return -1;
    rem.has_kind = 1;
    rem.kind = kind;
    rem.source_id = (char *)id;
    rem.has_reason = 1;
    rem.reason = reason;
    env.payload_case = PB_PAYLOAD_OBJECT_REMOVED;
    env.object_removed = &rem;
    r->counts.removals++;
    return publish(r, &env, kind == PB_OBJECT_KIND_ORG_UNIT ? NULL : id);
}

static void set_counts(Panel__V1__RunCounts *c)
{
    c->has_people = c->has_org_units = c->has_devices = 1;
    c->has_removals = c->has_skipped = c->has_pages = 1;
}

static int publish_started(struct fetch_run *r)
{
    Envelope env;
    char id[EVENTS_ID_LEN];
    Panel__V1__RunStarted st = PANEL__V1__RUN_STARTED__INIT;
    if (envelope(r, &env, id))
        return -1;
    st.has_kind = 1;
    st.kind = r->kind;
    st.has_preview = 1;
    st.preview = r->preview;
    st.reason = (char *)r->request_reason;
    env.payload_case = PB_PAYLOAD_RUN_STARTED;
    env.run_started = &st;
    char err[256];
    if (publish_control(r, &env, id, err, sizeof err))
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "publishing: %s", err);
    return 0;
}

/* Wait for every queued event; a lost one makes the run incomplete. */
static int flush(struct fetch_run *r)
{
    long failed = kafka_producer_flush(r->fs->producer, FLUSH_TIMEOUT_MS);
    if (failed != 0)
        return fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL,
                              failed < 0 ? "Kafka did not confirm the run's events in time"
                                         : "Kafka lost some of the run's events");
    return 0;
}

static int publish_end(struct fetch_run *r)
{
    Envelope env;
    char id[EVENTS_ID_LEN];
    Panel__V1__RunCompleted done = PANEL__V1__RUN_COMPLETED__INIT;
    Panel__V1__RunFailed fail = PANEL__V1__RUN_FAILED__INIT;
    if (events_envelope_init(&env, id, r->tenant, r->fs->cfg->source, r->run_id))
        return -1;
    set_counts(&r->counts);
    if (!r->failure.failed) {
        done.has_kind = 1;
        done.kind = r->kind;
        done.counts = &r->counts;
        done.has_preview = 1;
        done.preview = r->preview;
        done.delta_link = r->delta_link;
        done.has_partition_count = 1;
        done.partition_count = (uint32_t)r->partitions;
        env.payload_case = PB_PAYLOAD_RUN_COMPLETED;
        env.run_completed = &done;
    } else {
        fail.has_reason = 1;
        fail.reason = r->failure.reason;
        fail.message = r->failure.message;
        fail.counts = &r->counts;
        fail.n_forbidden_listings = r->nforbidden;
        fail.forbidden_listings = r->forbidden;
        fail.has_partition_count = 1;
        fail.partition_count = (uint32_t)r->partitions;
        env.payload_case = PB_PAYLOAD_RUN_FAILED;
        env.run_failed = &fail;
    }
    char err[256];
    /* After every observation on each partition: the producer keeps each partition's order. */
    if (publish_control(r, &env, id, err, sizeof err)) {
        log_error_t(r->tenant, r->run_id, "cannot publish the end of the run: %s", err);
        return -1;
    }
    if (kafka_producer_flush(r->fs->producer, FLUSH_TIMEOUT_MS) != 0) {
        log_error_t(r->tenant, r->run_id, "Kafka did not confirm the end of the run");
        return -1;
    }
    return 0;
}

static const char *reason_str(fetch_reason reason)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&panel__v1__run_failure_reason__descriptor, reason);
    return v ? v->name : "RUN_FAILURE_REASON_UNSPECIFIED";
}

/* ------------------------------------------------------------------ requests */

static struct recent_run *recent_find(struct fetch_service *fs, const char *tenant)
{
    for (size_t i = 0; i < RECENT_RUNS; i++)
        if (fs->recent[i].tenant[0] && strcmp(fs->recent[i].tenant, tenant) == 0)
            return &fs->recent[i];
    return NULL;
}

static void recent_note(struct fetch_service *fs, const char *tenant, const char *run_id)
{
    struct recent_run *rr = recent_find(fs, tenant);
    if (!rr) {
        rr = &fs->recent[fs->recent_next];
        fs->recent_next = (fs->recent_next + 1) % RECENT_RUNS;
    }
    snprintf(rr->tenant, sizeof rr->tenant, "%s", tenant);
    snprintf(rr->run_id, sizeof rr->run_id, "%s", run_id);
}

static int first_token(struct fetch_run *r)
{
    struct run_failure f = {0};
    if (get_token(r, &f))
        return fetch_run_fail_with(r, &f);
    return 0;
}

static void run_one(struct fetch_service *fs, const Envelope *req)
{
    struct fetch_run *r = calloc(1, sizeof *r);
    if (!r) {
        log_error_t(req->tenant_id, req->run_id, "out of memory starting a run");
        return;
    }
    const Panel__V1__SyncRequest *sr = req->sync_request;
    Panel__V1__RunCounts init = PANEL__V1__RUN_COUNTS__INIT;
    r->fs = fs;
    r->tenant = req->tenant_id;
    r->run_id = req->run_id;
    r->request_reason = sr->reason;
    r->preview = sr->has_preview && sr->preview;
    r->force_full = sr->has_force_full && sr->force_full;
    r->counts = init;
    r->kind = PB_RUN_KIND_FULL;
    r->api = fs->api;
    r->abandon = &fs->abandon;
    r->start_ms = http_now_ms();
    r->deadline_ms = r->start_ms + fs->cfg->run_budget_s * 1000;
    if (fs->ops->plan)
        r->kind = fs->ops->plan(r, fs->ops->ctx);
    log_info_t(r->tenant, r->run_id, "run started (%s, reason %s)",
               r->kind == PB_RUN_KIND_DELTA ? "delta" : "full",
               r->request_reason ? r->request_reason : "-");
    /* Without the partition count nothing is published: there is no run to end anywhere. */
    bool started = learn_partitions(r) == 0;
    int ok = started && publish_started(r) == 0 && first_token(r) == 0 &&
             fs->ops->run(r, fs->ops->ctx) == 0 && flush(r) == 0;
    if (!r->failure.failed && r->nforbidden > 0)
        fail_forbidden(r);
    if (!ok && !r->failure.failed)
        fetch_run_fail(r, PB_RUN_FAILURE_REASON_INTERNAL, "the run stopped without a reason");
    int end = started ? publish_end(r) : -1;
    double secs = (double)(http_now_ms() - r->start_ms) / 1000.0;
    char l[160];
    snprintf(l, sizeof l, "%s,result=\"%s\"", fs->label,
             r->failure.failed ? "failed" : "completed");
    metrics_counter_add(fs->metrics, "panel_fetch_runs_total", l, 1);
    metrics_observe(fs->metrics, "panel_fetch_run_duration_seconds", fs->label, secs);
    if (!r->failure.failed) {
        log_info_t(r->tenant, r->run_id,
                   "run completed in %.1f s: %llu people, %llu org units, %llu devices, "
                   "%llu removals, %llu skipped, %llu pages",
                   secs, (unsigned long long)r->counts.people,
                   (unsigned long long)r->counts.org_units, (unsigned long long)r->counts.devices,
                   (unsigned long long)r->counts.removals, (unsigned long long)r->counts.skipped,
                   (unsigned long long)r->counts.pages);
        if (end == 0) {
            snprintf(l, sizeof l, "%s,tenant=\"%s\"", fs->label, r->tenant);
            metrics_gauge_set(fs->metrics, "panel_fetch_last_success_timestamp_seconds", l,
                              (double)events_now_ms() / 1000.0);
            if (fs->ops->completed)
                fs->ops->completed(r, fs->ops->ctx);
        }
    } else {
        log_warn_t(r->tenant, r->run_id, "run failed after %.1f s (%s): %s", secs,
                   reason_str(r->failure.reason), r->failure.message);
    }
    recent_note(fs, r->tenant, r->run_id);
    for (size_t i = 0; i < r->nforbidden; i++)
        free(r->forbidden[i]);
    free(r->delta_link);
    explicit_bzero(r->token, sizeof r->token);
    free(r);
}

static void handle(struct fetch_service *fs, const rd_kafka_message_t *m)
{
    char err[256];
    Envelope *env = events_decode(m->payload, m->len, err, sizeof err);
    if (!env) {
        log_warn("ignoring a message on %s at offset %lld: %s", TOPIC_SYNC_REQUESTS,
                 (long long)m->offset, err);
        return;
    }
    if (env->payload_case != PB_PAYLOAD_SYNC_REQUEST || !env->has_source ||
        env->source != fs->cfg->source)
        goto out;
    if (!env->run_id || !*env->run_id || strlen(env->run_id) > 64) {
        log_warn_t(env->tenant_id, NULL, "ignoring a sync request without a usable run_id");
        goto out;
    }
    /* Every request auth made is run (auth already folds a request into a run that is still
     * requested or running): one queued while the tenant's previous run was in flight is run
     * after it, since that run may have listed before the change the request is about. Only
     * the same request delivered again after its run ended here is not run twice. */
    struct recent_run *rr = recent_find(fs, env->tenant_id);
    if (rr && strcmp(rr->run_id, env->run_id) == 0) {
        metrics_counter_add(fs->metrics, "panel_fetch_coalesced_total", fs->label, 1);
        log_info_t(env->tenant_id, env->run_id,
                   "sync request delivered again after its run ended; not run twice");
        goto out;
    }
    run_one(fs, env);
out:
    events_free(env);
}

void fetch_service_serve(struct fetch_service *fs, struct svc *svc)
{
    svc_set_ready(svc, true);
    while (svc_running(svc))
        (void)fetch_service_poll(fs, 500);
    log_info("stopping");
}

int fetch_service_main(struct svc *svc, const struct fetch_env *env, const char *provider,
                       Panel__V1__Source source, const struct fetch_source_ops *ops)
{
    struct fetch_config fc;
    char err[512];
    fetch_config_from_env(&fc, env, provider, source);
    struct fetch_service *fs = fetch_service_new(&fc, ops, svc, err, sizeof err);
    if (!fs) {
        log_error("cannot start: %s", err);
        return 1;
    }
    fetch_service_serve(fs, svc);
    fetch_service_destroy(fs);
    return 0;
}

/* ------------------------------------------------------------------ error bodies */

json_t *fetch_error_parse(const struct buf *body, const json_t **error, const char **code,
                          const char **message)
{
    *error = NULL;
    *code = "";
    *message = "";
    if (!body || !body->data || body->len == 0)
        return NULL;
    json_t *root = pjson_parse(body->data, body->len, NULL, 0);
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e)) {
        *error = e;
        return root;
    }
    const char *s;
    if ((s = pjson_str(root, "error")))
        *code = s;
    if ((s = pjson_str(root, "error_description")))
        *message = s;
    return root;
}

bool fetch_error_is(const struct buf *body, fetch_error_reader read,
                    bool (*test)(const char *code, const char *message, const void *ctx),
                    const void *ctx)
{
    const char *code, *message;
    json_t *root = read(body, &code, &message);
    bool yes = test(code, message, ctx);
    json_decref(root);
    return yes;
}

void fetch_error_text(char *msg, size_t msglen, const char *code, const char *message)
{
    snprintf(msg, msglen, "%s%s%s", code, *code && *message ? ": " : "", message);
}

fetch_reason fetch_failure_reason(long status, bool throttled, bool revoked)
{
    if (status == 429 || throttled)
        return PB_RUN_FAILURE_REASON_THROTTLED;
    if (status == 401 || revoked)
        return PB_RUN_FAILURE_REASON_REVOKED;
    if (status == 403)
        return PB_RUN_FAILURE_REASON_FORBIDDEN;
    return PB_RUN_FAILURE_REASON_PROVIDER_ERROR;
}

int fetch_service_poll(struct fetch_service *fs, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(fs->consumer, timeout_ms);
    if (!m)
        return 0;
    int rc = 0;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_warn("consumer: %s", rd_kafka_message_errstr(m));
            rc = -1;
        }
        goto out;
    }
    handle(fs, m);
    rd_kafka_resp_err_t ce = rd_kafka_commit_message(fs->consumer, m, 0);
    if (ce)
        log_warn("committing the sync request's offset: %s", rd_kafka_err2str(ce));
out:
    rd_kafka_message_destroy(m);
    return rc;
}
