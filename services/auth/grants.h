/* grants: the keyring that seals refresh tokens (and PKCE verifiers) with AES-256-GCM. Each
 * sealed value is stored beside the id of the key that sealed it, so keys can be rotated:
 * new values use the active key, old values stay readable while their key is configured,
 * and `panel-auth rekey` re-seals everything under the active key. */
#ifndef AUTH_GRANTS_H
#define AUTH_GRANTS_H

#include <stddef.h>
#include <stdint.h>

#define GRANTS_MAX_KEYS   16
#define GRANTS_KEY_ID_MAX 32
/* The largest secret we seal (Google refresh tokens are ~100 bytes). */
#define GRANTS_MAX_PLAIN 4096

struct grants;

/* Parse "keyid:key[,keyid:key...]" (key: 64 hex characters or base64 of 32 bytes; key ids
 * [A-Za-z0-9_.-], at most 31 characters) and pick active_id (NULL or "" = the only key, an
 * error when there are several). Returns NULL with a message in err (never the key). */
struct grants *grants_new(const char *spec, const char *active_id, char *err, size_t errlen);
void grants_destroy(struct grants *g);
/* The id of the key new values are sealed with (borrowed). */
const char *grants_active_id(const struct grants *g);
/* Seal plain (n bytes, at most GRANTS_MAX_PLAIN) under the active key, bound to aad (e.g.
 * "tenant/provider") so a sealed value cannot be moved to another row. *out is malloc'd
 * (caller frees), *outlen = n + CRYPTO_SEAL_OVERHEAD. 0 or -1. */
int grants_seal(const struct grants *g, const void *plain, size_t n, const char *aad, uint8_t **out,
                size_t *outlen) __attribute__((warn_unused_result));
/* Open sealed bytes sealed by key_id with aad. *plain is a malloc'd NUL-terminated string
 * (caller frees, ideally after wiping). 0; -1 unknown key id; -2 authentication failed. */
int grants_open(const struct grants *g, const char *key_id, const uint8_t *sealed, size_t n,
                const char *aad, char **plain) __attribute__((warn_unused_result));
/* Wipe and free a secret returned by grants_open (NULL is fine). */
void grants_free_secret(char *s);

#endif
