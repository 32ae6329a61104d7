#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
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

/* The partition of an object is the same in every run and every process. */
static void an_objects_partition_is_stable(void **state)
{
    (void)state;
    const char *tenant = "6f1c2a9e-0b7d-4c55-9a43-2e8f5d1b7c60";
    int32_t p = fetch_partition_of(tenant, "103456789012345678901", 4);
    assert_in_range(p, 0, 3);
    for (int i = 0; i < 10; i++)
        assert_int_equal(fetch_partition_of(tenant, "103456789012345678901", 4), p);
    /* pinned (docs/events.md's hash, also computed by the e2e tests): another build or
     * machine must pick the same partition for the same object */
    assert_int_equal(fetch_partition_of(tenant, "u", 1000), 829);
    assert_int_equal(fetch_partition_of(tenant, "103456789012345678901", 1000), 76);
    assert_int_equal(fetch_partition_of(tenant, NULL, 1000), 396);
}

/* 1,000 ids of one district use every partition, none with far more than its share. */
static void ids_spread_over_every_partition(void **state)
{
    (void)state;
    const char *tenant = "6f1c2a9e-0b7d-4c55-9a43-2e8f5d1b7c60";
    int counts[4] = {0};
    char id[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "1%020d", 123456789 + i); /* Google-style numeric ids */
        int32_t p = fetch_partition_of(tenant, id, 4);
        assert_in_range(p, 0, 3);
        counts[p]++;
    }
    for (int p = 0; p < 4; p++)
        assert_in_range(counts[p], 200, 300); /* 250 expected */
    int other[4] = {0};
    for (int i = 0; i < 1000; i++) { /* Azure-style object ids */
        snprintf(id, sizeof id, "0000%04x-5c1e-4f6b-9d1a-7b3e8c2f%04x", i, i);
        other[fetch_partition_of(tenant, id, 4)]++;
    }
    for (int p = 0; p < 4; p++)
        assert_in_range(other[p], 200, 300);
}

/* The org unit tree stays on the tenant's partition; tenants spread too. */
static void org_units_are_on_the_tenants_partition(void **state)
{
    (void)state;
    int tenants[4] = {0};
    char tenant[64];
    for (int i = 0; i < 400; i++) {
        snprintf(tenant, sizeof tenant, "tenant-%d", i);
        int32_t p = fetch_partition_of(tenant, NULL, 4);
        assert_in_range(p, 0, 3);
        assert_int_equal(fetch_partition_of(tenant, NULL, 4), p);
        tenants[p]++;
    }
    for (int p = 0; p < 4; p++)
        assert_in_range(tenants[p], 60, 140); /* 100 expected */
}

static void one_partition_is_partition_zero(void **state)
{
    (void)state;
    char id[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        assert_int_equal(fetch_partition_of("t", id, 1), 0);
        assert_int_equal(fetch_partition_of("t", id, 0), 0);
    }
    assert_int_equal(fetch_partition_of("t", NULL, 1), 0);
}

static void set_body(struct buf *b, const char *text)
{
    buf_init(b, 0);
    assert_int_equal(buf_appends(b, text), 0);
}

/* Both providers' OAuth-style bodies are read here; their own "error" objects are left to
 * them. */
static void error_bodies_of_both_shapes(void **state)
{
    (void)state;
    struct buf oauth, object, junk;
    const json_t *e = NULL;
    const char *code = NULL, *message = NULL;
    set_body(&oauth, "{\"error\":\"invalid_grant\",\"error_description\":\"Token revoked\"}");
    set_body(&object, "{\"error\":{\"code\":\"Authorization_RequestDenied\"}}");
    set_body(&junk, "<html>");
    json_t *root = fetch_error_parse(&oauth, &e, &code, &message);
    assert_non_null(root);
    assert_null(e);
    assert_string_equal(code, "invalid_grant");
    assert_string_equal(message, "Token revoked");
    json_decref(root);
    root = fetch_error_parse(&object, &e, &code, &message);
    assert_true(json_is_object(e));
    assert_string_equal(code, "");
    assert_string_equal(message, "");
    json_decref(root);
    assert_null(fetch_error_parse(&junk, &e, &code, &message));
    assert_null(e);
    assert_string_equal(code, "");
    assert_null(fetch_error_parse(NULL, &e, &code, &message));
    buf_free(&oauth);
    buf_free(&object);
    buf_free(&junk);
}

static void error_text_joins_what_is_there(void **state)
{
    (void)state;
    char msg[64];
    fetch_error_text(msg, sizeof msg, "forbidden", "Not Authorized");
    assert_string_equal(msg, "forbidden: Not Authorized");
    fetch_error_text(msg, sizeof msg, "", "Not Authorized");
    assert_string_equal(msg, "Not Authorized");
    fetch_error_text(msg, sizeof msg, "forbidden", "");
    assert_string_equal(msg, "forbidden");
}

static void failure_reasons_by_status(void **state)
{
    (void)state;
    assert_int_equal(fetch_failure_reason(429, false, false), PB_RUN_FAILURE_REASON_THROTTLED);
    assert_int_equal(fetch_failure_reason(403, true, true), PB_RUN_FAILURE_REASON_THROTTLED);
    assert_int_equal(fetch_failure_reason(401, false, false), PB_RUN_FAILURE_REASON_REVOKED);
    assert_int_equal(fetch_failure_reason(400, false, true), PB_RUN_FAILURE_REASON_REVOKED);
    assert_int_equal(fetch_failure_reason(403, false, true), PB_RUN_FAILURE_REASON_REVOKED);
    assert_int_equal(fetch_failure_reason(403, false, false), PB_RUN_FAILURE_REASON_FORBIDDEN);
    assert_int_equal(fetch_failure_reason(500, false, false), PB_RUN_FAILURE_REASON_PROVIDER_ERROR);
}

/* A reader as a provider writes one: the common parse, the provider's own members ignored. */
static json_t *read_oauth_error(const struct buf *body, const char **code, const char **message)
{
    const json_t *e;
    return fetch_error_parse(body, &e, code, message);
}

static bool code_is(const char *code, const char *message, const void *want)
{
    (void)message;
    return strcmp(code, want) == 0;
}

static bool message_is_empty(const char *code, const char *message, const void *ctx)
{
    (void)code;
    (void)ctx;
    return *message == '\0';
}

static void an_error_is_tested_with_the_providers_reader(void **state)
{
    (void)state;
    struct buf oauth, junk;
    set_body(&oauth, "{\"error\":\"invalid_grant\",\"error_description\":\"Bad Request\"}");
    set_body(&junk, "<html>");
    assert_true(fetch_error_is(&oauth, read_oauth_error, code_is, "invalid_grant"));
    assert_false(fetch_error_is(&oauth, read_oauth_error, code_is, "invalid_client"));
    assert_false(fetch_error_is(&oauth, read_oauth_error, message_is_empty, NULL));
    /* no JSON: the test still runs, on "" and "" */
    assert_true(fetch_error_is(&junk, read_oauth_error, code_is, ""));
    assert_true(fetch_error_is(NULL, read_oauth_error, message_is_empty, NULL));
    buf_free(&oauth);
    buf_free(&junk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_bodies_of_both_shapes),
        cmocka_unit_test(error_text_joins_what_is_there),
        cmocka_unit_test(an_error_is_tested_with_the_providers_reader),
        cmocka_unit_test(failure_reasons_by_status),
        cmocka_unit_test(refused_listings_are_named_in_order),
        cmocka_unit_test(an_objects_partition_is_stable),
        cmocka_unit_test(ids_spread_over_every_partition),
        cmocka_unit_test(org_units_are_on_the_tenants_partition),
        cmocka_unit_test(one_partition_is_partition_zero),
        cmocka_unit_test(a_name_that_does_not_fit_is_left_out_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
