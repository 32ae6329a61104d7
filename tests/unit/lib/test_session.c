#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "session.h"

static void tokens_are_random_well_formed_and_hashed(void **state)
{
    (void)state;
    char a[SESSION_TOKEN_MAX], b[SESSION_TOKEN_MAX], h[SESSION_HASH_LEN];
    assert_int_equal(session_new_token(a), 0);
    assert_int_equal(session_new_token(b), 0);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
    assert_true(session_token_valid(a));
    session_token_hash(a, h);
    assert_int_equal(strlen(h), 64);
    assert_string_not_equal(h, a);
}

static void malformed_tokens_are_refused(void **state)
{
    (void)state;
    assert_false(session_token_valid(NULL));
    assert_false(session_token_valid(""));
    assert_false(session_token_valid("short"));
    /* 43 characters with one outside base64url */
    assert_false(session_token_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    assert_false(session_token_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")); /* 44 */
    assert_true(session_token_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_A"));
}

static void csrf_token_belongs_to_its_session(void **state)
{
    (void)state;
    char s1[SESSION_TOKEN_MAX], s2[SESSION_TOKEN_MAX], t1[SESSION_TOKEN_MAX];
    assert_int_equal(session_new_token(s1), 0);
    assert_int_equal(session_new_token(s2), 0);
    assert_int_equal(session_csrf_token(s1, t1), 0);
    assert_true(session_csrf_valid(s1, t1));
    assert_false(session_csrf_valid(s2, t1));
    assert_false(session_csrf_valid(s1, ""));
    assert_false(session_csrf_valid(s1, NULL));
    t1[0] = t1[0] == 'A' ? 'B' : 'A';
    assert_false(session_csrf_valid(s1, t1));
}

static void cookie_header_parsing(void **state)
{
    (void)state;
    char v[64];
    const char *h = "theme=dark; panel_session=abc123 ;panel_signin=zz; x=1";
    assert_int_equal(session_cookie_get(h, "panel_session", v, sizeof v), 0);
    assert_string_equal(v, "abc123");
    assert_int_equal(session_cookie_get(h, "panel_signin", v, sizeof v), 0);
    assert_string_equal(v, "zz");
    assert_int_equal(session_cookie_get(h, "panel", v, sizeof v), 1);
    assert_int_equal(session_cookie_get("xpanel_session=1", "panel_session", v, sizeof v), 1);
    assert_int_equal(session_cookie_get("", "panel_session", v, sizeof v), 1);
    assert_int_equal(session_cookie_get(NULL, "panel_session", v, sizeof v), 1);
    assert_int_equal(session_cookie_get("panel_session=0123456789", "panel_session", v, 4), -1);
}

static void set_cookie_lines(void **state)
{
    (void)state;
    char line[256];
    assert_int_equal(session_set_cookie(line, sizeof line, "panel_session", "abc", -1, true), 0);
    assert_string_equal(
        line, "Set-Cookie: panel_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure\r\n");
    assert_int_equal(session_set_cookie(line, sizeof line, "panel_signin", "v", 600, false), 0);
    assert_string_equal(line, "Set-Cookie: panel_signin=v; Path=/; HttpOnly; SameSite=Lax; "
                              "Max-Age=600\r\n");
    assert_int_equal(session_set_cookie(line, sizeof line, "panel_session", "abc", 0, true), 0);
    assert_string_equal(line, "Set-Cookie: panel_session=; Path=/; HttpOnly; SameSite=Lax; "
                              "Max-Age=0; Secure\r\n");
    assert_int_equal(session_set_cookie(line, sizeof line, "a", "x;y", -1, true), -1);
    assert_int_equal(session_set_cookie(line, sizeof line, "a", "x\r\nSet-Cookie: b", -1, true),
                     -1);
    assert_int_equal(session_set_cookie(line, 10, "panel_session", "abc", -1, true), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_are_random_well_formed_and_hashed),
        cmocka_unit_test(malformed_tokens_are_refused),
        cmocka_unit_test(csrf_token_belongs_to_its_session),
        cmocka_unit_test(cookie_header_parsing),
        cmocka_unit_test(set_cookie_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
