/* orgunits: see orgunits.h. */
#include "orgunits.h"

#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OU_JSON                                                                                    \
    "json_build_object('org_unit_id', o.org_unit_id, 'path', o.path, 'name', o.name,"              \
    " 'description', o.description, 'parent_id', o.parent_id, 'parent_path', o.parent_path,"       \
    " 'removed', o.removed_at IS NOT NULL, 'updated_at', o.updated_at)"

static const struct db_stmt st_all = {
    "orgunits_all", "SELECT " OU_JSON "::text, o.org_unit_id, o.parent_id FROM org_units o"
                    " WHERE o.tenant_id = $1 AND ($2::boolean OR o.removed_at IS NULL)"
                    " ORDER BY lower(o.path), o.org_unit_id"};

static const struct db_stmt st_get = {
    "orgunits_get",
    "SELECT (" OU_JSON "::jsonb || jsonb_build_object("
    " 'people_count', (SELECT count(*) FROM people p WHERE p.tenant_id = o.tenant_id"
    "   AND p.org_unit_path = o.path AND p.removed_at IS NULL),"
    " 'assets_count', (SELECT count(*) FROM assets a WHERE a.tenant_id = o.tenant_id"
    "   AND a.org_unit_path = o.path),"
    " 'children_count', (SELECT count(*) FROM org_units c WHERE c.tenant_id = o.tenant_id"
    "   AND c.parent_id = o.org_unit_id AND c.removed_at IS NULL)))::text"
    " FROM org_units o WHERE o.tenant_id = $1 AND o.org_unit_id = $2"};

/* Nest the flat rows: each OU goes under its parent's "children"; OUs whose parent is not
 * listed are roots. */
static void reply_tree(struct api_req *r, PGresult *res)
{
    int n = PQntuples(res);
    json_t *byid = json_object(), *roots = json_array(), *top = NULL;
    char err[128];
    for (int i = 0; i < n; i++) {
        json_t *o =
            pjson_parse(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0), err, sizeof err);
        if (!o)
            continue;
        json_object_set_new(o, "children", json_array());
        json_object_set_new(byid, PQgetvalue(res, i, 1), o);
    }
    for (int i = 0; i < n; i++) {
        json_t *o = json_object_get(byid, PQgetvalue(res, i, 1));
        json_t *parent =
            PQgetisnull(res, i, 2) ? NULL : json_object_get(byid, PQgetvalue(res, i, 2));
        if (!o)
            continue;
        if (parent && parent != o)
            json_array_append(json_object_get(parent, "children"), o);
        else
            json_array_append(roots, o);
    }
    top = json_pack("{sO}", "items", roots);
    rest_reply_json(r, 200, top);
    json_decref(top);
    json_decref(roots);
    json_decref(byid);
}

static void list(struct api_req *r)
{
    static const char *const allowed[] = {"format", "include_removed", NULL};
    static const char *const formats[] = {"flat", "tree", NULL};
    char msg[256], format[8] = "flat";
    bool removed = false;
    if (rest_check_query(r, allowed))
        return;
    if (params_enum(r->query, "format", formats, format, sizeof format, msg, sizeof msg) < 0 ||
        params_bool(r->query, "include_removed", &removed, msg, sizeof msg) < 0) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    const char *p[2] = {r->principal.tenant, removed ? "true" : "false"};
    PGresult *res = rest_exec(r, &st_all, 2, p);
    if (!res)
        return;
    if (strcmp(format, "tree") == 0)
        reply_tree(r, res);
    else
        rest_reply_page(r, res, PQntuples(res), "org-units", 0);
    PQclear(res);
}

int orgunits_subtree_param(const char *query, const char *name, char *out, size_t outlen, char *msg,
                           size_t msglen)
{
    int rc = params_str(query, name, out, outlen, msg, msglen);
    if (rc != 0)
        return rc;
    if (out[0] != '/') {
        snprintf(msg, msglen, "%s must be an org unit path starting with /", name);
        return -1;
    }
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = 0;
    return n == 1 ? 1 : 0;
}

int orgunits_list(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    list(r);
    return r->status;
}

int orgunits_get(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *p[2] = {r->principal.tenant, rest_param(r, "id")};
    if (rest_check_query(r, NULL))
        return r->status;
    PGresult *res = rest_exec(r, &st_get, 2, p);
    if (res)
        rest_reply_row(r, res, 200);
    PQclear(res);
    return r->status;
}
