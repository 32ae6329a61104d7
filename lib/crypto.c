#include "crypto.h"

#include "base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

int crypto_random(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

int crypto_uuid(char out[37])
{
    uint8_t b[16];
    if (crypto_random(b, sizeof b))
        return -1;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

int crypto_token(char *out, size_t outlen, size_t nbytes)
{
    uint8_t b[64];
    if (nbytes > sizeof b || crypto_random(b, nbytes))
        return -1;
    return base64_encode(BASE64_URL, b, nbytes, out, outlen) < 0 ? -1 : 0;
}

void crypto_sha256(const void *data, size_t n, uint8_t out[32])
{
    SHA256(data, n, out);
}

void crypto_sha256_hex(const void *data, size_t n, char out[65])
{
    uint8_t h[32];
    SHA256(data, n, h);
    crypto_hex(h, 32, out);
}

void crypto_md5_hex(const void *data, size_t n, char out[33])
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data, n, h, &len, EVP_md5(), NULL) != 1 || len != 16) {
        out[0] = '\0';
        return;
    }
    crypto_hex(h, 16, out);
}

/* The event code's names for base64_* (lib/base64.h); new code calls base64_* itself. */
long crypto_base64url(const void *data, size_t n, char *out, size_t outlen)
{
    return base64_encode(BASE64_URL, data, n, out, outlen);
}

long crypto_base64(const void *data, size_t n, char *out, size_t outlen)
{
    return base64_encode(BASE64_STD, data, n, out, outlen);
}

long crypto_base64_decode(const char *in, uint8_t *out, size_t outlen)
{
    return base64_decode(BASE64_ANY, in, strlen(in), out, outlen);
}

void crypto_hex(const void *data, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long crypto_hex_decode(const char *in, uint8_t *out, size_t outlen)
{
    size_t n = strlen(in);
    if (n % 2 || n / 2 > outlen)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

int crypto_pkce_challenge(const char *verifier, char out[44])
{
    uint8_t h[32];
    SHA256((const unsigned char *)verifier, strlen(verifier), h);
    return base64_encode(BASE64_URL, h, 32, out, 44) == 43 ? 0 : -1;
}

bool crypto_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

bool crypto_equal_mem(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int crypto_key_parse(const char *text, uint8_t key[CRYPTO_KEY_LEN], char *err, size_t errlen)
{
    uint8_t tmp[64];
    long n = -1;
    if (strlen(text) == 64)
        n = crypto_hex_decode(text, tmp, sizeof tmp);
    if (n != CRYPTO_KEY_LEN)
        n = base64_decode(BASE64_ANY, text, strlen(text), tmp, sizeof tmp);
    if (n != CRYPTO_KEY_LEN) {
        snprintf(err, errlen, "a key must be 32 bytes, given as 64 hex characters or base64");
        return -1;
    }
    memcpy(key, tmp, CRYPTO_KEY_LEN);
    OPENSSL_cleanse(tmp, sizeof tmp);
    return 0;
}

int crypto_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *plain, size_t n, const void *aad,
                size_t aadlen, uint8_t *out)
{
    int rc = -1, len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || crypto_random(out, CRYPTO_NONCE_LEN))
        goto out;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, out) != 1)
        goto out;
    if (aad && aadlen && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto out;
    if (EVP_EncryptUpdate(ctx, out + CRYPTO_NONCE_LEN, &len, plain, (int)n) != 1)
        goto out;
    if (EVP_EncryptFinal_ex(ctx, out + CRYPTO_NONCE_LEN + len, &len) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN,
                            out + CRYPTO_NONCE_LEN + n) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int crypto_open(const uint8_t key[CRYPTO_KEY_LEN], const uint8_t *in, size_t n, const void *aad,
                size_t aadlen, void *plain)
{
    int rc = -1, len = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    if (n < CRYPTO_SEAL_OVERHEAD)
        return -1;
    size_t ctlen = n - CRYPTO_SEAL_OVERHEAD;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) != 1)
        goto out;
    if (aad && aadlen && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto out;
    if (EVP_DecryptUpdate(ctx, plain, &len, in + CRYPTO_NONCE_LEN, (int)ctlen) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN,
                            (void *)(in + CRYPTO_NONCE_LEN + ctlen)) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(ctx, (uint8_t *)plain + len, &len) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}
