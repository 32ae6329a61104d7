/* auth_keys: see auth_keys.h. */
#include "auth_keys.h"

#include "crypto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct db_stmt st_key = {"auth_key",
                                      "SELECT tenant_id, role, secret_hash FROM api_keys "
                                      "WHERE key_id = $1 AND revoked_at IS NULL"};

static bool token_chars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return n > 0;
}

int auth_keys_parse(const char *header, char *key_id, size_t idlen, char *secret, size_t secretlen)
{
    if (!header || strncmp(header, "Bearer ", 7) != 0)
        return -1;
    const char *k = header + 7;
    while (*k == ' ')
        k++;
    if (strncmp(k, "pk_", 3) != 0)
        return -1;
    k += 3;
    const char *dot = strchr(k, '.');
    if (!dot)
        return -1;
    size_t idn = (size_t)(dot - k), sn = strlen(dot + 1);
    if (idn >= idlen || sn >= secretlen || !token_chars(k, idn) || !token_chars(dot + 1, sn))
        return -1;
    memcpy(key_id, k, idn);
    key_id[idn] = 0;
    memcpy(secret, dot + 1, sn + 1);
    return 0;
}

enum auth_result auth_keys_check(struct db_pool *pool, PGconn *conn, const char *header,
                                 struct auth_key *out)
{
    char key_id[AUTH_KEY_ID_MAX + 1], secret[128], hash[65];
    enum auth_result rc = AUTH_INVALID;
    if (auth_keys_parse(header, key_id, sizeof key_id, secret, sizeof secret) != 0)
        return AUTH_MISSING;
    const char *params[1] = {key_id};
    PGresult *res = db_exec(pool, conn, &st_key, 1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = AUTH_ERROR;
        goto out;
    }
    crypto_sha256_hex(secret, strlen(secret), hash);
    if (PQntuples(res) != 1 || !crypto_equal(hash, PQgetvalue(res, 0, 2)))
        goto out;
    snprintf(out->key_id, sizeof out->key_id, "%s", key_id);
    snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(res, 0, 0));
    out->admin = strcmp(PQgetvalue(res, 0, 1), "admin") == 0;
    rc = AUTH_OK;
out:
    PQclear(res);
    return rc;
}
