/* db_pool: a small fixed pool of PostgreSQL connections shared by civetweb's worker threads.
 * Statements are declared once as static struct db_stmt and prepared lazily on each
 * connection the first time they run there. A broken connection is reset on release. */
#ifndef API_DB_POOL_H
#define API_DB_POOL_H

#include <libpq-fe.h>
#include <stddef.h>

struct db_pool;

/* A named statement; both strings are borrowed for the life of the pool (use literals). */
struct db_stmt {
    const char *name;
    const char *sql;
};

/* Connect size connections (waiting up to timeout_s for the server). NULL + message. */
struct db_pool *db_pool_new(const char *url, int size, int timeout_s, char *err, size_t errlen);
void db_pool_destroy(struct db_pool *p);
/* Borrow a connection, waiting at most wait_ms; NULL when none became free. */
PGconn *db_pool_get(struct db_pool *p, long wait_ms);
/* Give it back (a connection left inside a transaction is rolled back first). */
void db_pool_put(struct db_pool *p, PGconn *conn);
/* Run a declared statement with text parameters (NULL = SQL NULL). Caller PQclear-s. Never
 * NULL: a failed prepare comes back as a PGRES_FATAL_ERROR result. */
PGresult *db_exec(struct db_pool *p, PGconn *conn, const struct db_stmt *st, int nparams,
                  const char *const *params);

#endif
