#include "pg.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIGRATION_LOCK_KEY  741852963L
#define MIGRATION_MAX_BYTES (4 * 1024 * 1024)

int pgx_ok(PGresult *res, ExecStatusType want, char *err, size_t errlen)
{
    if (res && PQresultStatus(res) == want)
        return 1;
    if (err) {
        const char *msg = res ? PQresultErrorMessage(res) : "no result (connection lost?)";
        snprintf(err, errlen, "%s", msg && *msg ? msg : "unexpected result");
        size_t n = strlen(err);
        while (n && (err[n - 1] == '\n'))
            err[--n] = '\0';
    }
    return 0;
}

static atomic_long statement_timeout_ms;

void pgx_set_statement_timeout_ms(long ms)
{
    atomic_store(&statement_timeout_ms, ms > 0 ? ms : 0);
}

long pgx_statement_timeout_ms(void)
{
    return atomic_load(&statement_timeout_ms);
}

int pgx_is_timeout(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state && strcmp(state, "57014") == 0;
}

/* A session-level SET survives COMMIT and ROLLBACK, so it holds for the connection's life. */
static int set_statement_timeout(PGconn *conn, char *err, size_t errlen)
{
    char sql[64];
    long ms = atomic_load(&statement_timeout_ms);
    if (ms == 0)
        return 0; /* leave the server's (or the role's) own setting */
    snprintf(sql, sizeof sql, "SET statement_timeout = %ld", ms);
    if (pgx_exec(conn, sql, err, errlen) != 0)
        return -1;
    return 0;
}

/* "what: libpq's message" without libpq's trailing newline. */
static void connection_error(char *err, size_t errlen, const char *what, const PGconn *conn)
{
    snprintf(err, errlen, "%s: %s", what, conn ? PQerrorMessage(conn) : "out of memory");
    size_t n = strlen(err);
    while (n && err[n - 1] == '\n')
        err[--n] = '\0';
}

/* The server's notices and warnings (a COMMIT outside a transaction, a deprecation) go to the
 * service's structured log at their own level, instead of libpq's default: a bare line on
 * stderr. */
static void log_server_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!message)
        return;
    if (severity && strcmp(severity, "WARNING") == 0)
        log_warn("PostgreSQL warning: %s", message);
    else
        log_info("PostgreSQL %s: %s", severity ? severity : "notice", message);
}

PGconn *pgx_connect(const char *url, int timeout_s, char *err, size_t errlen)
{
    time_t deadline = time(NULL) + timeout_s;
    for (int attempt = 0;; attempt++) {
        PGconn *conn = PQconnectdb(url);
        if (conn && PQstatus(conn) == CONNECTION_OK) {
            PQsetNoticeReceiver(conn, log_server_notice, NULL);
            if (set_statement_timeout(conn, err, errlen) == 0)
                return conn;
            PQfinish(conn);
            return NULL;
        }
        connection_error(err, errlen, "cannot connect to PostgreSQL", conn);
        PQfinish(conn);
        if (time(NULL) >= deadline)
            return NULL;
        if (attempt == 0)
            log_warn("%s; retrying for up to %d s", err, timeout_s);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int pgx_reset(PGconn *conn, char *err, size_t errlen)
{
    PQreset(conn);
    if (PQstatus(conn) != CONNECTION_OK) {
        connection_error(err, errlen, "cannot reconnect to PostgreSQL", conn);
        return -1;
    }
    return set_statement_timeout(conn, err, errlen);
}

int pgx_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    int ok = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) || pgx_ok(res, PGRES_TUPLES_OK, NULL, 0);
    PQclear(res);
    return ok ? 0 : -1;
}

int pgx_schema_version(PGconn *conn, char *err, size_t errlen)
{
    int v = -1;
    PGresult *res = PQexec(conn, "SELECT to_regclass('public.schema_migrations') IS NOT NULL");
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        v = 0;
        goto out;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    v = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
out:
    PQclear(res);
    return v;
}

int pgx_check_schema(PGconn *conn, char *err, size_t errlen)
{
    int v = pgx_schema_version(conn, err, errlen);
    if (v < 0)
        return -1;
    if (v == PANEL_SCHEMA_VERSION)
        return 0;
    if (v < PANEL_SCHEMA_VERSION)
        snprintf(err, errlen,
                 "database schema is at version %d but this build needs %d: run the migrations "
                 "(`make migrate` or `panelctl migrate`)",
                 v, PANEL_SCHEMA_VERSION);
    else
        snprintf(err, errlen,
                 "database schema is at version %d, newer than this build's %d: upgrade this "
                 "service",
                 v, PANEL_SCHEMA_VERSION);
    return -1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    data = malloc(MIGRATION_MAX_BYTES + 1);
    if (data) {
        size_t n = fread(data, 1, MIGRATION_MAX_BYTES + 1, f);
        if (n > MIGRATION_MAX_BYTES) {
            snprintf(err, errlen, "%s is larger than %d bytes", path, MIGRATION_MAX_BYTES);
            free(data);
            data = NULL;
        } else {
            data[n] = '\0';
        }
    }
    fclose(f);
    return data;
}

/* 1 when migration version v is in schema_migrations, 0 when not, -1 on error. */
static int migration_recorded(PGconn *conn, long v, char *err, size_t errlen)
{
    char vs[24];
    snprintf(vs, sizeof vs, "%ld", v);
    const char *params[1] = {vs};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1,
                                 NULL, params, NULL, NULL, 0);
    int rc = pgx_ok(res, PGRES_TUPLES_OK, err, errlen) ? PQntuples(res) > 0 : -1;
    PQclear(res);
    return rc;
}

int pgx_migrate(PGconn *conn, const char *dir, int *applied, char *err, size_t errlen)
{
    int rc = -1, count = 0, locked = 0;
    char **names = NULL;
    size_t nnames = 0, cap = 0;
    DIR *d = NULL;
    char sql[256];
    *applied = 0;

    if (pgx_exec(conn, "SET client_min_messages TO warning", err, errlen))
        goto out;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%ld)", MIGRATION_LOCK_KEY);
    if (pgx_exec(conn, sql, err, errlen))
        goto out;
    locked = 1;
    if (pgx_exec(conn,
                 "CREATE TABLE IF NOT EXISTS schema_migrations ("
                 " version integer PRIMARY KEY, name text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 err, errlen))
        goto out;
    d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(errno));
        goto out;
    }
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 9 || strcmp(e->d_name + len - 4, ".sql") != 0 || e->d_name[4] != '_')
            continue;
        if (nnames == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            names = nn;
        }
        names[nnames] = strdup(e->d_name);
        if (!names[nnames]) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        nnames++;
    }
    qsort(names, nnames, sizeof *names, cmp_names);

    for (size_t i = 0; i < nnames; i++) {
        char path[4096];
        long v = strtol(names[i], NULL, 10);
        int recorded = migration_recorded(conn, v, err, errlen);
        if (recorded < 0)
            goto out;
        if (recorded)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *body = read_file(path, err, errlen);
        if (!body)
            goto out;
        int failed = pgx_exec(conn, "BEGIN", err, errlen) || pgx_exec(conn, body, err, errlen);
        free(body);
        if (!failed) {
            const char *params[2];
            char vs[24];
            snprintf(vs, sizeof vs, "%ld", v);
            params[0] = vs;
            params[1] = names[i];
            PGresult *res = PQexecParams(conn,
                                         "INSERT INTO schema_migrations(version, name) "
                                         "VALUES ($1::int, $2)",
                                         2, NULL, params, NULL, NULL, 0);
            failed = !pgx_ok(res, PGRES_COMMAND_OK, err, errlen);
            PQclear(res);
        }
        if (failed || pgx_exec(conn, "COMMIT", err, errlen)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "migration %s failed: %s", names[i], err);
            snprintf(err, errlen, "%s", msg);
            if (pgx_exec(conn, "ROLLBACK", NULL, 0))
                log_warn("rollback after a failed migration failed too");
            goto out;
        }
        log_info("applied migration %s", names[i]);
        count++;
    }
    *applied = count;
    rc = 0;
out:
    if (locked) {
        snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%ld)", MIGRATION_LOCK_KEY);
        if (pgx_exec(conn, sql, NULL, 0))
            log_warn("could not release the migration lock (it goes with the connection)");
    }
    if (d)
        closedir(d);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---------------------------------------------------------------- binary COPY rows */

/* The signature, flags and header extension length that start every binary COPY stream. */
static const unsigned char copy_header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
                                              0,   0,   0,   0,   0,   0,   0,    0,    0};
/* PostgreSQL's limit of columns per table. */
#define COPY_MAX_FIELDS 1664
/* Bytes sent per PQputCopyData call. */
#define COPY_CHUNK (256 * 1024)

static int copy_be(struct pgx_copy *c, unsigned long v, int bytes)
{
    unsigned char b[4];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    if (buf_append(&c->data, b, (size_t)bytes)) {
        c->failed = 1;
        return -1;
    }
    return 0;
}

void pgx_copy_init(struct pgx_copy *c, size_t max_bytes)
{
    memset(c, 0, sizeof *c);
    buf_init(&c->data, max_bytes);
}

void pgx_copy_reset(struct pgx_copy *c)
{
    buf_reset(&c->data);
    c->rows = 0;
    c->fields_left = 0;
    c->failed = 0;
}

void pgx_copy_free(struct pgx_copy *c)
{
    buf_free(&c->data);
    pgx_copy_reset(c);
}

int pgx_copy_row(struct pgx_copy *c, int nfields)
{
    if (c->failed || c->fields_left != 0 || nfields < 1 || nfields > COPY_MAX_FIELDS) {
        c->failed = 1;
        return -1;
    }
    if (c->data.len == 0 && buf_append(&c->data, copy_header, sizeof copy_header)) {
        c->failed = 1;
        return -1;
    }
    if (copy_be(c, (unsigned long)nfields, 2))
        return -1;
    c->fields_left = nfields;
    c->rows++;
    return 0;
}

int pgx_copy_bytes(struct pgx_copy *c, const void *data, size_t len)
{
    if (c->failed || c->fields_left <= 0 || (data && len > 0x7fffffffUL)) {
        c->failed = 1;
        return -1;
    }
    c->fields_left--;
    if (!data)
        return copy_be(c, 0xffffffffUL, 4); /* length -1: NULL */
    if (copy_be(c, (unsigned long)len, 4))
        return -1;
    if (len && buf_append(&c->data, data, len)) {
        c->failed = 1;
        return -1;
    }
    return 0;
}

int pgx_copy_text(struct pgx_copy *c, const char *s)
{
    return pgx_copy_bytes(c, s, s ? strlen(s) : 0);
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int pgx_copy_uuid(struct pgx_copy *c, const char *s)
{
    unsigned char u[16];
    size_t len = s ? strlen(s) : 0;
    int hyphens = len == 36;
    if (len != 36 && len != 32) {
        c->failed = 1;
        return -1;
    }
    for (size_t i = 0, k = 0; i < len; k++) {
        if (hyphens && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-') {
                c->failed = 1;
                return -1;
            }
            i++;
        }
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0) {
            c->failed = 1;
            return -1;
        }
        u[k] = (unsigned char)(hi << 4 | lo);
        i += 2;
    }
    return pgx_copy_bytes(c, u, sizeof u);
}

int pgx_copy_send(PGconn *pg, const char *copy_sql, struct pgx_copy *c, PGresult **failed,
                  char *err, size_t errlen)
{
    int rc = -1;
    PGresult *res = NULL;
    size_t body = c->data.len;
    if (failed)
        *failed = NULL;
    if (c->failed || c->fields_left != 0) {
        snprintf(err, errlen, "COPY rows: a field was refused or a row is incomplete");
        return -1;
    }
    if (c->rows == 0) {
        pgx_copy_reset(c);
        return 0;
    }
    if (copy_be(c, 0xffffUL, 2)) { /* field count -1: the end of the rows */
        c->failed = 0;             /* the rows are still whole: a later try may fit */
        snprintf(err, errlen, "COPY rows: out of memory");
        return -1;
    }
    res = PQexec(pg, copy_sql);
    if (!pgx_ok(res, PGRES_COPY_IN, err, errlen))
        goto out;
    PQclear(res);
    res = NULL;
    int sent = 1;
    for (size_t off = 0; sent == 1 && off < c->data.len; off += COPY_CHUNK) {
        size_t n = c->data.len - off < COPY_CHUNK ? c->data.len - off : COPY_CHUNK;
        sent = PQputCopyData(pg, c->data.data + off, (int)n);
    }
    if (PQputCopyEnd(pg, sent == 1 ? NULL : "the client could not send the rows") != 1 ||
        sent != 1) {
        snprintf(err, errlen, "COPY rows: %s", PQerrorMessage(pg));
        /* the server's answer, if any, is read below and replaces this message */
    }
    res = PQgetResult(pg);
    int ok = pgx_ok(res, PGRES_COMMAND_OK, err, errlen) && sent == 1;
    /* a COPY has one result; read to the end so the connection is ready for the next */
    for (PGresult *more; (more = PQgetResult(pg)) != NULL;)
        PQclear(more);
    if (!ok)
        goto out;
    pgx_copy_reset(c);
    rc = 0;
out:
    if (rc != 0) {
        c->data.len = body; /* drop the end marker: the rows stay as they were */
        if (c->data.data)
            c->data.data[body] = '\0';
        if (failed && res) {
            *failed = res;
            res = NULL;
        }
    }
    PQclear(res);
    return rc;
}
