/* db: the one way a service talks to PostgreSQL on request paths — a fixed pool of
 * connections shared by threads, and named statements prepared on first use on each
 * connection. A statement is identified by its name: one name stands for one SQL text in a
 * pool (a second text under a known name fails loudly at its first use), and a connection
 * remembers every statement it has prepared, however many. A connection that broke is
 * closed when it is given back and opened again (with pgx_connect's session settings) when
 * it is next borrowed. */
#ifndef PANEL_DB_H
#define PANEL_DB_H

#include <libpq-fe.h>
#include <stddef.h>

struct db_pool;
/* One connection of a pool, borrowed by one thread between db_get and db_put. */
struct db_conn;

/* A named statement. Both strings are borrowed for the life of the pool (use literals);
 * declare each module's statements together at its top. */
struct db_stmt {
    const char *name;
    const char *sql;
};

enum db_result {
    DB_OK = 0,
    DB_BUSY, /* every connection stayed borrowed for the whole wait */
    DB_DOWN, /* a connection had to be opened again and the database did not answer */
};
const char *db_result_str(enum db_result r);

/* Open size connections with pgx_connect (retrying up to connect_timeout_s for a database
 * that is still starting). NULL with a message. */
struct db_pool *db_pool_new(const char *url, int size, int connect_timeout_s, char *err,
                            size_t errlen);
/* Close every connection; none may be borrowed any more. NULL is fine. */
void db_pool_destroy(struct db_pool *p);
int db_pool_size(const struct db_pool *p);

/* Borrow a connection, waiting at most wait_ms for one to be free. DB_OK and *out set, or
 * DB_BUSY / DB_DOWN with a message (nothing to give back then). */
enum db_result db_get(struct db_pool *p, long wait_ms, struct db_conn **out, char *err,
                      size_t errlen) __attribute__((warn_unused_result));
/* Give it back; a transaction left open is rolled back first. NULL is fine. */
void db_put(struct db_conn *c);
/* The libpq connection, borrowed with c, for what statements cannot do (COPY, BEGIN,
 * escaping); never DEALLOCATE or DISCARD on it. */
PGconn *db_pg(struct db_conn *c);

/* Run a statement with text parameters (NULL = SQL NULL), preparing it on this connection
 * first if needed. Caller PQclear-s. Never NULL: a failed prepare (or a name declared with
 * two SQL texts) comes back as a PGRES_FATAL_ERROR result. */
PGresult *db_exec(struct db_conn *c, const struct db_stmt *st, int nparams,
                  const char *const *params);
/* The same, expecting status want: the result (caller PQclear-s), or NULL with the server's
 * message in err (nothing to clear). */
PGresult *db_query(struct db_conn *c, ExecStatusType want, const struct db_stmt *st, int nparams,
                   const char *const *params, char *err, size_t errlen);
/* Run a statement that must succeed and whose rows are not needed. 0 or -1 with a message. */
int db_run(struct db_conn *c, const struct db_stmt *st, int nparams, const char *const *params,
           char *err, size_t errlen) __attribute__((warn_unused_result));

/* The option-table row (lib/config.h) of the database every service and panelctl reach:
 * PANEL_PG_URL, read into member (char *) of the service's config type. */
#define DB_CFG_PG_URL(type, member)                                                                \
    {                                                                                              \
        "PANEL_PG_URL", CFG_SECRET, "postgresql://panel@127.0.0.1:5432/panel", 0, 2048,            \
            offsetof(type, member), "PostgreSQL connection URL"                                    \
    }

#endif
