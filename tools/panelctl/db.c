/* panelctl commands that talk to PostgreSQL. */
#include "commands.h"
#include "ids.h"
#include "pg.h"

#include <stdio.h>
#include <string.h>

static const struct db_stmt st_tenant_add = {
    "panelctl_tenant_add", "INSERT INTO tenants(tenant_id, display_name) VALUES ($1, $2) "
                           "ON CONFLICT (tenant_id) DO NOTHING"};

int panelctl_db_open(struct panelctl_db *d)
{
    char err[512];
    d->conn = NULL;
    d->pool = db_pool_new(panelctl_config()->pg_url, 1, 30, err, sizeof err);
    if (!d->pool || db_get(d->pool, 0, &d->conn, err, sizeof err) != DB_OK) {
        fprintf(stderr, "panelctl: %s\n", err);
        panelctl_db_close(d);
        return -1;
    }
    return 0;
}

void panelctl_db_close(struct panelctl_db *d)
{
    db_put(d->conn);
    db_pool_destroy(d->pool);
    d->conn = NULL;
    d->pool = NULL;
}

static PGconn *connect_db(void)
{
    char err[512];
    PGconn *conn = pgx_connect(panelctl_config()->pg_url, (int)30, err, sizeof err);
    if (!conn)
        fprintf(stderr, "panelctl: %s\n", err);
    return conn;
}

int cmd_migrate(int argc, char **argv)
{
    (void)argv;
    char err[1024];
    int applied = 0, rc = 1;
    if (argc != 0) {
        fprintf(stderr, "usage: panelctl migrate\n");
        return 2;
    }
    PGconn *conn = connect_db();
    if (!conn)
        return 1;
    const char *dir = panelctl_config()->migrations_dir;
    if (pgx_migrate(conn, dir, &applied, err, sizeof err) != 0) {
        fprintf(stderr, "panelctl: %s\n", err);
        goto out;
    }
    int v = pgx_schema_version(conn, err, sizeof err);
    printf("schema at version %d (%d migration%s applied now)\n", v, applied,
           applied == 1 ? "" : "s");
    rc = v == PANEL_SCHEMA_VERSION ? 0 : 1;
    if (rc)
        fprintf(stderr, "panelctl: this build expects version %d; is %s the right directory?\n",
                PANEL_SCHEMA_VERSION, dir);
out:
    PQfinish(conn);
    return rc;
}

int cmd_schema_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    PGconn *conn = connect_db();
    if (!conn)
        return 1;
    int v = pgx_schema_version(conn, err, sizeof err);
    PQfinish(conn);
    if (v < 0) {
        fprintf(stderr, "panelctl: %s\n", err);
        return 1;
    }
    printf("database %d, build %d\n", v, PANEL_SCHEMA_VERSION);
    return v == PANEL_SCHEMA_VERSION ? 0 : 1;
}

int cmd_tenant_add(int argc, char **argv)
{
    char err[512];
    int rc = 1;
    if (argc < 1 || argc > 2) {
        fprintf(stderr, "usage: panelctl tenant-add TENANT [DISPLAY NAME]\n");
        return 2;
    }
    if (!ids_tenant_valid(argv[0])) {
        fprintf(stderr,
                "panelctl: '%s' is not a tenant id (1 to %d of A-Z a-z 0-9 _ . -, "
                "starting with a letter or digit)\n",
                argv[0], IDS_TENANT_MAX);
        return 2;
    }
    struct panelctl_db d;
    if (panelctl_db_open(&d))
        return 1;
    const char *params[2] = {argv[0], argc > 1 ? argv[1] : argv[0]};
    PGresult *res = db_exec(d.conn, &st_tenant_add, 2, params);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, sizeof err)) {
        fprintf(stderr, "panelctl: %s\n", err);
        goto out;
    }
    printf("tenant %s %s\n", argv[0], strcmp(PQcmdTuples(res), "1") == 0 ? "created" : "exists");
    rc = 0;
out:
    PQclear(res);
    panelctl_db_close(&d);
    return rc;
}
