/* apply_devices: see apply_devices.h. */
#include "apply_devices.h"
#include "apply_ctx.h"
#include "asset_event.h"
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEVICES_SEEN_CTE ACTX_RUN_SEEN_CTE("device", "h")

/* Queue the AssetChanged of the asset whose asset_event_json() text is asset_json. */
int devices_asset_event(struct actx *c, const char *tenant, const char *run, const char *asset_json,
                        Panel__V1__AssetChangeKind kind, const json_t *changed)
{
    json_t *asset = asset_json ? json_loads(asset_json, 0, NULL) : NULL;
    int rc = asset
                 ? asset_event_add(c->outbox, tenant, run, asset, kind, changed, c->err, c->errlen)
                 : -1;
    if (rc && !asset)
        snprintf(c->err, c->errlen, "building AssetChanged: the asset's JSON does not read");
    json_decref(asset);
    return rc;
}

/* The AssetChanged events of changed (array of {"t","a" asset id,"k" kind,"ch" changed fields,
 * "r" run}), built from the assets as they are now (with their current checkout). */
static int devices_events(struct actx *c, json_t *changed)
{
    int rc = -1;
    PGresult *r = NULL;
    if (json_array_size(changed) == 0)
        return 0;
    r = actx_query_json(c,
                        "SELECT v.n, " ASSET_EVENT_JSON_SQL
                        " FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (t text, a uuid))"
                        " WITH ORDINALITY AS v(t, aid, n) JOIN assets a ON a.tenant_id = v.t"
                        " AND a.asset_id = v.aid"
                        " ORDER BY v.n",
                        changed, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *e = json_array_get(changed, col_index(r, i, 0) - 1);
        if (devices_asset_event(
                c, json_string_value(json_object_get(e, "t")),
                json_string_value(json_object_get(e, "r")), col_str(r, i, 1),
                (Panel__V1__AssetChangeKind)json_integer_value(json_object_get(e, "k")),
                json_object_get(e, "ch")))
            goto out;
    }
    rc = 0;
out:
    PQclear(r);
    return rc;
}

/* What devices_apply gathers from its upsert: the events to build (see devices_events) and
 * the lifecycles to set on existing assets. */
struct device_lists {
    json_t *events, *lifecycles;
};

/* Queue the event of one changed device of devices_apply's upsert, and the lifecycle its
 * Google status gives an existing asset (actx_upsert_fn; arg: struct device_lists). */
static int device_changed(struct actx *c, PGresult *r, int i, const struct upsert_row *u, void *arg)
{
    struct device_lists *l = arg;
    const char *t = u->tenant, *run = u->run, *asset_id = col_str(r, i, 5);
    bool isnew = u->isnew;
    json_t *f = json_object_get(u->staged, "f"), *od = u->old_fields, *ch = u->changed;
    const char *status = json_string_value(json_object_get(f, "status"));
    const char *old_status = json_string_value(json_object_get(od, "status"));
    const char *lc = asset_status_lifecycle(status);
    /* An existing asset follows Google's status while no admin set its lifecycle; a move
     * into DISABLED or DEPROVISIONED overrides an admin's lifecycle (docs/sources.md). */
    bool forced =
        asset_status_blocks_checkout(status) && (!old_status || strcmp(old_status, status) != 0);
    int e =
        json_array_append_new(
            l->events,
            json_pack("{s:s,s:s,s:i,s:O,s:s?}", "t", t, "a", asset_id, "k",
                      isnew ? PB_ASSET_CHANGE_KIND_CREATED : PB_ASSET_CHANGE_KIND_UPDATED, "ch", ch,
                      "r", run)) ||
        (!isnew && lc &&
         json_array_append_new(l->lifecycles, json_pack("{s:s,s:s,s:s,s:b,s:i}", "t", t, "a",
                                                        asset_id, "lc", lc, "forced", forced, "n",
                                                        (int)json_array_size(l->events) - 1)));
    if (e)
        snprintf(c->err, c->errlen, "out of memory applying devices");
    return e ? -1 : 0;
}

int devices_apply(struct actx *c, json_t *rows)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *events = json_array(), *lifecycles = json_array();
    if (json_array_size(rows) == 0)
        goto done;
    actx_rows_hash(c, rows);
    /* as in people_apply: the fields are parsed into jsonb only for the rows written */
    r = actx_query_json(
        c,
        "WITH s AS (SELECT x.i, x.t, x.id, x.f, x.r, x.aue, x.ls, x.lc,"
        "  coalesce(x.h, md5(x.f::jsonb::text)) AS nh"
        "  FROM json_to_recordset($1::json) AS x(i int, t text, id text,"
        "  f json, h text, r uuid, aue date, ls timestamptz, lc text)),"
        " h AS (SELECT s.*, a.asset_id AS aid, a.content_hash AS oh,"
        "  a.in_google AS og, a.device AS od"
        "  FROM s LEFT JOIN assets a ON a.tenant_id = s.t AND a.device_id = s.id)," DEVICES_SEEN_CTE
        " up AS (INSERT INTO assets AS a (tenant_id, device_id, serial_number, model,"
        "  google_status, org_unit_id, org_unit_path, device, auto_update_expiry, last_sync,"
        "  in_google, content_hash, last_seen_run, lifecycle)"
        /* one jsonb parse per written row (OFFSET 0 keeps the cast from being copied
         * into each ->> below, and the filter on h runs first) */
        "  SELECT t, id, j->>'serial_number', j->>'model', j->>'status', j->>'org_unit_id',"
        "  j->>'org_unit_path', j, aue, ls, true, nh, r, lc"
        "  FROM h, LATERAL (SELECT h.f::jsonb AS j OFFSET 0) fj"
        "  WHERE aid IS NULL OR oh IS DISTINCT FROM nh OR NOT og"
        /* an existing asset's lifecycle is decided below, against the row as it is now */
        "  ON CONFLICT (tenant_id, device_id) WHERE device_id IS NOT NULL DO UPDATE SET"
        "  serial_number = EXCLUDED.serial_number, model = EXCLUDED.model,"
        "  google_status = EXCLUDED.google_status, org_unit_id = EXCLUDED.org_unit_id,"
        "  org_unit_path = EXCLUDED.org_unit_path, device = EXCLUDED.device,"
        "  auto_update_expiry = EXCLUDED.auto_update_expiry, last_sync = EXCLUDED.last_sync,"
        "  in_google = true, left_google_at = NULL, content_hash = EXCLUDED.content_hash,"
        "  last_seen_run = EXCLUDED.last_seen_run, version = a.version + 1, updated_at = now()"
        "  RETURNING a.tenant_id, a.device_id, a.asset_id)"
        " SELECT h.i, up.asset_id IS NOT NULL, h.aid IS NULL, h.od, h.r, up.asset_id"
        " FROM h LEFT JOIN up ON up.tenant_id = h.t AND up.device_id = h.id ORDER BY h.i",
        rows, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    struct device_lists lists = {events, lifecycles};
    if (actx_upsert_each(c, r, rows, device_changed, &lists))
        goto out;
    if (json_array_size(lifecycles) > 0) {
        PQclear(r);
        r = actx_query_json(
            c,
            "UPDATE assets a SET lifecycle = v.lc, lifecycle_changed_at = now(),"
            " lifecycle_changed_by = CASE WHEN v.forced THEN NULL"
            "  ELSE a.lifecycle_changed_by END"
            " FROM jsonb_to_recordset($1::jsonb) AS v(t text, a uuid, lc text, forced boolean,"
            " n int)"
            " WHERE a.tenant_id = v.t AND a.asset_id = v.a AND a.lifecycle <> v.lc"
            " AND (v.forced OR a.lifecycle_changed_by IS NULL) RETURNING v.n",
            lifecycles, PGRES_TUPLES_OK);
        if (!r)
            goto out;
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *e = json_array_get(events, col_index(r, i, 0));
            json_array_append_new(json_object_get(e, "ch"), json_string("lifecycle"));
        }
    }
done:
    rc = devices_events(c, events);
out:
    PQclear(r);
    json_decref(events);
    json_decref(lifecycles);
    return rc;
}
