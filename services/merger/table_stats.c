#include "table_stats.h"

#include <stdio.h>

/* The tables that batches read through their indexes and check foreign keys against (the
 * outbox, run_seen and run_outcomes are read in ways their statistics do not change). */
static const char ANALYZE_SQL[] = "ANALYZE people, person_sources, assets, org_units";

int table_stats_note(PGconn *pg, struct table_stats *t, long rows_changed, char *err, size_t errlen)
{
    if (rows_changed > 0)
        t->changed_since += rows_changed;
    long long due = t->changed_total > TABLE_STATS_FIRST ? t->changed_total : TABLE_STATS_FIRST;
    if (t->changed_since < due)
        return 0;
    PGresult *r = PQexec(pg, ANALYZE_SQL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 1 : -1;
    if (rc < 0)
        snprintf(err, errlen, "ANALYZE of the directory tables: %s", PQerrorMessage(pg));
    PQclear(r);
    t->changed_total += t->changed_since;
    t->changed_since = 0;
    return rc;
}
