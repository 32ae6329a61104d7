/* exports: see exports.h. */
#include "exports.h"

#include "httpd.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One export: its file name in the URL and the query COPY runs; %s is the district's id as
 * an escaped SQL literal (COPY takes no parameters). api_csv_text (migration 0014) defuses
 * spreadsheet formulas in text a directory or an admin wrote. */
struct export_kind {
    const char *file;
    const char *query;
};

static const struct export_kind kinds[] = {
    {"people.csv",
     "SELECT p.person_id, api_csv_text(p.email_norm) AS email,"
     " api_csv_text(p.display_name) AS display_name, api_csv_text(p.given_name) AS given_name,"
     " api_csv_text(p.family_name) AS family_name,"
     " api_csv_text(p.org_unit_path) AS org_unit_path,"
     " CASE WHEN p.removed_at IS NOT NULL THEN 'removed' WHEN p.suspended THEN 'suspended'"
     "   ELSE 'active' END AS status, array_to_string(p.sources, ';') AS clouds,"
     " api_csv_text(p.fields ->> 'job_title') AS job_title,"
     " api_csv_text(p.fields ->> 'department') AS department,"
     " api_csv_text(p.fields ->> 'employee_id') AS employee_id,"
     " CASE WHEN jsonb_typeof(p.fields -> 'graduation_year') = 'number'"
     "   THEN p.fields ->> 'graduation_year' END AS graduation_year,"
     " p.created_at, p.updated_at, p.removed_at"
     " FROM people p WHERE p.tenant_id = %s ORDER BY lower(p.display_name), p.person_id"},
    {"assets.csv",
     "SELECT a.asset_id, api_csv_text(a.asset_tag) AS asset_tag,"
     " api_csv_text(a.serial_number) AS serial_number, api_csv_text(a.model) AS model,"
     " a.google_status, a.lifecycle, api_csv_text(a.org_unit_path) AS org_unit_path,"
     " a.device ->> 'mac_address' AS mac_address, a.device ->> 'os_version' AS os_version,"
     " a.auto_update_expiry, a.last_sync,"
     " api_csv_text(a.device ->> 'annotated_user') AS annotated_user,"
     " api_csv_text(CASE jsonb_typeof(a.device -> 'recent_users') WHEN 'array'"
     "   THEN a.device -> 'recent_users' -> 0 ->> 'email' END) AS last_used_by,"
     " api_csv_text(p.display_name) AS checked_out_to, api_csv_text(p.email_norm)"
     "   AS checked_out_to_email, c.checked_out_at, c.due_at,"
     " a.audited_at, api_csv_text(a.audited_by) AS audited_by, a.next_audit_due,"
     " a.in_google, a.manual, api_csv_text(a.device ->> 'notes') AS notes,"
     " api_csv_text(a.panel_notes) AS panel_notes"
     " FROM assets a LEFT JOIN checkouts c ON c.tenant_id = a.tenant_id"
     "   AND c.asset_id = a.asset_id AND c.checked_in_at IS NULL"
     " LEFT JOIN people p ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id"
     " WHERE a.tenant_id = %s ORDER BY a.asset_id"},
    {"checkouts.csv",
     "SELECT c.checkout_id, api_csv_text(a.asset_tag) AS asset_tag,"
     " api_csv_text(a.serial_number) AS serial_number, api_csv_text(p.display_name)"
     "   AS person_name, api_csv_text(p.email_norm) AS person_email, c.checked_out_at,"
     " api_csv_text(c.checked_out_by) AS checked_out_by, c.due_at, c.checked_in_at,"
     " api_csv_text(c.checked_in_by) AS checked_in_by, api_csv_text(c.condition) AS condition,"
     " api_csv_text(c.note) AS note, api_csv_text(c.checkin_note) AS checkin_note"
     " FROM checkouts c JOIN assets a ON a.tenant_id = c.tenant_id AND a.asset_id = c.asset_id"
     " JOIN people p ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id"
     " WHERE c.tenant_id = %s ORDER BY c.checked_out_at DESC, c.checkout_id DESC"},
    {"overdue.csv",
     "SELECT c.checkout_id, api_csv_text(a.asset_tag) AS asset_tag,"
     " api_csv_text(a.serial_number) AS serial_number, api_csv_text(p.display_name)"
     "   AS person_name, api_csv_text(p.email_norm) AS person_email,"
     " api_csv_text(p.org_unit_path) AS person_org_unit, c.checked_out_at, c.due_at,"
     " date_part('day', now() - c.due_at)::int AS days_overdue,"
     " api_csv_text(c.checked_out_by) AS checked_out_by, api_csv_text(c.note) AS note"
     " FROM checkouts c JOIN assets a ON a.tenant_id = c.tenant_id AND a.asset_id = c.asset_id"
     " JOIN people p ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id"
     " WHERE c.tenant_id = %s AND c.checked_in_at IS NULL AND c.due_at < now()"
     " ORDER BY c.due_at, c.checkout_id"},
};

static const struct db_stmt st_zone = {"exports_zone",
                                       "SELECT time_zone FROM tenants WHERE tenant_id = $1"};

/* Abandon a COPY the client no longer reads: cancel it, drain what is in flight, so the
 * connection goes back to the pool idle. */
static void copy_abandon(PGconn *db)
{
    char err[256];
    PGcancel *cancel = PQgetCancel(db);
    if (cancel) {
        if (!PQcancel(cancel, err, sizeof err))
            log_warn("export: cannot cancel the COPY: %s", err);
        PQfreeCancel(cancel);
    }
    char *row = NULL;
    while (PQgetCopyData(db, &row, 0) > 0)
        PQfreemem(row);
}

/* COPY rows to the client as chunks. 0 when every row went out; -1 when the database or
 * the client failed (the reply's end is then not sent: the client sees a broken body). */
static int stream_rows(struct api_req *r, const char *tenant)
{
    struct buf chunk;
    char *row = NULL;
    int n, rc = -1;
    buf_init(&chunk, 2 * EXPORTS_CHUNK + 1024 * 1024); /* one chunk and a row */
    while ((n = PQgetCopyData(db_pg(r->db), &row, 0)) > 0) {
        int bad = buf_append(&chunk, row, (size_t)n);
        PQfreemem(row);
        if (bad)
            goto out;
        if (chunk.len >= EXPORTS_CHUNK) {
            if (mg_send_chunk(r->conn, chunk.data, (unsigned int)chunk.len) < 0) {
                log_info_t(tenant, NULL, "export: the client went away");
                copy_abandon(db_pg(r->db));
                goto out;
            }
            buf_reset(&chunk);
        }
    }
    if (n == -2) {
        log_warn_t(tenant, NULL, "export: COPY failed: %s", PQerrorMessage(db_pg(r->db)));
        goto out;
    }
    if (chunk.len && mg_send_chunk(r->conn, chunk.data, (unsigned int)chunk.len) < 0)
        goto out;
    rc = 0;
out:
    buf_free(&chunk);
    return rc;
}

static void export_one(struct api_req *r, const struct export_kind *k)
{
    char *tenant_lit = NULL, *zone_lit = NULL;
    struct buf sql, set;
    PGresult *res = NULL;
    buf_init(&sql, 0);
    buf_init(&set, 0);
    if (rest_check_query(r, NULL))
        goto out;
    const char *p[1] = {r->principal.tenant};
    if (!(res = rest_exec(r, &st_zone, 1, p)))
        goto out;
    const char *zone = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "UTC";
    tenant_lit = PQescapeLiteral(db_pg(r->db), r->principal.tenant, strlen(r->principal.tenant));
    zone_lit = PQescapeLiteral(db_pg(r->db), zone, strlen(zone));
    if (!tenant_lit || !zone_lit || buf_appends(&sql, "COPY (") ||
        buf_appendf(&sql, k->query, tenant_lit) ||
        buf_appends(&sql, ") TO STDOUT WITH (FORMAT csv, HEADER)") ||
        buf_appendf(&set, "SET LOCAL TimeZone = %s", zone_lit)) {
        rest_error(r, 500, "internal", "out of memory");
        goto out;
    }
    /* Timestamps come out in the district's zone: the setting lasts for this transaction. */
    if (rest_tx(r, "BEGIN READ ONLY") || rest_tx(r, set.data))
        goto out;
    PQclear(res);
    res = PQexec(db_pg(r->db), sql.data);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rest_db_error(r, res);
        goto out;
    }
    /* From here the reply is ours to write: headers, then chunks. Connection: close, so a
     * reply cut short by a failure is never taken for a whole one on a kept-alive
     * connection. */
    mg_printf(r->conn,
              "HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\n"
              "Content-Disposition: attachment; filename=\"%s-%s\"\r\n"
              "Transfer-Encoding: chunked\r\nCache-Control: no-store\r\n"
              "X-Content-Type-Options: nosniff\r\nConnection: close\r\n%s: %s\r\n\r\n",
              r->principal.tenant, k->file, HTTPD_REQUEST_HEADER, r->request_id);
    r->status = 200;
    r->replied = true;
    if (stream_rows(r, r->principal.tenant) == 0)
        mg_send_chunk(r->conn, "", 0);
    /* The COPY's own result; rest_serve rolls back the read-only transaction. */
    PQclear(res);
    while ((res = PQgetResult(db_pg(r->db))) != NULL)
        PQclear(res);
out:
    PQclear(res);
    PQfreemem(tenant_lit);
    PQfreemem(zone_lit);
    buf_free(&sql);
    buf_free(&set);
}

int exports_get(struct router_req *q)
{
    struct api_req *r = rest_req(q);
    const char *file = rest_param(r, "file");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(file, kinds[i].file) == 0) {
            export_one(r, &kinds[i]);
            return r->status;
        }
    rest_not_found(r);
    return r->status;
}
