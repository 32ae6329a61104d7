#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void appends_and_caps(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_appends(&b, "abcd"), 0);
    assert_int_equal(buf_appendf(&b, "%d", 123), 0);
    assert_string_equal(b.data, "abcd123");
    /* Past the cap the append fails and leaves the buffer as it was. */
    assert_int_equal(buf_appends(&b, "xy"), -1);
    assert_string_equal(b.data, "abcd123");
    assert_int_equal(buf_appends(&b, "x"), 0);
    assert_int_equal(b.len, 8);
    buf_free(&b);
}

static void json_string_escapes(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_append_json_string(&b, "a\"b\\c\nd\x01 é"), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\u0001 é\"");
    buf_free(&b);
}

static void urlencode(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_append_urlencoded(&b, "a b&c=d/é~"), 0);
    assert_string_equal(b.data, "a%20b%26c%3Dd%2F%C3%A9~");
    buf_free(&b);
}

static void take_hands_over(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    char *empty = buf_take(&b);
    assert_non_null(empty);
    assert_string_equal(empty, "");
    free(empty);
    assert_int_equal(buf_appends(&b, "x"), 0);
    char *s = buf_take(&b);
    assert_string_equal(s, "x");
    assert_null(b.data);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(appends_and_caps),
        cmocka_unit_test(json_string_escapes),
        cmocka_unit_test(urlencode),
        cmocka_unit_test(take_hands_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
