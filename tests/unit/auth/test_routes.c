/* routes and states: input validation and state shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ids.h"
#include "routes.h"
#include "states.h"

static void test_tenant(void **state)
{
    (void)state;
    assert_true(ids_tenant_valid("t-abc123"));
    assert_true(ids_tenant_valid("A.b_c-d"));
    assert_false(ids_tenant_valid(""));
    assert_false(ids_tenant_valid("-abc"));
    assert_false(ids_tenant_valid("a/b"));
    assert_false(ids_tenant_valid("a b"));
    assert_false(ids_tenant_valid("a'b"));
    assert_false(ids_tenant_valid(
        "a1234567890123456789012345678901234567890123456789012345678901234")); /* 65 */
}

static void test_admin(void **state)
{
    (void)state;
    assert_true(ids_email_valid("admin@demo.k12.example"));
    assert_false(ids_email_valid("admin"));
    assert_false(ids_email_valid("@x"));
    assert_false(ids_email_valid("a@"));
    assert_false(ids_email_valid("a@b@c"));
    assert_false(ids_email_valid("a b@c"));
    assert_false(ids_email_valid("a\n@c"));
    assert_false(ids_email_valid(NULL));
    /* Every action names the actor the api authenticated: a person or an api key. */
    assert_true(routes_valid_actor("apikey:Ab3_x"));
    assert_true(routes_valid_actor("person:admin@demo.k12.example"));
    assert_false(routes_valid_actor("admin@demo.k12.example")); /* an unqualified email */
    assert_false(routes_valid_actor("person:admin"));
    assert_false(routes_valid_actor("person:a b@c"));
    assert_false(routes_valid_actor("apikey:"));
    assert_false(routes_valid_actor("apikey:a.b"));
    assert_false(routes_valid_actor("apikey:x@apikey.invalid"));
    assert_false(routes_valid_actor(""));
    assert_false(routes_valid_actor("two words"));
    assert_false(routes_valid_actor("quote\""));
    assert_false(routes_valid_actor(NULL));
}

static void test_state_shape(void **state)
{
    (void)state;
    assert_true(states_well_formed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234"));
    assert_false(states_well_formed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123"));
    assert_false(states_well_formed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123+"));
    assert_false(states_well_formed("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123'"));
    assert_false(states_well_formed(""));
    assert_false(states_well_formed(NULL));
    assert_string_equal(state_result_str(STATE_USED), "state already used");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_state_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
