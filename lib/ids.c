/* ids: see ids.h. */
#include "ids.h"

#include <stdint.h>
#include <string.h>

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool hexdigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The C locale's isspace, without the locale. */
static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool ids_chars_alnum(const char *s, size_t n, const char *also)
{
    for (size_t i = 0; i < n; i++)
        if (!alnum(s[i]) && (s[i] == '\0' || !strchr(also, s[i])))
            return false;
    return true;
}

bool ids_chars_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!hexdigit(s[i]))
            return false;
    return true;
}

bool ids_tenant_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= IDS_TENANT_MAX && alnum(s[0]) && ids_chars_alnum(s + 1, n - 1, "_.-");
}

bool ids_directory_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= IDS_DIRECTORY_MAX && alnum(s[0]) && !strstr(s, "..") &&
           ids_chars_alnum(s + 1, n - 1, ".-");
}

bool ids_uuid_valid(const char *s)
{
    if (!s || strlen(s) != IDS_UUID_LEN)
        return false;
    for (int i = 0; i < IDS_UUID_LEN; i++) {
        bool dash_place = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_place ? s[i] != '-' : !hexdigit(s[i]))
            return false;
    }
    return true;
}

bool ids_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!s)
        return false;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len > n - i)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

int ids_email_normalize(const char *in, char *out, size_t outlen)
{
    if (!in || !out || outlen == 0)
        return -1;
    while (blank(*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && blank(in[n - 1]))
        n--;
    if (n == 0 || n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[n] = '\0';
    return 0;
}

bool ids_email_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n > IDS_EMAIL_MAX)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}
