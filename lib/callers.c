/* callers: see callers.h. Secrets are kept only as SHA-256 digests: comparing fixed-size
 * digests of every configured secret, without stopping at the first match, tells a timing
 * observer neither which secret matched nor how long any of them is. */
#include "callers.h"

#include "crypto.h"
#include "httpd.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CALLERS_MAX   6 /* three callers, two secrets each */
#define CALLERS_SEPS  ", \t\r\n"
#define CALLER_ID_ALL (CALLER_API | CALLER_GOOGLE_SYNC | CALLER_AZURE_SYNC)

struct caller_secret {
    enum caller_id id;
    uint8_t digest[32];
};

struct callers {
    size_t n;
    struct caller_secret entries[CALLERS_MAX];
};

static const struct {
    enum caller_id id;
    const char *name;
} caller_names[] = {
    {CALLER_API, "api"},
    {CALLER_GOOGLE_SYNC, "google-sync"},
    {CALLER_AZURE_SYNC, "azure-sync"},
};

const char *caller_name(enum caller_id id)
{
    for (size_t i = 0; i < sizeof caller_names / sizeof caller_names[0]; i++)
        if (caller_names[i].id == id)
            return caller_names[i].name;
    return "unknown";
}

static enum caller_id caller_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof caller_names / sizeof caller_names[0]; i++)
        if (strlen(caller_names[i].name) == len && memcmp(caller_names[i].name, name, len) == 0)
            return caller_names[i].id;
    return CALLER_NONE;
}

static bool secret_chars_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Parse one "name:secret" entry of length len into c; entry number idx (1-based) names it in
 * errors, since the secret itself must not be printed. */
static int add_entry(struct callers *c, const char *env, const char *entry, size_t len, size_t idx,
                     unsigned accepted, char *err, size_t errlen)
{
    const char *colon = memchr(entry, ':', len);
    if (!colon) {
        snprintf(err, errlen, "%s: entry %zu is not 'caller:secret'", env, idx);
        return -1;
    }
    size_t name_len = (size_t)(colon - entry), secret_len = len - name_len - 1;
    enum caller_id id = caller_by_name(entry, name_len);
    if (id == CALLER_NONE) {
        /* The name is not echoed: an entry written the wrong way round would print a secret. */
        snprintf(err, errlen,
                 "%s: entry %zu names an unknown caller (known: api, google-sync, azure-sync)", env,
                 idx);
        return -1;
    }
    if (!(id & accepted)) {
        snprintf(err, errlen, "%s: entry %zu: caller '%s' may call no route of this service", env,
                 idx, caller_name(id));
        return -1;
    }
    if (secret_len < CALLERS_SECRET_MIN || secret_len > CALLERS_SECRET_MAX) {
        snprintf(err, errlen, "%s: the secret of entry %zu (%s) must have %d to %d characters", env,
                 idx, caller_name(id), CALLERS_SECRET_MIN, CALLERS_SECRET_MAX);
        return -1;
    }
    if (!secret_chars_ok(colon + 1, secret_len)) {
        snprintf(err, errlen,
                 "%s: the secret of entry %zu (%s) has a character that is not "
                 "printable ASCII",
                 env, idx, caller_name(id));
        return -1;
    }
    struct caller_secret e = {.id = id};
    crypto_sha256(colon + 1, secret_len, e.digest);
    size_t same_caller = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (memcmp(c->entries[i].digest, e.digest, sizeof e.digest) == 0) {
            snprintf(err, errlen,
                     "%s: entry %zu (%s) repeats the secret of entry %zu (%s); "
                     "every caller needs its own secret",
                     env, idx, caller_name(id), i + 1, caller_name(c->entries[i].id));
            return -1;
        }
        same_caller += c->entries[i].id == id;
    }
    if (same_caller >= CALLERS_SECRETS_PER_CALLER) {
        snprintf(err, errlen,
                 "%s: caller '%s' has more than %d secrets (an old and a new one "
                 "during a rotation)",
                 env, caller_name(id), CALLERS_SECRETS_PER_CALLER);
        return -1;
    }
    c->entries[c->n++] = e;
    return 0;
}

struct callers *callers_new(const char *env, const char *text, unsigned accepted, char *err,
                            size_t errlen)
{
    struct callers *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", env);
        return NULL;
    }
    const char *p = text ? text : "";
    size_t idx = 0;
    for (;;) {
        p += strspn(p, CALLERS_SEPS);
        if (!*p)
            break;
        size_t len = strcspn(p, CALLERS_SEPS);
        idx++;
        if (add_entry(c, env, p, len, idx, accepted & CALLER_ID_ALL, err, errlen)) {
            callers_destroy(c);
            return NULL;
        }
        p += len;
    }
    return c;
}

void callers_destroy(struct callers *c)
{
    if (!c)
        return;
    /* The digests are as good as the secrets to an offline guesser: wipe them. */
    memset(c, 0, sizeof *c);
    free(c);
}

size_t callers_count(const struct callers *c)
{
    return c ? c->n : 0;
}

enum caller_id callers_identify(const struct callers *c, const char *authorization)
{
    if (!c || !authorization || strncmp(authorization, "Bearer ", 7) != 0)
        return CALLER_NONE;
    const char *presented = authorization + 7;
    uint8_t digest[32];
    crypto_sha256(presented, strlen(presented), digest);
    unsigned found = 0;
    /* Every entry is compared; the match selects its id by masking, not by branching. */
    for (size_t i = 0; i < c->n; i++) {
        unsigned eq = (unsigned)crypto_equal_mem(digest, c->entries[i].digest, sizeof digest);
        found |= (unsigned)c->entries[i].id & (0u - eq);
    }
    /* An empty presented secret never matches (the parser refuses short secrets anyway). */
    return *presented ? (enum caller_id)found : CALLER_NONE;
}

enum callers_verdict callers_check(const struct callers *c, const char *authorization,
                                   unsigned allowed, enum caller_id *who)
{
    enum caller_id id = callers_identify(c, authorization);
    if (who)
        *who = id;
    if (id == CALLER_NONE)
        return CALLERS_UNKNOWN;
    return (allowed & (unsigned)id) ? CALLERS_ALLOWED : CALLERS_FORBIDDEN;
}

int callers_reply_refused(struct mg_connection *conn, enum callers_verdict v, enum caller_id who)
{
    if (v == CALLERS_FORBIDDEN) {
        log_warn("internal call refused: caller %s may not call this route", caller_name(who));
        return httpd_reply_error(conn, 403, "forbidden_caller",
                                 "this service's credential may not call this route");
    }
    return httpd_reply_error(conn, 401, "unauthorized", "the service secret is missing or wrong");
}
