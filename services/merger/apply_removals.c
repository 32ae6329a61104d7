/* apply_removals: see apply_removals.h. */
#include "apply_removals.h"
#include "apply_ctx.h"
#include "apply_devices.h"
#include "apply_orgunits.h"
#include "apply_people.h"
#include "asset_event.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>

json_t *removals_row(const struct removal *o)
{
    return json_pack("{s:s,s:s,s:s?,s:s,s:s?}", "tenant_id", o->tenant_id, "object_kind",
                     o->object_kind, "source", o->source, "source_id", o->source_id, "run_id",
                     o->run_id);
}

/* Remove the objects in list (rows of removals_row) and
 * remerge or announce what changed. suspend: Azure soft delete (person rows only). */
int removals_apply(struct actx *c, json_t *list, const char *run, bool suspend, long *removed)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *persons = json_array();
    const char *params[2];
    char *text = pjson_dump_compact(list);
    *removed = 0;
    if (!text)
        goto out;
    params[0] = text;
    params[1] = run;
    r = actx_query(
        c,
        suspend ? "UPDATE person_sources ps SET suspended_in_source = true, updated_at = now()"
                  " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, object_kind text, "
                  "source text, source_id text)"
                  " WHERE v.object_kind = 'person' AND ps.tenant_id = v.tenant_id"
                  " AND ps.source = v.source AND ps.source_id = v.source_id"
                  " AND ps.removed_at IS NULL"
                  " AND NOT ps.suspended_in_source RETURNING ps.tenant_id, ps.person_id"
                : "UPDATE person_sources ps SET removed_at = now(), updated_at = now()"
                  " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, object_kind text, "
                  "source text, source_id text)"
                  " WHERE v.object_kind = 'person' AND ps.tenant_id = v.tenant_id"
                  " AND ps.source = v.source AND ps.source_id = v.source_id"
                  " AND ps.removed_at IS NULL"
                  " RETURNING ps.tenant_id, ps.person_id",
        1, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *removed += PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++)
        if (col_str(r, i, 1))
            (void)people_queue_remerge(persons, col_str(r, i, 0), col_str(r, i, 1), run, false);
    PQclear(r);
    r = NULL;
    if (people_remerge(c, persons))
        goto out;
    if (suspend) {
        rc = 0;
        goto out;
    }
    r = actx_query(c,
                   "UPDATE assets a SET in_google = false, left_google_at = now(),"
                   " version = a.version + 1, updated_at = now()"
                   " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, object_kind text, "
                   "source text, source_id text)"
                   " WHERE v.object_kind = 'device' AND a.tenant_id = v.tenant_id"
                   " AND a.device_id = v.source_id AND a.in_google"
                   " RETURNING a.tenant_id, " ASSET_EVENT_JSON_SQL,
                   1, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *removed += PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *ch = json_pack("[s]", "in_google");
        int e = !ch || devices_asset_event(c, col_str(r, i, 0), run, col_str(r, i, 1),
                                           PB_ASSET_CHANGE_KIND_LEFT_GOOGLE, ch);
        json_decref(ch);
        if (e)
            goto out;
    }
    PQclear(r);
    r = actx_query(
        c,
        "UPDATE org_units o SET removed_at = now(), version = o.version + 1, updated_at = now()"
        " FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, object_kind text, source text, "
        "source_id text)"
        " WHERE v.object_kind = 'org_unit' AND o.tenant_id = v.tenant_id"
        " AND o.org_unit_id = v.source_id"
        " AND o.removed_at IS NULL"
        " RETURNING o.tenant_id, o.org_unit_id, " ORGUNITS_JSON_SQL,
        1, params, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    *removed += PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *f = col_json(r, i, 2), *ch = json_array();
        int e = orgunits_event(c, col_str(r, i, 0), run, col_str(r, i, 1), PB_CHANGE_KIND_REMOVED,
                               f, ch);
        json_decref(f);
        json_decref(ch);
        if (e)
            goto out;
    }
    rc = 0;
out:
    if (!text)
        snprintf(c->err, c->errlen, "out of memory");
    PQclear(r);
    free(text);
    json_decref(persons);
    return rc;
}
