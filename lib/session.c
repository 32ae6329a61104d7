/* session: see session.h. */
#include "session.h"

#include "base64.h"
#include "crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_BYTES 32
#define TOKEN_CHARS 43 /* base64url of 32 bytes, no padding */
#define CSRF_LABEL  "panel-csrf"

int session_new_token(char out[SESSION_TOKEN_MAX])
{
    return crypto_token(out, SESSION_TOKEN_MAX, TOKEN_BYTES);
}

bool session_token_valid(const char *s)
{
    uint8_t raw[TOKEN_BYTES];
    return s && strlen(s) == TOKEN_CHARS &&
           base64_decode(BASE64_URL, s, TOKEN_CHARS, raw, sizeof raw) == TOKEN_BYTES;
}

void session_token_hash(const char *token, char out[SESSION_HASH_LEN])
{
    crypto_sha256_hex(token, strlen(token), out);
}

int session_csrf_token(const char *session_id, char out[SESSION_TOKEN_MAX])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), session_id, (int)strlen(session_id), (const unsigned char *)CSRF_LABEL,
              sizeof CSRF_LABEL - 1, mac, &maclen))
        return -1;
    return base64_encode(BASE64_URL, mac, maclen, out, SESSION_TOKEN_MAX) < 0 ? -1 : 0;
}

bool session_csrf_valid(const char *session_id, const char *token)
{
    char want[SESSION_TOKEN_MAX];
    if (!session_id || !token || session_csrf_token(session_id, want) != 0)
        return false;
    return crypto_equal(want, token);
}

int session_cookie_get(const char *header, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = header;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t vlen = len - nlen - 1;
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (vlen + 1 > outlen)
                return -1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p = end;
    }
    return 1;
}

/* RFC 6265 cookie-octet, and a token for the name. */
static bool cookie_text_ok(const char *s, bool is_name)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\')
            return false;
        if (is_name && c == '=')
            return false;
    }
    return true;
}

int session_set_cookie(char *out, size_t outlen, const char *name, const char *value,
                       long max_age_s, bool secure)
{
    if (!*name || !cookie_text_ok(name, true) || !cookie_text_ok(value, false))
        return -1;
    char age[40] = "";
    if (max_age_s >= 0)
        snprintf(age, sizeof age, "; Max-Age=%ld", max_age_s);
    int n = snprintf(out, outlen, "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Lax%s%s\r\n", name,
                     max_age_s == 0 ? "" : value, age, secure ? "; Secure" : "");
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
