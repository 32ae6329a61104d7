/* apply_orgunits: see apply_orgunits.h. */
#include "apply_orgunits.h"
#include "apply_ctx.h"
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORGUNITS_SEEN_CTE ACTX_RUN_SEEN_CTE("org_unit", "h")

int orgunits_event(struct actx *c, const char *tenant, const char *run, const char *ou_id,
                   Panel__V1__ChangeKind kind, const json_t *fields, const json_t *changed)
{
    int rc = -1;
    char id[EVENTS_ID_LEN], perr[256];
    Envelope env;
    Panel__V1__OrgUnitChanged oc = PANEL__V1__ORG_UNIT_CHANGED__INIT;
    size_t nch;
    char **ch = events_strings_from_json(changed, &nch);
    ProtobufCMessage *ou =
        events_from_json_value(&panel__v1__org_unit__descriptor, fields, perr, sizeof perr);
    if (!ch || !ou) {
        snprintf(c->err, c->errlen, "building OrgUnitChanged: %s", ou ? "out of memory" : perr);
        goto out;
    }
    if (events_envelope_init(&env, id, tenant, PB_SOURCE_PANEL, run))
        goto out;
    oc.has_kind = 1;
    oc.kind = kind;
    oc.org_unit = (Panel__V1__OrgUnit *)ou;
    oc.n_changed_fields = nch;
    oc.changed_fields = ch;
    env.payload_case = PB_PAYLOAD_ORG_UNIT_CHANGED;
    env.org_unit_changed = &oc;
    rc = actx_outbox_add(c, &env, TOPIC_ORGUNIT_EVENTS, ou_id);
out:
    if (ou)
        protobuf_c_message_free_unpacked(ou, NULL);
    free(ch);
    return rc;
}

/* The OrgUnitChanged of one changed org unit of orgunits_apply's upsert (actx_upsert_fn). */
static int orgunit_changed(struct actx *c, PGresult *r, int i, const struct upsert_row *u,
                           void *arg)
{
    (void)arg;
    Panel__V1__ChangeKind kind = u->isnew            ? PB_CHANGE_KIND_CREATED
                                 : col_bool(r, i, 5) ? PB_CHANGE_KIND_RESTORED
                                                     : PB_CHANGE_KIND_UPDATED;
    return orgunits_event(c, u->tenant, u->run, json_string_value(json_object_get(u->staged, "id")),
                          kind, json_object_get(u->staged, "f"), u->changed);
}

int orgunits_apply(struct actx *c, json_t *rows)
{
    int rc = -1;
    PGresult *r = NULL;
    if (json_array_size(rows) == 0)
        return 0;
    r = actx_query_json(
        c,
        "WITH s AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, t text, id text,"
        "  f jsonb, r uuid)),"
        " h AS (SELECT s.*, md5(s.f::text) AS nh, o.org_unit_id AS oid, o.content_hash AS oh,"
        "  o.removed_at IS NOT NULL AS was_removed, " ORGUNITS_JSON_SQL " AS od"
        "  FROM s LEFT JOIN org_units o ON o.tenant_id = s.t"
        "  AND o.org_unit_id = s.id)," ORGUNITS_SEEN_CTE
        " up AS (INSERT INTO org_units AS o (tenant_id, org_unit_id, path, name, description,"
        "  parent_id, parent_path, content_hash, last_seen_run)"
        "  SELECT t, id, f->>'path', coalesce(f->>'name', ''), f->>'description',"
        "  f->>'parent_id', f->>'parent_path', nh, r FROM h"
        "  WHERE oid IS NULL OR oh <> nh OR was_removed"
        "  ON CONFLICT (tenant_id, org_unit_id) DO UPDATE SET path = EXCLUDED.path,"
        "  name = EXCLUDED.name, description = EXCLUDED.description,"
        "  parent_id = EXCLUDED.parent_id, parent_path = EXCLUDED.parent_path,"
        "  content_hash = EXCLUDED.content_hash, last_seen_run = EXCLUDED.last_seen_run,"
        "  removed_at = NULL, version = o.version + 1, updated_at = now()"
        "  RETURNING o.tenant_id, o.org_unit_id)"
        " SELECT h.i, up.org_unit_id IS NOT NULL, h.oid IS NULL, h.od, h.r, h.was_removed"
        " FROM h LEFT JOIN up ON up.tenant_id = h.t AND up.org_unit_id = h.id ORDER BY h.i",
        rows, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    if (actx_upsert_each(c, r, rows, orgunit_changed, NULL))
        goto out;
    rc = 0;
out:
    PQclear(r);
    return rc;
}
