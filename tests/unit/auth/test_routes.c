/* routes and states: input validation and state shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ids.h"
#include "routes.h"
#include "states.h"

/* Tenant ids and admin addresses are lib/ids' rules (tests/unit/lib/test_ids.c). */
static void test_admin(void **state)
{
    (void)state;
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
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_state_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
