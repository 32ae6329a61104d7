#include "google.h"

#include "ids.h"
#include "json.h"
#include "log.h"
#include "panel/v1/pb_short_names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ mapping tables */

static const struct fmap_field user_fields[] = {
    {"name.givenName", FMAP_STR, "given_name", FMAP_MAX_NAME, NULL},
    {"name.familyName", FMAP_STR, "family_name", FMAP_MAX_NAME, NULL},
    {"name.fullName", FMAP_STR, "display_name", FMAP_MAX_NAME, NULL},
    {"orgUnitPath", FMAP_STR, "org_unit_path", FMAP_MAX_TEXT, NULL},
    {"suspended", FMAP_BOOL, "suspended", 0, NULL},
    {"suspensionReason", FMAP_STR, "suspension_reason", FMAP_MAX_NAME, NULL},
    {"archived", FMAP_BOOL, "archived", 0, NULL},
    {"isAdmin", FMAP_BOOL, "is_admin", 0, NULL},
    {"externalIds", FMAP_EXTERNAL_ID, "employee_id", FMAP_MAX_NAME, "organization"},
    {"creationTime", FMAP_TIME, "created_at", 64, NULL},
    {"lastLoginTime", FMAP_TIME, "last_login_at", 64, NULL},
    {"thumbnailPhotoUrl", FMAP_STR, "photo_url", FMAP_MAX_URL, NULL},
    {"aliases", FMAP_STR_LIST, "aliases", FMAP_MAX_EMAIL, NULL},
};
static const char *const user_email_from[] = {"primaryEmail", NULL};

const struct fmap_spec google_user_spec = {
    .desc = &panel__v1__person__descriptor,
    .fields = user_fields,
    .nfields = sizeof user_fields / sizeof user_fields[0],
    .id_json = "id",
    .id_proto = "source_id",
    .email_from = user_email_from,
    .nulls_clear = false,
};

/* Fields read from a custom schema field the district names (json is set at start to
 * "customSchemas.<Schema>.<Field>"; user resource: customSchemas{Schema{Field: value}}). */
static const struct fmap_field user_configured[] = {
    {NULL, FMAP_YEAR, "graduation_year", 0, NULL}, /* PANEL_GOOGLE_GRADUATION_YEAR_FIELD */
};

static const struct fmap_field orgunit_fields[] = {
    {"orgUnitPath", FMAP_STR, "path", FMAP_MAX_TEXT, NULL},
    {"name", FMAP_STR, "name", FMAP_MAX_NAME, NULL},
    {"description", FMAP_STR, "description", FMAP_MAX_TEXT, NULL},
    {"parentOrgUnitId", FMAP_STR, "parent_id", FMAP_MAX_ID, NULL},
    {"parentOrgUnitPath", FMAP_STR, "parent_path", FMAP_MAX_TEXT, NULL},
};

const struct fmap_spec google_orgunit_spec = {
    .desc = &panel__v1__org_unit__descriptor,
    .fields = orgunit_fields,
    .nfields = sizeof orgunit_fields / sizeof orgunit_fields[0],
    .id_json = "orgUnitId",
    .id_proto = "org_unit_id",
};

static const struct fmap_field device_fields[] = {
    {"serialNumber", FMAP_STR, "serial_number", FMAP_MAX_NAME, NULL},
    {"model", FMAP_STR, "model", FMAP_MAX_NAME, NULL},
    {"status", FMAP_STR, "status", 64, NULL},
    {"orgUnitPath", FMAP_STR, "org_unit_path", FMAP_MAX_TEXT, NULL},
    {"orgUnitId", FMAP_STR, "org_unit_id", FMAP_MAX_ID, NULL},
    {"annotatedAssetId", FMAP_STR, "annotated_asset_id", FMAP_MAX_NAME, NULL},
    {"annotatedUser", FMAP_STR, "annotated_user", FMAP_MAX_NAME, NULL},
    {"annotatedLocation", FMAP_STR, "annotated_location", FMAP_MAX_NAME, NULL},
    {"notes", FMAP_STR, "notes", FMAP_MAX_NOTES, NULL},
    {"macAddress", FMAP_STR, "mac_address", 64, NULL},
    {"ethernetMacAddress", FMAP_STR, "ethernet_mac_address", 64, NULL},
    {"osVersion", FMAP_STR, "os_version", 64, NULL},
    {"platformVersion", FMAP_STR, "platform_version", FMAP_MAX_NAME, NULL},
    {"firmwareVersion", FMAP_STR, "firmware_version", FMAP_MAX_NAME, NULL},
    {"bootMode", FMAP_STR, "boot_mode", 64, NULL},
    {"lastSync", FMAP_STR, "last_sync", 64, NULL},
    {"lastEnrollmentTime", FMAP_STR, "last_enrollment_time", 64, NULL},
    {"autoUpdateExpiration", FMAP_INT_STRING, "auto_update_expiration_ms", 0, NULL},
    {"autoUpdateThrough", FMAP_STR, "auto_update_through", 64, NULL},
    {"deviceLicenseType", FMAP_STR, "device_license_type", 64, NULL},
    {"chromeOsType", FMAP_STR, "chrome_os_type", 64, NULL},
    {"recentUsers", FMAP_RECENT_USERS, "recent_users", 0, "recent_users_present"},
};

const struct fmap_spec google_device_spec = {
    .desc = &panel__v1__device__descriptor,
    .fields = device_fields,
    .nfields = sizeof device_fields / sizeof device_fields[0],
    .id_json = "deviceId",
    .id_proto = "device_id",
};

/* ------------------------------------------------------------------ errors */

json_t *google_error(const struct buf *body, const char **reason, const char **message)
{
    const json_t *e;
    json_t *root = fetch_error_parse(body, &e, reason, message);
    const char *s;
    if ((s = pjson_str(e, "message")))
        *message = s;
    if ((s = pjson_str(json_array_get(json_object_get(e, "errors"), 0), "reason")))
        *reason = s;
    return root;
}

static bool rate_limit_reason(const char *reason)
{
    return strcmp(reason, "rateLimitExceeded") == 0 ||
           strcmp(reason, "userRateLimitExceeded") == 0 || strcmp(reason, "quotaExceeded") == 0;
}

static bool rate_limited(const char *reason, const char *message, const void *ctx)
{
    (void)message;
    (void)ctx;
    return rate_limit_reason(reason);
}

static bool invalid_input(const char *reason, const char *message, const void *ctx)
{
    (void)reason;
    (void)ctx;
    return strncmp(message, "Invalid Input", 13) == 0;
}

enum http_retry google_classify(long status, const struct buf *body, void *ctx)
{
    (void)ctx;
    if (status == 429)
        return HTTP_RETRY_THROTTLED;
    if (status == 500 || status == 502 || status == 503 || status == 504)
        return HTTP_RETRY_YES;
    if (status == 403 && fetch_error_is(body, google_error, rate_limited, NULL))
        return HTTP_RETRY_THROTTLED;
    return HTTP_RETRY_NO;
}

fetch_reason google_failure(long status, const struct buf *body, char *msg, size_t msglen)
{
    const char *reason, *message;
    json_t *root = google_error(body, &reason, &message);
    fetch_error_text(msg, msglen, reason, message);
    fetch_reason r = fetch_failure_reason(status, status == 403 && rate_limit_reason(reason),
                                          strcmp(reason, "invalid_grant") == 0);
    json_decref(root);
    return r;
}

bool google_invalid_input(long status, const struct buf *body)
{
    return status == 400 && fetch_error_is(body, google_error, invalid_input, NULL);
}

/* ------------------------------------------------------------------ listings */

struct listing {
    const char *name;  /* "orgunits" | "users" | "devices" */
    const char *path;  /* after the API base */
    const char *query; /* fixed query parameters */
    const char *items; /* member holding the page's objects */
    const struct fmap_spec *spec;
    bool paged;
    bool same_page_retry; /* devices: 400 "Invalid Input" is transient */
};

/* One listing of one run: what the paging callbacks need. */
struct listing_run {
    const struct google_opts *g;
    const struct listing *l;
    long page_size;
};

static int page_url(const struct google_opts *g, const struct listing *l, long page_size,
                    const char *page_token, struct buf *url)
{
    if (buf_appendf(url, "%s%s?%s", g->api_url, l->path, l->query))
        return -1;
    if (l->paged && page_size > 0 && buf_appendf(url, "&maxResults=%ld", page_size))
        return -1;
    if (page_token && (buf_appends(url, "&pageToken=") || buf_append_urlencoded(url, page_token)))
        return -1;
    return 0;
}

static enum fetch_page_action check_page(const struct http_response *resp,
                                         const struct fetch_page_state *st, void *ctx)
{
    const struct listing_run *lr = ctx;
    if (resp->status != 400)
        return FETCH_PAGE_USE;
    if (lr->l->same_page_retry && st->retries < lr->g->same_page_retries &&
        google_invalid_input(resp->status, &resp->body))
        return FETCH_PAGE_RETRY; /* devices' transient 400 "Invalid Input" */
    if (!st->first_page && st->restarts < lr->g->listing_restarts)
        return FETCH_PAGE_RESTART; /* a 400 to a page token: it expired */
    return FETCH_PAGE_USE;
}

static const char *next_token(const json_t *page, void *ctx)
{
    const struct listing_run *lr = ctx;
    return lr->l->paged ? pjson_str(page, "nextPageToken") : NULL;
}

static int next_url(const char *token, struct buf *url, fetch_reason *why, char *msg, size_t msglen,
                    void *ctx)
{
    const struct listing_run *lr = ctx;
    if (page_url(lr->g, lr->l, lr->page_size, token, url)) {
        *why = PB_RUN_FAILURE_REASON_MALFORMED;
        snprintf(msg, msglen, "%s: page token too long", lr->l->name);
        return -1;
    }
    return 0;
}

/* Publish every object of one page. 0 or -1 (run failed). */
static int publish_items(struct fetch_run *run, const json_t *page, void *ctx)
{
    const struct listing *l = ((const struct listing_run *)ctx)->l;
    json_t *items = json_object_get(page, l->items);
    if (!items)
        return 0; /* Google omits an empty list */
    if (!json_is_array(items))
        return fetch_run_fail(run, PB_RUN_FAILURE_REASON_MALFORMED, "%s page: \"%s\" is not a list",
                              l->name, l->items);
    size_t i;
    json_t *obj;
    json_array_foreach(items, i, obj)
    {
        if (fetch_run_map_publish(run, l->spec, obj, FMAP_FULL, l->name))
            return -1;
    }
    return 0;
}

static int list(struct fetch_run *run, const struct google_opts *g, const struct listing *l,
                long page_size)
{
    struct listing_run lr = {.g = g, .l = l, .page_size = page_size};
    struct buf first;
    int rc = -1;
    buf_init(&first, 4096);
    if (page_url(g, l, page_size, NULL, &first)) {
        fetch_run_fail(run, PB_RUN_FAILURE_REASON_INTERNAL, "%s: URL too long", l->name);
        goto out;
    }
    struct fetch_listing fl = {
        .name = l->name,
        .first_url = first.data,
        .check = check_page,
        .cursor_member = l->paged ? "nextPageToken" : NULL,
        .next = next_token,
        .next_url = next_url,
        .publish = publish_items,
        .ctx = &lr,
    };
    rc = fetch_run_pages(run, &fl) == 0 ? 0 : -1;
out:
    buf_free(&first);
    return rc;
}

/* One listing of a run, as a task of fetch_run_concurrently(). */
struct list_task {
    const struct google_opts *g;
    const struct listing *l;
    long page_size;
};

static int list_task(struct fetch_run *run, void *arg)
{
    const struct list_task *t = arg;
    return list(run, t->g, t->l, t->page_size);
}

static const struct listing orgunits = {
    .name = "orgunits",
    .path = "/admin/directory/v1/customer/my_customer/orgunits",
    .query = "type=all",
    .items = "organizationUnits",
    .spec = &google_orgunit_spec,
    .paged = false,
};

/* fields= keeps the pages small; it must name nextPageToken or paging silently stops. */
#define USERS_FIELDS                                                                               \
    "fields=nextPageToken,users(id,primaryEmail,name,orgUnitPath,suspended,suspensionReason,"      \
    "archived,isAdmin,externalIds,aliases,creationTime,lastLoginTime,thumbnailPhotoUrl"
static const struct listing users = {
    .name = "users",
    .path = "/admin/directory/v1/users",
    .query = "customer=my_customer&projection=basic&" USERS_FIELDS ")",
    .items = "users",
    .spec = &google_user_spec,
    .paged = true,
};

/* A custom schema or field name as Google allows them (letters, digits, '_', '-'). */
static bool schema_name_ok(const char *s, size_t n)
{
    return n > 0 && n <= 64 && ids_chars_alnum(s, n, "_-");
}

int google_opts_prepare(struct google_opts *g, char *err, size_t errlen)
{
    const char *f = g->graduation_year_field;
    fmap_spec_configure(&g->user_spec, &google_user_spec, g->user_configured, user_configured,
                        sizeof user_configured / sizeof user_configured[0]);
    snprintf(g->users_query, sizeof g->users_query, "%s", users.query);
    if (!f || !*f)
        return 0;
    const char *dot = strchr(f, '.');
    if (!dot || !schema_name_ok(f, (size_t)(dot - f)) ||
        !schema_name_ok(dot + 1, strlen(dot + 1))) {
        snprintf(err, errlen,
                 "PANEL_GOOGLE_GRADUATION_YEAR_FIELD must be <Schema>.<Field> (letters, digits, "
                 "'_', '-'; at most 64 each), not \"%.80s\"",
                 f);
        return -1;
    }
    snprintf(g->graduation_year_json, sizeof g->graduation_year_json, "customSchemas.%s", f);
    g->user_configured[0].json = g->graduation_year_json;
    /* Custom fields come only with projection=custom (the schemas named in customFieldMask)
     * or full, and only when fields= names customSchemas. */
    snprintf(g->users_query, sizeof g->users_query,
             "customer=my_customer&projection=custom&customFieldMask=%.*s&" USERS_FIELDS
             ",customSchemas)",
             (int)(dot - f), f);
    return 0;
}

/* FULL projection for recentUsers; never orderBy=lastSync (pages come back incomplete). */
static const struct listing devices = {
    .name = "devices",
    .path = "/admin/directory/v1/customer/my_customer/devices/chromeos",
    .query = "projection=FULL",
    .items = "chromeosdevices",
    .spec = &google_device_spec,
    .paged = true,
    .same_page_retry = true,
};

int google_run(struct fetch_run *run, void *ctx)
{
    const struct google_opts *g = ctx;
    /* The users listing as configured (google_opts_prepare). */
    struct listing configured_users = users;
    configured_users.query = g->users_query;
    configured_users.spec = &g->user_spec;
    fetch_run_set_kind(run, PB_RUN_KIND_FULL);
    /* The org units (one page) first; then users and devices, independent listings, at once:
     * their round trips to Google overlap instead of adding up. */
    if (list(run, g, &orgunits, 0))
        return -1;
    struct list_task tasks[] = {
        {.g = g, .l = &configured_users, .page_size = g->users_page},
        {.g = g, .l = &devices, .page_size = g->devices_page},
    };
    void *args[] = {&tasks[0], &tasks[1]};
    return fetch_run_concurrently(run, list_task, args, 2);
}
