/* people: see people.h. */
#include "people.h"

#include "checkouts.h"
#include "fetch_map.h"
#include "ids.h"
#include "orgunits.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define PEOPLE_IN_OU_SUBTREE ORGUNITS_SUBTREE_SQL("p.org_unit_path", "3")

/* q: a substring of the name or shown e-mail, or exactly any known address of the Person
 * ($10, q as an address; index person_sources_addresses). No comments inside the statement:
 * bench/run.py reads it from this file. */
static const struct db_stmt st_list = {
    "people_list",
    "SELECT api_person_json(p)::text, lower(p.display_name), p.person_id::text FROM people p "
    "WHERE p.tenant_id = $1"
    " AND ($2::text IS NULL OR lower(p.display_name) LIKE $2 OR p.email_norm LIKE $2"
    "   OR p.person_id IN (SELECT s.person_id FROM person_sources s WHERE s.tenant_id = $1"
    "   AND s.removed_at IS NULL AND s.addresses @> ARRAY[$10::text]))"
    " AND " PEOPLE_IN_OU_SUBTREE " AND ($4::text IS NULL OR $4 = ANY (p.sources))"
    " AND CASE coalesce($5, 'present')"
    "   WHEN 'active' THEN p.removed_at IS NULL AND NOT p.suspended"
    "   AND p.fields ->> 'archived' IS DISTINCT FROM 'true'"
    "   WHEN 'suspended' THEN p.removed_at IS NULL AND p.suspended"
    "   WHEN 'archived' THEN p.removed_at IS NULL AND NOT p.suspended"
    "   AND p.fields ->> 'archived' = 'true'"
    "   WHEN 'removed' THEN p.removed_at IS NOT NULL"
    "   WHEN 'all' THEN true ELSE p.removed_at IS NULL END"
    " AND ($6::boolean IS NULL OR $6 = EXISTS (SELECT 1 FROM checkouts c"
    "   WHERE c.tenant_id = p.tenant_id AND c.person_id = p.person_id"
    "   AND c.checked_in_at IS NULL))"
    " AND ($7::text IS NULL OR (lower(p.display_name), p.person_id) > ($7, $8::uuid))"
    " AND ($11::text IS NULL OR p.fields ->> 'graduation_year' = $11)"
    " ORDER BY lower(p.display_name), p.person_id LIMIT $9::int"};

/* graduation_year=YYYY: 0 and the year's digits in out, 1 when absent, -1 with msg. */
static int graduation_year_param(const char *query, char *out, size_t outlen, char *msg,
                                 size_t msglen)
{
    int rc = params_str(query, "graduation_year", out, outlen, msg, msglen);
    if (rc != 0)
        return rc;
    long year = 0;
    bool digits = strlen(out) == 4;
    for (size_t i = 0; digits && out[i]; i++) {
        digits = isdigit((unsigned char)out[i]);
        year = year * 10 + (out[i] - '0');
    }
    if (!digits || year < FMAP_YEAR_MIN || year > FMAP_YEAR_MAX) {
        snprintf(msg, msglen, "graduation_year must be a year from %d to %d", FMAP_YEAR_MIN,
                 FMAP_YEAR_MAX);
        return -1;
    }
    return 0;
}

/* q as an address in the merge key's form (trimmed, ASCII lower-case) when it looks like one. */
static const char *address_of(const char *q, char *out, size_t outlen)
{
    size_t n = 0;
    while (*q == ' ' || *q == '\t')
        q++;
    for (; *q && n + 1 < outlen; q++)
        out[n++] = (char)(*q >= 'A' && *q <= 'Z' ? *q - 'A' + 'a' : *q);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    return strchr(out, '@') ? out : NULL;
}

static const struct db_stmt st_get = {
    "people_get",
    "SELECT (api_person_json(p)::jsonb || jsonb_build_object("
    " 'fields', p.fields, 'provenance', p.provenance,"
    " 'open_checkouts', (SELECT count(*) FROM checkouts c WHERE c.tenant_id = p.tenant_id"
    "   AND c.person_id = p.person_id AND c.checked_in_at IS NULL),"
    " 'addresses', (SELECT coalesce(jsonb_agg(jsonb_build_object('address', x.a,"
    "   'sources', x.srcs) ORDER BY x.a), '[]') FROM (SELECT a.a,"
    "   array_agg(DISTINCT s.source ORDER BY s.source) AS srcs FROM person_sources s,"
    "   unnest(s.addresses) AS a(a) WHERE s.tenant_id = p.tenant_id"
    "   AND s.person_id = p.person_id AND s.removed_at IS NULL GROUP BY a.a) x),"
    " 'source_records', (SELECT coalesce(jsonb_agg(jsonb_build_object("
    "   'source', s.source, 'source_id', s.source_id, 'email', s.email_norm,"
    "   'fields', s.fields, 'suspended_in_source', s.suspended_in_source,"
    "   'removed_at', s.removed_at, 'updated_at', s.updated_at) ORDER BY s.source), '[]')"
    "   FROM person_sources s WHERE s.tenant_id = p.tenant_id"
    "   AND s.person_id = p.person_id)))::text, p.version::text"
    " FROM people p WHERE p.tenant_id = $1 AND p.person_id = $2::uuid"};

int people_like_pattern(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen < 3)
        return -1;
    out[o++] = '%';
    for (const char *p = s; *p; p++) {
        if (o + 4 >= outlen)
            return -1;
        if (*p == '%' || *p == '_' || *p == '\\')
            out[o++] = '\\';
        out[o++] = (char)tolower((unsigned char)*p);
    }
    out[o++] = '%';
    out[o] = 0;
    return 0;
}

static void list(struct api_req *r)
{
    static const char *const allowed[] = {"q",      "org_unit",      "source",
                                          "status", "has_checkouts", "graduation_year",
                                          "limit",  "cursor",        NULL};
    static const char *const sources[] = {"google", "azure", NULL};
    static const char *const statuses[] = {"active",  "suspended", "archived",
                                           "removed", "all",       NULL};
    char msg[256], q[PARAMS_MAX_VALUE + 1], like[PARAMS_MAX_VALUE * 2 + 4];
    char address[PARAMS_MAX_VALUE + 1];
    char ou[PARAMS_MAX_VALUE + 1], source[16], status[16], lim[24], year[PARAMS_MAX_VALUE + 1];
    char keys[2][PARAMS_CURSOR_MAX];
    bool has_cursor = false, hc = false;
    long limit;
    int rq, rou, rs, rst, rhc, ry;
    if (rest_check_query(r, allowed) || rest_page_params(r, "people", 2, &limit, &has_cursor, keys))
        return;
    if ((rq = params_str(r->query, "q", q, sizeof q, msg, sizeof msg)) < 0 ||
        (rou = orgunits_subtree_param(r->query, "org_unit", ou, sizeof ou, msg, sizeof msg)) < 0 ||
        (rs = params_enum(r->query, "source", sources, source, sizeof source, msg, sizeof msg)) <
            0 ||
        (rst = params_enum(r->query, "status", statuses, status, sizeof status, msg, sizeof msg)) <
            0 ||
        (rhc = params_bool(r->query, "has_checkouts", &hc, msg, sizeof msg)) < 0 ||
        (ry = graduation_year_param(r->query, year, sizeof year, msg, sizeof msg)) < 0) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    if (rq == 0 && people_like_pattern(q, like, sizeof like) != 0) {
        rest_error(r, 400, "invalid_parameter", "q is too long");
        return;
    }
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[11] = {r->principal.tenant,
                         rq == 0 ? like : NULL,
                         rou == 0 ? ou : NULL,
                         rs == 0 ? source : NULL,
                         rst == 0 ? status : NULL,
                         rhc == 0 ? (hc ? "true" : "false") : NULL,
                         has_cursor ? keys[0] : NULL,
                         has_cursor ? keys[1] : NULL,
                         lim,
                         rq == 0 ? address_of(q, address, sizeof address) : NULL,
                         ry == 0 ? year : NULL};
    if (has_cursor && !ids_uuid_valid(keys[1])) {
        rest_error(r, 400, "invalid_cursor", "cursor is not valid");
        return;
    }
    PGresult *res = rest_exec(r, &st_list, 11, p);
    if (!res)
        return;
    rest_reply_page(r, res, limit, "people", 2);
    PQclear(res);
}

static void get(struct api_req *r, const char *id)
{
    const char *p[2] = {r->principal.tenant, id};
    if (rest_check_query(r, NULL))
        return;
    PGresult *res = rest_exec(r, &st_get, 2, p);
    if (!res)
        return;
    rest_reply_versioned_row(r, res, 200);
    PQclear(res);
}

int people_list(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    list(r);
    return r->status;
}

int people_get(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        get(r, id);
    return r->status;
}

int people_checkouts(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        checkouts_list_for(r, "person", id);
    return r->status;
}
