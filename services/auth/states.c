/* states: OAuth state issue and single-use consumption. */
#include "states.h"

#include "crypto.h"
#include "db.h"
#include "pg.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every SQL text of this module (lib/db prepares each by its name). */
static const struct db_stmt st_create = {
    "states_create", "INSERT INTO oauth_states (state_hash, tenant_id, provider, admin, "
                     "verifier_sealed, verifier_key_id, redirect_uri, expires_at, nonce, "
                     "session_hash, provider_tenant) "
                     "VALUES ($1, $2, $3, $4, decode($5, 'hex'), $6, $7, "
                     "now() + make_interval(secs => $8::int), $9, $10, $11)"};
static const struct db_stmt st_consume = {
    "states_consume", "WITH old AS (SELECT * FROM oauth_states WHERE state_hash = $1 FOR UPDATE) "
                      "UPDATE oauth_states s SET used_at = coalesce(s.used_at, now()) FROM old "
                      "WHERE s.state_hash = old.state_hash RETURNING old.tenant_id, old.provider, "
                      "old.admin, encode(old.verifier_sealed, 'hex'), old.verifier_key_id, "
                      "old.used_at IS NOT NULL, old.expires_at <= now(), coalesce(old.nonce, ''), "
                      "coalesce(old.session_hash, ''), coalesce(old.provider_tenant, '')"};

/* 32 bytes of entropy in base64url without padding. */
#define STATE_BYTES 32
#define STATE_CHARS 43

const char *state_result_str(enum state_result r)
{
    switch (r) {
    case STATE_OK:
        return "ok";
    case STATE_MALFORMED:
        return "malformed state";
    case STATE_UNKNOWN:
        return "unknown state";
    case STATE_USED:
        return "state already used";
    case STATE_EXPIRED:
        return "state expired";
    case STATE_WRONG_PROVIDER:
        return "state belongs to another provider";
    case STATE_ERROR:
        return "state could not be checked";
    }
    return "unknown";
}

int states_well_formed(const char *s)
{
    if (!s || strlen(s) != STATE_CHARS)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static void aad_for(char *aad, size_t n, const char *hash)
{
    snprintf(aad, n, "oauth_state:%s", hash);
}

int states_create(struct db_conn *db, const struct grants *g, const char *tenant,
                  const char *provider, const struct state_binding *b, const char *redirect_uri,
                  long ttl_s, struct state_new *out, char *err, size_t errlen)
{
    int rc = -1;
    char verifier[VERIFIER_LEN_MAX] = "", hash[65], aad[96], ttl[32];
    uint8_t *sealed = NULL;
    char *hex = NULL;
    size_t sealed_len = 0;
    PGresult *res = NULL;
    if (crypto_token(out->state, sizeof out->state, STATE_BYTES) ||
        crypto_token(verifier, sizeof verifier, 48) ||
        crypto_token(out->nonce, sizeof out->nonce, 32) ||
        crypto_pkce_challenge(verifier, out->challenge)) {
        snprintf(err, errlen, "no randomness");
        goto out;
    }
    crypto_sha256_hex(out->state, strlen(out->state), hash);
    aad_for(aad, sizeof aad, hash);
    if (grants_seal(g, verifier, strlen(verifier), aad, &sealed, &sealed_len)) {
        snprintf(err, errlen, "sealing failed");
        goto out;
    }
    hex = malloc(sealed_len * 2 + 1);
    if (!hex) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    crypto_hex(sealed, sealed_len, hex);
    snprintf(ttl, sizeof ttl, "%ld", ttl_s);
    const char *params[] = {hash,
                            tenant,
                            provider,
                            b->admin,
                            hex,
                            grants_active_id(g),
                            redirect_uri,
                            ttl,
                            out->nonce,
                            b->session_hash,
                            b->provider_tenant};
    res = db_exec(db, &st_create, 11, params);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, errlen))
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(verifier, sizeof verifier);
    PQclear(res);
    free(sealed);
    free(hex);
    return rc;
}

enum state_result states_consume(struct db_conn *db, const struct grants *g, const char *provider,
                                 const char *state, struct state_info *out, char *err,
                                 size_t errlen)
{
    enum state_result r = STATE_ERROR;
    char hash[65], aad[96];
    PGresult *res = NULL;
    char *verifier = NULL;
    uint8_t *sealed = NULL;
    memset(out, 0, sizeof *out);
    if (!states_well_formed(state)) {
        snprintf(err, errlen, "%s", state_result_str(STATE_MALFORMED));
        return STATE_MALFORMED;
    }
    crypto_sha256_hex(state, strlen(state), hash);
    /* Mark used first, whatever the outcome, so that a state is never accepted twice even
     * when two callbacks race. The old values tell us why it is not acceptable. */
    const char *params[] = {hash};
    res = db_exec(db, &st_consume, 1, params);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    if (PQntuples(res) != 1) {
        r = STATE_UNKNOWN;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 5), "t") == 0) {
        r = STATE_USED;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 6), "t") == 0) {
        r = STATE_EXPIRED;
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 1), provider) != 0) {
        r = STATE_WRONG_PROVIDER;
        goto done;
    }
    snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(res, 0, 0));
    snprintf(out->admin, sizeof out->admin, "%s", PQgetvalue(res, 0, 2));
    snprintf(out->nonce, sizeof out->nonce, "%s", PQgetvalue(res, 0, 7));
    snprintf(out->session_hash, sizeof out->session_hash, "%s", PQgetvalue(res, 0, 8));
    snprintf(out->provider_tenant, sizeof out->provider_tenant, "%s", PQgetvalue(res, 0, 9));
    const char *hex = PQgetvalue(res, 0, 3);
    size_t hl = strlen(hex);
    sealed = malloc(hl / 2 + 1);
    long n = sealed ? crypto_hex_decode(hex, sealed, hl / 2 + 1) : -1;
    aad_for(aad, sizeof aad, hash);
    if (n < 0 || grants_open(g, PQgetvalue(res, 0, 4), sealed, (size_t)n, aad, &verifier) ||
        strlen(verifier) >= sizeof out->verifier) {
        snprintf(err, errlen, "the state's verifier cannot be opened (unknown key?)");
        r = STATE_ERROR;
        goto out;
    }
    snprintf(out->verifier, sizeof out->verifier, "%s", verifier);
    r = STATE_OK;
done:
    if (r != STATE_OK)
        snprintf(err, errlen, "%s", state_result_str(r));
out:
    grants_free_secret(verifier);
    free(sealed);
    PQclear(res);
    return r;
}
