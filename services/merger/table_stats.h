/* table_stats: keeps PostgreSQL's statistics of the directory tables in step with their growth.
 *
 * Why: PostgreSQL plans every statement (and caches the plans of its foreign-key checks for the
 * whole session) from these statistics. A first sync fills empty tables far faster than
 * autovacuum analyzes them, so without this the plans stay those made for empty tables: index
 * scans on the wrong index with a filter, and foreign-key checks that scan, which makes each
 * batch slower than the one before (measured: 2,000-event batches going from 0.4 s to 10 s
 * within one 11,000-person sync).
 *
 * The merger runs ANALYZE on the tables it writes whenever the rows it changed since the last
 * ANALYZE reach the rows it had changed before it (at least TABLE_STATS_FIRST), so the number
 * of ANALYZE runs grows with the logarithm of the data and their cost stays proportional to it.
 * ANALYZE runs outside any batch transaction; an ANALYZE that fails (for example when the role
 * does not own the tables) is logged and does not stop the merger. */
#ifndef MERGER_TABLE_STATS_H
#define MERGER_TABLE_STATS_H

#include <libpq-fe.h>

#define TABLE_STATS_FIRST 1000

struct table_stats {
    long long changed_since; /* rows changed since the last ANALYZE */
    long long changed_total; /* rows changed up to the last ANALYZE */
};

/* Count rows_changed by a committed batch; ANALYZE when due. Returns 1 when it analyzed, 0 when
 * not due, -1 when ANALYZE failed (message in err; it is tried again at the next doubling,
 * like a successful one). */
int table_stats_note(PGconn *pg, struct table_stats *t, long rows_changed, char *err,
                     size_t errlen);

#endif
