/* auth_keys: see auth_keys.h. */
#include "auth_keys.h"

#include "crypto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The account's role is read here on every request, so a changed role or a removed account
 * takes effect at once. last_seen_at is written at most once a minute per session. */
static const struct db_stmt st_session = {
    "auth_session",
    "WITH s AS (SELECT s.id_hash, s.tenant_id, a.email, a.role, a.account_id::text AS account_id,"
    "   s.provider, to_json(s.expires_at) #>> '{}' AS expires_at, s.last_seen_at"
    "   FROM admin_sessions s JOIN admin_accounts a"
    "   ON a.account_id = s.account_id AND a.tenant_id = s.tenant_id"
    "   WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()"
    "   AND s.last_seen_at > now() - make_interval(mins => $2::int) AND a.removed_at IS NULL),"
    " touch AS (UPDATE admin_sessions t SET last_seen_at = now() FROM s"
    "   WHERE t.id_hash = s.id_hash AND s.last_seen_at < now() - interval '1 minute')"
    " SELECT tenant_id, email, role, account_id, provider, expires_at FROM s"};

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

enum auth_result auth_keys_check(struct db_conn *db, const char *header, struct principal *out)
{
    char key_id[AUTH_KEY_ID_MAX + 1], secret[128], hash[65];
    enum auth_result rc = AUTH_INVALID;
    if (auth_keys_parse(header, key_id, sizeof key_id, secret, sizeof secret) != 0)
        return AUTH_MISSING;
    const char *params[1] = {key_id};
    PGresult *res = db_exec(db, &st_key, 1, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = AUTH_ERROR;
        goto out;
    }
    crypto_sha256_hex(secret, strlen(secret), hash);
    if (PQntuples(res) != 1 || !crypto_equal(hash, PQgetvalue(res, 0, 2)))
        goto out;
    memset(out, 0, sizeof *out);
    out->kind = PRINCIPAL_APIKEY;
    snprintf(out->key_id, sizeof out->key_id, "%s", key_id);
    snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(res, 0, 0));
    snprintf(out->actor, sizeof out->actor, "apikey:%s", key_id);
    out->admin = strcmp(PQgetvalue(res, 0, 1), "admin") == 0;
    rc = AUTH_OK;
out:
    PQclear(res);
    return rc;
}

enum auth_result auth_session_check(struct db_conn *db, const char *session_id, long idle_minutes,
                                    struct principal *out)
{
    char hash[SESSION_HASH_LEN], idle[24];
    enum auth_result rc = AUTH_INVALID;
    if (!session_token_valid(session_id))
        return AUTH_MISSING;
    session_token_hash(session_id, hash);
    snprintf(idle, sizeof idle, "%ld", idle_minutes);
    const char *params[2] = {hash, idle};
    PGresult *res = db_exec(db, &st_session, 2, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = AUTH_ERROR;
        goto out;
    }
    if (PQntuples(res) != 1)
        goto out;
    memset(out, 0, sizeof *out);
    out->kind = PRINCIPAL_SESSION;
    snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(res, 0, 0));
    snprintf(out->email, sizeof out->email, "%s", PQgetvalue(res, 0, 1));
    snprintf(out->actor, sizeof out->actor, "person:%s", out->email);
    out->admin = strcmp(PQgetvalue(res, 0, 2), "admin") == 0;
    snprintf(out->account_id, sizeof out->account_id, "%s", PQgetvalue(res, 0, 3));
    snprintf(out->provider, sizeof out->provider, "%s", PQgetvalue(res, 0, 4));
    snprintf(out->expires_at, sizeof out->expires_at, "%s", PQgetvalue(res, 0, 5));
    snprintf(out->session_hash, sizeof out->session_hash, "%s", hash);
    rc = AUTH_OK;
out:
    PQclear(res);
    return rc;
}
