/* The merger's pure parts: the Person from its source rows, change detection, the deletion
 * threshold and source-event validation (e-mail normalisation: tests/unit/lib/test_ids.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "merge.h"

#include "json_fixtures.h"

static void azure_wins_field_by_field_google_fills_the_rest(void **state)
{
    (void)state;
    json_t *g = obj("{\"display_name\":\"Robert Smith\",\"given_name\":\"Robert\","
                    "\"org_unit_path\":\"/Staff\",\"email_normalized\":\"bob@d.org\"}");
    json_t *a = obj("{\"display_name\":\"Bob Smith\",\"job_title\":\"Teacher\","
                    "\"email_normalized\":\"bob@d.org\"}");
    struct merge_person mp;
    assert_int_equal(merge_person_compute(g, a, &mp), 0);
    assert_string_equal(str(mp.fields, "display_name"), "Bob Smith");
    assert_string_equal(str(mp.fields, "given_name"), "Robert");
    assert_string_equal(str(mp.fields, "org_unit_path"), "/Staff");
    assert_string_equal(str(mp.fields, "job_title"), "Teacher");
    assert_string_equal(str(mp.provenance, "display_name"), "azure");
    assert_string_equal(str(mp.provenance, "org_unit_path"), "google");
    assert_string_equal(str(mp.provenance, "job_title"), "azure");
    assert_int_equal(json_array_size(mp.sources), 2);
    assert_string_equal(json_string_value(json_array_get(mp.sources, 0)), "google");
    assert_string_equal(json_string_value(json_array_get(mp.sources, 1)), "azure");
    assert_false(mp.removed);
    merge_person_clear(&mp);
    json_decref(g);
    json_decref(a);
}

/* A graduation year follows the same rule (Azure's wins, else Google's); one that is not a
 * year 1900..2200, whoever published it, is left out of the cloud's fields. */
static void graduation_year_azure_wins_and_out_of_range_is_left_out(void **state)
{
    (void)state;
    json_t *g = obj("{\"graduation_year\":2030,\"email_normalized\":\"ada@d.org\"}");
    json_t *a = obj("{\"graduation_year\":2031,\"email_normalized\":\"ada@d.org\"}");
    json_t *none = obj("{\"email_normalized\":\"ada@d.org\"}");
    struct merge_person mp;
    assert_int_equal(merge_person_compute(g, a, &mp), 0);
    assert_int_equal(json_integer_value(json_object_get(mp.fields, "graduation_year")), 2031);
    assert_string_equal(str(mp.provenance, "graduation_year"), "azure");
    merge_person_clear(&mp);
    assert_int_equal(merge_person_compute(g, none, &mp), 0);
    assert_int_equal(json_integer_value(json_object_get(mp.fields, "graduation_year")), 2030);
    assert_string_equal(str(mp.provenance, "graduation_year"), "google");
    merge_person_clear(&mp);
    static const char *const bad[] = {"{\"graduation_year\":99999}", "{\"graduation_year\":1899}",
                                      "{\"graduation_year\":\"2030\"}",
                                      "{\"graduation_year\":2030.5}", "{\"graduation_year\":null}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *f = obj(bad[i]);
        assert_int_equal(merge_person_drop_invalid(f), 1);
        assert_null(json_object_get(f, "graduation_year"));
        json_decref(f);
    }
    assert_int_equal(merge_person_drop_invalid(g), 0);
    assert_int_equal(merge_person_drop_invalid(none), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "graduation_year")), 2030);
    json_decref(g);
    json_decref(a);
    json_decref(none);
}

static void absent_is_not_empty(void **state)
{
    (void)state;
    json_t *g = obj("{\"display_name\":\"Robert Smith\",\"department\":\"Math\"}");
    json_t *a = obj("{\"department\":\"\"}"); /* Azure provides an empty department */
    struct merge_person mp;
    assert_int_equal(merge_person_compute(g, a, &mp), 0);
    assert_string_equal(str(mp.fields, "display_name"), "Robert Smith"); /* absent: kept */
    assert_string_equal(str(mp.fields, "department"), "");               /* provided: wins */
    assert_string_equal(str(mp.provenance, "department"), "azure");
    merge_person_clear(&mp);
    json_decref(g);
    json_decref(a);
}

static void same_rows_in_any_key_order_give_the_same_person(void **state)
{
    (void)state;
    json_t *g1 = obj("{\"a\":\"1\",\"b\":\"2\"}"), *g2 = obj("{\"b\":\"2\",\"a\":\"1\"}");
    json_t *a1 = obj("{\"b\":\"3\",\"c\":true}"), *a2 = obj("{\"c\":true,\"b\":\"3\"}");
    struct merge_person x, y;
    assert_int_equal(merge_person_compute(g1, a1, &x), 0);
    assert_int_equal(merge_person_compute(g2, a2, &y), 0);
    assert_true(json_equal(x.fields, y.fields));
    assert_true(json_equal(x.provenance, y.provenance));
    merge_person_clear(&x);
    merge_person_clear(&y);
    json_decref(g1);
    json_decref(g2);
    json_decref(a1);
    json_decref(a2);
}

static void one_cloud_only_and_none(void **state)
{
    (void)state;
    json_t *a = obj("{\"display_name\":\"Carl\"}");
    struct merge_person mp;
    assert_int_equal(merge_person_compute(NULL, a, &mp), 0);
    assert_string_equal(str(mp.fields, "display_name"), "Carl");
    assert_int_equal(json_array_size(mp.sources), 1);
    assert_false(mp.removed);
    merge_person_clear(&mp);
    assert_int_equal(merge_person_compute(NULL, NULL, &mp), 0);
    assert_true(mp.removed); /* no source row left: the Person is removed */
    assert_int_equal(json_object_size(mp.fields), 0);
    merge_person_clear(&mp);
    json_decref(a);
}

static void changed_fields_are_sorted_and_include_dropped(void **state)
{
    (void)state;
    json_t *old = obj("{\"a\":\"1\",\"z\":\"9\",\"m\":\"5\"}");
    json_t *new = obj("{\"a\":\"1\",\"m\":\"6\",\"b\":\"2\"}");
    json_t *ch = merge_changed_fields(old, new);
    assert_non_null(ch);
    assert_int_equal(json_array_size(ch), 3);
    assert_string_equal(json_string_value(json_array_get(ch, 0)), "b");
    assert_string_equal(json_string_value(json_array_get(ch, 1)), "m");
    assert_string_equal(json_string_value(json_array_get(ch, 2)), "z");
    json_decref(ch);
    ch = merge_changed_fields(old, old);
    assert_int_equal(json_array_size(ch), 0); /* unchanged: nothing to announce */
    json_decref(ch);
    ch = merge_changed_fields(NULL, new);
    assert_int_equal(json_array_size(ch), 3);
    json_decref(ch);
    json_decref(old);
    json_decref(new);
}

static void threshold_is_count_or_percent(void **state)
{
    (void)state;
    assert_false(merge_threshold_exceeded(0, 0, 500, 10));
    assert_false(merge_threshold_exceeded(0, 1000, 500, 10));
    assert_false(merge_threshold_exceeded(10, 100, 500, 10)); /* exactly 10 %: allowed */
    assert_true(merge_threshold_exceeded(11, 100, 500, 10));
    assert_false(merge_threshold_exceeded(500, 100000, 500, 10)); /* exactly 500: allowed */
    assert_true(merge_threshold_exceeded(501, 100000, 500, 10));
    assert_true(merge_threshold_exceeded(1, 0, 500, 10));
    assert_false(merge_threshold_exceeded(100, 100, 100000, 100)); /* relaxed tenant */
}

static void validation_sends_schema_breakers_to_the_dead_letter_topic(void **state)
{
    (void)state;
    char err[200];
    Envelope env;
    Panel__V1__PersonObserved po = PANEL__V1__PERSON_OBSERVED__INIT;
    Panel__V1__Person p = PANEL__V1__PERSON__INIT;
    Panel__V1__DeviceObserved dob = PANEL__V1__DEVICE_OBSERVED__INIT;
    Panel__V1__Device d = PANEL__V1__DEVICE__INIT;
    panel__v1__envelope__init(&env);
    env.tenant_id = "district-1";
    env.run_id = "11111111-1111-4111-8111-111111111111";
    env.has_source = 1;
    env.source = PB_SOURCE_GOOGLE;
    env.payload_case = PB_PAYLOAD_PERSON_OBSERVED;
    env.person_observed = &po;
    po.person = &p;
    p.source_id = "g-1";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), 0);
    p.source_id = NULL;
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "source_id"));
    p.source_id = "g-1";
    env.tenant_id = "bad tenant/../";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    env.tenant_id = "district-1";
    env.run_id = "not-a-uuid";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    env.run_id = "11111111-1111-4111-8111-111111111111";
    env.source = PB_SOURCE_PANEL;
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    env.source = PB_SOURCE_AZURE;
    env.payload_case = PB_PAYLOAD_DEVICE_OBSERVED;
    env.device_observed = &dob;
    dob.device = &d;
    d.device_id = "dev-1";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1); /* devices come from Google */
    env.source = PB_SOURCE_GOOGLE;
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), 0);
    d.model = "\xff\xfe broken";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1); /* not UTF-8 */
    assert_non_null(strstr(err, "UTF-8"));
    d.model = "Chromebook \xc3\xa9";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), 0);
    /* What PostgreSQL and jansson refuse is refused here, not retried for ever: a surrogate,
     * an overlong form, a code point past U+10FFFF. */
    d.model = "half a pair \xed\xa0\x80";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    d.model = "overlong \xe0\x80\xaf";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    d.model = "past the end \xf4\x90\x80\x80";
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    d.model = "Chromebook \xc3\xa9";
    env.payload_case = PB_PAYLOAD_PERSON_CHANGED; /* a public event */
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
}

/* A run's end names the partitions its barrier waits for: a count no topic has (or more
 * than this topic has) would leave the run running for ever, so it is refused. */
static void a_run_end_naming_more_partitions_than_the_topic_has_is_invalid(void **state)
{
    (void)state;
    char err[200];
    Envelope env;
    Panel__V1__RunCompleted done = PANEL__V1__RUN_COMPLETED__INIT;
    Panel__V1__RunFailed failed = PANEL__V1__RUN_FAILED__INIT;
    panel__v1__envelope__init(&env);
    env.tenant_id = "district-1";
    env.run_id = "11111111-1111-4111-8111-111111111111";
    env.has_source = 1;
    env.source = PB_SOURCE_GOOGLE;
    env.payload_case = PB_PAYLOAD_RUN_COMPLETED;
    env.run_completed = &done;
    assert_int_equal(apply_validate(&env, 4, err, sizeof err), 0); /* absent: one copy */
    done.has_partition_count = 1;
    done.partition_count = 4;
    assert_int_equal(apply_end_partition_count(&env), 4);
    assert_int_equal(apply_validate(&env, 4, err, sizeof err), 0);
    done.partition_count = 5;
    assert_int_equal(apply_validate(&env, 4, err, sizeof err), -1);
    assert_string_equal(err, "partition_count of a run's end above the topic's partitions");
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), 0); /* the topic's not known */
    done.partition_count = 4000000000u;
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    assert_string_equal(err, "partition_count of a run's end above 65535");
    done.partition_count = APPLY_PARTITION_COUNT_MAX;
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), 0);
    env.payload_case = PB_PAYLOAD_RUN_FAILED; /* the same bound for the other end */
    env.run_failed = &failed;
    failed.has_partition_count = 1;
    failed.partition_count = 65536;
    assert_int_equal(apply_validate(&env, 0, err, sizeof err), -1);
    assert_string_equal(err, "partition_count of a run's end above 65535");
    failed.partition_count = 2;
    assert_int_equal(apply_validate(&env, 1, err, sizeof err), -1);
    assert_int_equal(apply_validate(&env, 2, err, sizeof err), 0);
}

/* A soft-deleted account shows suspended; the other cloud's own value still wins by the
 * usual precedence (Azure over Google), as when SQL overlaid it. */
static void a_soft_deleted_row_shows_suspended_under_the_usual_precedence(void **state)
{
    (void)state;
    json_t *g = obj("{\"display_name\":\"Ann\",\"suspended\":false}");
    json_t *a = obj("{\"display_name\":\"Ann B\"}");
    struct merge_person mp;
    assert_int_equal(merge_source_suspended(a), 0); /* Azure soft-deleted the account */
    assert_int_equal(merge_person_compute(g, a, &mp), 0);
    assert_true(json_is_true(json_object_get(mp.fields, "suspended")));
    assert_string_equal(str(mp.provenance, "suspended"), "azure");
    merge_person_clear(&mp);
    json_decref(a);
    /* Google's row soft-deleted, Azure says not suspended: Azure's value wins */
    a = obj("{\"display_name\":\"Ann B\",\"suspended\":false}");
    assert_int_equal(merge_source_suspended(g), 0);
    assert_true(json_is_true(json_object_get(g, "suspended")));
    assert_int_equal(merge_person_compute(g, a, &mp), 0);
    assert_true(json_is_false(json_object_get(mp.fields, "suspended")));
    merge_person_clear(&mp);
    assert_int_equal(merge_source_suspended(NULL), 0); /* no live row */
    json_decref(g);
    json_decref(a);
}

/* Graph lists one object twice in a round: the two deltas make one (issue 24). */
static void two_deltas_of_one_object_combine(void **state)
{
    (void)state;
    json_t *f = obj("{\"job_title\":\"Teacher\",\"office_location\":\"B-2\"}");
    json_t *cl = obj("[\"department\"]");
    json_t *f2 = obj("{\"department\":\"Math\",\"display_name\":\"Ann\"}");
    json_t *cl2 = obj("[\"office_location\"]");
    assert_int_equal(merge_delta_combine(f, cl, f2, cl2), 0);
    /* later values win, a later clear removes the earlier value */
    json_t *want = obj("{\"job_title\":\"Teacher\",\"department\":\"Math\","
                       "\"display_name\":\"Ann\"}");
    assert_true(json_equal(f, want));
    /* set again later: no longer cleared (else SQL would drop the new value) */
    json_t *want_cl = obj("[\"office_location\"]");
    assert_true(json_equal(cl, want_cl));
    /* the same clear twice is listed once */
    json_t *f3 = obj("{}"), *cl3 = obj("[\"office_location\"]");
    assert_int_equal(merge_delta_combine(f, cl, f3, cl3), 0);
    assert_int_equal(json_array_size(cl), 1);
    json_decref(f);
    json_decref(cl);
    json_decref(f2);
    json_decref(cl2);
    json_decref(f3);
    json_decref(cl3);
    json_decref(want);
    json_decref(want_cl);
}

static void incomplete_full_run_is_one_that_lost_or_skipped_objects(void **state)
{
    (void)state;
    assert_false(merge_run_incomplete(10, 10, 0, 0));
    assert_false(merge_run_incomplete(10, 12, 0, 0)); /* a restarted listing repeats objects */
    assert_true(merge_run_incomplete(10, 9, 0, 0));   /* events never reached the merger */
    assert_true(merge_run_incomplete(10, 10, 1, 0));  /* the fetcher skipped one */
    assert_true(merge_run_incomplete(10, 10, 0, 1));  /* one was dead-lettered */
    assert_false(merge_run_incomplete(0, 0, 0, 0));   /* old fetchers report no counts */
}

/* Replicas of two versions run side by side during an upgrade: the key of an address's lock
 * must not change (FNV-1a 64 of tenant, newline, address, as PostgreSQL's signed bigint). */
static void address_lock_keys_are_stable_and_per_tenant(void **state)
{
    (void)state;
    assert_true(merge_address_lock_key("district-a", "ada@school.example") ==
                7785902439001848291LL);
    assert_true(merge_address_lock_key("", "") == 4953169953723056587LL);
    assert_true(merge_address_lock_key("district-a", "ada@school.example") !=
                merge_address_lock_key("district-b", "ada@school.example"));
    assert_true(merge_address_lock_key("ab", "c") != merge_address_lock_key("a", "bc"));
}

/* The addresses a source row is found by (person_sources.addresses): the rules of SQL's
 * person_source_addresses, on the odd values a cloud or a stray producer may send. */
static void addresses_follow_the_sql_rules(void **state)
{
    (void)state;
    json_t *f = json_loads(
        "{\"email_normalized\":\" Ada@School.Example\\t\","
        "\"mail\":\"\\r\\nADA@school.example\\n\","
        "\"aliases\":{\"values\":[\"\\u00c9lise@School.Example\",\"no-at-sign\",\"@x.org\","
        "\"x@\",\"a@b\",null,5,\" \\u000b v@x.org\",\"ada@school.example\"]},"
        "\"proxy_addresses\":{\"values\":[\"SMTP:Primary@MS.example\",\"smtp:sec@ms.example\","
        "\"SmTp:  mixed@ms.example \",\"X500:/o=Org@x\",\"sip:ada@ms.example\",\"smtp:\","
        "\" smtp:lead@ms.example\",\"smtp:@ms.example\"]},"
        "\"other_mails\":{\"values\":[\"other@gmail.example\"]},"
        "\"email\":\"Raw@Email.example\"}",
        0, NULL);
    assert_non_null(f);
    json_t *a = merge_person_addresses(f);
    json_t *want =
        json_loads("[\"\\u000b v@x.org\",\"a@b\",\"ada@school.example\",\"mixed@ms.example\","
                   "\"primary@ms.example\",\"sec@ms.example\",\"\\u00c9lise@school.example\"]",
                   0, NULL);
    assert_non_null(a);
    assert_non_null(want);
    char *got = json_dumps(a, 0);
    assert_true(json_equal(a, want) || (fprintf(stderr, "got %s\n", got), false));
    free(got);
    json_decref(a);
    json_decref(want);
    json_decref(f);

    /* missing, null or non-array lists, and fields that are not an object: none */
    static const char *const none[] = {
        "{}",
        "{\"aliases\":null,\"proxy_addresses\":{\"values\":\"smtp:a@b.c\"}}",
        "{\"aliases\":{\"values\":{\"x\":\"a@b.c\"}},\"mail\":null,\"email_normalized\":7}",
        "{\"aliases\":[\"a@b.c\"],\"proxy_addresses\":[\"smtp:a@b.c\"]}",
        "[\"a@b.c\"]",
        "\"a@b.c\""};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        json_t *in = json_loads(none[i], JSON_DECODE_ANY, NULL);
        assert_non_null(in);
        json_t *out = merge_person_addresses(in);
        assert_non_null(out);
        assert_int_equal(json_array_size(out), 0);
        json_decref(out);
        json_decref(in);
    }
    json_t *out = merge_person_addresses(NULL);
    assert_non_null(out);
    assert_int_equal(json_array_size(out), 0);
    json_decref(out);

    assert_string_equal(merge_smtp_address("SMTP:a@b.c"), "a@b.c");
    assert_string_equal(merge_smtp_address("sMtP:"), "");
    assert_null(merge_smtp_address("smtp"));
    assert_null(merge_smtp_address(" smtp:a@b.c"));
    assert_null(merge_smtp_address(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_soft_deleted_row_shows_suspended_under_the_usual_precedence),
        cmocka_unit_test(azure_wins_field_by_field_google_fills_the_rest),
        cmocka_unit_test(graduation_year_azure_wins_and_out_of_range_is_left_out),
        cmocka_unit_test(absent_is_not_empty),
        cmocka_unit_test(same_rows_in_any_key_order_give_the_same_person),
        cmocka_unit_test(one_cloud_only_and_none),
        cmocka_unit_test(changed_fields_are_sorted_and_include_dropped),
        cmocka_unit_test(threshold_is_count_or_percent),
        cmocka_unit_test(validation_sends_schema_breakers_to_the_dead_letter_topic),
        cmocka_unit_test(two_deltas_of_one_object_combine),
        cmocka_unit_test(incomplete_full_run_is_one_that_lost_or_skipped_objects),
        cmocka_unit_test(address_lock_keys_are_stable_and_per_tenant),
        cmocka_unit_test(a_run_end_naming_more_partitions_than_the_topic_has_is_invalid),
        cmocka_unit_test(addresses_follow_the_sql_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
