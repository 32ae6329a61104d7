/* checkouts: see checkouts.h. Each change locks the Asset row, so two admins checking the
 * same Chromebook out at once get one 201 and one 409 (the unique index on open checkouts
 * backs this up). */
#include "checkouts.h"

#include "asset_event.h"
#include "assets.h"
#include "ids.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BULK_MAX_ITEMS 100

static const struct db_stmt st_list = {
    "checkouts_list",
    "SELECT api_checkout_json(c)::text, c.checked_out_at::text, c.checkout_id::text"
    " FROM checkouts c WHERE c.tenant_id = $1"
    " AND ($2::uuid IS NULL OR c.person_id = $2)"
    " AND ($3::uuid IS NULL OR c.asset_id = $3)"
    " AND ($4::boolean IS NULL OR (c.checked_in_at IS NULL) = $4)"
    " AND ($5::boolean IS NULL OR $5 = (c.checked_in_at IS NULL AND c.due_at IS NOT NULL"
    "   AND c.due_at < now()))"
    " AND ($6::timestamptz IS NULL OR (c.checked_out_at, c.checkout_id) < ($6, $7::uuid))"
    " ORDER BY c.checked_out_at DESC, c.checkout_id DESC LIMIT $8::int"};

static const struct db_stmt st_person_exists = {
    "checkouts_person_exists",
    "SELECT 1 FROM people WHERE tenant_id = $1 AND person_id = $2::uuid"};
static const struct db_stmt st_asset_exists = {
    "checkouts_asset_exists", "SELECT 1 FROM assets WHERE tenant_id = $1 AND asset_id = $2::uuid"};

static const struct db_stmt st_lock_asset = {
    "checkouts_lock_asset",
    "SELECT a.lifecycle, (SELECT c.checkout_id::text FROM checkouts c WHERE c.tenant_id = "
    "a.tenant_id AND c.asset_id = a.asset_id AND c.checked_in_at IS NULL), a.google_status "
    "FROM assets a WHERE a.tenant_id = $1 AND a.asset_id = $2::uuid FOR UPDATE"};
static const struct db_stmt st_lock_person = {
    "checkouts_lock_person", "SELECT removed_at IS NOT NULL FROM people "
                             "WHERE tenant_id = $1 AND person_id = $2::uuid FOR SHARE"};
static const struct db_stmt st_insert = {
    "checkouts_insert",
    "INSERT INTO checkouts (tenant_id, asset_id, person_id, checked_out_by, due_at, note) "
    "VALUES ($1, $2::uuid, $3::uuid, $4, $5::timestamptz, $6) RETURNING checkout_id::text"};
static const struct db_stmt st_checkin = {
    "checkouts_checkin",
    "UPDATE checkouts SET checked_in_at = now(), checked_in_by = $3, condition = $4, "
    "checkin_note = $5 WHERE tenant_id = $1 AND asset_id = $2::uuid AND checked_in_at IS NULL "
    "RETURNING checkout_id::text"};
static const struct db_stmt st_bump = {
    "checkouts_bump_asset", "UPDATE assets SET version = version + 1, updated_at = now() "
                            "WHERE tenant_id = $1 AND asset_id = $2::uuid"};
static const struct db_stmt st_get_many = {
    "checkouts_get_many",
    "SELECT coalesce(json_agg(api_checkout_json(c) ORDER BY k.ord), '[]')::text"
    " FROM unnest($2::uuid[]) WITH ORDINALITY AS k(id, ord)"
    " JOIN checkouts c ON c.tenant_id = $1 AND c.checkout_id = k.id"};

struct item {
    const char *asset_id, *person_id, *due_at, *note, *condition;
    int status; /* 0 = fine */
    const char *code;
    char message[200];
    char checkout_id[40];
};

static void item_fail(struct item *it, int status, const char *code, const char *message)
{
    it->status = status;
    it->code = code;
    snprintf(it->message, sizeof it->message, "%s", message);
}

/* One checkout or check-in inside the caller's transaction. Checks only (no writes) when
 * write is false. 0 done or checked, 1 the item failed (it filled), -1 fatal (reply
 * filled). */
static int apply_one(struct api_req *r, struct item *it, bool checkout, bool write)
{
    const char *pa[2] = {r->principal.tenant, it->asset_id};
    PGresult *res = NULL;
    int rc = -1;
    if (!ids_uuid_valid(it->asset_id)) {
        item_fail(it, 404, "asset_not_found", "no such asset");
        return 1;
    }
    if (!(res = rest_exec(r, &st_lock_asset, 2, pa)))
        return -1;
    if (PQntuples(res) != 1) {
        item_fail(it, 404, "asset_not_found", "no such asset");
        rc = 1;
        goto out;
    }
    bool open = !PQgetisnull(res, 0, 1);
    bool retired = strcmp(PQgetvalue(res, 0, 0), "retired") == 0;
    bool lost = strcmp(PQgetvalue(res, 0, 0), "lost_stolen") == 0;
    char google_status[64];
    snprintf(google_status, sizeof google_status, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    res = NULL;
    if (checkout && asset_status_blocks_checkout(google_status)) {
        /* whatever its lifecycle: Google says it is disabled (lost or stolen) or retired */
        char m[200];
        snprintf(m, sizeof m, "Google reports this Chromebook as %s; it cannot be checked out",
                 google_status);
        item_fail(it, 409, "device_unavailable", m);
        rc = 1;
        goto out;
    }
    if (checkout && lost) {
        item_fail(it, 409, "asset_lost_stolen", "a lost or stolen asset cannot be checked out");
        rc = 1;
        goto out;
    }
    if (checkout) {
        if (open) {
            item_fail(it, 409, "already_checked_out",
                      "the asset is already checked out; check it in first");
            rc = 1;
            goto out;
        }
        if (retired) {
            item_fail(it, 409, "asset_retired", "a retired asset cannot be checked out");
            rc = 1;
            goto out;
        }
        const char *pp[2] = {r->principal.tenant, it->person_id};
        if (!(res = rest_exec(r, &st_lock_person, 2, pp)))
            goto out;
        if (PQntuples(res) != 1) {
            item_fail(it, 404, "person_not_found", "no such person");
            rc = 1;
            goto out;
        }
        if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
            item_fail(it, 409, "person_removed",
                      "the person was removed from the directory and cannot receive assets");
            rc = 1;
            goto out;
        }
        PQclear(res);
        res = NULL;
    } else if (!open) {
        item_fail(it, 409, "not_checked_out", "the asset is not checked out");
        rc = 1;
        goto out;
    }
    if (!write) {
        rc = 0;
        goto out;
    }
    if (checkout) {
        const char *pi[6] = {r->principal.tenant, it->asset_id, it->person_id,
                             r->principal.actor,  it->due_at,   it->note};
        res = rest_exec(r, &st_insert, 6, pi);
    } else {
        const char *pi[5] = {r->principal.tenant, it->asset_id, r->principal.actor, it->condition,
                             it->note};
        res = rest_exec(r, &st_checkin, 5, pi);
    }
    if (!res)
        goto out;
    snprintf(it->checkout_id, sizeof it->checkout_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    static const char *const changed[] = {"current_checkout", NULL};
    if (!(res = rest_exec(r, &st_bump, 2, pa)) ||
        assets_emit(r, it->asset_id,
                    checkout ? PB_ASSET_CHANGE_KIND_CHECKED_OUT : PB_ASSET_CHANGE_KIND_CHECKED_IN,
                    changed))
        goto out;
    rc = 0;
out:
    PQclear(res);
    return rc;
}

/* Read one item's fields from obj; -1 with the reply filled on bad input. */
static int read_item(struct api_req *r, json_t *obj, struct item *it, bool checkout)
{
    int rp = 1, rd = 1, rn = 1, rc = 1;
    memset(it, 0, sizeof *it);
    if (checkout) {
        if ((rp = rest_field_str(r, obj, "person_id", 64, &it->person_id)) < 0 ||
            (rd = rest_field_time(r, obj, "due_at", true, &it->due_at)) < 0)
            return -1;
        if (rp != 0) {
            rest_error(r, 400, "missing_field", "person_id is required");
            return -1;
        }
        if (!ids_uuid_valid(it->person_id)) {
            rest_error(r, 400, "invalid_field", "person_id must be a UUID");
            return -1;
        }
    } else if ((rc = rest_field_str(r, obj, "condition", 200, &it->condition)) < 0) {
        return -1;
    }
    if ((rn = rest_field_str(r, obj, "note", 2000, &it->note)) < 0)
        return -1;
    if (rd != 0)
        it->due_at = NULL;
    if (rn != 0)
        it->note = NULL;
    if (rc != 0)
        it->condition = NULL;
    return 0;
}

/* Reply with the checkouts of items (in order) with status. */
static void reply_checkouts(struct api_req *r, struct item *items, int n, int status, bool one)
{
    struct buf ids;
    buf_init(&ids, 0);
    int bad = buf_appends(&ids, "{");
    for (int i = 0; i < n; i++)
        bad |= buf_appendf(&ids, "%s%s", i ? "," : "", items[i].checkout_id);
    bad |= buf_appends(&ids, "}");
    const char *p[2] = {r->principal.tenant, ids.data};
    PGresult *res = bad ? NULL : rest_exec(r, &st_get_many, 2, p);
    if (res) {
        struct buf out;
        buf_init(&out, 0);
        const char *arr = PQgetvalue(res, 0, 0);
        if (one) {
            /* The array holds exactly one object: strip the brackets. */
            size_t len = strlen(arr);
            if (len > 2 && buf_append(&out, arr + 1, len - 2) == 0)
                rest_reply_text(r, status, out.data);
            else
                rest_error(r, 500, "internal", "checkout vanished");
        } else if (buf_appendf(&out, "{\"items\":%s}", arr) == 0) {
            rest_reply_text(r, status, out.data);
        }
        buf_free(&out);
    }
    PQclear(res);
    buf_free(&ids);
}

/* POST /v1/assets/{id}/checkout or /checkin of one Asset. */
static void asset_action(struct api_req *r, const char *asset_id, bool checkout)
{
    static const char *const co_fields[] = {"person_id", "due_at", "note", NULL};
    static const char *const ci_fields[] = {"condition", "note", NULL};
    struct item it;
    json_t *body = NULL;
    if (rest_require_admin(r) ||
        !(body = rest_json_body(r, checkout ? co_fields : ci_fields, !checkout)) ||
        read_item(r, body, &it, checkout))
        goto out;
    it.asset_id = asset_id;
    if (rest_tx(r, "BEGIN"))
        goto out;
    int rc = apply_one(r, &it, checkout, true);
    if (rc < 0)
        goto out;
    if (rc == 1) {
        rest_error(r, it.status, it.code, "%s", it.message);
        goto out;
    }
    if (rest_tx(r, "COMMIT"))
        goto out;
    reply_checkouts(r, &it, 1, checkout ? 201 : 200, true);
out:
    json_decref(body);
}

static void bulk(struct api_req *r, bool checkout)
{
    static const char *const top[] = {"items", NULL};
    static const char *const co_fields[] = {"asset_id", "person_id", "due_at", "note", NULL};
    static const char *const ci_fields[] = {"asset_id", "condition", "note", NULL};
    struct item *items = NULL;
    json_t *body = NULL;
    struct buf out;
    buf_init(&out, 0);
    if (rest_require_admin(r) || !(body = rest_json_body(r, top, false)))
        goto out;
    json_t *arr = json_object_get(body, "items");
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > BULK_MAX_ITEMS) {
        rest_error(r, 400, "invalid_field", "items must be an array of 1 to %d objects",
                   BULK_MAX_ITEMS);
        goto out;
    }
    items = calloc(n, sizeof *items);
    if (!items) {
        rest_error(r, 500, "internal", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *k;
        json_t *v;
        if (!json_is_object(o)) {
            rest_error(r, 400, "invalid_field", "items[%zu] must be an object", i);
            goto out;
        }
        json_object_foreach(o, k, v)
        {
            bool ok = false;
            for (const char *const *f = checkout ? co_fields : ci_fields; *f; f++)
                ok |= strcmp(*f, k) == 0;
            if (!ok) {
                rest_error(r, 400, "unknown_field", "items[%zu]: unknown field '%.60s'", i, k);
                goto out;
            }
        }
        const char *asset = NULL;
        if (read_item(r, o, &items[i], checkout) ||
            rest_field_str(r, o, "asset_id", 64, &asset) < 0)
            goto out;
        if (!asset) {
            rest_error(r, 400, "missing_field", "items[%zu].asset_id is required", i);
            goto out;
        }
        items[i].asset_id = asset;
    }
    if (rest_tx(r, "BEGIN"))
        goto out;
    int failed = 0, all_404 = 1;
    for (size_t i = 0; i < n; i++) {
        int rc = apply_one(r, &items[i], checkout, failed == 0);
        if (rc < 0)
            goto out;
        if (rc == 1) {
            failed++;
            all_404 &= items[i].status == 404;
        }
    }
    if (failed) {
        if (rest_tx(r, "ROLLBACK"))
            goto out;
        int bad = buf_appendf(&out,
                              "{\"error\":{\"code\":\"bulk_rejected\",\"message\":"
                              "\"%d of %zu items failed; nothing was changed\","
                              "\"items\":[",
                              failed, n);
        for (size_t i = 0; i < n; i++) {
            struct item *it = &items[i];
            bad |= buf_appendf(&out, "%s{\"index\":%zu,\"asset_id\":", i ? "," : "", i);
            bad |= buf_append_json_string(&out, it->asset_id);
            if (it->status)
                bad |= buf_appendf(&out, ",\"status\":%d,\"code\":\"%s\",\"message\":", it->status,
                                   it->code) ||
                       buf_append_json_string(&out, it->message);
            else
                bad |= buf_appends(&out, ",\"status\":200,\"code\":\"ok\"");
            bad |= buf_appends(&out, "}");
        }
        bad |= buf_appends(&out, "]}}");
        if (bad)
            rest_error(r, 500, "internal", "out of memory");
        else
            rest_reply_text(r, all_404 ? 404 : 409, out.data);
        goto out;
    }
    if (rest_tx(r, "COMMIT"))
        goto out;
    reply_checkouts(r, items, (int)n, checkout ? 201 : 200, false);
out:
    buf_free(&out);
    free(items);
    json_decref(body);
}

static void list(struct api_req *r, const char *person, const char *asset)
{
    static const char *const all[] = {"person_id", "asset_id", "open", "overdue",
                                      "limit",     "cursor",   NULL};
    static const char *const scoped[] = {"open", "overdue", "limit", "cursor", NULL};
    char msg[256], pid[64], aid[64], lim[24];
    char keys[2][PARAMS_CURSOR_MAX];
    bool open = false, overdue = false, has_cursor = false;
    long limit;
    int ro, rov, rp = 1, ra = 1;
    bool top = !person && !asset;
    if (rest_check_query(r, top ? all : scoped) ||
        rest_page_params(r, "checkouts", 2, &limit, &has_cursor, keys))
        return;
    if ((ro = params_bool(r->query, "open", &open, msg, sizeof msg)) < 0 ||
        (rov = params_bool(r->query, "overdue", &overdue, msg, sizeof msg)) < 0 ||
        (top && (rp = params_str(r->query, "person_id", pid, sizeof pid, msg, sizeof msg)) < 0) ||
        (top && (ra = params_str(r->query, "asset_id", aid, sizeof aid, msg, sizeof msg)) < 0)) {
        rest_error(r, 400, "invalid_parameter", "%s", msg);
        return;
    }
    if ((rp == 0 && !ids_uuid_valid(pid)) || (ra == 0 && !ids_uuid_valid(aid))) {
        rest_error(r, 400, "invalid_parameter", "person_id and asset_id must be UUIDs");
        return;
    }
    if (has_cursor && !ids_uuid_valid(keys[1])) {
        rest_error(r, 400, "invalid_cursor", "cursor is not valid");
        return;
    }
    snprintf(lim, sizeof lim, "%ld", limit + 1);
    const char *p[8] = {r->principal.tenant,
                        person    ? person
                        : rp == 0 ? pid
                                  : NULL,
                        asset     ? asset
                        : ra == 0 ? aid
                                  : NULL,
                        ro == 0 ? (open ? "true" : "false") : NULL,
                        rov == 0 ? (overdue ? "true" : "false") : NULL,
                        has_cursor ? keys[0] : NULL,
                        has_cursor ? keys[1] : NULL,
                        lim};
    PGresult *res = rest_exec(r, &st_list, 8, p);
    if (!res)
        return;
    rest_reply_page(r, res, limit, "checkouts", 2);
    PQclear(res);
}

void checkouts_list_for(struct api_req *r, const char *kind, const char *id)
{
    bool person = strcmp(kind, "person") == 0;
    const char *p[2] = {r->principal.tenant, id};
    PGresult *res = rest_exec(r, person ? &st_person_exists : &st_asset_exists, 2, p);
    if (!res)
        return;
    if (PQntuples(res) != 1)
        rest_not_found(r);
    else
        list(r, person ? id : NULL, person ? NULL : id);
    PQclear(res);
}

int checkouts_list(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    list(r, NULL, NULL);
    return r->status;
}

int checkouts_bulk(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    bulk(r, true);
    return r->status;
}

int checkins_bulk(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    bulk(r, false);
    return r->status;
}

int checkouts_checkout(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        asset_action(r, id, true);
    return r->status;
}

int checkouts_checkin(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *id = rest_uuid_param(r, "id");
    if (id)
        asset_action(r, id, false);
    return r->status;
}
