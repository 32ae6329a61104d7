/* states: OAuth state issue and single-use consumption. */
#include "states.h"

#include "base64.h"
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
    "states_consume",
    STATES_TAKE_SQL("oauth_states", "old.tenant_id, old.admin, coalesce(old.nonce, ''), "
                                    "coalesce(old.session_hash, ''), "
                                    "coalesce(old.provider_tenant, '')")};

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
    uint8_t raw[STATE_CHARS];
    return s && strlen(s) == STATE_CHARS &&
           base64_decode(BASE64_URL, s, STATE_CHARS, raw, sizeof raw) >= 0;
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

enum state_result states_take(struct db_conn *db, const struct db_stmt *take, const char *hash,
                              const char *provider, PGresult **row, char *err, size_t errlen)
{
    enum state_result r = STATE_ERROR;
    PGresult *res = NULL;
    *row = NULL;
    const char *params[] = {hash};
    res = db_exec(db, take, 1, params);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    int last = PQnfields(res) - 1;
    if (PQntuples(res) != 1)
        r = STATE_UNKNOWN;
    else if (strcmp(PQgetvalue(res, 0, last - 1), "t") == 0)
        r = STATE_USED;
    else if (strcmp(PQgetvalue(res, 0, last), "t") == 0)
        r = STATE_EXPIRED;
    else if (strcmp(PQgetvalue(res, 0, last - 2), provider) != 0)
        r = STATE_WRONG_PROVIDER;
    else
        r = STATE_OK;
    if (r != STATE_OK)
        snprintf(err, errlen, "%s", state_result_str(r));
out:
    if (r == STATE_OK)
        *row = res;
    else
        PQclear(res);
    return r;
}

int states_open_verifier(const struct grants *g, const PGresult *row, const char *aad, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    int rc = -1;
    char *verifier = NULL;
    const char *hex = PQgetvalue(row, 0, 0);
    size_t hl = strlen(hex);
    uint8_t *sealed = malloc(hl / 2 + 1);
    long n = sealed ? crypto_hex_decode(hex, sealed, hl / 2 + 1) : -1;
    if (n < 0 || grants_open(g, PQgetvalue(row, 0, 1), sealed, (size_t)n, aad, &verifier) ||
        strlen(verifier) >= outlen) {
        snprintf(err, errlen, "the state's verifier cannot be opened (unknown key?)");
        goto out;
    }
    snprintf(out, outlen, "%s", verifier);
    rc = 0;
out:
    grants_free_secret(verifier);
    free(sealed);
    return rc;
}

enum state_result states_consume(struct db_conn *db, const struct grants *g, const char *provider,
                                 const char *state, struct state_info *out, char *err,
                                 size_t errlen)
{
    char hash[65], aad[96];
    PGresult *row = NULL;
    memset(out, 0, sizeof *out);
    if (!states_well_formed(state)) {
        snprintf(err, errlen, "%s", state_result_str(STATE_MALFORMED));
        return STATE_MALFORMED;
    }
    crypto_sha256_hex(state, strlen(state), hash);
    enum state_result r = states_take(db, &st_consume, hash, provider, &row, err, errlen);
    if (r != STATE_OK)
        return r;
    const int c = STATE_COL_EXTRA;
    snprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(row, 0, c));
    snprintf(out->admin, sizeof out->admin, "%s", PQgetvalue(row, 0, c + 1));
    snprintf(out->nonce, sizeof out->nonce, "%s", PQgetvalue(row, 0, c + 2));
    snprintf(out->session_hash, sizeof out->session_hash, "%s", PQgetvalue(row, 0, c + 3));
    snprintf(out->provider_tenant, sizeof out->provider_tenant, "%s", PQgetvalue(row, 0, c + 4));
    aad_for(aad, sizeof aad, hash);
    if (states_open_verifier(g, row, aad, out->verifier, sizeof out->verifier, err, errlen))
        r = STATE_ERROR;
    PQclear(row);
    return r;
}
