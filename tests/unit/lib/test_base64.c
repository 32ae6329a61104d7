#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base64.h"

/* Decodes a NUL-terminated text; the byte count or -1. */
static long dec(enum base64_alphabet a, const char *in, uint8_t *out, size_t outlen)
{
    return base64_decode(a, in, strlen(in), out, outlen);
}

static void encodes_rfc4648_test_vectors(void **state)
{
    (void)state;
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const std[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    static const char *const url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char out[16];
    uint8_t raw[16];
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);
        assert_int_equal(base64_encode(BASE64_STD, plain[i], n, out, sizeof out), strlen(std[i]));
        assert_string_equal(out, std[i]);
        assert_int_equal(strlen(std[i]), BASE64_STD_LEN(n));
        assert_int_equal(base64_encode(BASE64_URL, plain[i], n, out, sizeof out), strlen(url[i]));
        assert_string_equal(out, url[i]);
        assert_int_equal(strlen(url[i]), BASE64_URL_LEN(n));
        assert_int_equal(dec(BASE64_STD, std[i], raw, sizeof raw), n);
        assert_memory_equal(raw, plain[i], n);
        assert_int_equal(dec(BASE64_URL, url[i], raw, sizeof raw), n);
        assert_memory_equal(raw, plain[i], n);
        assert_int_equal(dec(BASE64_ANY, std[i], raw, sizeof raw), n);
        assert_int_equal(dec(BASE64_ANY, url[i], raw, sizeof raw), n);
    }
}

static void alphabets_differ_in_62_and_63(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t raw[8];
    assert_int_equal(base64_encode(BASE64_STD, bytes, 3, out, sizeof out), 4);
    assert_string_equal(out, "+/+/");
    assert_int_equal(base64_encode(BASE64_URL, bytes, 3, out, sizeof out), 4);
    assert_string_equal(out, "-_-_");
    assert_int_equal(dec(BASE64_STD, "-_-_", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_URL, "+/+/", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_ANY, "-_-_", raw, sizeof raw), 3);
    assert_memory_equal(raw, bytes, 3);
    assert_int_equal(dec(BASE64_ANY, "+/+/", raw, sizeof raw), 3);
}

static void decoding_refuses_every_malformed_text(void **state)
{
    (void)state;
    uint8_t raw[16];
    /* Standard: padding is required, and only at the end. */
    assert_int_equal(dec(BASE64_STD, "Zm8", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zg=", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Z===", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zm9v====", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zg==Zg==", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zm=v", raw, sizeof raw), -1);
    /* URL-safe: never padded. */
    assert_int_equal(dec(BASE64_URL, "Zg==", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_ANY, "Zg=", raw, sizeof raw), -1);
    /* Lengths no encoder writes, foreign characters, white space, an embedded NUL. */
    assert_int_equal(dec(BASE64_URL, "Zm9vY", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zm9v!A==", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zm9v\nYg==", raw, sizeof raw), -1);
    assert_int_equal(base64_decode(BASE64_URL, "Zm\0v", 4, raw, sizeof raw), -1);
    /* Non-zero unused bits: "Zh==" would be a second text for "f". */
    assert_int_equal(dec(BASE64_STD, "Zh==", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_URL, "Zm9", raw, sizeof raw), -1);
}

static void buffers_too_small_fail_cleanly(void **state)
{
    (void)state;
    char out[9];
    uint8_t raw[3];
    assert_int_equal(base64_encode(BASE64_STD, "foob", 4, out, 8), -1);
    assert_int_equal(base64_encode(BASE64_STD, "foob", 4, out, 9), 8);
    assert_int_equal(base64_encode(BASE64_URL, "foob", 4, out, 6), -1);
    assert_int_equal(dec(BASE64_STD, "Zm9vYg==", raw, sizeof raw), -1);
    assert_int_equal(dec(BASE64_STD, "Zm9v", raw, sizeof raw), 3);
}

static void every_byte_value_round_trips(void **state)
{
    (void)state;
    uint8_t bytes[256], raw[256];
    char out[BASE64_STD_LEN(256) + 1];
    for (int i = 0; i < 256; i++)
        bytes[i] = (uint8_t)i;
    for (size_t n = 0; n <= 256; n += 37) {
        for (int a = BASE64_STD; a <= BASE64_URL; a++) {
            long len = base64_encode((enum base64_alphabet)a, bytes, n, out, sizeof out);
            assert_true(len >= 0);
            assert_int_equal(base64_decode((enum base64_alphabet)a, out, (size_t)len, raw, n), n);
            assert_memory_equal(raw, bytes, n);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encodes_rfc4648_test_vectors),
        cmocka_unit_test(alphabets_differ_in_62_and_63),
        cmocka_unit_test(decoding_refuses_every_malformed_text),
        cmocka_unit_test(buffers_too_small_fail_cleanly),
        cmocka_unit_test(every_byte_value_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
