/* apply_cases: an admin's decisions, each in its own transaction — approve or reject a held
 * run (apply_decide), resolve an open match case (apply_resolve_case) — through the same
 * removal and remerge code as a batch (apply.h). */
#include "apply.h"
#include "apply_ctx.h"
#include "apply_people.h"
#include "apply_removals.h"
#include "crypto.h"
#include "ids.h"
#include "log.h"
#include "pg.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- approve / reject */

/* Start the transaction of a decision whose ids are ids_valid: true when started; false when
 * not, with *res set to DECIDE_NOT_FOUND when the ids do not read (no such row can exist). */
static bool decision_begin(struct actx *c, bool ids_valid, enum apply_decide_result *res)
{
    if (!ids_valid) {
        *res = DECIDE_NOT_FOUND;
        return false;
    }
    return actx_begin(c) == 0;
}

/* Run sql (n text parameters), which reads or locks the row a decision is about: true with *r
 * holding it (caller PQclear-s it); false when there is none (*res set to DECIDE_NOT_FOUND) or
 * on a database error (*res left as it is, the reason in c->err). */
static bool decision_row(struct actx *c, const char *sql, int n, const char *const *params,
                         PGresult **r, enum apply_decide_result *res)
{
    *r = actx_query(c, sql, n, params, PGRES_TUPLES_OK);
    if (!*r)
        return false;
    if (PQntuples(*r) == 0) {
        *res = DECIDE_NOT_FOUND;
        return false;
    }
    return true;
}

enum apply_decide_result apply_decide(PGconn *pg, const char *tenant, const char *run_id,
                                      const char *admin, enum apply_decision d, long *removed,
                                      char *err, size_t errlen)
{
    enum apply_decide_result res = DECIDE_ERROR;
    struct actx *c = actx_new(pg, err, errlen);
    PGresult *r = NULL;
    json_t *list = json_array();
    *removed = 0;
    if (!c || !list) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!decision_begin(c, ids_tenant_valid(tenant) && ids_uuid_valid(run_id), &res))
        goto out;
    const char *params[3] = {tenant, run_id, admin};
    if (!decision_row(
            c, "SELECT status FROM sync_runs WHERE tenant_id = $1 AND run_id = $2 FOR UPDATE", 2,
            params, &r, &res))
        goto rollback;
    if (strcmp(col_str(r, 0, 0), "held") != 0) {
        res = DECIDE_NOT_HELD;
        goto rollback;
    }
    PQclear(r);
    r = NULL;
    if (d == APPLY_APPROVE) {
        r = actx_query(
            c,
            "SELECT object_kind, source, source_id FROM run_outcomes WHERE tenant_id = $1"
            " AND run_id = $2 AND outcome = 'held_removal' ORDER BY outcome_id",
            2, params, PGRES_TUPLES_OK);
        if (!r)
            goto rollback;
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(list,
                                  removals_row(&(struct removal){.tenant_id = tenant,
                                                                 .object_kind = col_str(r, i, 0),
                                                                 .source = col_str(r, i, 1),
                                                                 .source_id = col_str(r, i, 2)}));
        PQclear(r);
        r = NULL;
        if (json_array_size(list) > 0 && removals_apply(c, list, run_id, false, removed))
            goto rollback;
        if (actx_flush_outbox(c))
            goto rollback;
        char nbuf[32];
        snprintf(nbuf, sizeof nbuf, "%ld", *removed);
        const char *approve_params[4] = {tenant, run_id, admin, nbuf};
        if (actx_cmd(c,
                     "UPDATE sync_runs SET status = 'approved', removed = removed + $4::bigint,"
                     " pending_removals = 0, decided_by = $3, decided_at = now()"
                     " WHERE tenant_id = $1 AND run_id = $2",
                     4, approve_params))
            goto rollback;
    } else if (actx_cmd(c,
                        "UPDATE sync_runs SET status = 'rejected', pending_removals = 0,"
                        " decided_by = $3, decided_at = now() WHERE tenant_id = $1 AND run_id = $2",
                        3, params)) {
        goto rollback;
    }
    if (actx_commit(c))
        goto out;
    res = DECIDE_OK;
    goto out;
rollback:
    actx_rollback(c);
out:
    PQclear(r);
    json_decref(list);
    actx_free(c);
    return res;
}

/* ---------------------------------------------------------------- match cases */

enum apply_decide_result apply_resolve_case(PGconn *pg, const char *tenant, const char *case_id,
                                            const char *person_id, const char *admin,
                                            char *resolved_person, size_t rplen, char *warning,
                                            size_t wlen, char *err, size_t errlen)
{
    enum apply_decide_result res = DECIDE_ERROR;
    struct actx *c = actx_new(pg, err, errlen);
    PGresult *r = NULL;
    json_t *persons = json_array();
    char newid[EVENTS_ID_LEN], run[EVENTS_ID_LEN] = "";
    warning[0] = '\0';
    if (!c || !persons) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!decision_begin(c,
                        ids_tenant_valid(tenant) && ids_uuid_valid(case_id) &&
                            (!person_id || ids_uuid_valid(person_id)),
                        &res))
        goto out;
    const char *params[4] = {tenant, case_id, NULL, admin};
    if (!decision_row(
            c,
            "SELECT m.source, m.source_id, m.status, ps.email_norm, m.run_id"
            " FROM match_cases m LEFT JOIN person_sources ps ON ps.tenant_id = m.tenant_id"
            " AND ps.source = m.source AND ps.source_id = m.source_id"
            " WHERE m.tenant_id = $1 AND m.case_id = $2 FOR UPDATE OF m",
            2, params, &r, &res))
        goto rollback;
    if (strcmp(col_str(r, 0, 2), "open") != 0 || !col_str(r, 0, 3)) {
        res = DECIDE_NOT_HELD;
        goto rollback;
    }
    char source[16], source_id[300], email[400];
    snprintf(source, sizeof source, "%s", col_str(r, 0, 0));
    snprintf(source_id, sizeof source_id, "%s", col_str(r, 0, 1));
    snprintf(email, sizeof email, "%s", col_str(r, 0, 3));
    if (col_str(r, 0, 4))
        snprintf(run, sizeof run, "%s", col_str(r, 0, 4));
    PQclear(r);
    r = NULL;
    if (person_id) {
        const char *p2[2] = {tenant, person_id};
        if (!decision_row(c,
                          "SELECT 1 FROM people WHERE tenant_id = $1 AND person_id = $2::uuid"
                          " AND removed_at IS NULL AND version > 0",
                          2, p2, &r, &res))
            goto rollback;
        PQclear(r);
        r = NULL;
        snprintf(newid, sizeof newid, "%s", person_id);
    } else {
        const char *p2[3] = {tenant, NULL, email};
        if (crypto_uuid(newid)) {
            snprintf(err, errlen, "uuid generation failed");
            goto rollback;
        }
        p2[1] = newid;
        r = actx_query(c,
                       "INSERT INTO people (tenant_id, person_id, email_norm, version)"
                       " SELECT $1, $2::uuid, $3, 0 WHERE NOT EXISTS (SELECT 1 FROM people"
                       " WHERE tenant_id = $1 AND email_norm = $3 AND removed_at IS NULL)",
                       3, p2, PGRES_COMMAND_OK);
        if (!r)
            goto rollback;
        if (strcmp(PQcmdTuples(r), "1") != 0) { /* the e-mail is another Person's */
            res = DECIDE_NOT_HELD;
            goto rollback;
        }
        PQclear(r);
        r = NULL;
    }
    params[2] = newid;
    const char *p3[4] = {tenant, source, source_id, newid};
    if (actx_cmd(c,
                 "UPDATE person_sources SET person_id = $4::uuid, updated_at = now()"
                 " WHERE tenant_id = $1 AND source = $2 AND source_id = $3",
                 4, p3))
        goto rollback;
    /* Two live accounts of one cloud are allowed (an admin may know they are one person),
     * but the Person then shows one of them: say which, so that the change is no surprise. */
    r = actx_query(c,
                   "SELECT count(*), min(source_id COLLATE \"C\") FROM person_sources"
                   " WHERE tenant_id = $1 AND source = $2 AND person_id = $3::uuid"
                   " AND removed_at IS NULL",
                   3, (const char *[]){tenant, source, newid}, PGRES_TUPLES_OK);
    if (!r)
        goto rollback;
    if (col_i64(r, 0, 0) > 1)
        snprintf(warning, wlen,
                 "the Person now has %lld live %s accounts: it shows the values of the one with "
                 "the smallest source id (%.256s)",
                 (long long)col_i64(r, 0, 0), source, col_str(r, 0, 1));
    PQclear(r);
    r = NULL;
    (void)people_queue_remerge(persons, tenant, newid, *run ? run : NULL, false);
    if (people_remerge(c, persons) || actx_flush_outbox(c))
        goto rollback;
    if (actx_cmd(c,
                 "UPDATE match_cases SET status = 'resolved', resolved_person_id = $3::uuid,"
                 " resolved_by = $4, resolved_at = now() WHERE tenant_id = $1 AND case_id = $2",
                 4, params))
        goto rollback;
    if (actx_commit(c))
        goto out;
    snprintf(resolved_person, rplen, "%s", newid);
    res = DECIDE_OK;
    goto out;
rollback:
    actx_rollback(c);
out:
    PQclear(r);
    json_decref(persons);
    actx_free(c);
    return res;
}
