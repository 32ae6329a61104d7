/* crypto: randomness, UUIDs, hashes, encodings and AES-256-GCM sealing (OpenSSL). */
#ifndef PANEL_CRYPTO_H
#define PANEL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN   32
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN   16
/* Sealed bytes are nonce | ciphertext | tag. */
#define CRYPTO_SEAL_OVERHEAD (CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN)

/* Fill buf with cryptographically strong random bytes; 0 or -1. */
int crypto_random(void *buf, size_t n) __attribute__((warn_unused_result));
/* Random UUID v4 in canonical form into out (37 bytes with NUL); 0 or -1. */
int crypto_uuid(char out[37]) __attribute__((warn_unused_result));
/* A random URL-safe token of nbytes of entropy (base64url, no padding) into out. */
int crypto_token(char *out, size_t outlen, size_t nbytes) __attribute__((warn_unused_result));
void crypto_sha256(const void *data, size_t n, uint8_t out[32]);
void crypto_sha256_hex(const void *data, size_t n, char out[65]);
/* MD5 as lower-case hex, for content hashes that must equal PostgreSQL's md5() (not for
 * security); out is "" if the digest is unavailable. */
void crypto_md5_hex(const void *data, size_t n, char out[33]);
/* Older names of lib/base64.h's functions, kept for the event code (lib/events.c,
 * lib/asset_event.c) until it moves to base64_*: base64_encode(BASE64_URL), base64_encode(
 * BASE64_STD) and base64_decode(BASE64_ANY) of a NUL-terminated text. */
long crypto_base64url(const void *data, size_t n, char *out, size_t outlen);
long crypto_base64(const void *data, size_t n, char *out, size_t outlen);
long crypto_base64_decode(const char *in, uint8_t *out, size_t outlen);
void crypto_hex(const void *data, size_t n, char *out /* 2n+1 */);
long crypto_hex_decode(const char *in, uint8_t *out, size_t outlen);
/* PKCE S256: base64url(sha256(verifier)). */
int crypto_pkce_challenge(const char *verifier, char out[44]) __attribute__((warn_unused_result));
/* Constant-time comparison of two strings. */
bool crypto_equal(const char *a, const char *b);
/* Constant-time comparison of n bytes (e.g. two digests). */
bool crypto_equal_mem(const void *a, const void *b, size_t n);

/* Parse a 32-byte key given as 64 hex characters or as base64 of 32 bytes. */
int crypto_key_parse(const char *text, uint8_t key[CRYPTO_KEY_LEN], char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* AES-256-GCM. seal: out must hold n + CRYPTO_SEAL_OVERHEAD bytes. aad may be NULL. */
int crypto_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *plain, size_t n, const void *aad,
                size_t aadlen, uint8_t *out) __attribute__((warn_unused_result));
/* open: in is sealed bytes of length n >= overhead; plain must hold n - overhead bytes.
 * Returns 0, or -1 if the key, aad or data are wrong (authentication failed). */
int crypto_open(const uint8_t key[CRYPTO_KEY_LEN], const uint8_t *in, size_t n, const void *aad,
                size_t aadlen, void *plain) __attribute__((warn_unused_result));

#endif
