#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "callers.h"

#define ALL (CALLER_API | CALLER_GOOGLE_SYNC | CALLER_AZURE_SYNC)

static const char *API = "api-secret-0123456789", *API_NEW = "api-secret-rotated-42",
                  *GOOGLE = "google-sync-secret-01", *AZURE = "azure-sync-secret-0001";

static void identifies_each_caller(void **state)
{
    (void)state;
    char err[256];
    struct callers *c = callers_new("X",
                                    "api:api-secret-0123456789, google-sync:google-sync-"
                                    "secret-01\nazure-sync:azure-sync-secret-0001\n",
                                    ALL, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(callers_count(c), 3);
    char h[128];
    snprintf(h, sizeof h, "Bearer %s", API);
    assert_int_equal(callers_identify(c, h), CALLER_API);
    snprintf(h, sizeof h, "Bearer %s", GOOGLE);
    assert_int_equal(callers_identify(c, h), CALLER_GOOGLE_SYNC);
    snprintf(h, sizeof h, "Bearer %s", AZURE);
    assert_int_equal(callers_identify(c, h), CALLER_AZURE_SYNC);
    /* Near misses, other schemes, nothing. */
    assert_int_equal(callers_identify(c, "Bearer api-secret-012345678"), CALLER_NONE);
    assert_int_equal(callers_identify(c, "Bearer api-secret-0123456789x"), CALLER_NONE);
    assert_int_equal(callers_identify(c, "bearer api-secret-0123456789"), CALLER_NONE);
    assert_int_equal(callers_identify(c, "api-secret-0123456789"), CALLER_NONE);
    assert_int_equal(callers_identify(c, "Bearer "), CALLER_NONE);
    assert_int_equal(callers_identify(c, NULL), CALLER_NONE);
    assert_string_equal(caller_name(CALLER_GOOGLE_SYNC), "google-sync");
    callers_destroy(c);
}

static void route_sets(void **state)
{
    (void)state;
    char err[256], h[128];
    enum caller_id who;
    struct callers *c = callers_new("X",
                                    "api:api-secret-0123456789 google-sync:google-sync-"
                                    "secret-01",
                                    ALL, err, sizeof err);
    assert_non_null(c);
    snprintf(h, sizeof h, "Bearer %s", GOOGLE);
    assert_int_equal(callers_check(c, h, CALLER_GOOGLE_SYNC | CALLER_AZURE_SYNC, &who),
                     CALLERS_ALLOWED);
    assert_int_equal(who, CALLER_GOOGLE_SYNC);
    assert_int_equal(callers_check(c, h, CALLER_API, &who), CALLERS_FORBIDDEN);
    snprintf(h, sizeof h, "Bearer %s", API);
    assert_int_equal(callers_check(c, h, CALLER_GOOGLE_SYNC | CALLER_AZURE_SYNC, &who),
                     CALLERS_FORBIDDEN);
    assert_int_equal(who, CALLER_API);
    assert_int_equal(callers_check(c, "Bearer nope-nope-nope-nope", CALLER_API, &who),
                     CALLERS_UNKNOWN);
    assert_int_equal(who, CALLER_NONE);
    callers_destroy(c);
}

static void rotation_two_secrets(void **state)
{
    (void)state;
    char err[256], h[128];
    struct callers *c = callers_new("X", "api:api-secret-0123456789,api:api-secret-rotated-42", ALL,
                                    err, sizeof err);
    assert_non_null(c);
    snprintf(h, sizeof h, "Bearer %s", API);
    assert_int_equal(callers_identify(c, h), CALLER_API);
    snprintf(h, sizeof h, "Bearer %s", API_NEW);
    assert_int_equal(callers_identify(c, h), CALLER_API);
    callers_destroy(c);
    /* A third one is refused: rotation keeps at most the old and the new. */
    assert_null(callers_new("X",
                            "api:api-secret-0123456789,api:api-secret-rotated-42,"
                            "api:api-secret-third-0001",
                            ALL, err, sizeof err));
    assert_non_null(strstr(err, "more than 2"));
}

static void refuses_bad_configuration(void **state)
{
    (void)state;
    char err[256];
    /* Too short: the error names the variable and the caller, never the secret. */
    assert_null(callers_new("PANEL_X", "api:short-secret", ALL, err, sizeof err));
    assert_non_null(strstr(err, "PANEL_X"));
    assert_non_null(strstr(err, "16"));
    assert_null(strstr(err, "short-secret"));
    /* One secret for two callers. */
    assert_null(callers_new("PANEL_X", "api:same-secret-for-both, google-sync:same-secret-for-both",
                            ALL, err, sizeof err));
    assert_non_null(strstr(err, "repeats"));
    assert_null(strstr(err, "same-secret"));
    /* The same secret twice for one caller. */
    assert_null(callers_new("PANEL_X", "api:same-secret-for-both,api:same-secret-for-both", ALL,
                            err, sizeof err));
    /* Unknown caller, missing colon, a caller this service has no route for. */
    assert_null(callers_new("PANEL_X", "merger:merger-secret-000001", ALL, err, sizeof err));
    assert_non_null(strstr(err, "unknown caller"));
    /* Written the wrong way round: the "name" is a secret and is not printed. */
    assert_null(callers_new("PANEL_X", "a-secret-not-a-name-0001:api", ALL, err, sizeof err));
    assert_null(strstr(err, "a-secret-not"));
    assert_null(callers_new("PANEL_X", "api-secret-0123456789", ALL, err, sizeof err));
    assert_null(
        callers_new("PANEL_X", "google-sync:google-sync-secret-01", CALLER_API, err, sizeof err));
    assert_non_null(strstr(err, "no route"));
    /* A control character inside a secret. */
    assert_null(callers_new("PANEL_X", "api:api-secret-\x01-0123456789", ALL, err, sizeof err));
    /* Empty: a valid, empty set that knows no caller. */
    struct callers *c = callers_new("PANEL_X", "", ALL, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(callers_count(c), 0);
    assert_int_equal(callers_identify(c, "Bearer "), CALLER_NONE);
    callers_destroy(c);
    c = callers_new("PANEL_X", NULL, ALL, err, sizeof err);
    assert_non_null(c);
    callers_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identifies_each_caller),
        cmocka_unit_test(route_sets),
        cmocka_unit_test(rotation_two_secrets),
        cmocka_unit_test(refuses_bad_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
