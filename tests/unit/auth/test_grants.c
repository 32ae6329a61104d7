/* grants: keyring parsing, sealing bound to its AAD, rotation between keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto.h"
#include "grants.h"

#include <stdlib.h>
#include <string.h>

#define K1 "0000000000000000000000000000000000000000000000000000000000000001"
#define K2 "00000000000000000000000000000000000000000000000000000000000000ff"

static void test_parse_errors(void **state)
{
    (void)state;
    char err[256];
    assert_null(grants_new("", NULL, err, sizeof err));
    assert_null(grants_new("k1", NULL, err, sizeof err));
    assert_null(grants_new("k1:zz", NULL, err, sizeof err));
    assert_null(strstr(err, "zz")); /* the key text is never echoed */
    assert_null(grants_new("bad id:" K1, NULL, err, sizeof err));
    assert_null(grants_new("k1:" K1 ",k1:" K2, "k1", err, sizeof err));
    assert_non_null(strstr(err, "twice"));
    /* Several keys need an active one, and it must exist. */
    assert_null(grants_new("k1:" K1 ",k2:" K2, NULL, err, sizeof err));
    assert_null(grants_new("k1:" K1 ",k2:" K2, "k3", err, sizeof err));
}

static void test_seal_open_roundtrip(void **state)
{
    (void)state;
    char err[256];
    struct grants *g = grants_new(" k1:" K1 "\n", NULL, err, sizeof err);
    assert_non_null(g);
    assert_string_equal(grants_active_id(g), "k1");
    uint8_t *sealed = NULL;
    size_t n = 0;
    const char *secret = "1//refresh-token-value";
    assert_int_equal(grants_seal(g, secret, strlen(secret), "grant:t1/google", &sealed, &n), 0);
    assert_int_equal(n, strlen(secret) + CRYPTO_SEAL_OVERHEAD);
    /* No plaintext in the sealed bytes. */
    assert_null(memmem(sealed, n, "refresh", 7));
    char *plain = NULL;
    assert_int_equal(grants_open(g, "k1", sealed, n, "grant:t1/google", &plain), 0);
    assert_string_equal(plain, secret);
    grants_free_secret(plain);
    plain = NULL;
    /* Another tenant's row (AAD) does not open it; neither does a flipped bit. */
    assert_int_equal(grants_open(g, "k1", sealed, n, "grant:t2/google", &plain), -2);
    sealed[CRYPTO_NONCE_LEN] ^= 1;
    assert_int_equal(grants_open(g, "k1", sealed, n, "grant:t1/google", &plain), -2);
    assert_int_equal(grants_open(g, "nokey", sealed, n, "grant:t1/google", &plain), -1);
    assert_int_equal(grants_open(g, "k1", sealed, 3, "grant:t1/google", &plain), -2);
    assert_null(plain);
    free(sealed);
    grants_destroy(g);
}

static void test_rotation(void **state)
{
    (void)state;
    char err[256];
    struct grants *old = grants_new("k1:" K1, NULL, err, sizeof err);
    struct grants *both = grants_new("k1:" K1 ",k2:" K2, "k2", err, sizeof err);
    struct grants *only_new = grants_new("k2:" K2, NULL, err, sizeof err);
    assert_non_null(old);
    assert_non_null(both);
    assert_non_null(only_new);
    uint8_t *s1 = NULL, *s2 = NULL;
    size_t n1 = 0, n2 = 0;
    char *plain = NULL;
    assert_int_equal(grants_seal(old, "tok", 3, "a", &s1, &n1), 0);
    /* With both keys configured the old value still opens, new ones use k2. */
    assert_int_equal(grants_open(both, "k1", s1, n1, "a", &plain), 0);
    assert_string_equal(plain, "tok");
    assert_string_equal(grants_active_id(both), "k2");
    assert_int_equal(grants_seal(both, plain, strlen(plain), "a", &s2, &n2), 0);
    grants_free_secret(plain);
    plain = NULL;
    /* After re-sealing, the old key can go. */
    assert_int_equal(grants_open(only_new, "k2", s2, n2, "a", &plain), 0);
    assert_string_equal(plain, "tok");
    grants_free_secret(plain);
    plain = NULL;
    assert_int_equal(grants_open(only_new, "k1", s1, n1, "a", &plain), -1);
    free(s1);
    free(s2);
    grants_destroy(old);
    grants_destroy(both);
    grants_destroy(only_new);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_seal_open_roundtrip),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
