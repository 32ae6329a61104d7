#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "kafka.h"

/* A producer whose messages fail fast: nothing listens on the discard port. */
static struct kafka_producer *failing_producer(void)
{
    static const char *const conf[] = {"message.timeout.ms", "500", NULL};
    char err[512];
    struct kafka_producer *p =
        kafka_producer_new("127.0.0.1:9", "test-delivery", conf, err, sizeof err);
    assert_non_null(p);
    return p;
}

/* Two callers sharing one producer see only their own messages' results. */
static void each_caller_sees_only_its_own_failures(void **state)
{
    (void)state;
    char err[256];
    struct kafka_producer *p = failing_producer();
    struct kafka_delivery *mine = kafka_delivery_new(), *theirs = kafka_delivery_new();
    assert_non_null(mine);
    assert_non_null(theirs);
    assert_int_equal(kafka_produce_tracked(p, "t", "k", 1, "v", 1, mine, err, sizeof err), 0);
    assert_int_equal(kafka_produce_tracked(p, "t", "k", 1, "w", 1, mine, err, sizeof err), 0);
    assert_int_equal(kafka_produce(p, "t", "k", 1, "x", 1, err, sizeof err), 0);
    assert_int_equal(kafka_delivery_wait(p, mine, 30000), 2);
    assert_int_equal(kafka_delivery_wait(p, theirs, 30000), 0);
    /* the untracked message is counted where it always was */
    assert_int_equal(kafka_producer_flush(p, 30000), 1);
    kafka_delivery_release(mine);
    kafka_delivery_release(theirs);
    kafka_producer_destroy(p);
}

/* Released before the report arrives: the message's own reference keeps it alive. */
static void release_before_the_report_is_safe(void **state)
{
    (void)state;
    char err[256];
    struct kafka_producer *p = failing_producer();
    struct kafka_delivery *d = kafka_delivery_new();
    assert_int_equal(kafka_produce_tracked(p, "t", "k", 1, "v", 1, d, err, sizeof err), 0);
    assert_int_equal(kafka_delivery_wait(p, d, 0), -1); /* not decided yet */
    kafka_delivery_release(d);
    assert_int_equal(kafka_producer_flush(p, 30000), 0);
    kafka_producer_destroy(p);
}

/* Brokers that cannot be reached: no partition count, a message saying so, within the
 * timeout. */
static void partition_count_fails_without_brokers(void **state)
{
    (void)state;
    char err[256] = "";
    struct kafka_producer *p = failing_producer();
    assert_int_equal(kafka_topic_partition_count(kafka_producer_handle(p), "panel.source.events",
                                                 500, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "panel.source.events"));
    assert_non_null(strstr(err, "no metadata from the brokers within 500 ms"));
    kafka_producer_destroy(p);
}

/* An explicit partition is queued and its delivery counted; a negative one other than
 * RD_KAFKA_PARTITION_UA is refused at once. */
static void produce_to_a_partition(void **state)
{
    (void)state;
    char err[256] = "";
    struct kafka_producer *p = failing_producer();
    struct kafka_delivery *d = kafka_delivery_new();
    assert_int_equal(kafka_produce_partition(p, "t", -7, "k", 1, "v", 1, d, err, sizeof err), -1);
    assert_non_null(strstr(err, "partition -7"));
    assert_int_equal(kafka_produce_partition(p, "t", 2, "k", 1, "v", 1, d, err, sizeof err), 0);
    assert_int_equal(kafka_produce_partition(p, "t", RD_KAFKA_PARTITION_UA, "k", 1, "w", 1, NULL,
                                             err, sizeof err),
                     0);
    assert_int_equal(kafka_delivery_wait(p, d, 30000), 1);
    assert_int_equal(kafka_producer_flush(p, 30000), 1);
    kafka_delivery_release(d);
    kafka_producer_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_caller_sees_only_its_own_failures),
        cmocka_unit_test(release_before_the_report_is_safe),
        cmocka_unit_test(partition_count_fails_without_brokers),
        cmocka_unit_test(produce_to_a_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
