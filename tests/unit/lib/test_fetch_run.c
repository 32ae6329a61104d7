#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "fetch_run.h"

static void refused_listings_are_named_in_order(void **state)
{
    (void)state;
    const char *const names[] = {"orgunits", "devices"};
    char out[64];
    assert_true(fetch_listings_join(names, 2, out, sizeof out));
    assert_string_equal(out, "orgunits, devices");
    assert_true(fetch_listings_join(names, 1, out, sizeof out));
    assert_string_equal(out, "orgunits");
    assert_true(fetch_listings_join(names, 0, out, sizeof out));
    assert_string_equal(out, "");
}

static void a_name_that_does_not_fit_is_left_out_whole(void **state)
{
    (void)state;
    const char *const names[] = {"orgunits", "devices", "users"};
    char out[21]; /* "orgunits, devices" is 17 bytes: ", users" no longer fits */
    assert_false(fetch_listings_join(names, 3, out, sizeof out));
    assert_string_equal(out, "orgunits, devices...");
    char tiny[6];
    assert_false(fetch_listings_join(names, 3, tiny, sizeof tiny));
    assert_string_equal(tiny, "...");
    char none[1];
    assert_false(fetch_listings_join(names, 1, none, sizeof none));
    assert_string_equal(none, "");
    assert_false(fetch_listings_join(names, 1, none, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_listings_are_named_in_order),
        cmocka_unit_test(a_name_that_does_not_fit_is_left_out_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
