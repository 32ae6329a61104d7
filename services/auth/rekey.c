/* rekey: re-encrypt stored secrets under the active key. */
#include "rekey.h"

#include "crypto.h"
#include "log.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One kind of sealed column: where it lives and how its AAD is formed. */
struct sealed_col {
    const char *select; /* $1 = active key id: rows to re-seal, returning key, aad, hex, id1, id2 */
    const char *update; /* $1 id1, $2 id2, $3 hex, $4 key id, $5 old key id */
};

static const struct sealed_col cols[] = {
    {"SELECT tenant_id, provider, encode(grant_sealed, 'hex'), grant_key_id, "
     "'grant:' || tenant_id || '/' || provider FROM connections "
     "WHERE grant_sealed IS NOT NULL AND grant_key_id IS DISTINCT FROM $1 "
     "LIMIT 1 FOR UPDATE SKIP LOCKED",
     "UPDATE connections SET grant_sealed = decode($3, 'hex'), grant_key_id = $4 "
     "WHERE tenant_id = $1 AND provider = $2 AND grant_key_id = $5"},
    {"SELECT tenant_id, provider, encode(revoke_sealed, 'hex'), revoke_key_id, "
     "'grant:' || tenant_id || '/' || provider FROM connections "
     "WHERE revoke_sealed IS NOT NULL AND revoke_key_id IS DISTINCT FROM $1 "
     "LIMIT 1 FOR UPDATE SKIP LOCKED",
     "UPDATE connections SET revoke_sealed = decode($3, 'hex'), revoke_key_id = $4 "
     "WHERE tenant_id = $1 AND provider = $2 AND revoke_key_id = $5"},
    {"SELECT state_hash, '', encode(verifier_sealed, 'hex'), verifier_key_id, "
     "'oauth_state:' || state_hash FROM oauth_states "
     "WHERE verifier_sealed IS NOT NULL AND verifier_key_id IS DISTINCT FROM $1 "
     "AND used_at IS NULL AND expires_at > now() LIMIT 1 FOR UPDATE SKIP LOCKED",
     "UPDATE oauth_states SET verifier_sealed = decode($3, 'hex'), verifier_key_id = $4 "
     "WHERE state_hash = $1 AND $2 = '' AND verifier_key_id = $5"},
};

/* Re-seal one row of col. 1 done, 0 nothing left, -1 error; a row that cannot be opened is
 * counted in failed and skipped by remembering its id in skip (a short list). */
static int reseal_one(PGconn *pg, const struct grants *g, const struct sealed_col *col,
                      struct rekey_stats *st, char *err, size_t errlen)
{
    int rc = -1;
    PGresult *res = NULL, *upd = NULL;
    char *plain = NULL, *hex = NULL;
    uint8_t *sealed = NULL, *resealed = NULL;
    size_t resealed_len = 0;
    const char *active = grants_active_id(g);
    if (pgx_exec(pg, "BEGIN", err, errlen))
        return -1;
    const char *sp[] = {active};
    res = PQexecParams(pg, col->select, 1, NULL, sp, NULL, NULL, 0);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    if (PQntuples(res) == 0) {
        rc = 0;
        goto out;
    }
    const char *h = PQgetvalue(res, 0, 2), *kid = PQgetvalue(res, 0, 3),
               *aad = PQgetvalue(res, 0, 4);
    size_t hl = strlen(h);
    sealed = malloc(hl / 2 + 1);
    long n = sealed ? crypto_hex_decode(h, sealed, hl / 2 + 1) : -1;
    if (n < 0 || grants_open(g, kid, sealed, (size_t)n, aad, &plain)) {
        snprintf(err, errlen, "a value sealed with key '%s' cannot be opened: keep that key "
                 "configured (or re-authorize the tenant)", kid);
        st->failed++;
        rc = -2;
        goto out;
    }
    if (grants_seal(g, plain, strlen(plain), aad, &resealed, &resealed_len) ||
        !(hex = malloc(resealed_len * 2 + 1))) {
        snprintf(err, errlen, "sealing failed");
        goto out;
    }
    crypto_hex(resealed, resealed_len, hex);
    const char *up[] = {PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), hex, active, kid};
    upd = PQexecParams(pg, col->update, 5, NULL, up, NULL, NULL, 0);
    if (!pgx_ok(upd, PGRES_COMMAND_OK, err, errlen))
        goto out;
    if (pgx_exec(pg, "COMMIT", err, errlen))
        goto out;
    st->resealed++;
    rc = 1;
out:
    if (rc != 1) {
        PQclear(PQexec(pg, "ROLLBACK"));
    }
    grants_free_secret(plain);
    free(sealed);
    free(resealed);
    free(hex);
    PQclear(res);
    PQclear(upd);
    return rc;
}

int rekey_run(PGconn *pg, const struct grants *g, struct rekey_stats *stats, char *err,
              size_t errlen)
{
    memset(stats, 0, sizeof *stats);
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        for (;;) {
            int r = reseal_one(pg, g, &cols[i], stats, err, errlen);
            if (r == 0)
                break;
            if (r == -1)
                return -1;
            if (r == -2) {
                /* Stop at the first value that cannot be opened: the operator must keep
                 * its key; looping would meet the same row again. */
                log_error("rekey: %s", err);
                return -1;
            }
        }
    }
    return 0;
}
