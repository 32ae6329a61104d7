/* panelctl apikey-create / apikey-revoke: the api's keys "pk_<key_id>.<secret>". Only
 * sha256(secret) is stored; the full key is printed once. */
#include "commands.h"
#include "crypto.h"
#include "pg.h"

#include <stdio.h>
#include <string.h>

static const struct db_stmt st_create = {
    "panelctl_apikey_create", "INSERT INTO api_keys (key_id, tenant_id, role, secret_hash, label) "
                              "SELECT $1, tenant_id, $3, $4, $5 FROM tenants WHERE tenant_id = $2"};
static const struct db_stmt st_revoke = {
    "panelctl_apikey_revoke",
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = $1"};

int cmd_apikey_create(int argc, char **argv)
{
    char err[512], key_id[32], secret[64], hash[65];
    int rc = 1;
    PGresult *res = NULL;
    if (argc < 2 || argc > 3 || (strcmp(argv[1], "admin") != 0 && strcmp(argv[1], "viewer"))) {
        fprintf(stderr, "usage: panelctl apikey-create TENANT admin|viewer [LABEL]\n");
        return 2;
    }
    /* base64url ids may contain '-' and '_' but never '.', the separator. */
    if (crypto_token(key_id, sizeof key_id, 12) != 0 ||
        crypto_token(secret, sizeof secret, 32) != 0) {
        fprintf(stderr, "panelctl: no randomness\n");
        return 1;
    }
    crypto_sha256_hex(secret, strlen(secret), hash);
    struct panelctl_db d;
    if (panelctl_db_open(&d))
        return 1;
    const char *params[5] = {key_id, argv[0], argv[1], hash, argc > 2 ? argv[2] : ""};
    res = db_exec(d.conn, &st_create, 5, params);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, sizeof err)) {
        fprintf(stderr, "panelctl: %s\n", err);
        goto out;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        fprintf(stderr, "panelctl: no tenant '%s' (create it with panelctl tenant-add)\n", argv[0]);
        goto out;
    }
    printf("pk_%s.%s\n", key_id, secret);
    fprintf(stderr, "key id %s (%s) for tenant %s; the key is shown only once\n", key_id, argv[1],
            argv[0]);
    rc = 0;
out:
    PQclear(res);
    panelctl_db_close(&d);
    return rc;
}

int cmd_apikey_revoke(int argc, char **argv)
{
    char err[512];
    int rc = 1;
    if (argc != 1) {
        fprintf(stderr, "usage: panelctl apikey-revoke KEY_ID\n");
        return 2;
    }
    const char *id = strncmp(argv[0], "pk_", 3) == 0 ? argv[0] + 3 : argv[0];
    struct panelctl_db d;
    if (panelctl_db_open(&d))
        return 1;
    const char *params[1] = {id};
    PGresult *res = db_exec(d.conn, &st_revoke, 1, params);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, sizeof err)) {
        fprintf(stderr, "panelctl: %s\n", err);
        goto out;
    }
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        fprintf(stderr, "panelctl: no key '%s'\n", id);
        goto out;
    }
    printf("key %s revoked\n", id);
    rc = 0;
out:
    PQclear(res);
    panelctl_db_close(&d);
    return rc;
}
