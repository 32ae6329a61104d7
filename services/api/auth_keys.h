/* auth_keys: API keys "pk_<key_id>.<secret>". Only sha256(secret) is stored; a key belongs
 * to one tenant and has the role admin or viewer. */
#ifndef API_AUTH_KEYS_H
#define API_AUTH_KEYS_H

#include "db_pool.h"

#include <stdbool.h>
#include <stddef.h>

#define AUTH_KEY_ID_MAX 40
#define AUTH_TENANT_MAX 72

enum auth_result {
    AUTH_OK = 0,
    AUTH_MISSING = 1, /* no or malformed Authorization header */
    AUTH_INVALID = 2, /* unknown, revoked or wrong secret */
    AUTH_ERROR = 3,   /* database unavailable */
};

struct auth_key {
    char key_id[AUTH_KEY_ID_MAX + 1];
    char tenant[AUTH_TENANT_MAX + 1];
    bool admin;
};

/* Split "Bearer pk_<id>.<secret>" into its parts. 0 or -1 when malformed. */
int auth_keys_parse(const char *header, char *key_id, size_t idlen, char *secret, size_t secretlen)
    __attribute__((warn_unused_result));
/* Check the header against api_keys; fills out on AUTH_OK. */
enum auth_result auth_keys_check(struct db_pool *pool, PGconn *conn, const char *header,
                                 struct auth_key *out);
#endif
