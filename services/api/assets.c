/* assets: see assets.h. */
#include "assets.h"

#include "asset_event.h"
#include "checkouts.h"
#include "ids.h"
#include "json.h"
#include "kafka.h"
#include "orgunits.h"
#include "people.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ?status=: a lifecycle exactly as asset_lifecycle_text writes it (the .proto's enum names,
 * lib/asset_event.h; no second table here). params_str's result, or -1 with a message. */
static int status_param(const char *query, char *out, size_t outlen, char *msg, size_t msglen)
{
    char canonical[32];
    int r = params_str(query, "status", out, outlen, msg, msglen);
    if (r != 0)
        return r;
    asset_lifecycle_text(asset_lifecycle_from_text(out), canonical, sizeof canonical);
    if (strcmp(canonical, out) != 0) {
        snprintf(msg, msglen, "status has an unknown value");
        return -1;
    }
    return 0;
}

/* q matches serial, tag, model, MAC (typed with or without ':' or '-': $17), the annotated
 * user, a recent user's email and the Person it is checked out to. */
#define ASSETS_IN_OU_SUBTREE ORGUNITS_SUBTREE_SQL("a.org_unit_path", "6")

static const struct db_stmt st_list = {
    "assets_list",
    "SELECT api_asset_json(a)::text, a.asset_id::text FROM assets a WHERE a.tenant_id = $1"
    " AND ($2::text IS NULL OR a.serial_number = $2)"
    " AND ($3::text IS NULL OR coalesce(a.asset_tag, a.google_asset_tag) = $3)"
    " AND ($4::text IS NULL OR a.model = $4)"
    " AND ($5::text IS NULL OR a.lifecycle = $5)"
    " AND " ASSETS_IN_OU_SUBTREE
    " AND ($7::boolean IS NULL OR $7 = EXISTS (SELECT 1 FROM checkouts c"
    "   WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id"
    "   AND c.checked_in_at IS NULL))"
    " AND ($8::boolean IS NULL OR a.in_google = $8)"
    " AND ($9::date IS NULL OR a.auto_update_expiry < $9)"
    " AND ($10::date IS NULL OR a.next_audit_due <= $10)"
    " AND ($11::text IS NULL OR lower(a.serial_number) LIKE $11 OR lower(coalesce(a.asset_tag, "
    "a.google_asset_tag)) LIKE $11"
    "   OR lower(a.model) LIKE $11"
    "   OR replace(replace(lower(a.device ->> 'mac_address'), ':', ''), '-', '') LIKE $17"
    "   OR lower(a.device ->> 'annotated_user') LIKE $11"
    "   OR EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(a.device ->"
    "     'recent_users') WHEN 'array' THEN a.device -> 'recent_users' ELSE '[]' END) u"
    "     WHERE lower(u ->> 'email') LIKE $11)"
    "   OR EXISTS (SELECT 1 FROM checkouts c JOIN people p ON p.tenant_id = c.tenant_id"
    "     AND p.person_id = c.person_id WHERE c.tenant_id = a.tenant_id"
    "     AND c.asset_id = a.asset_id AND c.checked_in_at IS NULL"
    "     AND (p.email_norm LIKE $11 OR lower(p.display_name) LIKE $11)))"
    " AND ($12::boolean IS NULL OR a.manual = $12)"
    " AND ($13::uuid IS NULL OR a.asset_id > $13)"
    " AND ($15::text IS NULL OR a.google_status = $15)"
    " AND ($18::boolean IS NULL OR $18 = EXISTS (SELECT 1 FROM checkouts c JOIN people p"
    "   ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id"
    "   WHERE c.tenant_id = a.tenant_id AND c.asset_id = a.asset_id AND c.checked_in_at IS NULL"
    "   AND jsonb_typeof(a.device -> 'recent_users') = 'array'"
    "   AND lower(a.device -> 'recent_users' -> 0 ->> 'email') <> p.email_norm))"
    " AND ($16::date IS NULL OR (a.in_google"
    "   AND coalesce(a.last_sync, '-infinity'::timestamptz) < $16::date))"
    " ORDER BY a.asset_id LIMIT $14::int"};

static const struct db_stmt st_get = {"assets_get",
                                      "SELECT api_asset_json(a)::text, a.version::text "
                                      "FROM assets a "
                                      "WHERE a.tenant_id = $1 AND a.asset_id = $2::uuid"};

static const struct db_stmt st_by_serial = {
    "assets_by_serial", "SELECT coalesce(json_agg(api_asset_json(a) ORDER BY a.asset_id), "
                        "'[]')::text FROM assets a WHERE a.tenant_id = $1 "
                        "AND a.serial_number = $2"};

/* The shown tag (Panel's, else Google's annotatedAssetId); when Google repeats a tag on
 * several devices, a Panel tag wins, then the oldest asset. */
static const struct db_stmt st_by_tag = {
    "assets_by_tag", "SELECT api_asset_json(a)::text, a.version::text FROM assets a"
                     " WHERE a.tenant_id = $1"
                     " AND coalesce(a.asset_tag, a.google_asset_tag) = $2"
                     " ORDER BY a.asset_tag IS NULL, a.created_at, a.asset_id LIMIT 1"};

static const struct db_stmt st_lock = {
    "assets_lock",
    "SELECT a.manual, a.lifecycle, EXISTS (SELECT 1 FROM checkouts c WHERE c.tenant_id = "
    "a.tenant_id AND c.asset_id = a.asset_id AND c.checked_in_at IS NULL), a.version::text "
    "FROM assets a WHERE a.tenant_id = $1 AND a.asset_id = $2::uuid FOR UPDATE"};

static const struct db_stmt st_create = {
    "assets_create",
    "INSERT INTO assets (tenant_id, asset_tag, serial_number, model, lifecycle, "
    " lifecycle_changed_by, lifecycle_changed_at, org_unit_path, device, manual, in_google, "
    " next_audit_due, panel_notes) VALUES ($1, $2, $3, $4, coalesce($5, 'in_storage'), $6, now(), "
    " $7, "
    " CASE WHEN $8::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('notes', $8::text) "
    " END, true, false, $9::date, $10) RETURNING asset_id::text"};

static const struct db_stmt st_update = {
    "assets_update",
    "UPDATE assets SET"
    " asset_tag = CASE WHEN $3::boolean THEN $4 ELSE asset_tag END,"
    " serial_number = CASE WHEN $5::boolean THEN $6 ELSE serial_number END,"
    " model = CASE WHEN $7::boolean THEN $8 ELSE model END,"
    " org_unit_path = CASE WHEN $9::boolean THEN $10 ELSE org_unit_path END,"
    " device = CASE WHEN NOT $11::boolean THEN device WHEN $12::text IS NULL"
    "   THEN device - 'notes' ELSE device || jsonb_build_object('notes', $12::text) END,"
    " lifecycle_changed_by = CASE WHEN $13::text IS DISTINCT FROM NULL AND $13 <> lifecycle"
    "   THEN $14 ELSE lifecycle_changed_by END,"
    " lifecycle_changed_at = CASE WHEN $13::text IS DISTINCT FROM NULL AND $13 <> lifecycle"
    "   THEN now() ELSE lifecycle_changed_at END,"
    " lifecycle = coalesce($13, lifecycle),"
    " next_audit_due = CASE WHEN $15::boolean THEN $16::date ELSE next_audit_due END,"
    " panel_notes = CASE WHEN $17::boolean THEN $18 ELSE panel_notes END,"
    " version = version + 1, updated_at = now()"
    " WHERE tenant_id = $1 AND asset_id = $2::uuid"};

static const struct db_stmt st_audit = {
    "assets_audit", "UPDATE assets SET audited_at = now(), audited_by = $3,"
                    " next_audit_due = CASE WHEN $4::boolean THEN $5::date ELSE next_audit_due END,"
                    " version = version + 1, updated_at = now()"
                    " WHERE tenant_id = $1 AND asset_id = $2::uuid"};

static const struct db_stmt st_audit_log = {
    "assets_audit_log", "INSERT INTO asset_audits (tenant_id, asset_id, audited_by, note)"
                        " VALUES ($1, $2::uuid, $3, $4)"};

static const struct db_stmt st_audits = {
    "assets_audits",
    "SELECT json_build_object('audit_id', u.audit_id, 'asset_id', u.asset_id,"
    " 'audited_at', u.audited_at, 'audited_by', u.audited_by, 'note', u.note)::text,"
    " u.audited_at::text, u.audit_id::text FROM asset_audits u"
    " WHERE u.tenant_id = $1 AND u.asset_id = $2::uuid"
    " AND ($3::timestamptz IS NULL OR (u.audited_at, u.audit_id) < ($3, $4::uuid))"
    " ORDER BY u.audited_at DESC, u.audit_id DESC LIMIT $5::int"};

static const struct db_stmt st_exists = {
    "assets_exists", "SELECT 1 FROM assets WHERE tenant_id = $1 AND asset_id = $2::uuid"};

static const struct db_stmt st_event_row = {
    "assets_event_row", "SELECT " ASSET_EVENT_JSON_SQL
                        " FROM assets a WHERE a.tenant_id = $1 AND a.asset_id = $2::uuid"};

int assets_emit(struct api_req *r, const char *asset_id, Panel__V1__AssetChangeKind kind,
                const char *const *changed)
{
    char err[256];
    int rc = -1;
    json_t *asset = NULL, *ch = json_array();
    struct outbox_batch *batch = outbox_batch_new();
    const char *p[2] = {r->principal.tenant, asset_id};
    PGresult *res = rest_exec(r, &st_event_row, 2, p), *ins = NULL;
    if (!res)
        goto out;
    if (PQntuples(res) != 1) {
        rest_not_found(r);
        goto out;
    }
    for (size_t i = 0; ch && changed && changed[i]; i++)
        json_array_append_new(ch, json_string(changed[i]));
    asset = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    if (!asset || !ch || !batch ||
        asset_event_add(batch, r->principal.tenant, NULL, asset, kind, ch, err, sizeof err)) {
        rest_error(r, 500, "internal", "cannot build the event");
        goto out;
    }
    if (outbox_batch_write(batch, db_pg(r->db), &ins, err, sizeof err))
        rest_db_error(r, ins);
    else
        rc = 0;
out:
    PQclear(ins);
    PQclear(res);
    outbox_batch_free(batch);
    json_decref(asset);
    json_decref(ch);
    return rc;
}

static void list(struct api_req *r)
{
    static const char *const allowed[] = {"serial",
                                          "asset_tag",
                                          "model",
                                          "status",
                                          "org_unit",
                                          "checked_out",
                                          "in_google",
                                          "aue_before",
                                          "audit_due_before",
                                          "q",
                                          "manual",
                                          "google_status",
                                          "last_seen_before",
                                          "swapped",
                                          "limit",
                                          "cursor",
                                          NULL};
    char msg[256], serial[PARAMS_MAX_VALUE + 1], tag[PARAMS_MAX_VALUE + 1];
    char model[PARAMS_MAX_VALUE + 1], status[32], ou[PARAMS_MAX_VALUE + 1];
    char q[PARAMS_MAX_VALUE + 1], like[PARAMS_MAX_VALUE * 2 + 4], aue[11], audit[11], lim[24];
    char mac_like[PARAMS_MAX_VALUE * 2 + 4], gstatus[64], seen[11];
    char keys[1][PARAMS_CURSOR_MAX];
    bool co = false, ing = false, man = false, has_cursor = false;
    long limit;
    int rs, rt, rm, rst, rou, rco, ring, raue, raud, rq, rman, rgs, rseen, rsw;
    bool swapped = false;
    if (rest_check_query(r, allowed) || rest_page_params(r, "assets", 1, &limit, &has_cursor, keys))
        return;
    if ((rs = params_str(r->query, "serial", serial, sizeof serial, msg, sizeof msg)) < 0 ||
        (rt = params_str(r->query, "asset_tag", tag, sizeof tag, msg, sizeof msg)) < 0 ||
        (rm = params_str(r->query, "model", model, sizeof model, msg, sizeof msg)) < 0 ||
        (rst = status_param(r->query, status, sizeof status, msg, sizeof msg)) < 0 ||
        (rou = orgunits_subtree_param(r->query, "org_unit", ou, sizeof ou, msg, sizeof msg)) < 0 ||
        (rgs = params_str(r->query, "google_status", gstatus, sizeof gstatus, msg, sizeof msg)) <
            0 ||
        (rseen = params_date(r->query, "last_seen_before", seen, msg, sizeof msg)) < 0 ||
        (rco = params_bool(r->query, "checked_out", &co, msg, sizeof msg)) < 0 ||
        (ring = params_bool(r->query, "in_google", &ing, msg, sizeof msg)) < 0 ||
        (rman = params_bool(r->query, "manual", &man, msg, sizeof msg)) < 0 ||
        (rsw = params_bool(r->query, "swapped", &swapped, msg, sizeof msg)) < 0 ||
        (raue = params_date(r->query, "aue_before", aue, msg, sizeof msg)) < 0 ||
        (raud = params_date(r->query, "audit_due_before", audit, msg, sizeof msg)) < 0 ||
        (rq = params_str(r->query, "q", q, sizeof q, msg, sizeof msg)) < 0) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    if (rq == 0 && people_like_pattern(q, like, sizeof like) != 0) {
        rest_error(r, 400, "invalid_parameter", "q is too long");
        return;
    }
    if (rq == 0) {
        /* MACs are stored as Google sends them (hex, no separators). */
        size_t o = 0;
        for (const char *c = like; *c; c++)
            if (*c != ':' && *c != '-')
                mac_like[o++] = *c;
        mac_like[o] = 0;
    }
    if (has_cursor && !ids_uuid_valid(keys[0])) {
        rest_error(r, 400, "invalid_cursor", "cursor is not valid");
        return;
    }
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[18] = {r->principal.tenant,
                         rs == 0 ? serial : NULL,
                         rt == 0 ? tag : NULL,
                         rm == 0 ? model : NULL,
                         rst == 0 ? status : NULL,
                         rou == 0 ? ou : NULL,
                         rco == 0 ? (co ? "true" : "false") : NULL,
                         ring == 0 ? (ing ? "true" : "false") : NULL,
                         raue == 0 ? aue : NULL,
                         raud == 0 ? audit : NULL,
                         rq == 0 ? like : NULL,
                         rman == 0 ? (man ? "true" : "false") : NULL,
                         has_cursor ? keys[0] : NULL,
                         lim,
                         rgs == 0 ? gstatus : NULL,
                         rseen == 0 ? seen : NULL,
                         rq == 0 && strcmp(mac_like, "%%") != 0 ? mac_like : NULL,
                         rsw == 0 ? (swapped ? "true" : "false") : NULL};
    PGresult *res = rest_exec(r, &st_list, 18, p);
    if (!res)
        return;
    rest_reply_page(r, res, limit, "assets", 1);
    PQclear(res);
}

static void get_one(struct api_req *r, const struct db_stmt *st, const char *arg, int status)
{
    const char *p[2] = {r->principal.tenant, arg};
    PGresult *res = rest_exec(r, st, 2, p);
    if (!res)
        return;
    if (st == &st_by_serial)
        rest_reply_items(r, PQgetvalue(res, 0, 0));
    else
        rest_reply_versioned_row(r, res, status);
    PQclear(res);
}

/* Fields an admin sets on an Asset; validated into text parameters. */
struct asset_fields {
    int tag, serial, model, ou, notes, lifecycle, audit, panel_notes; /* rest_field_* results */
    const char *v_tag, *v_serial, *v_model, *v_ou, *v_notes, *v_lifecycle, *v_audit, *v_panel_notes;
};

static int read_fields(struct api_req *r, json_t *body, struct asset_fields *f)
{
    if ((f->tag = rest_field_str(r, body, "asset_tag", 64, &f->v_tag)) < 0 ||
        (f->serial = rest_field_str(r, body, "serial_number", 128, &f->v_serial)) < 0 ||
        (f->model = rest_field_str(r, body, "model", 200, &f->v_model)) < 0 ||
        (f->ou = rest_field_str(r, body, "org_unit_path", 1024, &f->v_ou)) < 0 ||
        (f->notes = rest_field_str(r, body, "notes", 2000, &f->v_notes)) < 0 ||
        (f->lifecycle = rest_field_str(r, body, "lifecycle", 32, &f->v_lifecycle)) < 0 ||
        (f->audit = rest_field_time(r, body, "next_audit_due", false, &f->v_audit)) < 0 ||
        (f->panel_notes = rest_field_str(r, body, "panel_notes", 2000, &f->v_panel_notes)) < 0)
        return -1;
    if (f->lifecycle == 0 && asset_lifecycle_from_text(f->v_lifecycle) == 0) {
        rest_error(r, 422, "invalid_lifecycle",
                   "lifecycle must be in_storage, deployed, in_repair, lost_stolen or retired");
        return -1;
    }
    if (f->lifecycle == 2) {
        rest_error(r, 422, "invalid_lifecycle", "lifecycle cannot be null");
        return -1;
    }
    if (f->tag == 0 && f->v_tag[0] == 0) {
        rest_error(r, 422, "invalid_field", "asset_tag cannot be empty (use null to clear)");
        return -1;
    }
    if (f->ou == 0 && f->v_ou[0] != '/') {
        rest_error(r, 422, "invalid_field", "org_unit_path must start with /");
        return -1;
    }
    return 0;
}

static const char *const field_names[] = {"asset_tag",      "serial_number", "model",
                                          "org_unit_path",  "notes",         "lifecycle",
                                          "next_audit_due", "panel_notes",   NULL};

static void create(struct api_req *r)
{
    struct asset_fields f;
    char id[40];
    json_t *body = NULL;
    PGresult *res = NULL;
    if (rest_require_admin(r) || !(body = rest_json_body(r, field_names, false)) ||
        read_fields(r, body, &f))
        goto out;
    if (f.tag != 0 && f.serial != 0) {
        rest_error(r, 422, "missing_field",
                   "a manual asset needs an asset_tag or a "
                   "serial_number");
        goto out;
    }
    if (f.lifecycle == 0 && strcmp(f.v_lifecycle, "retired") == 0) {
        rest_error(r, 422, "invalid_lifecycle", "a new asset cannot be retired");
        goto out;
    }
    if (rest_tx(r, "BEGIN"))
        goto out;
    const char *p[10] = {r->principal.tenant,
                         f.tag == 0 ? f.v_tag : NULL,
                         f.serial == 0 ? f.v_serial : NULL,
                         f.model == 0 ? f.v_model : NULL,
                         f.lifecycle == 0 ? f.v_lifecycle : NULL,
                         r->principal.actor,
                         f.ou == 0 ? f.v_ou : NULL,
                         f.notes == 0 ? f.v_notes : NULL,
                         f.audit == 0 ? f.v_audit : NULL,
                         f.panel_notes == 0 ? f.v_panel_notes : NULL};
    res = rest_exec(r, &st_create, 10, p);
    if (!res)
        goto out;
    snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
    static const char *const changed[] = {"created", NULL};
    if (assets_emit(r, id, PB_ASSET_CHANGE_KIND_CREATED, changed) || rest_tx(r, "COMMIT"))
        goto out;
    get_one(r, &st_get, id, 201);
out:
    PQclear(res);
    json_decref(body);
}

/* Lock the asset row; 0 with its state, or -1 with the reply filled (404, or 412/428 when
 * If-Match does not name the version locked: rest_check_if_match). */
static int lock_asset(struct api_req *r, const char *id, bool *manual, char *lifecycle,
                      size_t lclen, bool *checked_out)
{
    const char *p[2] = {r->principal.tenant, id};
    PGresult *res = rest_exec(r, &st_lock, 2, p);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        rest_not_found(r);
        return -1;
    }
    *manual = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    snprintf(lifecycle, lclen, "%s", PQgetvalue(res, 0, 1));
    *checked_out = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    int rc = rest_check_if_match(r, PQgetvalue(res, 0, 3));
    PQclear(res);
    return rc;
}

/* PATCH /v1/assets/{id}; retire is the same with lifecycle=retired. */
static void update(struct api_req *r, const char *id, bool retire)
{
    struct asset_fields f;
    json_t *body = NULL;
    PGresult *res = NULL;
    bool manual, out_now;
    char lifecycle[32];
    const char *changed[9];
    int nchanged = 0;
    if (rest_require_admin(r) ||
        !(body = rest_json_body(r, retire ? (const char *const[]){NULL} : field_names, retire)) ||
        read_fields(r, body, &f))
        goto out;
    if (retire) {
        f.lifecycle = 0;
        f.v_lifecycle = "retired";
    }
    if (rest_tx(r, "BEGIN") || lock_asset(r, id, &manual, lifecycle, sizeof lifecycle, &out_now))
        goto out;
    if (!manual && (f.serial != 1 || f.model != 1 || f.ou != 1 || f.notes != 1)) {
        rest_error(r, 422, "read_only_field",
                   "serial_number, model, org_unit_path and notes come from Google for this "
                   "Chromebook and cannot be edited here");
        goto out;
    }
    bool to_retired = f.lifecycle == 0 && strcmp(f.v_lifecycle, "retired") == 0 &&
                      strcmp(lifecycle, "retired") != 0;
    if (to_retired && out_now) {
        rest_error(r, 409, "checked_out", "check the asset in before retiring it");
        goto out;
    }
    if (retire && strcmp(lifecycle, "retired") == 0) {
        rest_error(r, 409, "already_retired", "the asset is already retired");
        goto out;
    }
    const char *p[18] = {r->principal.tenant,
                         id,
                         f.tag != 1 ? "true" : "false",
                         f.tag == 0 ? f.v_tag : NULL,
                         f.serial != 1 ? "true" : "false",
                         f.serial == 0 ? f.v_serial : NULL,
                         f.model != 1 ? "true" : "false",
                         f.model == 0 ? f.v_model : NULL,
                         f.ou != 1 ? "true" : "false",
                         f.ou == 0 ? f.v_ou : NULL,
                         f.notes != 1 ? "true" : "false",
                         f.notes == 0 ? f.v_notes : NULL,
                         f.lifecycle == 0 ? f.v_lifecycle : NULL,
                         r->principal.actor,
                         f.audit != 1 ? "true" : "false",
                         f.audit == 0 ? f.v_audit : NULL,
                         f.panel_notes != 1 ? "true" : "false",
                         f.panel_notes == 0 ? f.v_panel_notes : NULL};
    res = rest_exec(r, &st_update, 18, p);
    if (!res)
        goto out;
    int results[] = {f.tag, f.serial, f.model, f.ou, f.notes, f.lifecycle, f.audit, f.panel_notes};
    for (int i = 0; i < 8; i++)
        if (results[i] != 1)
            changed[nchanged++] = field_names[i];
    changed[nchanged] = NULL;
    Panel__V1__AssetChangeKind kind = PB_ASSET_CHANGE_KIND_UPDATED;
    if (to_retired)
        kind = PB_ASSET_CHANGE_KIND_RETIRED;
    else if (f.lifecycle == 0 && strcmp(f.v_lifecycle, lifecycle) != 0)
        kind = PB_ASSET_CHANGE_KIND_LIFECYCLE;
    if (assets_emit(r, id, kind, changed) || rest_tx(r, "COMMIT"))
        goto out;
    get_one(r, &st_get, id, 200);
out:
    PQclear(res);
    json_decref(body);
}

static void audit(struct api_req *r, const char *id)
{
    static const char *const allowed[] = {"next_audit_due", "note", NULL};
    json_t *body = NULL;
    PGresult *res = NULL, *logged = NULL;
    const char *due = NULL, *note = NULL;
    bool manual, out_now;
    char lifecycle[32];
    int rd;
    if (rest_require_admin(r) || !(body = rest_json_body(r, allowed, true)) ||
        (rd = rest_field_time(r, body, "next_audit_due", false, &due)) < 0 ||
        rest_field_str(r, body, "note", 2000, &note) < 0)
        goto out;
    if (rest_tx(r, "BEGIN") || lock_asset(r, id, &manual, lifecycle, sizeof lifecycle, &out_now))
        goto out;
    const char *p[5] = {r->principal.tenant, id, r->principal.actor, rd != 1 ? "true" : "false",
                        rd == 0 ? due : NULL};
    const char *pl[4] = {r->principal.tenant, id, r->principal.actor, note};
    res = rest_exec(r, &st_audit, 5, p);
    static const char *const changed[] = {"audited_at", "next_audit_due", NULL};
    if (!res || !(logged = rest_exec(r, &st_audit_log, 4, pl)) ||
        assets_emit(r, id, PB_ASSET_CHANGE_KIND_UPDATED, changed) || rest_tx(r, "COMMIT"))
        goto out;
    get_one(r, &st_get, id, 200);
out:
    PQclear(logged);
    PQclear(res);
    json_decref(body);
}

/* GET /v1/assets/{id}/audits: newest first, keyset pages. */
static void list_audits(struct api_req *r, const char *id)
{
    static const char *const allowed[] = {"limit", "cursor", NULL};
    char keys[2][PARAMS_CURSOR_MAX], lim[24];
    bool has_cursor = false;
    long limit;
    PGresult *res = NULL;
    if (rest_check_query(r, allowed) || rest_page_params(r, "audits", 2, &limit, &has_cursor, keys))
        return;
    if (has_cursor && !ids_uuid_valid(keys[1])) {
        rest_error(r, 400, "invalid_cursor", "cursor is not valid");
        return;
    }
    const char *pe[2] = {r->principal.tenant, id};
    if (!(res = rest_exec(r, &st_exists, 2, pe)))
        return;
    if (PQntuples(res) != 1) {
        rest_not_found(r);
        goto out;
    }
    PQclear(res);
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[5] = {r->principal.tenant, id, has_cursor ? keys[0] : NULL,
                        has_cursor ? keys[1] : NULL, lim};
    if (!(res = rest_exec(r, &st_audits, 5, p)))
        return;
    rest_reply_page(r, res, limit, "audits", 2);
out:
    PQclear(res);
}

int assets_list(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    list(r);
    return r->status;
}

int assets_create(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    create(r);
    return r->status;
}

int assets_by_serial(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    if (!rest_check_query(r, NULL))
        get_one(r, &st_by_serial, rest_param(r, "serial"), 200);
    return r->status;
}

int assets_by_tag(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    if (!rest_check_query(r, NULL))
        get_one(r, &st_by_tag, rest_param(r, "tag"), 200);
    return r->status;
}

int assets_get(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id && !rest_check_query(r, NULL))
        get_one(r, &st_get, id, 200);
    return r->status;
}

int assets_update(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        update(r, id, false);
    return r->status;
}

int assets_retire(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        update(r, id, true);
    return r->status;
}

int assets_audit(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        audit(r, id);
    return r->status;
}

int assets_audits(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        list_audits(r, id);
    return r->status;
}

int assets_checkouts(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        checkouts_list_for(r, "asset", id);
    return r->status;
}
