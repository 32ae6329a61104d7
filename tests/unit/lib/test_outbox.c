/* lib/outbox without a database: what a batch queues (the packed envelope, the key, the
 * envelope's tenant and event id) and what it refuses. tests/integration/test_outbox.c writes
 * batches to the real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "outbox.h"

static void batch_queues_the_packed_envelope_with_its_key(void **state)
{
    (void)state;
    char err[200], id[EVENTS_ID_LEN];
    Envelope env;
    Panel__V1__AuthEvent ev = PANEL__V1__AUTH_EVENT__INIT;
    assert_int_equal(events_envelope_init(&env, id, "district-1", PB_SOURCE_AZURE, NULL), 0);
    ev.has_kind = 1;
    ev.kind = PB_AUTH_EVENT_KIND_REVOKED;
    env.payload_case = PB_PAYLOAD_AUTH_EVENT;
    env.auth_event = &ev;
    size_t len = 0;
    uint8_t *packed = events_pack(&env, &len);
    assert_non_null(packed);

    struct outbox_batch *b = outbox_batch_new();
    assert_non_null(b);
    assert_int_equal(outbox_batch_count(b), 0);
    assert_null(outbox_batch_row(b, 0));
    assert_int_equal(outbox_batch_add(b, &env, TOPIC_AUTH_EVENTS, "district-1", err, sizeof err),
                     0);
    assert_int_equal(
        outbox_batch_add_entity(b, &env, TOPIC_ASSETS_EVENTS, "asset-9", err, sizeof err), 0);
    assert_int_equal(outbox_batch_count(b), 2);
    const struct outbox_row *r0 = outbox_batch_row(b, 0), *r1 = outbox_batch_row(b, 1);
    assert_string_equal(r0->tenant, "district-1");
    assert_string_equal(r0->event_id, id);
    assert_string_equal(r0->topic, TOPIC_AUTH_EVENTS);
    assert_string_equal(r0->key, "district-1");
    assert_int_equal(r0->payload_len, len);
    assert_memory_equal(r0->payload, packed, len);
    assert_string_equal(r1->topic, TOPIC_ASSETS_EVENTS);
    assert_string_equal(r1->key, "district-1/asset-9");
    assert_null(outbox_batch_row(b, 2));
    outbox_batch_clear(b);
    assert_int_equal(outbox_batch_count(b), 0);

    /* an envelope without a tenant or event id cannot become a row */
    env.event_id = NULL;
    assert_int_equal(outbox_batch_add(b, &env, TOPIC_AUTH_EVENTS, "k", err, sizeof err), -1);
    assert_non_null(strstr(err, "event id"));
    env.event_id = id;
    env.tenant_id = (char *)"";
    assert_int_equal(outbox_batch_add_entity(b, &env, TOPIC_ASSETS_EVENTS, "a", err, sizeof err),
                     -1);
    assert_int_equal(outbox_batch_count(b), 0);
    outbox_batch_free(b);
    outbox_batch_free(NULL);
    free(packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_queues_the_packed_envelope_with_its_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
