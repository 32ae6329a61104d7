#include "graph.h"
#include "emu.h"
#include "httpd.h"
#include "ms_oauth.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define B(x)                                                                                       \
    do {                                                                                           \
        if ((x) != 0)                                                                              \
            goto oom;                                                                              \
    } while (0)

/* Properties the emulator knows; bit i of a selection mask = props[i]. Those not stored
 * are real properties the generator leaves unset (they read as null). */
static const char *props[] = {
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "accountEnabled",
    "department",
    "employeeId",
    "otherMails",
    "proxyAddresses",
    "createdDateTime",
    "onPremisesImmutableId",
    "userType",
    "companyName",
    "city",
    "country",
    "state",
    "usageLocation",
    "employeeType",
    "mailNickname",
    "onPremisesSamAccountName",
    "onPremisesSyncEnabled",
    "ageGroup",
    "faxNumber",
    "streetAddress",
    "postalCode",
};
#define NPROPS (sizeof props / sizeof props[0])
/* The default set Graph returns without $select. */
#define DEFAULT_MASK (0x3FFULL | (1ULL << 10))

/* Directory extensions (extension_<app id without dashes>_<name>): Graph returns one only when
 * $select names it, and omits it when unset. A selection mask (carried in skip and delta
 * tokens) names them by slot: bit EXT_BIT0 + slot. Slots are given out as clients name
 * extensions and never change, so a token stays valid. */
#define EXT_BIT0     40
#define EXT_MAX      16
#define EXT_NAME_MAX 128
static pthread_mutex_t ext_mu = PTHREAD_MUTEX_INITIALIZER;
static char ext_names[EXT_MAX][EXT_NAME_MAX];
static size_t ext_count;

static bool is_extension_name(const char *s, size_t n)
{
    static const char prefix[] = "extension_";
    size_t p = sizeof prefix - 1;
    if (n >= EXT_NAME_MAX || n < p + 34 || strncasecmp(s, prefix, p) || s[p + 32] != '_')
        return false;
    for (size_t i = p; i < p + 32; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i]))
            return false;
    for (size_t i = p + 33; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

/* The slot of extension name s[0..n) (case-insensitive, as Graph), given out on first use;
 * -1 when every slot is taken. */
static int ext_slot(const char *s, size_t n)
{
    int slot = -1;
    pthread_mutex_lock(&ext_mu);
    for (size_t i = 0; i < ext_count && slot < 0; i++)
        if (strlen(ext_names[i]) == n && !strncasecmp(ext_names[i], s, n))
            slot = (int)i;
    if (slot < 0 && ext_count < EXT_MAX) {
        memcpy(ext_names[ext_count], s, n);
        ext_names[ext_count][n] = '\0';
        slot = (int)ext_count++;
    }
    pthread_mutex_unlock(&ext_mu);
    return slot;
}

/* The slot of a stored member name when mask selects it, else -1. */
static int ext_selected(uint64_t mask, const char *k, size_t kl)
{
    int slot = -1;
    if (kl < 10 || strncmp(k, "extension_", 10))
        return -1;
    pthread_mutex_lock(&ext_mu);
    for (size_t i = 0; i < ext_count && slot < 0; i++)
        if ((mask & (1ULL << (EXT_BIT0 + i))) && strlen(ext_names[i]) == kl &&
            !strncasecmp(ext_names[i], k, kl))
            slot = (int)i;
    pthread_mutex_unlock(&ext_mu);
    return slot;
}

/* Name of slot i into out (a copy: the table may grow meanwhile). */
static void ext_name(size_t i, char out[EXT_NAME_MAX])
{
    pthread_mutex_lock(&ext_mu);
    snprintf(out, EXT_NAME_MAX, "%s", i < ext_count ? ext_names[i] : "");
    pthread_mutex_unlock(&ext_mu);
}

static int parse_select(const char *sel, uint64_t *mask, char *bad, size_t badlen)
{
    uint64_t m = 1; /* id always */
    const char *p = sel;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            size_t i;
            for (i = 0; i < NPROPS; i++)
                if (strlen(props[i]) == n && !strncasecmp(props[i], p, n))
                    break;
            int slot = -1;
            if (i == NPROPS && (!is_extension_name(p, n) || (slot = ext_slot(p, n)) < 0)) {
                snprintf(bad, badlen, "%.*s", (int)(n > 100 ? 100 : n), p);
                return -1;
            }
            m |= slot >= 0 ? 1ULL << (EXT_BIT0 + slot) : 1ULL << i;
        }
        p = e;
    }
    *mask = m;
    return 0;
}

static int select_text(uint64_t mask, struct buf *b)
{
    int first = 1;
    for (size_t i = 0; i < NPROPS; i++)
        if (mask & (1ULL << i)) {
            if (buf_appendf(b, "%s%s", first ? "" : ",", props[i]))
                return -1;
            first = 0;
        }
    for (size_t i = 0; i < EXT_MAX; i++)
        if (mask & (1ULL << (EXT_BIT0 + i))) {
            char name[EXT_NAME_MAX];
            ext_name(i, name);
            if (buf_appendf(b, "%s%s", first ? "" : ",", name))
                return -1;
            first = 0;
        }
    return 0;
}

/* Whether a minimal entry's changed properties (",a,b,") name member k[0..kl). */
static bool changed_prop(const char *only, const char *k, size_t kl)
{
    char probe[EXT_NAME_MAX + 2];
    if (kl >= EXT_NAME_MAX)
        return false;
    snprintf(probe, sizeof probe, ",%.*s,", (int)kl, k);
    return strstr(only, probe) != NULL;
}

/* Scan one value of compact JSON starting at p; returns the first byte after it or NULL. */
static const char *skip_value(const char *p)
{
    int depth = 0;
    bool in_str = false;
    for (; *p; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\' && p[1])
                p++;
            else if (c == '"') {
                in_str = false;
                if (depth == 0)
                    return p + 1;
            }
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']') {
            if (depth == 0)
                return p; /* end of the enclosing object: a scalar ended */
            if (--depth == 0)
                return p + 1;
        } else if (c == ',' && depth == 0)
            return p;
    }
    return NULL;
}

/* Append the user projected on mask, copying member text from the stored compact object
 * (no parse); with only (",a,b,") set, just those and id (a minimal delta entry). Selected
 * properties the object lacks read as null (an explicit null in a minimal entry: cleared).
 * -1 on a malformed object or out of memory. */
static int append_user(struct buf *b, const char *json, uint64_t mask, const char *only)
{
    uint64_t seen = 0;
    bool first = true;
    const char *p = json;
    if (*p++ != '{')
        return -1;
    if (buf_appends(b, "{"))
        return -1;
    while (*p && *p != '}') {
        if (*p == ',')
            p++;
        if (*p != '"')
            return -1;
        const char *k = p + 1, *ke = strchr(k, '"');
        if (!ke || ke[1] != ':')
            return -1;
        const char *v = ke + 2, *ve = skip_value(v);
        if (!ve)
            return -1;
        size_t kl = (size_t)(ke - k);
        int slot = ext_selected(mask, k, kl);
        if (slot >= 0) {
            /* an unset extension is omitted (a stored null too); in a minimal entry only a
             * changed one is sent */
            bool want = strncmp(v, "null", 4) != 0 && (!only || changed_prop(only, k, kl));
            if (want) {
                if ((!first && buf_appends(b, ",")) || buf_append(b, k - 1, (size_t)(ve - (k - 1))))
                    return -1;
                first = false;
                seen |= 1ULL << (EXT_BIT0 + slot);
            }
            p = ve;
            continue;
        }
        for (size_t i = 0; i < NPROPS; i++) {
            if (strlen(props[i]) != kl || memcmp(props[i], k, kl))
                continue;
            bool want = (mask & (1ULL << i)) != 0;
            if (want && only && i != 0) {
                char probe[64];
                snprintf(probe, sizeof probe, ",%s,", props[i]);
                want = strstr(only, probe) != NULL;
            }
            if (want) {
                if ((!first && buf_appends(b, ",")) || buf_append(b, k - 1, (size_t)(ve - (k - 1))))
                    return -1;
                first = false;
                seen |= 1ULL << i;
            }
            break;
        }
        p = ve;
    }
    for (size_t i = 0; i < NPROPS; i++) {
        if (!(mask & (1ULL << i)) || (seen & (1ULL << i)))
            continue;
        if (only) { /* a changed property the object no longer has was cleared: null */
            char probe[64];
            snprintf(probe, sizeof probe, ",%s,", props[i]);
            if (!strstr(only, probe))
                continue;
        }
        if (buf_appendf(b, "%s\"%s\":null", first ? "" : ",", props[i]))
            return -1;
        first = false;
    }
    for (size_t i = 0; only && i < EXT_MAX; i++) {
        /* a selected extension changed to unset: null in a minimal entry, as Graph */
        char name[EXT_NAME_MAX];
        if (!(mask & (1ULL << (EXT_BIT0 + i))) || (seen & (1ULL << (EXT_BIT0 + i))))
            continue;
        ext_name(i, name);
        if (!changed_prop(only, name, strlen(name)))
            continue;
        if (buf_appendf(b, "%s\"%s\":null", first ? "" : ",", name))
            return -1;
        first = false;
    }
    return buf_appends(b, "}");
}

/* ---- $filter: a few simple forms ---- */

struct filter {
    int kind; /* 0 none, 1 eq string, 2 eq bool, 3 startswith */
    char prop[64];
    char value[320];
    int bval;
};

static int parse_filter(const char *f, struct filter *out)
{
    memset(out, 0, sizeof *out);
    char prop[64], val[320];
    if (sscanf(f, "startswith(%63[^,],'%319[^']')", prop, val) == 2) {
        out->kind = 3;
    } else if (sscanf(f, "%63s eq '%319[^']'", prop, val) == 2) {
        out->kind = 1;
    } else if (sscanf(f, "%63s eq %319s", prop, val) == 2 &&
               (!strcmp(val, "true") || !strcmp(val, "false"))) {
        out->kind = 2;
        out->bval = !strcmp(val, "true");
    } else {
        return -1;
    }
    static const char *ok[] = {"accountEnabled", "userType",   "displayName", "userPrincipalName",
                               "mail",           "employeeId", "id",          "givenName",
                               "surname",        "department", "jobTitle"};
    size_t i;
    for (i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(ok[i], prop))
            break;
    if (i == sizeof ok / sizeof *ok)
        return -1;
    if ((out->kind == 2) != !strcmp(prop, "accountEnabled"))
        return -1;
    snprintf(out->prop, sizeof out->prop, "%s", prop);
    snprintf(out->value, sizeof out->value, "%s", val);
    return 0;
}

static bool filter_match(const struct filter *f, const char *json)
{
    if (!f->kind)
        return true;
    json_t *o = json_loads(json, 0, NULL);
    bool m = false;
    if (!o)
        return false;
    json_t *v = json_object_get(o, f->prop);
    if (f->kind == 2)
        m = json_is_boolean(v) && json_is_true(v) == f->bval;
    else if (json_is_string(v) && f->kind == 1)
        m = !strcasecmp(json_string_value(v), f->value);
    else if (json_is_string(v))
        m = !strncasecmp(json_string_value(v), f->value, strlen(f->value));
    json_decref(o);
    return m;
}

/* ---- auth ---- */

static struct district *check(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    struct district *d = NULL;
    switch (ms_oauth_check(e, emu_bearer(conn), &d)) {
    case MS_OK:
        return d;
    case MS_FORBIDDEN:
        reply_graph_error(r, 403, "Authorization_RequestDenied",
                          "Insufficient privileges to complete the operation.");
        return NULL;
    case MS_EXPIRED:
        reply_graph_error(r, 401, "InvalidAuthenticationToken",
                          "Lifetime validation failed, the token is expired.");
        return NULL;
    default:
        reply_graph_error(r, 401, "InvalidAuthenticationToken",
                          "Access token validation failure. Invalid audience.");
        return NULL;
    }
}

static int append_link(struct buf *b, const char *base, const char *path, const char *params)
{
    return buf_appendf(b, "%s%s%s%s", base, path, params[0] ? "?" : "", params);
}

static int add_param(struct buf *q, const char *name, const char *value)
{
    if (q->len && buf_appends(q, "&"))
        return -1;
    if (buf_appends(q, name) || buf_appends(q, "="))
        return -1;
    return buf_append_urlencoded(q, value);
}

static int context(struct buf *page, const char *base, uint64_t mask, bool selected)
{
    if (buf_appendf(page, "{\"@odata.context\":\"%s/v1.0/$metadata#users", base))
        return -1;
    if (selected) {
        if (buf_appends(page, "(") || select_text(mask, page) || buf_appends(page, ")"))
            return -1;
    }
    return buf_appends(page, "\"");
}

/* $select into sel and *mask: 1 when given, 0 when not, -1 after answering 400 for a property
 * Graph does not know (its own words). */
static int select_param(struct mg_connection *conn, struct reply *r, char *sel, size_t sellen,
                        uint64_t *mask)
{
    char bad[128], msg[256];
    if (!emu_param(conn, "$select", sel, sellen))
        return 0;
    if (!parse_select(sel, mask, bad, sizeof bad))
        return 1;
    snprintf(msg, sizeof msg,
             "Could not find a property named '%s' on type 'microsoft.graph.user'.", bad);
    reply_graph_error(r, 400, "Request_BadRequest", msg);
    return -1;
}

/* The end of a page: its "value" list (the users already written to values), "}". 0 or -1. */
static int end_page(struct buf *page, const struct buf *values)
{
    return buf_appends(page, ",\"value\":[") ||
           (values->len && buf_append(page, values->data, values->len)) || buf_appends(page, "]}");
}

/* ---- /v1.0/users ---- */

/* A handler's out-of-memory end: the district's lock released when it is held (d not NULL),
 * Graph's 500 generalException. */
static void reply_out_of_memory(struct reply *r, struct district *locked)
{
    if (locked)
        district_unlock(locked);
    reply_graph_error(r, 500, "generalException", "Out of memory.");
}

/* Append the district's live users from position *pos on that match f (kind 0: every one)
 * to values, comma-separated after the *got already there, until there are limit; *pos
 * ends at the first user not taken. The caller holds the district's lock. 0, or -1 out of
 * memory. */
static int append_live_users(struct district *d, const struct filter *f, uint64_t mask, long limit,
                             size_t *pos, long *got, struct buf *values)
{
    size_t n = district_count(d, DC_AUSERS), i = *pos;
    int rc = -1;
    for (; i < n; i++) {
        const struct ditem *it = district_item(d, DC_AUSERS, i);
        if (it->flags & (DITEM_DELETED | DITEM_GONE))
            continue;
        if (!filter_match(f, it->json))
            continue;
        if (*got == limit)
            break;
        if ((*got && buf_appends(values, ",")) || append_user(values, it->json, mask, NULL))
            goto out;
        ++*got;
    }
    rc = 0;
out:
    *pos = i;
    return rc;
}

static void users(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    char sel[2048], top[32], filt[512], skip[512], base[300];
    struct buf page, values, q;
    struct filter f;
    uint64_t mask = DEFAULT_MASK, pos = 0;
    long ntop = GRAPH_TOP_DEFAULT;
    bool locked = false;
    buf_init(&page, 0);
    buf_init(&values, 0);
    buf_init(&q, 8192);
    struct district *d = check(conn, e, r);
    if (!d)
        goto out;
    int selected = select_param(conn, r, sel, sizeof sel, &mask);
    if (selected < 0)
        goto out;
    bool has_sel = selected > 0;
    if (emu_param(conn, "$top", top, sizeof top)) {
        char *end;
        ntop = strtol(top, &end, 10);
        if (*end || end == top || ntop < 1 || ntop > GRAPH_TOP_MAX) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "Invalid page size specified: '%.20s'. Must be between 1 "
                     "and %d inclusive.",
                     top, GRAPH_TOP_MAX);
            reply_graph_error(r, 400, "Request_UnsupportedQuery", msg);
            goto out;
        }
    }
    memset(&f, 0, sizeof f);
    bool has_filter = emu_param(conn, "$filter", filt, sizeof filt) != NULL;
    if (has_filter && parse_filter(filt, &f)) {
        reply_graph_error(r, 400, "Request_UnsupportedQuery", "Unsupported Query.");
        goto out;
    }
    if (emu_param(conn, "$skiptoken", skip, sizeof skip)) {
        struct page_state st;
        enum page_token_result pr = page_token_read(e->tokens, skip, 'g', &st);
        if (pr == PAGE_TOKEN_EXPIRED) {
            reply_graph_error(r, 400, "Directory_ExpiredPageToken",
                              "The specified page token value has expired and can no longer be "
                              "included in your request.");
            goto out;
        }
        if (pr != PAGE_TOKEN_OK || strcmp(st.district, district_id(d))) {
            reply_graph_error(r, 400, "Request_BadRequest", "Invalid page token.");
            goto out;
        }
        pos = st.pos;
    }
    emu_base_url(conn, base, sizeof base);
    district_lock(d);
    locked = true;
    size_t n = district_count(d, DC_AUSERS);
    long got = 0;
    size_t i = (size_t)pos;
    B(append_live_users(d, &f, mask, ntop, &i, &got, &values));
    district_unlock(d);
    locked = false;
    B(context(&page, base, mask, has_sel));
    if (i < n) {
        struct page_state st;
        char tok[512];
        page_state_init(&st, 'g', district_id(d), i);
        B(page_token_make(e->tokens, &st, tok, sizeof tok));
        if (emu_param(conn, "$top", top, sizeof top))
            B(add_param(&q, "$top", top));
        if (has_sel)
            B(add_param(&q, "$select", sel));
        if (has_filter)
            B(add_param(&q, "$filter", filt));
        B(add_param(&q, "$skiptoken", tok));
        B(buf_appends(&page, ",\"@odata.nextLink\":\""));
        B(append_link(&page, base, "/v1.0/users", q.data));
        B(buf_appends(&page, "\""));
    }
    B(end_page(&page, &values));
    reply_take_body(r, 200, &page);
    goto out;
oom:
    reply_out_of_memory(r, locked ? d : NULL);
out:
    buf_free(&page);
    buf_free(&values);
    buf_free(&q);
}

/* ---- /v1.0/users/delta ---- */

static long page_size(struct mg_connection *conn)
{
    const char *p = mg_get_header(conn, "Prefer");
    const char *m = p ? strstr(p, "odata.maxpagesize=") : NULL;
    if (!m)
        return GRAPH_TOP_DEFAULT;
    long n = strtol(m + 18, NULL, 10);
    return n < 1 ? GRAPH_TOP_DEFAULT : n > GRAPH_TOP_MAX ? GRAPH_TOP_MAX : n;
}

static bool prefers_minimal(struct mg_connection *conn)
{
    const char *p = mg_get_header(conn, "Prefer");
    return p && strstr(p, "return=minimal") != NULL;
}

static void delta_expired(struct emu *e, struct reply *r, const char *base, uint64_t mask)
{
    if (!strcmp(e->cfg->delta_expired, "gone")) {
        struct buf loc;
        buf_init(&loc, 8192);
        reply_graph_error(r, 410, "resyncRequired",
                          "Resync required. Replace any local data with the results of a new "
                          "full synchronization and then continue.");
        if (!buf_appendf(&loc, "%s/v1.0/users/delta?$select=", base) && !select_text(mask, &loc))
            reply_header(r, "Location", loc.data);
        buf_free(&loc);
        return;
    }
    reply_graph_error(r, 400, "syncStateNotFound",
                      "The sync state generation is not found. Delta tokens may be expired; "
                      "perform a full synchronization.");
}

static int delta_token_link(struct emu *e, struct buf *page, const char *base, char kind,
                            struct district *d, uint64_t pos, uint64_t vfrom, uint64_t vto,
                            uint64_t mask)
{
    struct page_state st;
    char tok[512];
    page_state_init(&st, kind, district_id(d), pos);
    st.vfrom = vfrom;
    st.vto = vto;
    st.aux = mask;
    if (page_token_make(e->tokens, &st, tok, sizeof tok))
        return -1;
    return buf_appendf(page, ",\"@odata.%s\":\"%s/v1.0/users/delta?$%s=%s\"",
                       kind == 'D' ? "deltaLink" : "nextLink", base,
                       kind == 'D' ? "deltatoken" : "skiptoken", tok);
}

static void delta(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    char sel[2048], tok[512], base[300], bad[128];
    struct buf page, values;
    struct dchange_sum *changes = NULL;
    uint64_t mask = DEFAULT_MASK;
    struct page_state st;
    bool has_sel = false, locked = false;
    buf_init(&page, 0);
    buf_init(&values, 0);
    struct district *d = check(conn, e, r);
    if (!d)
        goto out;
    emu_base_url(conn, base, sizeof base);
    memset(&st, 0, sizeof st);
    bool minimal = prefers_minimal(conn);
    long size = page_size(conn);
    if (emu_param(conn, "$skiptoken", tok, sizeof tok) ||
        emu_param(conn, "$deltatoken", tok, sizeof tok)) {
        bool is_delta = emu_param(conn, "$deltatoken", tok, sizeof tok) != NULL;
        if (is_delta && !strcmp(tok, "latest")) {
            district_lock(d);
            uint64_t v = district_azure_version(d);
            district_unlock(d);
            if (emu_param(conn, "$select", sel, sizeof sel) &&
                parse_select(sel, &mask, bad, sizeof bad)) {
                reply_graph_error(r, 400, "Request_BadRequest", "Invalid $select.");
                goto out;
            }
            B(context(&page, base, mask, true));
            B(delta_token_link(e, &page, base, 'D', d, 0, v, v, mask));
            B(buf_appends(&page, ",\"value\":[]}"));
            goto done;
        }
        if (!is_delta)
            emu_param(conn, "$skiptoken", tok, sizeof tok);
        enum page_token_result pr = page_token_read(e->tokens, tok, is_delta ? 'D' : 's', &st);
        if (pr == PAGE_TOKEN_EXPIRED) {
            delta_expired(e, r, base, mask);
            goto out;
        }
        if (pr != PAGE_TOKEN_OK || strcmp(st.district, district_id(d))) {
            reply_graph_error(r, 400, "Request_BadRequest", "Invalid delta or skip token.");
            goto out;
        }
        mask = st.aux;
        has_sel = true;
        if (is_delta) {
            /* a new round: the changes since the end of the last one */
            uint64_t from = st.vfrom;
            district_lock(d);
            st.vto = district_azure_version(d);
            district_unlock(d);
            st.vfrom = from;
            st.pos = 0;
            st.kind = 'c';
        }
    } else {
        int selected = select_param(conn, r, sel, sizeof sel, &mask);
        if (selected < 0)
            goto out;
        has_sel = selected > 0;
        district_lock(d);
        st.vto = district_azure_version(d);
        district_unlock(d);
        st.vfrom = 0;
        st.pos = 0;
    }
    (void)has_sel;
    district_lock(d);
    locked = true;
    long got = 0;
    uint64_t next = 0;
    bool more = false;
    if (st.vfrom == 0) {
        /* initial round: every current user, full (selected) objects */
        const struct filter every = {0};
        size_t i = (size_t)st.pos;
        B(append_live_users(d, &every, mask, size, &i, &got, &values));
        more = i < district_count(d, DC_AUSERS);
        next = i;
    } else {
        long nc = district_azure_changes(d, st.vfrom, st.vto, &changes);
        if (nc < 0)
            goto oom;
        size_t k = (size_t)st.pos;
        for (; k < (size_t)nc; k++) {
            const struct dchange_sum *c = &changes[k];
            const struct ditem *it = district_item(d, DC_AUSERS, c->item);
            if (got == size)
                break;
            if (c->kind == DCHANGE_SOFT || c->kind == DCHANGE_HARD) {
                B(buf_appendf(&values, "%s{\"id\":\"%s\",\"@removed\":{\"reason\":\"%s\"}}",
                              got ? "," : "", it->id,
                              c->kind == DCHANGE_HARD ? "deleted" : "changed"));
                got++;
                continue;
            }
            if (it->flags & (DITEM_DELETED | DITEM_GONE))
                continue;
            const char *only = NULL;
            if (c->kind == DCHANGE_UPDATED && minimal) {
                /* skip changes to properties the client did not select */
                bool any = false;
                for (size_t p = 1; p < NPROPS; p++) {
                    char probe[64];
                    snprintf(probe, sizeof probe, ",%s,", props[p]);
                    if ((mask & (1ULL << p)) && strstr(c->props, probe))
                        any = true;
                }
                for (size_t x = 0; x < EXT_MAX && !any; x++) {
                    char name[EXT_NAME_MAX];
                    ext_name(x, name);
                    any = (mask & (1ULL << (EXT_BIT0 + x))) &&
                          changed_prop(c->props, name, strlen(name));
                }
                if (!any)
                    continue;
                only = c->props;
            }
            if (got)
                B(buf_appends(&values, ","));
            B(append_user(&values, it->json, mask, only));
            got++;
        }
        more = k < (size_t)nc;
        next = k;
    }
    district_unlock(d);
    locked = false;
    B(context(&page, base, mask, true));
    if (more)
        B(delta_token_link(e, &page, base, 's', d, next, st.vfrom, st.vto, mask));
    else
        B(delta_token_link(e, &page, base, 'D', d, 0, st.vto, st.vto, mask));
    B(end_page(&page, &values));
done:
    if (minimal)
        reply_header(r, "Preference-Applied", "return=minimal");
    reply_take_body(r, 200, &page);
    goto out;
oom:
    reply_out_of_memory(r, locked ? d : NULL);
out:
    free(changes);
    buf_free(&page);
    buf_free(&values);
}

static void not_found(struct mg_connection *conn, struct emu *e, struct reply *r)
{
    (void)e;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char msg[300];
    snprintf(msg, sizeof msg, "Resource not found for the segment '%.200s'.", ri->local_uri);
    reply_graph_error(r, 400, "BadRequest", msg);
}

int graph_handler(struct mg_connection *conn, void *ctx)
{
    struct emu *e = ctx;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri;
    if (!strcmp(ri->request_method, "GET")) {
        if (!strcmp(uri, "/v1.0/users"))
            return emu_serve(conn, e, R_GRAPH_USERS, users);
        if (!strcmp(uri, "/v1.0/users/delta") || !strcmp(uri, "/v1.0/users/delta()"))
            return emu_serve(conn, e, R_GRAPH_DELTA, delta);
    }
    return emu_serve(conn, e, R_GRAPH_USERS, not_found);
}
