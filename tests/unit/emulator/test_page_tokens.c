/* Page tokens: round trip, tampering, kind mismatch, expiry by epoch and by age. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "page_tokens.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void test_round_trip(void **state)
{
    (void)state;
    struct page_tokens *pt = page_tokens_new(100, 100);
    struct page_state st = {.kind = 'u', .pos = 1234, .vfrom = 5, .vto = 9, .aux = 77};
    snprintf(st.district, sizeof st.district, "demo");
    char tok[512];
    assert_int_equal(page_token_make(pt, &st, tok, sizeof tok), 0);
    struct page_state out;
    assert_int_equal(page_token_read(pt, tok, 'u', &out), PAGE_TOKEN_OK);
    assert_string_equal(out.district, "demo");
    assert_int_equal(out.pos, 1234);
    assert_int_equal(out.vfrom, 5);
    assert_int_equal(out.vto, 9);
    assert_int_equal(out.aux, 77);
    /* URL-safe: no characters that need escaping in a query */
    for (const char *p = tok; *p; p++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *p));
    page_tokens_destroy(pt);
}

static void test_tamper_and_kind(void **state)
{
    (void)state;
    struct page_tokens *pt = page_tokens_new(100, 100), *other = page_tokens_new(100, 100);
    struct page_state st = {.kind = 'd', .pos = 1};
    snprintf(st.district, sizeof st.district, "x");
    char tok[512];
    struct page_state out;
    assert_int_equal(page_token_make(pt, &st, tok, sizeof tok), 0);
    assert_int_equal(page_token_read(pt, tok, 'u', &out), PAGE_TOKEN_INVALID);
    assert_int_equal(page_token_read(other, tok, 'd', &out), PAGE_TOKEN_INVALID);
    tok[3] = tok[3] == 'A' ? 'B' : 'A';
    assert_int_equal(page_token_read(pt, tok, 'd', &out), PAGE_TOKEN_INVALID);
    assert_int_equal(page_token_read(pt, "", 'd', &out), PAGE_TOKEN_INVALID);
    assert_int_equal(page_token_read(pt, "garbage.token", 'd', &out), PAGE_TOKEN_INVALID);
    page_tokens_destroy(pt);
    page_tokens_destroy(other);
}

static void test_expire_all(void **state)
{
    (void)state;
    struct page_tokens *pt = page_tokens_new(100, 100);
    struct page_state st = {.kind = 'D', .vto = 3};
    snprintf(st.district, sizeof st.district, "x");
    char tok[512], tok2[512];
    struct page_state out;
    assert_int_equal(page_token_make(pt, &st, tok, sizeof tok), 0);
    page_tokens_expire_all(pt);
    assert_int_equal(page_token_read(pt, tok, 'D', &out), PAGE_TOKEN_EXPIRED);
    /* tokens issued afterwards work */
    assert_int_equal(page_token_make(pt, &st, tok2, sizeof tok2), 0);
    assert_int_equal(page_token_read(pt, tok2, 'D', &out), PAGE_TOKEN_OK);
    page_tokens_destroy(pt);
}

static void test_expire_by_age(void **state)
{
    (void)state;
    struct page_tokens *pt = page_tokens_new(1, 1000);
    struct page_state st = {.kind = 'u'}, dt = {.kind = 'D'};
    snprintf(st.district, sizeof st.district, "x");
    snprintf(dt.district, sizeof dt.district, "x");
    char tok[512], dtok[512];
    struct page_state out;
    assert_int_equal(page_token_make(pt, &st, tok, sizeof tok), 0);
    assert_int_equal(page_token_make(pt, &dt, dtok, sizeof dtok), 0);
    sleep(3);
    assert_int_equal(page_token_read(pt, tok, 'u', &out), PAGE_TOKEN_EXPIRED);
    /* delta tokens have their own, longer lifetime */
    assert_int_equal(page_token_read(pt, dtok, 'D', &out), PAGE_TOKEN_OK);
    page_tokens_destroy(pt);
}

static void test_sign_verify(void **state)
{
    (void)state;
    struct page_tokens *pt = page_tokens_new(100, 100);
    char tok[512], payload[256];
    assert_int_equal(page_tokens_sign(pt, "ya29.", "a|b|c", tok, sizeof tok), 0);
    assert_int_equal(strncmp(tok, "ya29.", 5), 0);
    assert_int_equal(page_tokens_verify(pt, "ya29.", tok, payload, sizeof payload), 0);
    assert_string_equal(payload, "a|b|c");
    assert_int_equal(page_tokens_verify(pt, "other.", tok, payload, sizeof payload), -1);
    page_tokens_destroy(pt);
}

static void test_once(void **state)
{
    (void)state;
    struct page_tokens *pt = page_tokens_new(100, 100);
    assert_int_equal(page_tokens_once(pt, "code-1"), 1);
    assert_int_equal(page_tokens_once(pt, "code-1"), 0);
    assert_int_equal(page_tokens_once(pt, "code-2"), 1);
    /* the set forgets the oldest once full, and stays consistent */
    char name[32];
    for (int i = 0; i < PAGE_TOKENS_ONCE_MAX + 10; i++) {
        snprintf(name, sizeof name, "fill-%d", i);
        assert_int_equal(page_tokens_once(pt, name), 1);
    }
    snprintf(name, sizeof name, "fill-%d", PAGE_TOKENS_ONCE_MAX + 9);
    assert_int_equal(page_tokens_once(pt, name), 0);
    assert_int_equal(page_tokens_once(pt, "code-1"), 1);
    page_tokens_destroy(pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_tamper_and_kind),
        cmocka_unit_test(test_expire_all),  cmocka_unit_test(test_expire_by_age),
        cmocka_unit_test(test_sign_verify), cmocka_unit_test(test_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
