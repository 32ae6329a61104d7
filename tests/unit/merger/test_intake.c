/* The consumer's decisions that need no broker or database (services/merger/intake.h) and
 * the dead letter's headers (dlq.h): the verdict on a message's bytes, the batch's time
 * budget, isolating a failing batch and dead-lettering the one event that keeps failing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "intake.h"
#include "panel/v1/pb_short_names.h"

#define RUN_ID "11111111-1111-4111-8111-111111111111"

/* The packed bytes of a Google PersonObserved of tenant, with a model field for breaking. */
static uint8_t *person_bytes(const char *tenant, const char *source_id, const char *name,
                             size_t *len)
{
    Envelope env;
    char id[EVENTS_ID_LEN];
    Panel__V1__PersonObserved po = PANEL__V1__PERSON_OBSERVED__INIT;
    Panel__V1__Person p = PANEL__V1__PERSON__INIT;
    assert_int_equal(events_envelope_init(&env, id, tenant, PB_SOURCE_GOOGLE, RUN_ID), 0);
    env.payload_case = PB_PAYLOAD_PERSON_OBSERVED;
    env.person_observed = &po;
    po.person = &p;
    p.source_id = (char *)source_id;
    p.display_name = (char *)name;
    uint8_t *bytes = events_pack(&env, len);
    assert_non_null(bytes);
    return bytes;
}

static void a_valid_observation_is_applied(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bytes = person_bytes("district-1", "g-1", "Ann Lee", &len);
    Envelope *env = (Envelope *)1;
    char why[256] = "stale";
    assert_int_equal(intake_check(bytes, len, 0, &env, why, sizeof why), INTAKE_APPLY);
    assert_non_null(env);
    assert_string_equal(env->tenant_id, "district-1");
    assert_string_equal(env->person_observed->person->display_name, "Ann Lee");
    assert_string_equal(why, "");
    events_free(env);
    free(bytes);
}

static void bytes_that_are_no_envelope_are_undecodable_without_an_envelope(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    Envelope *env = (Envelope *)1;
    char why[256];
    assert_int_equal(intake_check(garbage, sizeof garbage, 0, &env, why, sizeof why),
                     INTAKE_UNDECODABLE);
    assert_null(env);
    assert_non_null(strstr(why, "protobuf decoding failed"));
    assert_int_equal(intake_check(NULL, 0, 0, &env, why, sizeof why), INTAKE_UNDECODABLE);
    assert_null(env);
    assert_string_equal(why, "empty message");
    /* An Envelope without its header (no schema version) is not one of ours either. */
    static const uint8_t header_only[] = {0x0a, 0x01, 0x78};
    assert_int_equal(intake_check(header_only, sizeof header_only, 0, &env, why, sizeof why),
                     INTAKE_UNDECODABLE);
    assert_null(env);
    assert_non_null(strstr(why, "invalid envelope"));
    assert_string_equal(intake_verdict_str(INTAKE_UNDECODABLE), "undecodable");
}

static void a_decoded_event_breaking_the_schema_is_invalid_and_kept_for_its_run(void **state)
{
    (void)state;
    size_t len;
    /* A Person without its source id, and one whose name is not UTF-8: the Envelope decodes,
     * so the dead letter's run can learn it is incomplete. */
    uint8_t *bytes = person_bytes("district-1", NULL, "Ann Lee", &len);
    Envelope *env = NULL;
    char why[256];
    assert_int_equal(intake_check(bytes, len, 0, &env, why, sizeof why), INTAKE_INVALID);
    assert_non_null(env);
    assert_string_equal(env->run_id, RUN_ID);
    assert_non_null(strstr(why, "source_id"));
    events_free(env);
    free(bytes);
    bytes = person_bytes("district-1", "g-1", "Ann \xff\xfe", &len);
    assert_int_equal(intake_check(bytes, len, 0, &env, why, sizeof why), INTAKE_INVALID);
    assert_non_null(env);
    /* the reason is fixed text: none of the message's bytes reach the header or the row */
    assert_string_equal(why, "a string field is not valid UTF-8");
    events_free(env);
    free(bytes);
}

static void a_batch_waits_at_most_its_time_and_polls_in_short_steps(void **state)
{
    (void)state;
    /* before the first message: short polls, so a stop is seen at once */
    assert_int_equal(intake_poll_wait_ms(0, 123456, 5000), INTAKE_POLL_MS);
    /* after it: what is left of batch_ms, never more than one step */
    assert_int_equal(intake_poll_wait_ms(1000, 1000, 5000), INTAKE_POLL_MS);
    assert_int_equal(intake_poll_wait_ms(1000, 5900, 5000), 100);
    assert_int_equal(intake_poll_wait_ms(1000, 5999, 5000), 1);
    assert_int_equal(intake_poll_wait_ms(1000, 6000, 5000), -1); /* due: apply it */
    assert_int_equal(intake_poll_wait_ms(1000, 9000, 5000), -1);
    assert_int_equal(intake_poll_wait_ms(1000, 1050, 100), 50);
}

static void a_batch_failing_three_times_is_taken_one_event_at_a_time(void **state)
{
    (void)state;
    struct intake_failures f = {0};
    assert_int_equal(intake_batch_limit(&f, 500), 500);
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 40), INTAKE_RETRY);
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 40), INTAKE_RETRY);
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 40), INTAKE_ISOLATE);
    assert_int_equal(f.isolate, 40);
    assert_int_equal(f.fails, 0);
    assert_int_equal(intake_batch_limit(&f, 500), 1);
    /* the good events go through one by one ... */
    for (int i = 0; i < 39; i++)
        intake_applied(&f, 1);
    assert_int_equal(f.isolate, 1);
    assert_int_equal(intake_batch_limit(&f, 500), 1);
    /* ... the bad one fails five times with the database up: it is poison */
    for (int i = 1; i < INTAKE_DEAD_AFTER; i++)
        assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 1), INTAKE_RETRY);
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 1), INTAKE_DEAD_LETTER);
    assert_int_equal(f.fails, INTAKE_DEAD_AFTER);
    intake_dead_lettered(&f);
    assert_int_equal(f.fails, 0);
    assert_int_equal(f.isolate, 0);
    assert_int_equal(intake_batch_limit(&f, 500), 500); /* whole batches again */
}

static void a_dead_letter_that_could_not_be_sent_is_tried_again(void **state)
{
    (void)state;
    struct intake_failures f = {.fails = INTAKE_DEAD_AFTER - 1, .isolate = 1};
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 1), INTAKE_DEAD_LETTER);
    /* the producer failed: nothing was committed, the next failure says so again */
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 1), INTAKE_DEAD_LETTER);
    /* a slow database in between does not count, and does not forget either */
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, true, 1), INTAKE_DEAD_LETTER);
    assert_int_equal(f.fails, INTAKE_DEAD_AFTER + 1);
}

static void an_outage_or_a_slow_database_never_makes_an_event_look_poisonous(void **state)
{
    (void)state;
    struct intake_failures f = {0};
    for (int i = 0; i < 50; i++) {
        assert_int_equal(intake_failed(&f, APPLY_ERROR, false, false, 1), INTAKE_RETRY);
        assert_int_equal(intake_failed(&f, APPLY_ERROR, true, true, 1), INTAKE_RETRY);
        assert_int_equal(intake_failed(&f, APPLY_ERROR, false, false, 30), INTAKE_RETRY);
    }
    assert_int_equal(f.fails, 0);
    assert_int_equal(f.isolate, 0);
    /* fenced (another member stored later offsets): dropped and read again, never counted */
    for (int i = 0; i < 10; i++)
        assert_int_equal(intake_failed(&f, APPLY_FENCED, true, false, 30), INTAKE_RETRY);
    assert_int_equal(f.fails, 0);
    /* a success in between starts the count again */
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 30), INTAKE_RETRY);
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 30), INTAKE_RETRY);
    intake_applied(&f, 30);
    assert_int_equal(intake_failed(&f, APPLY_ERROR, true, false, 30), INTAKE_RETRY);
    assert_int_equal(f.fails, 1);
}

static void isolation_ends_after_as_many_events_as_the_batch_had(void **state)
{
    (void)state;
    struct intake_failures f = {.isolate = 3};
    intake_applied(&f, 1);
    assert_int_equal(intake_batch_limit(&f, 100), 1);
    intake_applied(&f, 5); /* more than left: none left, never wraps around */
    assert_int_equal(f.isolate, 0);
    assert_int_equal(intake_batch_limit(&f, 100), 100);
    f.isolate = 0;
    intake_dead_lettered(&f);
    assert_int_equal(f.isolate, 0);
}

static void dead_letter_headers_name_the_reason_partition_and_offset(void **state)
{
    (void)state;
    struct dlq_headers h;
    dlq_headers_fill(&h, 7, 9007199254740993LL, "invalid envelope: no payload");
    assert_string_equal(h.name[0], "x-panel-dlq-reason");
    assert_string_equal(h.value[0], "invalid envelope: no payload");
    assert_int_equal(h.len[0], strlen("invalid envelope: no payload"));
    assert_string_equal(h.name[1], "x-panel-dlq-partition");
    assert_string_equal(h.value[1], "7");
    assert_int_equal(h.len[1], 1);
    assert_string_equal(h.name[2], "x-panel-dlq-offset");
    assert_string_equal(h.value[2], "9007199254740993");
    assert_int_equal(h.len[2], 16);
    /* the extremes fit their buffers */
    dlq_headers_fill(&h, INT32_MIN, INT64_MIN, "");
    assert_string_equal(h.value[1], "-2147483648");
    assert_string_equal(h.value[2], "-9223372036854775808");
    assert_int_equal(h.len[0], 0);
}

/* A batch read again after a conflict or a revocation meets its dead letters again: each is
 * sent once (test_promises counts them on the dead-letter topic). */
static void a_dead_letter_is_sent_once_when_its_batch_is_read_again(void **state)
{
    (void)state;
    struct intake_lettered *l = intake_lettered_new();
    assert_non_null(l);
    assert_false(intake_lettered_already(l, 3, 1091));
    intake_lettered_note(l, 3, 1091);
    assert_true(intake_lettered_already(l, 3, 1091));
    assert_true(intake_lettered_already(l, 3, 17)); /* before it: read again, already sent */
    assert_false(intake_lettered_already(l, 3, 1092));
    assert_false(intake_lettered_already(l, 0, 1091)); /* other partitions are their own */
    assert_false(intake_lettered_already(l, -1, 0));
    intake_lettered_note(l, 70000, 5); /* beyond the bound: not remembered, not a crash */
    assert_false(intake_lettered_already(l, 70000, 5));
    intake_lettered_note(l, 3, 10); /* an older one does not move the mark back */
    assert_true(intake_lettered_already(l, 3, 1091));
    intake_lettered_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_observation_is_applied),
        cmocka_unit_test(bytes_that_are_no_envelope_are_undecodable_without_an_envelope),
        cmocka_unit_test(a_decoded_event_breaking_the_schema_is_invalid_and_kept_for_its_run),
        cmocka_unit_test(a_batch_waits_at_most_its_time_and_polls_in_short_steps),
        cmocka_unit_test(a_batch_failing_three_times_is_taken_one_event_at_a_time),
        cmocka_unit_test(a_dead_letter_that_could_not_be_sent_is_tried_again),
        cmocka_unit_test(an_outage_or_a_slow_database_never_makes_an_event_look_poisonous),
        cmocka_unit_test(isolation_ends_after_as_many_events_as_the_batch_had),
        cmocka_unit_test(dead_letter_headers_name_the_reason_partition_and_offset),
        cmocka_unit_test(a_dead_letter_is_sent_once_when_its_batch_is_read_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
