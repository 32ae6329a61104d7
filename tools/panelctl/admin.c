/* panelctl admin-add: a district's first Panel admin (later ones are invited from the admin
 * page). The account signs in with Google or Microsoft; nothing secret is created here. */
#include "commands.h"
#include "ids.h"
#include "pg.h"

#include <stdio.h>
#include <string.h>

static const struct db_stmt st_add = {
    "panelctl_admin_add", "INSERT INTO admin_accounts (tenant_id, email, role, allow_google, "
                          "allow_microsoft, created_by) SELECT tenant_id, lower(btrim($2)), $3, "
                          "$4::boolean, $5::boolean, 'panelctl' FROM tenants WHERE tenant_id = $1 "
                          "ON CONFLICT (tenant_id, email) WHERE removed_at IS NULL DO NOTHING "
                          "RETURNING account_id"};
static const struct db_stmt st_tenant = {"panelctl_tenant_exists",
                                         "SELECT 1 FROM tenants WHERE tenant_id = $1"};

int cmd_admin_add(int argc, char **argv)
{
    char err[512];
    int rc = 1;
    PGresult *res = NULL;
    const char *google = "true", *microsoft = "true";
    if (argc == 4 && strcmp(argv[3], "--google-only") == 0)
        microsoft = "false";
    else if (argc == 4 && strcmp(argv[3], "--microsoft-only") == 0)
        google = "false";
    char email[IDS_EMAIL_MAX + 1];
    if ((argc != 3 && !(argc == 4 && (*google == 'f' || *microsoft == 'f'))) ||
        (strcmp(argv[2], "admin") != 0 && strcmp(argv[2], "viewer") != 0)) {
        fprintf(stderr, "usage: panelctl admin-add TENANT EMAIL admin|viewer "
                        "[--google-only|--microsoft-only]\n");
        return 2;
    }
    /* The same rules as the api's account routes, so that every stored address can sign in. */
    if (!ids_tenant_valid(argv[0])) {
        fprintf(stderr, "panelctl: '%s' is not a tenant id\n", argv[0]);
        return 2;
    }
    if (ids_email_normalize(argv[1], email, sizeof email) != 0 || !ids_email_valid(email)) {
        fprintf(stderr, "panelctl: '%s' is not an e-mail address\n", argv[1]);
        return 2;
    }
    struct panelctl_db d;
    if (panelctl_db_open(&d))
        return 1;
    const char *params[5] = {argv[0], email, argv[2], google, microsoft};
    res = db_exec(d.conn, &st_add, 5, params);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, sizeof err)) {
        fprintf(stderr, "panelctl: %s\n", err);
        goto out;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        const char *p1[1] = {argv[0]};
        res = db_exec(d.conn, &st_tenant, 1, p1);
        if (pgx_ok(res, PGRES_TUPLES_OK, err, sizeof err) && PQntuples(res) == 1)
            fprintf(stderr, "panelctl: %s is already an admin account of %s\n", email, argv[0]);
        else
            fprintf(stderr, "panelctl: no tenant '%s' (create it with panelctl tenant-add)\n",
                    argv[0]);
        goto out;
    }
    printf("%s\n", PQgetvalue(res, 0, 0));
    fprintf(stderr, "%s (%s) may now sign in to %s's admin page with %s\n", email, argv[2], argv[0],
            *google == 'f'      ? "Microsoft"
            : *microsoft == 'f' ? "Google"
                                : "Google or Microsoft");
    rc = 0;
out:
    PQclear(res);
    panelctl_db_close(&d);
    return rc;
}
