/* grants: AES-256-GCM keyring for secrets at rest. */
#include "grants.h"

#include "crypto.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct grant_key {
    char id[GRANTS_KEY_ID_MAX];
    uint8_t key[CRYPTO_KEY_LEN];
};

struct grants {
    struct grant_key keys[GRANTS_MAX_KEYS];
    size_t nkeys;
    size_t active;
};

static int valid_key_id(const char *s, size_t n)
{
    if (n == 0 || n >= GRANTS_KEY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static const struct grant_key *find_key(const struct grants *g, const char *id)
{
    for (size_t i = 0; i < g->nkeys; i++)
        if (strcmp(g->keys[i].id, id) == 0)
            return &g->keys[i];
    return NULL;
}

struct grants *grants_new(const char *spec, const char *active_id, char *err, size_t errlen)
{
    struct grants *g = NULL, *ret = NULL;
    char item[256];
    if (!spec || !*spec) {
        snprintf(err, errlen, "no keys configured (PANEL_AUTH_KEYS or PANEL_AUTH_KEYS_FILE)");
        goto out;
    }
    g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        /* Tolerate whitespace and newlines (a mounted file often ends with one). */
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\n' || p[len - 1] == '\r' ||
                       p[len - 1] == '\t'))
            len--;
        while (len && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) {
            p++;
            len--;
        }
        if (len == 0)
            goto next;
        if (len >= sizeof item) {
            snprintf(err, errlen, "key entry %zu is too long", g->nkeys + 1);
            goto out;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strchr(item, ':');
        if (!colon || !valid_key_id(item, (size_t)(colon - item))) {
            snprintf(err, errlen,
                     "key entry %zu: expected keyid:key with an id of [A-Za-z0-9_.-]{1,31}",
                     g->nkeys + 1);
            goto out;
        }
        *colon = '\0';
        if (g->nkeys == GRANTS_MAX_KEYS) {
            snprintf(err, errlen, "at most %d keys", GRANTS_MAX_KEYS);
            goto out;
        }
        if (find_key(g, item)) {
            snprintf(err, errlen, "key id '%s' appears twice", item);
            goto out;
        }
        char kerr[128];
        struct grant_key *k = &g->keys[g->nkeys];
        if (crypto_key_parse(colon + 1, k->key, kerr, sizeof kerr)) {
            snprintf(err, errlen, "key '%s': %s", item, kerr);
            goto out;
        }
        memcpy(k->id, item, strlen(item) + 1); /* valid_key_id bounded it */
        g->nkeys++;
    next:
        if (!end)
            break;
        p = end + 1;
    }
    if (g->nkeys == 0) {
        snprintf(err, errlen, "no keys configured");
        goto out;
    }
    if (!active_id || !*active_id) {
        if (g->nkeys > 1) {
            snprintf(err, errlen, "several keys: PANEL_AUTH_ACTIVE_KEY_ID must name one");
            goto out;
        }
        g->active = 0;
    } else {
        const struct grant_key *k = find_key(g, active_id);
        if (!k) {
            snprintf(err, errlen, "active key id '%s' is not among the keys", active_id);
            goto out;
        }
        g->active = (size_t)(k - g->keys);
    }
    ret = g;
    g = NULL;
out:
    OPENSSL_cleanse(item, sizeof item);
    grants_destroy(g);
    return ret;
}

void grants_destroy(struct grants *g)
{
    if (!g)
        return;
    OPENSSL_cleanse(g, sizeof *g);
    free(g);
}

const char *grants_active_id(const struct grants *g)
{
    return g->keys[g->active].id;
}

int grants_seal(const struct grants *g, const void *plain, size_t n, const char *aad, uint8_t **out,
                size_t *outlen)
{
    int rc = -1;
    uint8_t *sealed = NULL;
    if (n > GRANTS_MAX_PLAIN)
        goto out;
    sealed = malloc(n + CRYPTO_SEAL_OVERHEAD);
    if (!sealed)
        goto out;
    if (crypto_seal(g->keys[g->active].key, plain, n, aad, aad ? strlen(aad) : 0, sealed))
        goto out;
    *out = sealed;
    *outlen = n + CRYPTO_SEAL_OVERHEAD;
    sealed = NULL;
    rc = 0;
out:
    free(sealed);
    return rc;
}

int grants_open(const struct grants *g, const char *key_id, const uint8_t *sealed, size_t n,
                const char *aad, char **plain)
{
    int rc = -2;
    char *p = NULL;
    const struct grant_key *k = key_id ? find_key(g, key_id) : NULL;
    if (!k) {
        rc = -1;
        goto out;
    }
    if (n < CRYPTO_SEAL_OVERHEAD || n - CRYPTO_SEAL_OVERHEAD > GRANTS_MAX_PLAIN)
        goto out;
    p = malloc(n - CRYPTO_SEAL_OVERHEAD + 1);
    if (!p)
        goto out;
    if (crypto_open(k->key, sealed, n, aad, aad ? strlen(aad) : 0, p))
        goto out;
    p[n - CRYPTO_SEAL_OVERHEAD] = '\0';
    *plain = p;
    p = NULL;
    rc = 0;
out:
    free(p);
    return rc;
}

void grants_free_secret(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}
