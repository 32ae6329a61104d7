/* consent_session: the signed-in session a consent is bound to. */
#include "consent_session.h"

#include "session.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_load = {
    "consent_session_load", "SELECT s.provider, coalesce(s.provider_tenant, ''), s.email "
                            "FROM admin_sessions s JOIN admin_accounts a "
                            "ON a.account_id = s.account_id "
                            "WHERE s.id_hash = $1 AND s.tenant_id = $2 AND "
                            "s.ended_at IS NULL AND s.expires_at > now() AND "
                            "a.removed_at IS NULL"};

bool consent_session_hash_valid(const char *s)
{
    if (!s || strlen(s) != SESSION_HASH_LEN - 1)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

enum consent_session_result consent_session_load(struct db_conn *db, const char *tenant,
                                                 const char *session_hash,
                                                 struct consent_session *out, char *err,
                                                 size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!consent_session_hash_valid(session_hash))
        return CONSENT_SESSION_NONE;
    const char *p[] = {session_hash, tenant};
    PGresult *res = db_query(db, PGRES_TUPLES_OK, &st_load, 2, p, err, errlen);
    enum consent_session_result r = CONSENT_SESSION_ERROR;
    if (!res)
        return CONSENT_SESSION_ERROR;
    if (PQntuples(res) != 1) {
        r = CONSENT_SESSION_NONE;
        goto out;
    }
    snprintf(out->provider, sizeof out->provider, "%s", PQgetvalue(res, 0, 0));
    snprintf(out->provider_tenant, sizeof out->provider_tenant, "%s", PQgetvalue(res, 0, 1));
    snprintf(out->email, sizeof out->email, "%s", PQgetvalue(res, 0, 2));
    r = CONSENT_SESSION_OK;
out:
    PQclear(res);
    return r;
}

bool consent_session_cookie_matches(const char *cookie_header, const char *stored_hash)
{
    char id[SESSION_TOKEN_MAX], hash[SESSION_HASH_LEN];
    bool ok = false;
    if (!cookie_header || !consent_session_hash_valid(stored_hash))
        return false;
    if (session_cookie_get(cookie_header, SESSION_COOKIE, id, sizeof id) != 0 ||
        !session_token_valid(id))
        goto out;
    session_token_hash(id, hash);
    ok = CRYPTO_memcmp(hash, stored_hash, SESSION_HASH_LEN - 1) == 0;
out:
    OPENSSL_cleanse(id, sizeof id);
    return ok;
}
