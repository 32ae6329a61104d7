#include "graph.h"

#include "ids.h"
#include "json.h"
#include "log.h"
#include "panel/v1/pb_short_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------------ mapping table */

/* Graph returns most of these only when named in $select. */
#define GRAPH_SELECT                                                                               \
    "id,displayName,givenName,surname,mail,userPrincipalName,otherMails,proxyAddresses,"           \
    "accountEnabled,jobTitle,department,employeeId,officeLocation,userType,createdDateTime"

static const struct fmap_field user_fields[] = {
    {"displayName", FMAP_STR, "display_name", FMAP_MAX_NAME, NULL},
    {"givenName", FMAP_STR, "given_name", FMAP_MAX_NAME, NULL},
    {"surname", FMAP_STR, "family_name", FMAP_MAX_NAME, NULL},
    {"mail", FMAP_STR, "mail", FMAP_MAX_EMAIL, NULL},
    {"userPrincipalName", FMAP_STR, "user_principal_name", FMAP_MAX_EMAIL, NULL},
    {"otherMails", FMAP_STR_LIST, "other_mails", FMAP_MAX_EMAIL, NULL},
    {"proxyAddresses", FMAP_STR_LIST, "proxy_addresses", FMAP_MAX_EMAIL + 5, NULL},
    {"accountEnabled", FMAP_BOOL_NOT, "suspended", 0, NULL},
    {"jobTitle", FMAP_STR, "job_title", FMAP_MAX_NAME, NULL},
    {"department", FMAP_STR, "department", FMAP_MAX_NAME, NULL},
    {"employeeId", FMAP_STR, "employee_id", FMAP_MAX_NAME, NULL},
    {"officeLocation", FMAP_STR, "office_location", FMAP_MAX_NAME, NULL},
    {"userType", FMAP_STR, "user_type", 64, NULL},
    {"createdDateTime", FMAP_STR, "created_at", 64, NULL},
};
/* The merge key: mail when present, else the sign-in name (docs/sources.md). */
static const char *const user_email_from[] = {"mail", "userPrincipalName", NULL};

const struct fmap_spec graph_user_spec = {
    .desc = &panel__v1__person__descriptor,
    .fields = user_fields,
    .nfields = sizeof user_fields / sizeof user_fields[0],
    .id_json = "id",
    .id_proto = "source_id",
    .email_from = user_email_from,
    .nulls_clear = true,
};

/* Fields read from a directory extension the district names (the json member is the
 * configured extension_<appId>_<name>, which Graph returns only when $select names it). */
static const struct fmap_field user_configured[] = {
    {NULL, FMAP_YEAR, "graduation_year", 0, NULL}, /* PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE */
};

/* extension_<32 hex digits: the app id without dashes>_<name>, the name as Entra allows it
 * (letters, digits, '_'). */
static bool extension_name_ok(const char *s)
{
    static const char prefix[] = "extension_";
    size_t n = strlen(s), p = sizeof prefix - 1;
    return n <= 120 && strncmp(s, prefix, p) == 0 && n >= p + 32 + 2 && s[p + 32] == '_' &&
           ids_chars_hex(s + p, 32) && ids_chars_alnum(s + p + 33, n - p - 33, "_");
}

int graph_prepare(struct graph *g, char *err, size_t errlen)
{
    const char *a = g->graduation_year_attribute;
    fmap_spec_configure(&g->user_spec, &graph_user_spec, g->user_configured, user_configured,
                        sizeof user_configured / sizeof user_configured[0]);
    snprintf(g->select, sizeof g->select, "%s", GRAPH_SELECT);
    if (!a || !*a)
        return 0;
    if (!extension_name_ok(a)) {
        snprintf(err, errlen,
                 "PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE must be a directory extension "
                 "extension_<app id without dashes>_<name>, not \"%.80s\"",
                 a);
        return -1;
    }
    g->user_configured[0].json = a;
    snprintf(g->select, sizeof g->select, "%s,%s", GRAPH_SELECT, a);
    return 0;
}

/* ------------------------------------------------------------------ errors */

json_t *graph_error(const struct buf *body, const char **code, const char **message)
{
    const json_t *e;
    json_t *root = fetch_error_parse(body, &e, code, message);
    const char *s;
    if ((s = pjson_str(e, "code")))
        *code = s;
    if ((s = pjson_str(e, "message")))
        *message = s;
    return root;
}

fetch_reason graph_failure(long status, const struct buf *body, char *msg, size_t msglen)
{
    const char *code, *message;
    json_t *root = graph_error(body, &code, &message);
    fetch_error_text(msg, msglen, code, message);
    json_decref(root);
    return fetch_failure_reason(status, false, false);
}

/* ctx: the reply's status. */
static bool delta_token_gone(const char *code, const char *message, const void *ctx)
{
    long status = *(const long *)ctx;
    return strcasecmp(code, "syncStateNotFound") == 0 || strcasecmp(code, "resyncRequired") == 0 ||
           (status == 400 &&
            (strcasestr(message, "syncStateNotFound") || strcasestr(message, "resyncRequired")));
}

bool graph_delta_expired(long status, const struct buf *body)
{
    if (status == 410)
        return true;
    return status >= 400 && fetch_error_is(body, graph_error, delta_token_gone, &status);
}

static bool page_token_gone(const char *code, const char *message, const void *ctx)
{
    (void)message;
    (void)ctx;
    return strcmp(code, "Directory_ExpiredPageToken") == 0;
}

bool graph_page_token_expired(long status, const struct buf *body)
{
    return status == 400 && fetch_error_is(body, graph_error, page_token_gone, NULL);
}

/* ------------------------------------------------------------------ paging */

#define GRAPH_LISTING_RESTARTS 3

enum mode {
    MODE_FULL,  /* /users/delta from scratch: every user, whole, and a deltaLink at the end */
    MODE_DELTA, /* /users/delta from a stored link: publish changes and removals */
};

static const char *mode_name(enum mode m)
{
    return m == MODE_FULL ? "users" : "delta";
}

enum graph_entry graph_entry_kind(const json_t *obj, const char **id,
                                  Panel__V1__RemovalReason *reason)
{
    json_t *removed = json_object_get(obj, "@removed");
    if (!removed)
        return GRAPH_ENTRY_OBJECT;
    const char *oid = pjson_str(obj, "id");
    if (!oid || !*oid || strlen(oid) > FMAP_MAX_ID)
        return GRAPH_ENTRY_REMOVAL_UNUSABLE;
    const char *why = pjson_str(removed, "reason");
    *id = oid;
    *reason =
        why && strcmp(why, "deleted") == 0 ? PB_REMOVAL_REASON_DELETED : PB_REMOVAL_REASON_CHANGED;
    return GRAPH_ENTRY_REMOVED;
}

enum graph_entry graph_entry_read(const json_t *obj, bool delta, const char **id,
                                  Panel__V1__RemovalReason *reason, int *flags)
{
    enum graph_entry kind = graph_entry_kind(obj, id, reason);
    *flags = delta ? FMAP_PARTIAL : FMAP_FULL;
    return kind != GRAPH_ENTRY_OBJECT && !delta ? GRAPH_ENTRY_IGNORED : kind;
}

/* One listing of one run: what the paging callbacks need. */
struct listing_run {
    struct graph *g;
    enum mode mode;
    char *delta_link; /* the last page's @odata.deltaLink (owned) */
};

static int publish_value(struct fetch_run *run, const struct fmap_spec *spec, enum mode mode,
                         const json_t *value)
{
    size_t i;
    json_t *obj;
    json_array_foreach(value, i, obj)
    {
        const char *id = NULL;
        Panel__V1__RemovalReason reason = PB_REMOVAL_REASON_UNSPECIFIED;
        int flags;
        switch (graph_entry_read(obj, mode == MODE_DELTA, &id, &reason, &flags)) {
        case GRAPH_ENTRY_IGNORED:
            continue;
        case GRAPH_ENTRY_REMOVAL_UNUSABLE:
            fetch_run_skip(run, mode_name(mode), "@removed entry without a usable id");
            continue;
        case GRAPH_ENTRY_REMOVED:
            if (fetch_run_publish_removed(run, PB_OBJECT_KIND_PERSON, id, reason))
                return -1;
            continue;
        case GRAPH_ENTRY_OBJECT:
            if (fetch_run_map_publish(run, spec, obj, flags, mode_name(mode)))
                return -1;
            continue;
        }
    }
    return 0;
}

/* Links are followed verbatim, but the token is only ever sent to Graph. */
bool graph_link_inside(const struct graph *g, const char *url)
{
    size_t base = strlen(g->graph_url);
    return strncmp(url, g->graph_url, base) == 0 && (url[base] == '/' || url[base] == '\0');
}

static enum fetch_page_action check_page(const struct http_response *resp,
                                         const struct fetch_page_state *st, void *ctx)
{
    const struct listing_run *lr = ctx;
    if (lr->mode == MODE_DELTA)
        return graph_delta_expired(resp->status, &resp->body) ? FETCH_PAGE_END : FETCH_PAGE_USE;
    /* A listing from scratch whose skiptoken expired (Directory_ExpiredPageToken, or the
     * delta answers for an expired token) starts over: the merge is idempotent. */
    if (!st->first_page && st->restarts < GRAPH_LISTING_RESTARTS &&
        (graph_page_token_expired(resp->status, &resp->body) ||
         graph_delta_expired(resp->status, &resp->body)))
        return FETCH_PAGE_RESTART;
    return FETCH_PAGE_USE;
}

static const char *next_link(const json_t *page, void *ctx)
{
    (void)ctx;
    return pjson_str(page, "@odata.nextLink");
}

static int next_url(const char *link, struct buf *url, fetch_reason *why, char *msg, size_t msglen,
                    void *ctx)
{
    const struct listing_run *lr = ctx;
    if (!graph_link_inside(lr->g, link)) {
        *why = PB_RUN_FAILURE_REASON_MALFORMED;
        snprintf(msg, msglen, "%s: a link points outside %s", mode_name(lr->mode),
                 lr->g->graph_url);
        return -1;
    }
    if (buf_appends(url, link)) {
        *why = PB_RUN_FAILURE_REASON_MALFORMED;
        snprintf(msg, msglen, "%s: a link is too long", mode_name(lr->mode));
        return -1;
    }
    return 0;
}

static int publish_page(struct fetch_run *run, const json_t *page, void *ctx)
{
    const struct listing_run *lr = ctx;
    json_t *value = json_object_get(page, "value");
    if (!json_is_array(value))
        return fetch_run_fail(run, PB_RUN_FAILURE_REASON_MALFORMED,
                              "%s page without a \"value\" list", mode_name(lr->mode));
    return publish_value(run, &lr->g->user_spec, lr->mode, value);
}

static int last_page(struct fetch_run *run, const json_t *page, void *ctx)
{
    struct listing_run *lr = ctx;
    const char *delta = pjson_str(page, "@odata.deltaLink");
    if (!delta || !*delta)
        return fetch_run_fail(run, PB_RUN_FAILURE_REASON_MALFORMED,
                              "%s: last page has neither nextLink nor deltaLink",
                              mode_name(lr->mode));
    free(lr->delta_link);
    lr->delta_link = strdup(delta);
    if (!lr->delta_link)
        return fetch_run_fail(run, PB_RUN_FAILURE_REASON_INTERNAL, "out of memory");
    return 0;
}

/* Follow a /users/delta round from url to its deltaLink. 0 done (*delta_link set); 1 the
 * delta token expired (MODE_DELTA only); -1 the run failed. */
static int follow(struct fetch_run *run, struct graph *g, const char *first, enum mode mode,
                  char **delta_link)
{
    struct listing_run lr = {.g = g, .mode = mode};
    /* One Prefer header: later rounds carry only changed properties, pages as large as
     * PANEL_AZURE_PAGE_SIZE (Graph reads both preferences from a comma-separated list). */
    char prefer[96];
    snprintf(prefer, sizeof prefer, "Prefer: return=minimal, odata.maxpagesize=%ld", g->page_size);
    const char *const headers[] = {prefer, NULL};
    *delta_link = NULL;
    if (!graph_link_inside(g, first))
        return fetch_run_fail(run, PB_RUN_FAILURE_REASON_MALFORMED, "%s: a link points outside %s",
                              mode_name(mode), g->graph_url);
    struct fetch_listing fl = {
        .name = mode_name(mode),
        .refused_name = "users", /* /users/delta needs User.Read.All like /users */
        .first_url = first,
        .headers = headers,
        .check = check_page,
        .next = next_link,
        .next_url = next_url,
        .publish = publish_page,
        .last = last_page,
        .ctx = &lr,
    };
    int rc = fetch_run_pages(run, &fl);
    if (rc == 0 && lr.delta_link) {
        *delta_link = lr.delta_link;
        lr.delta_link = NULL;
    } else if (rc == 0) {
        rc = -1; /* refused: the run ends with RunFailed(FORBIDDEN) and no link */
    }
    free(lr.delta_link);
    return rc;
}

/* ------------------------------------------------------------------ runs */

Panel__V1__RunKind graph_plan(struct fetch_run *run, void *ctx)
{
    struct graph *g = ctx;
    char err[256];
    int64_t last_full = 0;
    free(g->stored_link);
    g->stored_link = NULL;
    if (fetch_run_force_full(run) || !g->store)
        return PB_RUN_KIND_FULL;
    int rc = delta_store_load(g->store, fetch_run_tenant(run), &g->stored_link, &last_full, err,
                              sizeof err);
    if (rc < 0)
        log_warn_t(fetch_run_tenant(run), fetch_run_id(run),
                   "cannot read the delta link (%s); running a full sync", err);
    if (rc != 0)
        return PB_RUN_KIND_FULL;
    if (g->full_every_hours > 0 && (int64_t)time(NULL) - last_full >= g->full_every_hours * 3600) {
        log_info_t(fetch_run_tenant(run), fetch_run_id(run),
                   "last full run is older than %ld h; running a full sync", g->full_every_hours);
        return PB_RUN_KIND_FULL;
    }
    return PB_RUN_KIND_DELTA;
}

/* A full run is one delta round from scratch: Graph lists every user whole and ends with the
 * deltaLink of the state the round started from, so a change made while the round is being
 * listed shows up again in the next round, and the tenant is downloaded once. */
static int full_run(struct fetch_run *run, struct graph *g)
{
    struct buf url;
    char *link = NULL;
    int rc = -1;
    buf_init(&url, 4096);
    if (buf_appendf(&url, "%s/v1.0/users/delta?$select=%s", g->graph_url, g->select)) {
        fetch_run_fail(run, PB_RUN_FAILURE_REASON_INTERNAL, "URL too long");
        goto out;
    }
    if (follow(run, g, url.data, MODE_FULL, &link))
        goto out;
    fetch_run_set_kind(run, PB_RUN_KIND_FULL);
    if (fetch_run_set_delta_link(run, link)) {
        fetch_run_fail(run, PB_RUN_FAILURE_REASON_INTERNAL, "out of memory");
        goto out;
    }
    rc = 0;
out:
    free(link);
    buf_free(&url);
    return rc;
}

int graph_run(struct fetch_run *run, void *ctx)
{
    struct graph *g = ctx;
    if (fetch_run_kind(run) == PB_RUN_KIND_DELTA && g->stored_link) {
        char *link = NULL;
        int rc = follow(run, g, g->stored_link, MODE_DELTA, &link);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            int bad = fetch_run_set_delta_link(run, link);
            free(link);
            if (bad)
                return fetch_run_fail(run, PB_RUN_FAILURE_REASON_INTERNAL, "out of memory");
            fetch_run_set_kind(run, PB_RUN_KIND_DELTA);
            return 0;
        }
        char err[256];
        log_warn_t(fetch_run_tenant(run), fetch_run_id(run),
                   "the delta token expired; falling back to a full run");
        if (g->store && delta_store_forget(g->store, fetch_run_tenant(run), err, sizeof err))
            log_warn_t(fetch_run_tenant(run), fetch_run_id(run), "cannot forget the link: %s", err);
        /* From here on it is a full run: the listing that follows is whole objects, and what
         * it does not list is gone (RunStarted again tells the merger before the first one). */
        if (fetch_run_restart_as(run, PB_RUN_KIND_FULL))
            return -1;
    }
    return full_run(run, g);
}

void graph_completed(struct fetch_run *run, void *ctx)
{
    struct graph *g = ctx;
    char err[256];
    const char *link = fetch_run_delta_link(run);
    free(g->stored_link);
    g->stored_link = NULL;
    /* A preview applies nothing, so it must not move the tenant's delta position. */
    if (!g->store || !link || fetch_run_preview(run))
        return;
    if (delta_store_save(g->store, fetch_run_tenant(run), fetch_run_provider_tenant(run), link,
                         fetch_run_kind(run) == PB_RUN_KIND_FULL, err, sizeof err))
        log_warn_t(fetch_run_tenant(run), fetch_run_id(run),
                   "cannot store the delta link (the next run will be a full one): %s", err);
}
