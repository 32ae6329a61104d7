/* rekey: re-encrypt stored secrets under the active key. */
#include "rekey.h"

#include "crypto.h"
#include "db.h"
#include "log.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One kind of sealed column. list: $1 active key id, $2 tenant filter ('' = all) -> ids
 * (id1, id2). lock: $1 id1, $2 id2 -> hex, key id, aad. update: $1 id1, $2 id2, $3 hex,
 * $4 new key id, $5 old key id. */
struct sealed_col {
    const char *what;
    struct db_stmt list;
    struct db_stmt lock;
    struct db_stmt update;
};

static const struct sealed_col cols[] = {
    {"grant",
     {"rekey_grant_list",
      "SELECT tenant_id, provider FROM connections WHERE grant_sealed IS NOT NULL "
      "AND grant_key_id IS DISTINCT FROM $1 AND ($2 = '' OR tenant_id = $2)"},
     {"rekey_grant_lock",
      "SELECT encode(grant_sealed, 'hex'), grant_key_id, 'grant:' || tenant_id || '/' || provider "
      "FROM connections WHERE tenant_id = $1 AND provider = $2 AND grant_sealed IS NOT NULL "
      "FOR UPDATE"},
     {"rekey_grant_update",
      "UPDATE connections SET grant_sealed = decode($3, 'hex'), grant_key_id = $4 "
      "WHERE tenant_id = $1 AND provider = $2 AND grant_key_id = $5"}},
    {"grant kept for a pending revoke",
     {"rekey_revoke_list",
      "SELECT tenant_id, provider FROM connections WHERE revoke_sealed IS NOT NULL "
      "AND revoke_key_id IS DISTINCT FROM $1 AND ($2 = '' OR tenant_id = $2)"},
     {"rekey_revoke_lock",
      "SELECT encode(revoke_sealed, 'hex'), revoke_key_id, 'grant:' || tenant_id || '/' || "
      "provider FROM connections WHERE tenant_id = $1 AND provider = $2 "
      "AND revoke_sealed IS NOT NULL FOR UPDATE"},
     {"rekey_revoke_update",
      "UPDATE connections SET revoke_sealed = decode($3, 'hex'), revoke_key_id = $4 "
      "WHERE tenant_id = $1 AND provider = $2 AND revoke_key_id = $5"}},
    {"PKCE verifier",
     {"rekey_verifier_list",
      "SELECT state_hash, '' FROM oauth_states WHERE verifier_sealed IS NOT NULL "
      "AND verifier_key_id IS DISTINCT FROM $1 AND used_at IS NULL AND expires_at > now() "
      "AND ($2 = '' OR tenant_id = $2)"},
     {"rekey_verifier_lock",
      "SELECT encode(verifier_sealed, 'hex'), verifier_key_id, 'oauth_state:' || state_hash "
      "FROM oauth_states WHERE state_hash = $1 AND $2 = '' AND verifier_sealed IS NOT NULL "
      "FOR UPDATE"},
     {"rekey_verifier_update",
      "UPDATE oauth_states SET verifier_sealed = decode($3, 'hex'), verifier_key_id = $4 "
      "WHERE state_hash = $1 AND $2 = '' AND verifier_key_id = $5"}},
};

/* Re-seal one row in its own transaction. 1 done, 0 gone meanwhile, -1 database error,
 * -2 the value cannot be opened. */
static int reseal_one(struct db_conn *db, const struct grants *g, const struct sealed_col *col,
                      const char *id1, const char *id2, char *err, size_t errlen)
{
    int rc = -1;
    PGresult *res = NULL, *upd = NULL;
    char *plain = NULL, *hex = NULL;
    uint8_t *sealed = NULL, *resealed = NULL;
    size_t resealed_len = 0;
    const char *active = grants_active_id(g);
    if (pgx_exec(db_pg(db), "BEGIN", err, errlen))
        return -1;
    const char *lp[] = {id1, id2};
    res = db_exec(db, &col->lock, 2, lp);
    if (!pgx_ok(res, PGRES_TUPLES_OK, err, errlen))
        goto out;
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 1), active) == 0) {
        rc = 0;
        goto out;
    }
    const char *h = PQgetvalue(res, 0, 0), *kid = PQgetvalue(res, 0, 1),
               *aad = PQgetvalue(res, 0, 2);
    size_t hl = strlen(h);
    sealed = malloc(hl / 2 + 1);
    long n = sealed ? crypto_hex_decode(h, sealed, hl / 2 + 1) : -1;
    if (n < 0 || grants_open(g, kid, sealed, (size_t)n, aad, &plain)) {
        snprintf(err, errlen, "a %s sealed with key '%s' cannot be opened", col->what, kid);
        rc = -2;
        goto out;
    }
    if (grants_seal(g, plain, strlen(plain), aad, &resealed, &resealed_len) ||
        !(hex = malloc(resealed_len * 2 + 1))) {
        snprintf(err, errlen, "sealing failed");
        goto out;
    }
    crypto_hex(resealed, resealed_len, hex);
    const char *up[] = {id1, id2, hex, active, kid};
    upd = db_exec(db, &col->update, 5, up);
    if (!pgx_ok(upd, PGRES_COMMAND_OK, err, errlen))
        goto out;
    if (pgx_exec(db_pg(db), "COMMIT", err, errlen))
        goto out;
    rc = 1;
out:
    if (rc != 1)
        PQclear(PQexec(db_pg(db), "ROLLBACK"));
    grants_free_secret(plain);
    free(sealed);
    free(resealed);
    free(hex);
    PQclear(res);
    PQclear(upd);
    return rc;
}

int rekey_run(struct db_conn *db, const struct grants *g, const char *tenant,
              struct rekey_stats *stats, char *err, size_t errlen)
{
    memset(stats, 0, sizeof *stats);
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        const char *p[] = {grants_active_id(g), tenant ? tenant : ""};
        PGresult *ids = db_exec(db, &cols[i].list, 2, p);
        if (!pgx_ok(ids, PGRES_TUPLES_OK, err, errlen)) {
            PQclear(ids);
            return -1;
        }
        for (int r = 0; r < PQntuples(ids); r++) {
            char rerr[256];
            int o = reseal_one(db, g, &cols[i], PQgetvalue(ids, r, 0), PQgetvalue(ids, r, 1), rerr,
                               sizeof rerr);
            if (o == 1) {
                stats->resealed++;
            } else if (o == -2) {
                /* Reported and skipped: the operator keeps that key or re-authorizes. */
                stats->failed++;
                log_error("rekey: %s", rerr);
            } else if (o < 0) {
                snprintf(err, errlen, "%s", rerr);
                PQclear(ids);
                return -1;
            }
        }
        PQclear(ids);
    }
    return 0;
}
