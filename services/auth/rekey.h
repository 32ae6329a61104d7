/* rekey: re-seal every stored secret (grants, grants kept for a pending revoke, PKCE
 * verifiers) that is not under the active key, one row per transaction. Run it after adding
 * a new key and making it active; afterwards the old key can be removed. */
#ifndef AUTH_REKEY_H
#define AUTH_REKEY_H

#include "grants.h"

#include "db.h"
#include <stddef.h>

struct rekey_stats {
    long resealed; /* values now under the active key */
    long failed;   /* values that could not be opened (unknown key or damaged) */
};

/* Re-seal every value (or only tenant's when tenant is not NULL). Values that cannot be
 * opened are logged, counted in failed and skipped. 0, or -1 with a message on a database
 * error. */
int rekey_run(struct db_conn *db, const struct grants *g, const char *tenant,
              struct rekey_stats *stats, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
