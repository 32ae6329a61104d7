/* base64: see base64.h. */
#include "base64.h"

#include <stdbool.h>

static const char std_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

long base64_encode(enum base64_alphabet a, const void *data, size_t n, char *out, size_t outlen)
{
    const uint8_t *p = data;
    const char *chars = a == BASE64_URL ? url_chars : std_chars;
    bool pad = a != BASE64_URL;
    size_t need = pad ? BASE64_STD_LEN(n) : BASE64_URL_LEN(n);
    if (n > (SIZE_MAX - 3) / 4 * 3 || outlen < need + 1)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = chars[v >> 18 & 63];
        out[o++] = chars[v >> 12 & 63];
        out[o++] = chars[v >> 6 & 63];
        out[o++] = chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = chars[v >> 18 & 63];
        out[o++] = chars[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = chars[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return (long)o;
}

/* The value of c in alphabet a, or -1. */
static int digit(enum base64_alphabet a, char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if ((c == '+' && a != BASE64_URL) || (c == '-' && a != BASE64_STD))
        return 62;
    if ((c == '/' && a != BASE64_URL) || (c == '_' && a != BASE64_STD))
        return 63;
    return -1;
}

long base64_decode(enum base64_alphabet a, const char *in, size_t n, uint8_t *out, size_t outlen)
{
    size_t len = n;
    if (a != BASE64_URL && n % 4 == 0 && n > 0 && in[n - 1] == '=')
        len -= (n >= 2 && in[n - 2] == '=') ? 2 : 1;
    if (a == BASE64_STD && n % 4 != 0)
        return -1;
    /* A text of 4k+1 characters cannot come from an encoder. */
    if (len % 4 == 1)
        return -1;
    if (len < n && len % 4 == 0)
        return -1; /* padding after a whole quantum */
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > outlen)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = digit(a, in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1; /* a second text for the same bytes */
    return (long)o;
}
