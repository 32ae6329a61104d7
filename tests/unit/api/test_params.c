/* Unit tests of the api's input validation: query parameters, dates, UUIDs, UTF-8, signed
 * cursors, API key parsing, LIKE escaping and static file names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth_keys.h"
#include "ids.h"
#include "params.h"
#include "people.h"
#include "www.h"

#include <string.h>

static const char *const allowed[] = {"q", "limit", "cursor", "status", NULL};

static void test_check_accepts_known_parameters(void **state)
{
    (void)state;
    char msg[256];
    assert_int_equal(params_check(NULL, allowed, msg, sizeof msg), 0);
    assert_int_equal(params_check("", allowed, msg, sizeof msg), 0);
    assert_int_equal(params_check("q=ada&limit=5", allowed, msg, sizeof msg), 0);
    assert_int_equal(params_check("q=%C3%A9l%C3%A8ve&status=", allowed, msg, sizeof msg), 0);
    assert_int_equal(params_check("q=a+b&&limit=1", allowed, msg, sizeof msg), 0);
}

static void test_check_rejects_unknown_duplicate_and_bad_encoding(void **state)
{
    (void)state;
    char msg[256];
    assert_int_equal(params_check("colour=red", allowed, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "colour"));
    assert_int_equal(params_check("q=a&q=b", allowed, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "twice"));
    assert_int_equal(params_check("q=%FF", allowed, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "UTF-8"));
    assert_int_equal(params_check("q=%C0%AF", allowed, msg, sizeof msg), -1);    /* overlong */
    assert_int_equal(params_check("q=%ED%A0%80", allowed, msg, sizeof msg), -1); /* surrogate */
    assert_int_equal(params_check("q=%00", allowed, msg, sizeof msg), -1);
    assert_int_equal(params_check("q=%4", allowed, msg, sizeof msg), -1);
    assert_int_equal(params_check("q=%zz", allowed, msg, sizeof msg), -1);
    assert_int_equal(params_check("%71=1", allowed, msg, sizeof msg), 0); /* "q" encoded */
}

static void test_limit_bounds(void **state)
{
    (void)state;
    char msg[256];
    long limit = 0;
    assert_int_equal(params_limit(NULL, 50, 500, &limit, msg, sizeof msg), 0);
    assert_int_equal(limit, 50);
    assert_int_equal(params_limit("limit=500", 50, 500, &limit, msg, sizeof msg), 0);
    assert_int_equal(limit, 500);
    assert_int_equal(params_limit("limit=1", 50, 500, &limit, msg, sizeof msg), 0);
    assert_int_equal(limit, 1);
    const char *bad[] = {"limit=0",
                         "limit=501",
                         "limit=-1",
                         "limit=1x",
                         "limit=+5",
                         "limit= 5",
                         "limit=99999999999999999999",
                         "limit=ten"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(params_limit(bad[i], 50, 500, &limit, msg, sizeof msg), -1);
}

static void test_defaults_survive_absent_parameters(void **state)
{
    (void)state;
    static const char *const choices[] = {"flat", "tree", NULL};
    char msg[256], format[8] = "flat";
    bool b = true;
    assert_int_equal(
        params_enum("limit=1", "format", choices, format, sizeof format, msg, sizeof msg), 1);
    assert_string_equal(format, "flat");
    assert_int_equal(
        params_enum("format=tree", "format", choices, format, sizeof format, msg, sizeof msg), 0);
    assert_string_equal(format, "tree");
    assert_int_equal(
        params_enum("format=xml", "format", choices, format, sizeof format, msg, sizeof msg), -1);
    assert_int_equal(params_bool("x=1", "open", &b, msg, sizeof msg), 1);
    assert_true(b);
    assert_int_equal(params_bool("open=false", "open", &b, msg, sizeof msg), 0);
    assert_false(b);
    assert_int_equal(params_bool("open=yes", "open", &b, msg, sizeof msg), -1);
}

static void test_dates_and_timestamps(void **state)
{
    (void)state;
    char msg[256], d[11];
    assert_true(params_is_date("2026-02-28"));
    assert_true(params_is_date("2024-02-29"));
    assert_false(params_is_date("2026-02-29"));
    assert_false(params_is_date("1900-02-29"));
    assert_true(params_is_date("2000-02-29"));
    assert_false(params_is_date("2026-13-01"));
    assert_false(params_is_date("2026-00-10"));
    assert_false(params_is_date("2026-04-31"));
    assert_false(params_is_date("2026-4-1"));
    assert_false(params_is_date("2026-04-01T00:00:00Z"));
    assert_false(params_is_date("tomorrow"));
    assert_true(params_is_timestamp("2026-06-30T15:00:00Z"));
    assert_true(params_is_timestamp("2026-06-30T15:00:00.123456+02:00"));
    assert_false(params_is_timestamp("2026-06-30T25:00:00Z"));
    assert_false(params_is_timestamp("2026-06-30T15:00:00"));
    assert_false(params_is_timestamp("2026-06-30 15:00:00Z"));
    assert_false(params_is_timestamp("2026-06-30T15:00:00.Z"));
    assert_false(params_is_timestamp("2026-06-30T15:00:00+2:00"));
    assert_int_equal(params_date("aue_before=2030-01-01", "aue_before", d, msg, sizeof msg), 0);
    assert_string_equal(d, "2030-01-01");
    assert_int_equal(params_date("aue_before=2030-1-1", "aue_before", d, msg, sizeof msg), -1);
    assert_int_equal(params_date("", "aue_before", d, msg, sizeof msg), 1);
}

static void test_uuid_and_utf8(void **state)
{
    (void)state;
    assert_true(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950e"));
    assert_true(ids_uuid_valid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
    assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950"));
    assert_false(ids_uuid_valid("0f8fad5bd9cb-469f-a165-70867728950e0"));
    assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950g"));
    assert_false(ids_uuid_valid("../../etc/passwd"));
    assert_true(ids_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    assert_false(ids_utf8_valid("\xc3", 1));
    assert_false(ids_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ids_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
}

static void test_cursor_round_trip(void **state)
{
    (void)state;
    unsigned char key[32];
    memset(key, 7, sizeof key);
    params_cursor_key(key);
    char cursor[PARAMS_CURSOR_MAX * 2], msg[256];
    char vals[2][PARAMS_CURSOR_MAX];
    const char *keys[2] = {"zoë o'neil", "0f8fad5b-d9cb-469f-a165-70867728950e"};
    assert_int_equal(params_cursor_encode("people", keys, 2, cursor, sizeof cursor), 0);
    for (const char *c = cursor; *c; c++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *c));
    assert_int_equal(params_cursor_decode("people", cursor, 2, vals, msg, sizeof msg), 0);
    assert_string_equal(vals[0], keys[0]);
    assert_string_equal(vals[1], keys[1]);
    const char *empty[1] = {""};
    assert_int_equal(params_cursor_encode("x", empty, 1, cursor, sizeof cursor), 0);
    assert_int_equal(params_cursor_decode("x", cursor, 1, vals, msg, sizeof msg), 0);
    assert_string_equal(vals[0], "");
}

static void test_cursor_rejects_forgery_and_other_lists(void **state)
{
    (void)state;
    unsigned char key[32];
    memset(key, 9, sizeof key);
    params_cursor_key(key);
    char cursor[PARAMS_CURSOR_MAX * 2], bad[PARAMS_CURSOR_MAX * 2], msg[256];
    char vals[2][PARAMS_CURSOR_MAX];
    const char *keys[2] = {"ada", "0f8fad5b-d9cb-469f-a165-70867728950e"};
    assert_int_equal(params_cursor_encode("people", keys, 2, cursor, sizeof cursor), 0);
    assert_int_equal(params_cursor_decode("assets", cursor, 2, vals, msg, sizeof msg), -1);
    assert_int_equal(params_cursor_decode("people", cursor, 1, vals, msg, sizeof msg), -1);
    memcpy(bad, cursor, strlen(cursor) + 1);
    bad[2] = bad[2] == 'A' ? 'B' : 'A';
    assert_int_equal(params_cursor_decode("people", bad, 2, vals, msg, sizeof msg), -1);
    const char *garbage[] = {"", ".", "abc", "abc.", ".abc", "!!!.???", "YWJj.YWJj", "a.b.c"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        assert_int_equal(params_cursor_decode("people", garbage[i], 2, vals, msg, sizeof msg), -1);
    /* The same cursor under another key (another deployment's) is refused. */
    memset(key, 1, sizeof key);
    params_cursor_key(key);
    assert_int_equal(params_cursor_decode("people", cursor, 2, vals, msg, sizeof msg), -1);
    /* Truncation at any point is refused. */
    for (size_t n = 0; n < strlen(cursor); n++) {
        memcpy(bad, cursor, n);
        bad[n] = 0;
        assert_int_equal(params_cursor_decode("people", bad, 2, vals, msg, sizeof msg), -1);
    }
}

static void test_api_key_parse(void **state)
{
    (void)state;
    char id[AUTH_KEY_ID_MAX + 1], secret[128];
    assert_int_equal(
        auth_keys_parse("Bearer pk_abc-_1.s3cr_et-", id, sizeof id, secret, sizeof secret), 0);
    assert_string_equal(id, "abc-_1");
    assert_string_equal(secret, "s3cr_et-");
    const char *bad[] = {NULL,
                         "",
                         "Basic pk_a.b",
                         "Bearer a.b",
                         "Bearer pk_.b",
                         "Bearer pk_a.",
                         "Bearer pk_ab",
                         "Bearer pk_a.b c",
                         "Bearer pk_a/b.c",
                         "bearer pk_a.b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(auth_keys_parse(bad[i], id, sizeof id, secret, sizeof secret), -1);
    char long_id[200] = "Bearer pk_";
    memset(long_id + 10, 'a', 100);
    memcpy(long_id + 110, ".x", 3);
    assert_int_equal(auth_keys_parse(long_id, id, sizeof id, secret, sizeof secret), -1);
}

static void test_like_pattern_escapes_wildcards(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(people_like_pattern("Ada", out, sizeof out), 0);
    assert_string_equal(out, "%ada%");
    assert_int_equal(people_like_pattern("50%_a\\b", out, sizeof out), 0);
    assert_string_equal(out, "%50\\%\\_a\\\\b%");
    assert_int_equal(people_like_pattern("this is far too long for the buffer given", out, 16), -1);
}

static void test_static_names(void **state)
{
    (void)state;
    assert_true(www_name_ok("index.html"));
    assert_true(www_name_ok("app.js"));
    assert_false(www_name_ok(""));
    assert_false(www_name_ok(".env"));
    assert_false(www_name_ok("../Makefile"));
    assert_false(www_name_ok("a/b.js"));
    assert_false(www_name_ok("a..b"));
    assert_false(www_name_ok("x%2e"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_accepts_known_parameters),
        cmocka_unit_test(test_check_rejects_unknown_duplicate_and_bad_encoding),
        cmocka_unit_test(test_limit_bounds),
        cmocka_unit_test(test_defaults_survive_absent_parameters),
        cmocka_unit_test(test_dates_and_timestamps),
        cmocka_unit_test(test_uuid_and_utf8),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_rejects_forgery_and_other_lists),
        cmocka_unit_test(test_api_key_parse),
        cmocka_unit_test(test_like_pattern_escapes_wildcards),
        cmocka_unit_test(test_static_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
