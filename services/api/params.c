/* params: see params.h. */
#include "params.h"

#include "base64.h"
#include "crypto.h"
#include "httpd.h"
#include "ids.h"

#include <civetweb.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURSOR_VERSION "c1"
#define CURSOR_MAC_LEN 16

static unsigned char cursor_key[32];

/* Percent-decode one query component (with '+' as space) into out. -1 when a '%' is not
 * followed by two hexadecimal digits (civetweb would pass it through as it is) or when out is
 * too small. */
static int url_decode(const char *s, size_t n, char *out, size_t outlen, size_t *outn)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '%' && (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                            !isxdigit((unsigned char)s[i + 2])))
            return -1;
    if (n > INT_MAX || outlen > INT_MAX)
        return -1;
    int got = mg_url_decode(s, (int)n, out, (int)outlen, 1);
    if (got < 0 || (size_t)got >= outlen)
        return -1;
    *outn = (size_t)got;
    return 0;
}

int params_check(const char *query, const char *const *allowed, char *msg, size_t msglen)
{
    char seen[32][64];
    int nseen = 0;
    if (!query || !*query)
        return 0;
    if (strlen(query) > 8192) {
        snprintf(msg, msglen, "query string too long");
        return -1;
    }
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        char name[64], value[PARAMS_MAX_VALUE * 3 + 1];
        size_t dn = 0, vn = 0;
        if (len == 0)
            goto next;
        if (url_decode(p, nlen, name, sizeof name, &dn) != 0 || !ids_utf8_valid(name, dn)) {
            snprintf(msg, msglen, "malformed query parameter name");
            return -1;
        }
        bool ok = false;
        for (size_t i = 0; allowed && allowed[i]; i++)
            if (strcmp(allowed[i], name) == 0)
                ok = true;
        if (!ok) {
            snprintf(msg, msglen, "unknown query parameter '%.60s'", name);
            return -1;
        }
        for (int i = 0; i < nseen; i++) {
            if (strcmp(seen[i], name) == 0) {
                snprintf(msg, msglen, "query parameter '%.60s' given twice", name);
                return -1;
            }
        }
        if (nseen < 32)
            snprintf(seen[nseen++], sizeof seen[0], "%s", name);
        if (eq) {
            if (url_decode(eq + 1, len - nlen - 1, value, sizeof value, &vn) != 0 ||
                vn > PARAMS_MAX_VALUE) {
                snprintf(msg, msglen, "query parameter '%.60s' is malformed or too long", name);
                return -1;
            }
            if (!ids_utf8_valid(value, vn)) {
                snprintf(msg, msglen, "query parameter '%.60s' is not valid UTF-8", name);
                return -1;
            }
        }
    next:
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int params_str(const char *query, const char *name, char *out, size_t outlen, char *msg,
               size_t msglen)
{
    /* Decode into a scratch buffer: civetweb clears its output when the name is absent,
     * and callers keep their defaults in out. */
    char tmp[PARAMS_MAX_VALUE + 1];
    size_t cap = outlen < sizeof tmp ? outlen : sizeof tmp;
    int r = httpd_param(query, name, tmp, cap);
    if (r < 0 || (r == 0 && !ids_utf8_valid(tmp, strlen(tmp)))) {
        snprintf(msg, msglen, "query parameter '%s' is too long or invalid", name);
        return -1;
    }
    if (r == 1 || tmp[0] == 0)
        return 1;
    memcpy(out, tmp, strlen(tmp) + 1);
    return 0;
}

int params_limit(const char *query, long def, long max, long *out, char *msg, size_t msglen)
{
    char v[32];
    int r = params_str(query, "limit", v, sizeof v, msg, msglen);
    if (r < 0)
        return -1;
    if (r == 1) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || *end || n < 1 || n > max) {
        snprintf(msg, msglen, "limit must be an integer from 1 to %ld", max);
        return -1;
    }
    *out = n;
    return 0;
}

int params_bool(const char *query, const char *name, bool *out, char *msg, size_t msglen)
{
    char v[16];
    int r = params_str(query, name, v, sizeof v, msg, msglen);
    if (r != 0)
        return r;
    if (strcmp(v, "true") == 0)
        *out = true;
    else if (strcmp(v, "false") == 0)
        *out = false;
    else {
        snprintf(msg, msglen, "%s must be true or false", name);
        return -1;
    }
    return 0;
}

static int two(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool date_prefix_ok(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2))
        return false;
    int y = two(s) * 100 + two(s + 2), m = two(s + 5), d = two(s + 8);
    if (y < 1900 || m < 1 || m > 12 || d < 1)
        return false;
    int md = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        md = 29;
    return d <= md;
}

bool params_is_date(const char *s)
{
    return strlen(s) == 10 && date_prefix_ok(s);
}

bool params_is_timestamp(const char *s)
{
    size_t n = strlen(s);
    if (n < 20 || n > 40 || !date_prefix_ok(s) || (s[10] != 'T' && s[10] != 't'))
        return false;
    const char *t = s + 11;
    if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' || !digits(t + 6, 2))
        return false;
    if (two(t) > 23 || two(t + 3) > 59 || two(t + 6) > 60)
        return false;
    t += 8;
    if (*t == '.') {
        t++;
        if (!isdigit((unsigned char)*t))
            return false;
        while (isdigit((unsigned char)*t))
            t++;
    }
    if ((*t == 'Z' || *t == 'z') && t[1] == 0)
        return true;
    if ((*t == '+' || *t == '-') && digits(t + 1, 2) && t[3] == ':' && digits(t + 4, 2) &&
        t[6] == 0)
        return two(t + 1) <= 23 && two(t + 4) <= 59;
    return false;
}

int params_date(const char *query, const char *name, char out[11], char *msg, size_t msglen)
{
    char v[32];
    int r = params_str(query, name, v, sizeof v, msg, msglen);
    if (r != 0)
        return r;
    if (!params_is_date(v)) {
        snprintf(msg, msglen, "%s must be a date YYYY-MM-DD", name);
        return -1;
    }
    memcpy(out, v, 11);
    return 0;
}

int params_enum(const char *query, const char *name, const char *const *choices, char *out,
                size_t outlen, char *msg, size_t msglen)
{
    int r = params_str(query, name, out, outlen, msg, msglen);
    if (r != 0)
        return r;
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(choices[i], out) == 0)
            return 0;
    snprintf(msg, msglen, "%s has an unknown value", name);
    return -1;
}

void params_cursor_key(const unsigned char key[32])
{
    memcpy(cursor_key, key, sizeof cursor_key);
}

static void cursor_mac(const char *scope, const char *payload, size_t n,
                       unsigned char mac[EVP_MAX_MD_SIZE])
{
    unsigned int maclen = 0;
    /* The scope is part of the MAC so a People cursor is refused by Assets. */
    size_t slen = strlen(scope);
    unsigned char *msg = malloc(slen + 1 + n);
    if (!msg) {
        memset(mac, 0, EVP_MAX_MD_SIZE);
        return;
    }
    memcpy(msg, scope, slen);
    msg[slen] = 0x1e;
    memcpy(msg + slen + 1, payload, n);
    HMAC(EVP_sha256(), cursor_key, sizeof cursor_key, msg, slen + 1 + n, mac, &maclen);
    free(msg);
}

int params_cursor_encode(const char *scope, const char *const *keys, int nkeys, char *out,
                         size_t outlen)
{
    char payload[PARAMS_CURSOR_MAX];
    size_t n = 0;
    int w = snprintf(payload, sizeof payload, "%s", CURSOR_VERSION);
    if (w < 0)
        return -1;
    n = (size_t)w;
    for (int i = 0; i < nkeys; i++) {
        if (strchr(keys[i], 0x1f))
            return -1;
        w = snprintf(payload + n, sizeof payload - n, "\x1f%s", keys[i]);
        if (w < 0 || (size_t)w >= sizeof payload - n)
            return -1;
        n += (size_t)w;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    cursor_mac(scope, payload, n, mac);
    long a = base64_encode(BASE64_URL, payload, n, out, outlen);
    if (a < 0 || (size_t)a + 2 >= outlen)
        return -1;
    out[a] = '.';
    long b = base64_encode(BASE64_URL, mac, CURSOR_MAC_LEN, out + a + 1, outlen - (size_t)a - 1);
    return b < 0 ? -1 : 0;
}

int params_cursor_decode(const char *scope, const char *cursor, int nkeys,
                         char vals[][PARAMS_CURSOR_MAX], char *msg, size_t msglen)
{
    unsigned char payload[PARAMS_CURSOR_MAX], mac[64];
    unsigned char want[EVP_MAX_MD_SIZE];
    long plen = -1;
    size_t clen = strlen(cursor);
    const char *dot = strchr(cursor, '.');
    if (clen > PARAMS_CURSOR_MAX || !dot ||
        (plen = base64_decode(BASE64_URL, cursor, (size_t)(dot - cursor), payload,
                              sizeof payload - 1)) < 0 ||
        base64_decode(BASE64_URL, dot + 1, strlen(dot + 1), mac, sizeof mac) != CURSOR_MAC_LEN)
        goto bad;
    payload[plen] = 0;
    cursor_mac(scope, (const char *)payload, (size_t)plen, want);
    if (CRYPTO_memcmp(want, mac, CURSOR_MAC_LEN) != 0)
        goto bad;
    if (plen < 2 || memcmp(payload, CURSOR_VERSION, 2) != 0)
        goto bad;
    const char *p = (const char *)payload + 2;
    for (int i = 0; i < nkeys; i++) {
        if (*p != 0x1f)
            goto bad;
        p++;
        const char *e = strchr(p, 0x1f);
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n >= PARAMS_CURSOR_MAX)
            goto bad;
        memcpy(vals[i], p, n);
        vals[i][n] = 0;
        p += n;
    }
    if (*p)
        goto bad;
    return 0;
bad:
    snprintf(msg, msglen, "cursor is not valid (use next_cursor from a previous page)");
    return -1;
}
