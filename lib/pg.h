/* pg: PostgreSQL connections with retry, the schema-version check every service makes at
 * start, and the migration runner. */
#ifndef PANEL_PG_H
#define PANEL_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/* The schema version this build expects: the number of the newest file in db/migrations
 * (set by the Makefile). */
#ifndef PANEL_SCHEMA_VERSION
#error "PANEL_SCHEMA_VERSION must be defined by the build"
#endif

/* Connect, retrying for up to timeout_s seconds (the database may still be starting).
 * Returns a connection (caller PQfinish-es it) or NULL with a message in err. */
PGconn *pgx_connect(const char *url, int timeout_s, char *err, size_t errlen);
/* 0 when the database's schema version equals PANEL_SCHEMA_VERSION; else -1 and a message
 * telling the operator to run the migrations (or to upgrade the binary). */
int pgx_check_schema(PGconn *conn, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Current schema version (0 when none applied), or -1 with a message. */
int pgx_schema_version(PGconn *conn, char *err, size_t errlen);
/* Apply, in order, every dir/NNNN_*.sql newer than the current version, each in its own
 * transaction, under an advisory lock so that concurrent runners are safe. *applied gets the
 * number applied now. 0 or -1 with a message. */
int pgx_migrate(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Run a statement without parameters that returns no rows. 0 or -1 with a message. */
int pgx_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* True when the result has the given status; otherwise fills err with the server message. */
int pgx_ok(PGresult *res, ExecStatusType want, char *err, size_t errlen);

#endif
