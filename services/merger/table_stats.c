#include "table_stats.h"

#include <stdio.h>
#include <string.h>

/* Advisory lock of the ANALYZE rounds (any value no other lock of the suite uses). */
#define TABLE_STATS_LOCK_KEY "7304214"

/* The tables that batches read through their indexes and check foreign keys against (the
 * outbox, run_seen and run_outcomes are read in ways their statistics do not change). */
/* A plan needs sizes and rough distributions, not fine histograms: a sample of 6,000 rows
 * (statistics target 20) instead of 30,000 makes each ANALYZE about five times cheaper, and
 * autovacuum later analyzes with the server's own target. Only the columns the merger's
 * statements join, filter or check foreign keys on (the table sizes are updated whatever the
 * columns): the jsonb columns, the costliest to analyze, never steer a plan (~2.5x cheaper). */
static const char ANALYZE_SQL[] =
    "SET LOCAL default_statistics_target = 20;"
    " ANALYZE people (tenant_id, person_id, email_norm, removed_at),"
    " person_sources (tenant_id, source, source_id, person_id, email_norm, removed_at),"
    " assets (tenant_id, asset_id, device_id, in_google),"
    " org_units (tenant_id, org_unit_id, removed_at)"; /* table_stats_note commits */

int table_stats_note(PGconn *pg, struct table_stats *t, long rows_changed, char *err, size_t errlen)
{
    if (rows_changed > 0)
        t->changed_since += rows_changed;
    long long due = t->changed_total > TABLE_STATS_FIRST ? t->changed_total : TABLE_STATS_FIRST;
    if (t->changed_since < due)
        return 0;
    /* The merger's workers (and replicas) share the tables: one ANALYZE at a time (two at
     * once can fail on the same catalog rows); a member that finds it taken tries again
     * after its next batch. */
    PGresult *r = PQexec(pg, "BEGIN; SELECT pg_try_advisory_xact_lock(" TABLE_STATS_LOCK_KEY ")");
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
        strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        PQclear(r);
        PQclear(PQexec(pg, "ROLLBACK"));
        return 0;
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        r = PQexec(pg, ANALYZE_SQL);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 1 : -1;
        if (rc > 0) {
            PQclear(r);
            r = PQexec(pg, "COMMIT");
            rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 1 : -1;
        }
    }
    if (rc < 0)
        snprintf(err, errlen, "ANALYZE of the directory tables: %s", PQerrorMessage(pg));
    PQclear(r);
    if (PQtransactionStatus(pg) != PQTRANS_IDLE) /* a failed ANALYZE left its block open */
        PQclear(PQexec(pg, "ROLLBACK"));
    t->changed_total += t->changed_since;
    t->changed_since = 0;
    return rc;
}
