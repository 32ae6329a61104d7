#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "crypto.h"

static const char *KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void seal_open_roundtrip(void **state)
{
    (void)state;
    uint8_t key[32], sealed[64 + CRYPTO_SEAL_OVERHEAD];
    char plain[65] = {0}, err[128];
    assert_int_equal(crypto_key_parse(KEY_HEX, key, err, sizeof err), 0);
    const char *msg = "1//refresh-token-value";
    assert_int_equal(crypto_seal(key, msg, strlen(msg), "t1", 2, sealed), 0);
    /* The ciphertext does not contain the plaintext. */
    assert_null(memmem(sealed, strlen(msg) + CRYPTO_SEAL_OVERHEAD, msg, strlen(msg)));
    assert_int_equal(crypto_open(key, sealed, strlen(msg) + CRYPTO_SEAL_OVERHEAD, "t1", 2, plain),
                     0);
    assert_string_equal(plain, msg);
    /* Wrong associated data (another tenant) or a flipped bit fails authentication. */
    assert_int_equal(crypto_open(key, sealed, strlen(msg) + CRYPTO_SEAL_OVERHEAD, "t2", 2, plain),
                     -1);
    sealed[CRYPTO_NONCE_LEN + 1] ^= 1;
    assert_int_equal(crypto_open(key, sealed, strlen(msg) + CRYPTO_SEAL_OVERHEAD, "t1", 2, plain),
                     -1);
    assert_int_equal(crypto_open(key, sealed, 10, NULL, 0, plain), -1);
}

static void key_parse_rejects_bad_keys(void **state)
{
    (void)state;
    uint8_t key[32];
    char err[128];
    assert_int_equal(crypto_key_parse("abcd", key, err, sizeof err), -1);
    assert_int_equal(
        crypto_key_parse("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key,
                         err, sizeof err),
        -1);
    /* base64 of 32 bytes works too */
    assert_int_equal(
        crypto_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", key, err, sizeof err), 0);
    assert_int_equal(key[31], 0x1f);
}

static void pkce_matches_rfc7636_example(void **state)
{
    (void)state;
    char out[44];
    /* RFC 7636 appendix B */
    assert_int_equal(crypto_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", out), 0);
    assert_string_equal(out, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void uuid_and_tokens(void **state)
{
    (void)state;
    char a[37], b[37], tok[64];
    assert_int_equal(crypto_uuid(a), 0);
    assert_int_equal(crypto_uuid(b), 0);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[14], '4');
    assert_string_not_equal(a, b);
    assert_int_equal(crypto_token(tok, sizeof tok, 32), 0);
    assert_int_equal(strlen(tok), 43);
    assert_null(strpbrk(tok, "+/="));
}

static void encodings(void **state)
{
    (void)state;
    char out[65];
    uint8_t raw[16];
    assert_int_equal(crypto_base64("foob", 4, out, sizeof out), 8);
    assert_string_equal(out, "Zm9vYg==");
    assert_int_equal(crypto_base64_decode("Zm9vYg==", raw, sizeof raw), 4);
    assert_memory_equal(raw, "foob", 4);
    assert_int_equal(crypto_base64_decode("Zm9v!", raw, sizeof raw), -1);
    crypto_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(crypto_equal("same", "same"));
    assert_false(crypto_equal("same", "samE"));
    assert_false(crypto_equal("same", "sam"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seal_open_roundtrip),
        cmocka_unit_test(key_parse_rejects_bad_keys),
        cmocka_unit_test(pkce_matches_rfc7636_example),
        cmocka_unit_test(uuid_and_tokens),
        cmocka_unit_test(encodings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
