#include "google_directory.h"
#include "emu.h"
#include "fields.h"
#include "json.h"
#include "google_oauth.h"
#include "httpd.h"
#include "log.h"
#include "select_cache.h"
#include "signin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define B(x)                                                                                       \
    do {                                                                                           \
        if ((x) != 0)                                                                              \
            goto oom;                                                                              \
    } while (0)

/* ---- ordering of users (orderBy) ---- */

enum user_order { ORDER_NONE = 0, ORDER_EMAIL, ORDER_FAMILY, ORDER_GIVEN };

static const struct ditem *sort_items;
static enum user_order sort_order;

static int cmp_str(const char *a, const char *b)
{
    return strcasecmp(a ? a : "", b ? b : "");
}

static int cmp_idx(const void *pa, const void *pb)
{
    const struct ditem *a = &sort_items[*(const size_t *)pa], *b = &sort_items[*(const size_t *)pb];
    int c = 0;
    if (sort_order == ORDER_FAMILY)
        c = cmp_str(a->family, b->family);
    else if (sort_order == ORDER_GIVEN)
        c = cmp_str(a->given, b->given);
    if (!c)
        c = strcmp(a->key, b->key);
    return c;
}

/* An index of the users in the requested order (caller frees). The district is locked by
 * the caller, so the static comparison context is guarded by a mutex of its own. */
static size_t *order_users(struct district *d, enum user_order order)
{
    static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;
    size_t n = district_count(d, DC_GUSERS);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return NULL;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (order != ORDER_NONE && n) {
        pthread_mutex_lock(&sort_mu);
        sort_items = district_item(d, DC_GUSERS, 0);
        sort_order = order;
        qsort(idx, n, sizeof *idx, cmp_idx);
        pthread_mutex_unlock(&sort_mu);
    }
    return idx;
}

/* ---- common checks ---- */

/* Authorization and scope. Returns NULL after filling r with the error. */
static struct district *authorize(struct mg_connection *conn, struct emu *e, struct reply *r,
                                  unsigned need)
{
    struct google_access ga;
    const char *tok = emu_bearer(conn);
    if (!tok || google_oauth_check(e, tok, &ga)) {
        reply_google_error(r, 401, "authError", "Invalid Credentials");
        return NULL;
    }
    if (!(ga.scopes & need)) {
        reply_google_error(r, 403, "insufficientPermissions",
                           "Request had insufficient authentication scopes.");
        return NULL;
    }
    if (!ga.admin) {
        reply_google_error(r, 403, "forbidden", "Not Authorized to access this resource/api");
        return NULL;
    }
    return ga.district;
}

static int customer_ok(struct district *d, const char *customer)
{
    return !strcmp(customer, "my_customer") || !strcmp(customer, district_customer_id(d));
}

/* maxResults: 0 ok; -1 reply filled. */
static int max_results(struct mg_connection *conn, struct reply *r, long def, long max, bool clamp,
                       long *out)
{
    char v[32];
    *out = def;
    if (!emu_param(conn, "maxResults", v, sizeof v))
        return 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || end == v || n < 1 || (!clamp && n > max)) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "Invalid value '%.20s'. Values must be within the range: [1, %ld]", v, max);
        reply_google_error(r, 400, "invalid", msg);
        return -1;
    }
    *out = n > max ? max : n;
    return 0;
}

static void list_etag(struct district *d, enum dcoll c, char out[64])
{
    snprintf(out, 64, "\"%s-%" PRIx64 "-%zx\"", district_customer_id(d), district_generation(d, c),
             district_live_count(d, c));
}

/* Finish a page: apply ?fields= and put it in the reply. */
static void page_done(struct mg_connection *conn, struct reply *r, struct buf *page)
{
    char fields[2048];
    if (emu_param(conn, "fields", fields, sizeof fields) && *fields) {
        if (!fields_valid(fields)) {
            reply_google_error(r, 400, "invalidParameter", "Invalid field selection");
            return;
        }
        json_t *full = json_loads(page->data, 0, NULL);
        json_t *sel = full ? fields_apply(full, fields, strlen(fields)) : NULL;
        if (!sel)
            sel = json_object();
        reply_json(r, 200, sel);
        json_decref(full);
        json_decref(sel);
        return;
    }
    reply_take_body(r, 200, page);
}

static int page_start(struct emu *e, struct mg_connection *conn, struct reply *r, char kind,
                      struct district *d, uint64_t *pos)
{
    char tok[512];
    struct page_state st;
    *pos = 0;
    if (!emu_param(conn, "pageToken", tok, sizeof tok) || !*tok)
        return 0;
    enum page_token_result pr = page_token_read(e->tokens, tok, kind, &st);
    if (pr != PAGE_TOKEN_OK || strcmp(st.district, district_id(d))) {
        char msg[600];
        snprintf(msg, sizeof msg, "Invalid Input: %s", tok);
        reply_google_error(r, 400, "invalid", msg);
        return -1;
    }
    *pos = st.pos;
    return 0;
}

/* The token of the page that starts at pos: 0 or -1. */
static int make_token(struct emu *e, char kind, struct district *d, uint64_t pos, char tok[512])
{
    struct page_state st;
    page_state_init(&st, kind, district_id(d), pos);
    return page_token_make(e->tokens, &st, tok, 512);
}

static int append_token(struct emu *e, struct buf *page, char kind, struct district *d,
                        uint64_t pos)
{
    char tok[512];
    if (make_token(e, kind, d, pos, tok))
        return -1;
    return buf_appendf(page, ",\"nextPageToken\":\"%s\"", tok);
}

/* ---- the three lists' pages (the district locked while a page is built) ---- */

/* The start of a list page: {"kind":"<kind>","etag":"..." — 0 or -1. */
static int list_head(struct buf *page, struct district *d, enum dcoll c, const char *kind)
{
    char etag[64];
    list_etag(d, c, etag);
    return buf_appendf(page, "{\"kind\":\"%s\",\"etag\":", kind) ||
           buf_append_json_string(page, etag);
}

/* Before an item: "," or, before the first one (got 0), the opening of the items member
 * (Google omits an empty list). 0 or -1. */
static int list_item(struct buf *page, long got, const char *items)
{
    return got ? buf_appends(page, ",") : buf_appendf(page, ",\"%s\":[", items);
}

/* Memory ran out while a page was built: unlock and answer 500. */
static void list_failed(struct reply *r, struct district *d)
{
    district_unlock(d);
    reply_google_error(r, 500, "backendError", "Backend Error");
}

/* Close a page of got items and reply with it, unlocking d: the next page's token when items
 * remain (token kind set and next < n), then "}". */
static void list_reply(struct mg_connection *conn, struct emu *e, struct reply *r,
                       struct district *d, struct buf *page, long got, char token, size_t next,
                       size_t n)
{
    if ((got && buf_appends(page, "]")) ||
        (token && next < n && append_token(e, page, token, d, next)) || buf_appends(page, "}")) {
        list_failed(r, d);
        return;
    }
    district_unlock(d);
    page_done(conn, r, page);
}

/* ---- users: projection ---- */

/* Which custom schemas a users request asks for: projection=basic (the default) none,
 * custom those named in customFieldMask, full all. */
struct user_projection {
    enum { PROJ_BASIC, PROJ_CUSTOM, PROJ_FULL } kind;
    char mask[512]; /* ",Schema1,Schema2," */
};

/* Read projection and customFieldMask. 0, or -1 after an error reply. */
static int user_projection(struct mg_connection *conn, struct reply *r, struct user_projection *p)
{
    char v[480];
    p->kind = PROJ_BASIC;
    p->mask[0] = '\0';
    if (emu_param(conn, "projection", v, sizeof v)) {
        if (!strcasecmp(v, "full"))
            p->kind = PROJ_FULL;
        else if (!strcasecmp(v, "custom"))
            p->kind = PROJ_CUSTOM;
        else if (strcasecmp(v, "basic")) {
            reply_google_error(r, 400, "invalid", "Invalid Input: projection");
            return -1;
        }
    }
    if (emu_param(conn, "customFieldMask", v, sizeof v))
        snprintf(p->mask, sizeof p->mask, ",%s,", v);
    return 0;
}

/* Append a stored user as the projection shows it: customSchemas only with custom (the
 * schemas named in the mask) or full. Users without custom schemas are copied as stored. */
static int append_projected_user(struct buf *page, const char *json,
                                 const struct user_projection *p)
{
    if (!strstr(json, "\"customSchemas\""))
        return buf_appends(page, json);
    json_t *o = json_loads(json, 0, NULL);
    json_t *cs = json_object_get(o, "customSchemas");
    int rc = -1;
    if (!o)
        return -1;
    if (p->kind == PROJ_BASIC || !json_is_object(cs)) {
        json_object_del(o, "customSchemas");
    } else if (p->kind == PROJ_CUSTOM) {
        const char *name;
        json_t *v, *tmp;
        json_object_foreach_safe(cs, tmp, name, v)
        {
            char probe[160];
            snprintf(probe, sizeof probe, ",%s,", name);
            if (!strstr(p->mask, probe))
                json_object_del(cs, name);
        }
        if (json_object_size(cs) == 0)
            json_object_del(o, "customSchemas");
    }
    char *text = json_dumps(o, JSON_COMPACT);
    if (text)
        rc = buf_appends(page, text);
    free(text);
    json_decref(o);
    return rc;
}

/* ---- users pages with ?fields=: member by member, each user's selection cached ---- */

/* The members of a valid ?fields= expression, when the page can be filtered member by member
 * (fields_members); NULL otherwise (no fields=, or a '*' or a repeated name: the whole page is
 * then filtered by page_done, which also answers an invalid expression). */
struct page_fields {
    char expr[2048]; /* the members' sub-expressions point into it */
    struct fields_member m[16];
    int n;
    const struct fields_member *items; /* the member naming the items, or NULL */
};

static const struct page_fields *page_fields_read(struct mg_connection *conn,
                                                  struct page_fields *pf, const char *items)
{
    if (!emu_param(conn, "fields", pf->expr, sizeof pf->expr) || !*pf->expr ||
        !fields_valid(pf->expr))
        return NULL;
    pf->n = fields_members(pf->expr, strlen(pf->expr), pf->m, (int)(sizeof pf->m / sizeof *pf->m));
    if (pf->n < 0)
        return NULL;
    pf->items = NULL;
    for (int k = 0; k < pf->n; k++)
        if (!strcmp(pf->m[k].name, items))
            pf->items = &pf->m[k];
    return pf;
}

/* A user as the projection and the items member's sub-expression select it, serialized as
 * page_done would serialize it within the whole page (caller frees); NULL out of memory. */
static char *select_user(const char *json, const struct user_projection *p,
                         const struct fields_member *m)
{
    struct buf one, text;
    char *out = NULL;
    json_t *o = NULL, *sel = NULL;
    buf_init(&one, 0);
    buf_init(&text, PJSON_DUMP_MAX_BYTES);
    if (append_projected_user(&one, json, p) || !(o = json_loads(one.data, 0, NULL)))
        goto out;
    sel = m->sub ? fields_apply(o, m->sub, m->sublen) : json_incref(o);
    if (!sel)
        sel = json_object(); /* as fields_apply fills an array's element that selects nothing */
    if (sel && !pjson_dump_compact_into(sel, &text))
        out = buf_take(&text);
out:
    json_decref(sel);
    json_decref(o);
    buf_free(&one);
    buf_free(&text);
    return out;
}

/* The cache's shape of a users page: projection, custom field mask and items sub-expression. */
static void user_shape(const struct user_projection *p, const struct fields_member *m, char *out,
                       size_t outlen)
{
    snprintf(out, outlen, "%d|%s|%c%.*s", (int)p->kind, p->mask, m->sub ? '(' : '-',
             m->sub ? (int)m->sublen : 0, m->sub ? m->sub : "");
}

/* Append user k (item it) as selected: from the district's cache, or selected now and
 * cached (sc NULL: out of memory for the cache, selected every time). 0 or -1. */
static int append_selected_user(struct buf *items, struct select_cache *sc, size_t k,
                                const struct ditem *it, const struct user_projection *p,
                                const struct fields_member *m)
{
    const char *held = sc ? select_cache_get(sc, k) : NULL;
    if (held)
        return buf_appends(items, held);
    char *text = select_user(it->json, p, m);
    if (!text)
        return -1;
    int rc = buf_appends(items, text);
    if (sc)
        select_cache_put(sc, k, text);
    else
        free(text);
    return rc;
}

/* One top-level member of a filtered page: "name":value, after a comma unless first. */
static int append_member(struct buf *page, bool *first, const char *name, const json_t *value)
{
    int rc = buf_appends(page, *first ? "" : ",") || buf_append_json_string(page, name) ||
             buf_appends(page, ":") || pjson_dump_compact_into(value, page);
    *first = false;
    return rc ? -1 : 0;
}

/* The page of got selected users (items: their texts joined by commas), its members in the
 * expression's order, as fields_apply would have cut the whole page: kind, etag,
 * nextPageToken (tok, when the list goes on) and users (when got), the others absent. */
static int filtered_users_page(struct buf *page, const struct page_fields *pf, const char *etag,
                               const char *tok, const struct buf *items, long got)
{
    bool first = true;
    int bad = buf_appends(page, "{");
    for (int k = 0; k < pf->n && !bad; k++) {
        const char *name = pf->m[k].name, *value = NULL;
        if (!strcmp(name, "users")) {
            if (got)
                bad = buf_appends(page, first ? "\"users\":[" : ",\"users\":[") ||
                      buf_append(page, items->data, items->len) || buf_appends(page, "]");
            first = first && !got;
            continue;
        }
        if (!strcmp(name, "kind"))
            value = "admin#directory#users";
        else if (!strcmp(name, "etag"))
            value = etag;
        else if (!strcmp(name, "nextPageToken"))
            value = tok;
        if (!value)
            continue;
        json_t *v = json_string(value);
        bad = !v || append_member(page, &first, name, v);
        json_decref(v);
    }
    return bad || buf_appends(page, "}") ? -1 : 0;
}

/* ---- users.list ---- */

/* The user a listing shows at position *i or after it (positions in idx's order, reversed when
 * desc; a deleted user only with showDeleted, a gone one never): *i is moved to it and its
 * item index put in *k (when k is not NULL); NULL past the end, with *i == n. */
static const struct ditem *next_listed_user(struct district *d, const size_t *idx, size_t n,
                                            size_t *i, bool desc, bool show_deleted, size_t *k)
{
    for (; *i < n; (*i)++) {
        size_t item = idx[desc ? n - 1 - *i : *i];
        const struct ditem *it = district_item(d, DC_GUSERS, item);
        if ((it->flags & DITEM_GONE) || !!(it->flags & DITEM_DELETED) != show_deleted)
            continue;
        if (k)
            *k = item;
        return it;
    }
    return NULL;
}

/* A users page with ?fields= that fields_members can split (pf), under d's lock, which it
 * releases: the same page as page_done would cut from the whole one, the selected users taken
 * from the district's cache. */
static void users_filtered(struct emu *e, struct reply *r, struct district *d,
                           const struct page_fields *pf, const struct user_projection *p,
                           const size_t *idx, size_t n, size_t pos, long max, bool desc,
                           bool show_deleted)
{
    struct buf items, page;
    struct select_cache *sc = NULL;
    char etag[64], tok[512], shape[2600];
    buf_init(&items, 0);
    buf_init(&page, 0);
    if (pf->items) {
        user_shape(p, pf->items, shape, sizeof shape);
        sc = district_select_cache(d, DC_GUSERS);
        if (sc && select_cache_use(sc, shape, district_generation(d, DC_GUSERS), n))
            sc = NULL;
    }
    long got = 0;
    size_t i = pos, k;
    for (const struct ditem *it; (it = next_listed_user(d, idx, n, &i, desc, show_deleted, &k));
         i++) {
        if (got == max)
            break;
        if (pf->items && ((got && buf_appends(&items, ",")) ||
                          append_selected_user(&items, sc, k, it, p, pf->items)))
            goto oom;
        got++;
    }
    if (i < n && make_token(e, 'u', d, i, tok))
        goto oom;
    list_etag(d, DC_GUSERS, etag);
    district_unlock(d);
    if (filtered_users_page(&page, pf, etag, i < n ? tok : NULL, &items, got))
        reply_google_error(r, 500, "backendError", "Backend Error");
    else
        reply_take_body(r, 200, &page);
    goto out;
oom:
    list_failed(r, d);
out:
    buf_free(&items);
    buf_free(&page);
}

static void users_list(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    char v[320];
    struct buf page;
    size_t *idx = NULL;
    long max;
    uint64_t pos;
    enum user_order order = ORDER_NONE;
    bool desc = false, show_deleted = false;
    buf_init(&page, 0);
    struct district *d = authorize(conn, e, r, GSCOPE_USER | GSCOPE_USER_RW);
    if (!d)
        return;
    const char *customer = emu_param(conn, "customer", v, sizeof v);
    if (customer && !customer_ok(d, customer)) {
        reply_google_error(r, 403, "forbidden", "Not Authorized to access this resource/api");
        return;
    }
    if (!customer) {
        const char *domain = emu_param(conn, "domain", v, sizeof v);
        if (!domain) {
            reply_google_error(r, 400, "badRequest", "Bad Request");
            return;
        }
        if (strcasecmp(domain, district_domain(d))) {
            reply_google_error(r, 403, "forbidden", "Not Authorized to access this resource/api");
            return;
        }
    }
    if (max_results(conn, r, GOOGLE_USERS_DEFAULT, GOOGLE_USERS_MAX_RESULTS, false, &max))
        return;
    if (emu_param(conn, "orderBy", v, sizeof v)) {
        if (!strcasecmp(v, "email"))
            order = ORDER_EMAIL;
        else if (!strcasecmp(v, "familyName"))
            order = ORDER_FAMILY;
        else if (!strcasecmp(v, "givenName"))
            order = ORDER_GIVEN;
        else {
            reply_google_error(r, 400, "invalid", "Invalid Input: orderBy");
            return;
        }
    }
    if (emu_param(conn, "sortOrder", v, sizeof v)) {
        if (!strcasecmp(v, "DESCENDING"))
            desc = true;
        else if (strcasecmp(v, "ASCENDING")) {
            reply_google_error(r, 400, "invalid", "Invalid Input: sortOrder");
            return;
        }
    }
    struct user_projection proj;
    if (user_projection(conn, r, &proj))
        return;
    show_deleted = emu_param(conn, "showDeleted", v, sizeof v) && !strcmp(v, "true");
    if (page_start(e, conn, r, 'u', d, &pos))
        return;
    struct page_fields pf;
    const struct page_fields *filtered = page_fields_read(conn, &pf, "users");

    district_lock(d);
    size_t n = district_count(d, DC_GUSERS);
    idx = order_users(d, order);
    if (!idx)
        goto oom;
    if (filtered) {
        users_filtered(e, r, d, filtered, &proj, idx, n, (size_t)pos, max, desc, show_deleted);
        goto out;
    }
    B(list_head(&page, d, DC_GUSERS, "admin#directory#users"));
    long got = 0;
    size_t i = (size_t)pos;
    for (const struct ditem *it; (it = next_listed_user(d, idx, n, &i, desc, show_deleted, NULL));
         i++) {
        if (got == max)
            break;
        B(list_item(&page, got, "users"));
        B(append_projected_user(&page, it->json, &proj));
        got++;
    }
    list_reply(conn, e, r, d, &page, got, 'u', i, n);
    goto out;
oom:
    list_failed(r, d);
out:
    free(idx);
    buf_free(&page);
}

/* ---- orgunits.list ---- */

static void orgunits_list(struct mg_connection *conn, struct emu *e, struct reply *r,
                          const char *customer)
{
    char type[32], parent[1024];
    struct buf page;
    buf_init(&page, 0);
    struct district *d = authorize(conn, e, r, GSCOPE_ORGUNIT | GSCOPE_ORGUNIT_RW);
    if (!d)
        return;
    if (!customer_ok(d, customer)) {
        reply_google_error(r, 403, "forbidden", "Not Authorized to access this resource/api");
        return;
    }
    if (!emu_param(conn, "type", type, sizeof type))
        snprintf(type, sizeof type, "children");
    int all = !strcasecmp(type, "all"), incl = !strcasecmp(type, "allIncludingParent");
    if (!all && !incl && strcasecmp(type, "children")) {
        reply_google_error(r, 400, "invalid", "Invalid value for: type");
        return;
    }
    if (!emu_param(conn, "orgUnitPath", parent, sizeof parent) || !*parent)
        snprintf(parent, sizeof parent, "/");
    district_lock(d);
    size_t n = district_count(d, DC_OUS);
    const struct ditem *p = NULL;
    if (strcmp(parent, "/")) {
        const char *want = parent;
        char withslash[1100];
        if (want[0] != '/' && strncmp(want, "id:", 3)) {
            snprintf(withslash, sizeof withslash, "/%s", want);
            want = withslash;
        }
        for (size_t i = 0; i < n && !p; i++) {
            const struct ditem *it = district_item(d, DC_OUS, i);
            if (!(it->flags & DITEM_GONE) && (!strcasecmp(it->key, want) || !strcmp(it->id, want)))
                p = it;
        }
        if (!p) {
            district_unlock(d);
            reply_google_error(r, 404, "notFound", "Org unit not found");
            return;
        }
    }
    const char *ppath = p ? p->key : "/";
    size_t plen = strlen(ppath);
    B(list_head(&page, d, DC_OUS, "admin#directory#orgUnits"));
    long got = 0;
    if (incl && p) {
        B(list_item(&page, got, "organizationUnits"));
        B(buf_appends(&page, p->json));
        got = 1;
    }
    bool reverse = district_ous_children_first(d);
    for (size_t k = 0; k < n; k++) {
        const struct ditem *it = district_item(d, DC_OUS, reverse ? n - 1 - k : k);
        if (it->flags & DITEM_GONE)
            continue;
        int match;
        if (all || incl)
            match =
                !strcmp(ppath, "/") || (!strncasecmp(it->key, ppath, plen) && it->key[plen] == '/');
        else
            match = it->ou && !strcasecmp(it->ou, ppath);
        if (!match)
            continue;
        B(list_item(&page, got, "organizationUnits"));
        B(buf_appends(&page, it->json));
        got++;
    }
    list_reply(conn, e, r, d, &page, got, 0, 0, 0);
    goto out;
oom:
    list_failed(r, d);
out:
    buf_free(&page);
}

/* ---- chromeosdevices.list ---- */

struct device_query {
    char status[32];
    char serial[64];
    char user[320];
    char asset[64];
    char text[128];
};

static void parse_query(const char *q, struct device_query *dq)
{
    memset(dq, 0, sizeof *dq);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", q);
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (!strncasecmp(t, "status:", 7))
            snprintf(dq->status, sizeof dq->status, "%s", t + 7);
        else if (!strncasecmp(t, "id:", 3))
            snprintf(dq->serial, sizeof dq->serial, "%s", t + 3);
        else if (!strncasecmp(t, "user:", 5))
            snprintf(dq->user, sizeof dq->user, "%s", t + 5);
        else if (!strncasecmp(t, "asset_id:", 9))
            snprintf(dq->asset, sizeof dq->asset, "%s", t + 9);
        else
            snprintf(dq->text, sizeof dq->text, "%s", t);
    }
}

static bool device_matches(const struct ditem *it, const struct device_query *dq, const char *ou,
                           bool children)
{
    if (ou) {
        size_t n = strlen(ou);
        const char *p = it->ou ? it->ou : "/";
        bool same = !strcasecmp(p, ou);
        bool below = children && (!strcmp(ou, "/") || (!strncasecmp(p, ou, n) && p[n] == '/'));
        if (!same && !below)
            return false;
    }
    if (dq->status[0] && (!it->family || strcasecmp(it->family, dq->status)))
        return false;
    if (dq->serial[0] && strncasecmp(it->key, dq->serial, strlen(dq->serial)))
        return false;
    if (dq->user[0] && !strcasestr(it->json, dq->user))
        return false;
    if (dq->asset[0] && !strcasestr(it->json, dq->asset))
        return false;
    if (dq->text[0] && !strcasestr(it->json, dq->text))
        return false;
    return true;
}

static int append_device(struct buf *page, const struct ditem *it, bool basic)
{
    if (!basic)
        return buf_appends(page, it->json);
    json_t *o = json_loads(it->json, 0, NULL);
    if (!o)
        return -1;
    json_object_del(o, "recentUsers");
    json_object_del(o, "activeTimeRanges");
    json_object_del(o, "cpuStatusReports");
    json_object_del(o, "diskVolumeReports");
    char *s = pjson_dump_compact(o);
    json_decref(o);
    if (!s)
        return -1;
    int rc = buf_appends(page, s);
    free(s);
    return rc;
}

static void devices_list(struct mg_connection *conn, struct emu *e, struct reply *r,
                         const char *customer)
{
    char v[512], ou[1024];
    struct buf page;
    struct device_query dq;
    long max;
    uint64_t pos;
    bool basic = false, children = false;
    buf_init(&page, 0);
    struct district *d = authorize(conn, e, r, GSCOPE_DEVICE | GSCOPE_DEVICE_RW);
    if (!d)
        return;
    if (!customer_ok(d, customer)) {
        reply_google_error(r, 403, "forbidden", "Not Authorized to access this resource/api");
        return;
    }
    if (max_results(conn, r, GOOGLE_DEVICES_DEFAULT, GOOGLE_DEVICES_MAX_RESULTS, true, &max))
        return;
    if (emu_param(conn, "projection", v, sizeof v)) {
        if (!strcasecmp(v, "BASIC"))
            basic = true;
        else if (strcasecmp(v, "FULL")) {
            reply_google_error(r, 400, "invalid", "Invalid value for: projection");
            return;
        }
    }
    parse_query(emu_param(conn, "query", v, sizeof v) ? v : "", &dq);
    const char *oup = emu_param(conn, "orgUnitPath", ou, sizeof ou);
    if (oup && !*oup)
        oup = NULL;
    children = emu_param(conn, "includeChildOrgunits", v, sizeof v) && !strcmp(v, "true");
    if (page_start(e, conn, r, 'd', d, &pos))
        return;
    district_lock(d);
    size_t n = district_count(d, DC_DEVICES);
    B(list_head(&page, d, DC_DEVICES, "admin#directory#chromeosdevices"));
    long got = 0;
    size_t i = (size_t)pos;
    for (; i < n; i++) {
        const struct ditem *it = district_item(d, DC_DEVICES, i);
        if ((it->flags & DITEM_GONE) || !device_matches(it, &dq, oup, children))
            continue;
        if (got == max)
            break;
        B(list_item(&page, got, "chromeosdevices"));
        B(append_device(&page, it, basic));
        got++;
    }
    list_reply(conn, e, r, d, &page, got, 'd', i, n);
    goto out;
oom:
    list_failed(r, d);
out:
    buf_free(&page);
}

/* ---- dispatch ---- */

/* The customer segment of the path, for the handler emu_serve runs on this same thread. */
struct dir_call {
    char customer[64];
    char user_key[320];
};

static __thread struct dir_call current;

/* GET /admin/directory/v1/users/{userKey} (email or id) of the token's own customer. The
 * people who only exist to sign in (the district's admin, the control API's admins) get a
 * record made on the fly, so a consenting admin can read their own customerId. */
static void users_get(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    struct district *d = authorize(conn, e, r, GSCOPE_USER | GSCOPE_USER_RW);
    const char *key = current.user_key;
    json_t *o = NULL;
    struct user_projection proj;
    if (!d || user_projection(conn, r, &proj))
        return;
    district_lock(d);
    long i = district_find(d, DC_GUSERS, key);
    if (i >= 0) {
        const struct ditem *it = district_item(d, DC_GUSERS, (size_t)i);
        struct buf one;
        buf_init(&one, 0);
        if (!(it->flags & DITEM_DELETED) && !append_projected_user(&one, it->json, &proj))
            o = json_loads(one.data, 0, NULL);
        buf_free(&one);
    }
    district_unlock(d);
    struct signin_person p;
    if (!o && emu_signin_find(e, key, "google", &p) && p.district == d) {
        char etag[64], local[320];
        snprintf(etag, sizeof etag, "\"emu-%s\"", p.google_sub);
        snprintf(local, sizeof local, "%.*s", (int)strcspn(p.email, "@"), p.email);
        o = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s},s:b,s:b,s:s,s:s,s:b,s:b,s:b,s:b,s:b,"
                      "s:[{s:s,s:b}],s:s,s:s,s:b,s:b,s:b,s:b}",
                      "kind", "admin#directory#user", "id", p.google_sub, "etag", etag,
                      "primaryEmail", p.email, "name", "givenName", local, "familyName", "Admin",
                      "fullName", local, "isAdmin", 1, "isDelegatedAdmin", 0, "lastLoginTime",
                      "2026-01-05T08:00:00.000Z", "creationTime", "2020-08-01T12:00:00.000Z",
                      "agreedToTerms", 1, "suspended", 0, "archived", 0,
                      "changePasswordAtNextLogin", 0, "ipWhitelisted", 0, "emails", "address",
                      p.email, "primary", 1, "customerId", district_customer_id(d), "orgUnitPath",
                      "/", "isMailboxSetup", 1, "isEnrolledIn2Sv", 1, "isEnforcedIn2Sv", 0,
                      "includeInGlobalAddressList", 1);
    }
    if (!o) {
        reply_google_error(r, 404, "notFound", "Resource Not Found: userKey");
        return;
    }
    reply_json(r, 200, o);
    json_decref(o);
}

static void orgunits_h(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    orgunits_list(conn, e, r, current.customer);
}

static void devices_h(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    devices_list(conn, e, r, current.customer);
}

static void not_found(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    (void)conn;
    (void)e;
    reply_google_error(r, 404, "notFound", "Not Found");
}

int google_directory_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri_raw ? ri->local_uri_raw : ri->local_uri;
    const char *prefix = "/admin/directory/v1/";
    if (strcmp(ri->request_method, "GET") || strncmp(uri, prefix, strlen(prefix)))
        return emu_serve(conn, e, R_GOOGLE_USERS, not_found);
    const char *rest = uri + strlen(prefix);
    if (!strcmp(rest, "users"))
        return emu_serve(conn, e, R_GOOGLE_USERS, users_list);
    if (!strncmp(rest, "users/", 6) && rest[6] && !strchr(rest + 6, '/') &&
        mg_url_decode(rest + 6, (int)strlen(rest + 6), current.user_key,
                      (int)sizeof current.user_key, 0) > 0)
        return emu_serve(conn, e, R_GOOGLE_USERS, users_get);
    if (!strncmp(rest, "customer/", 9)) {
        const char *c = rest + 9;
        const char *slash = strchr(c, '/');
        if (slash && (size_t)(slash - c) < sizeof current.customer) {
            snprintf(current.customer, sizeof current.customer, "%.*s", (int)(slash - c), c);
            if (!strcmp(slash, "/orgunits"))
                return emu_serve(conn, e, R_GOOGLE_ORGUNITS, orgunits_h);
            if (!strcmp(slash, "/devices/chromeos"))
                return emu_serve(conn, e, R_GOOGLE_DEVICES, devices_h);
        }
    }
    return emu_serve(conn, e, R_GOOGLE_USERS, not_found);
}
