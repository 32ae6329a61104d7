/* Fault rules: validation, by count, by rate, per route and "*". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faults.h"

#include <string.h>

static int add(struct faults *f, const char *json)
{
    char err[256];
    uint64_t id;
    json_t *rule = json_loads(json, 0, NULL);
    assert_non_null(rule);
    int rc = faults_add(f, rule, &id, err, sizeof err);
    json_decref(rule);
    return rc;
}

static void test_validation(void **state)
{
    (void)state;
    struct faults *f = faults_new();
    assert_int_equal(add(f, "{\"route\":\"x\",\"kind\":\"status\",\"status\":500,\"count\":1}"),
                     -1);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"boom\",\"count\":1}"), -1);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"status\",\"count\":1}"), -1);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"slow\"}"), -1);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"slow\",\"rate\":1.5}"), -1);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"status\",\"status\":429,"
                            "\"retry_after\":\"soon\",\"count\":1}"),
                     -1);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"status\",\"status\":429,"
                            "\"retry_after\":\"1.5\",\"count\":1}"),
                     0);
    faults_destroy(f);
}

static void test_count_and_route(void **state)
{
    (void)state;
    struct faults *f = faults_new();
    struct fault out;
    assert_int_equal(add(f, "{\"route\":\"graph.users\",\"kind\":\"status\",\"status\":429,"
                            "\"retry_after\":2,\"reason\":\"x\",\"count\":2}"),
                     0);
    assert_false(faults_pick(f, "google.users", &out));
    assert_true(faults_pick(f, "graph.users", &out));
    assert_int_equal(out.kind, FAULT_STATUS);
    assert_int_equal(out.status, 429);
    assert_string_equal(out.retry_after, "2");
    assert_string_equal(out.reason, "x");
    assert_true(faults_pick(f, "graph.users", &out));
    assert_false(faults_pick(f, "graph.users", &out)); /* used up */
    assert_int_equal(faults_injected(f), 2);
    faults_reset_stats(f);
    assert_int_equal(faults_injected(f), 0);
    faults_destroy(f);
}

static void test_after_lets_the_first_requests_through(void **state)
{
    (void)state;
    struct faults *f = faults_new();
    struct fault out;
    assert_int_equal(
        add(f, "{\"route\":\"google.users\",\"kind\":\"malformed\",\"count\":1,\"after\":2}"), 0);
    assert_false(faults_pick(f, "google.devices", &out)); /* another route does not count */
    assert_false(faults_pick(f, "google.users", &out));   /* page 1 */
    assert_false(faults_pick(f, "google.users", &out));   /* page 2 */
    assert_true(faults_pick(f, "google.users", &out));    /* page 3 */
    assert_int_equal(out.kind, FAULT_MALFORMED);
    assert_false(faults_pick(f, "google.users", &out)); /* used up */
    assert_int_equal(add(f, "{\"route\":\"*\",\"kind\":\"reset\",\"count\":1,\"after\":-1}"), -1);
    assert_int_equal(add(f, "{\"route\":\"*\",\"kind\":\"reset\",\"count\":1,\"after\":\"2\"}"),
                     -1);
    faults_destroy(f);
}

static void test_rate_and_star(void **state)
{
    (void)state;
    struct faults *f = faults_new();
    struct fault out;
    assert_int_equal(add(f, "{\"route\":\"*\",\"kind\":\"reset\",\"rate\":1}"), 0);
    for (int i = 0; i < 20; i++)
        assert_true(faults_pick(f, "ms.token", &out));
    assert_int_equal(out.kind, FAULT_RESET);
    faults_clear(f);
    assert_false(faults_pick(f, "ms.token", &out));
    assert_int_equal(add(f, "{\"route\":\"google.devices\",\"kind\":\"slow\",\"rate\":0.5}"), 0);
    int fired = 0;
    for (int i = 0; i < 1000; i++)
        fired += faults_pick(f, "google.devices", &out);
    assert_true(fired > 350 && fired < 650);
    assert_int_equal(out.delay_ms, 2000);
    assert_int_equal(add(f, "{\"route\":\"google.users\",\"kind\":\"status\",\"status\":500,"
                            "\"rate\":0}"),
                     0);
    for (int i = 0; i < 100; i++)
        assert_false(faults_pick(f, "google.users", &out));
    faults_destroy(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_count_and_route),
        cmocka_unit_test(test_after_lets_the_first_requests_through),
        cmocka_unit_test(test_rate_and_star),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
