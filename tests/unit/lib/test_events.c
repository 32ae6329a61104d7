#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "json.h"

static void pack_decode_roundtrip_keeps_presence(void **state)
{
    (void)state;
    char id[EVENTS_ID_LEN], err[200];
    Envelope env;
    Panel__V1__PersonObserved po = PANEL__V1__PERSON_OBSERVED__INIT;
    Panel__V1__Person p = PANEL__V1__PERSON__INIT;
    p.source_id = "g-1";
    p.email = "Zoë.Smith@Example.org";
    p.display_name = "";
    p.has_suspended = 1;
    p.suspended = 0;
    po.person = &p;
    assert_int_equal(events_envelope_init(&env, id, "district-1", PB_SOURCE_GOOGLE, "run-1"), 0);
    env.payload_case = PB_PAYLOAD_PERSON_OBSERVED;
    env.person_observed = &po;
    size_t len = 0;
    uint8_t *data = events_pack(&env, &len);
    Envelope *back = events_decode(data, len, err, sizeof err);
    assert_non_null(back);
    assert_string_equal(back->tenant_id, "district-1");
    assert_string_equal(back->person_observed->person->email, "Zoë.Smith@Example.org");
    /* Empty differs from absent; a false that was sent is present. */
    assert_non_null(back->person_observed->person->display_name);
    assert_string_equal(back->person_observed->person->display_name, "");
    assert_null(back->person_observed->person->given_name);
    assert_true(back->person_observed->person->has_suspended);
    assert_false(back->person_observed->person->has_archived);
    events_free(back);
    free(data);
}

static void decode_rejects_garbage_and_invalid_envelopes(void **state)
{
    (void)state;
    char err[200];
    assert_null(events_decode("\xff\xff\xff", 3, err, sizeof err));
    assert_null(events_decode(NULL, 0, err, sizeof err));
    /* A valid protobuf that is not a usable envelope (no tenant, no payload). */
    Envelope env = PANEL__V1__ENVELOPE__INIT;
    env.has_schema_version = 1;
    env.schema_version = 1;
    size_t len;
    uint8_t *data = events_pack(&env, &len);
    assert_null(events_decode(data, len, err, sizeof err));
    assert_non_null(strstr(err, "invalid envelope"));
    free(data);
}

/* An overlong tag for field number 0 (0x80 0x00) decodes in protobuf-c but packs back as the
 * invalid one-byte tag 0: refused, so every accepted envelope survives a round trip. */
static void decode_rejects_field_number_zero(void **state)
{
    (void)state;
    char id[EVENTS_ID_LEN], err[200];
    Envelope env;
    Panel__V1__RunCompleted rc = PANEL__V1__RUN_COMPLETED__INIT;
    assert_int_equal(events_envelope_init(&env, id, "district-1", PB_SOURCE_GOOGLE, "run-1"), 0);
    env.payload_case = PB_PAYLOAD_RUN_COMPLETED;
    env.run_completed = &rc;
    size_t len = 0;
    uint8_t *data = events_pack(&env, &len);
    uint8_t *bad = malloc(len + 3);
    memcpy(bad, data, len);
    memcpy(bad + len, "\x80\x00\x01", 3);
    Envelope *ok = events_decode(data, len, err, sizeof err);
    assert_non_null(ok);
    events_free(ok);
    assert_null(events_decode(bad, len + 3, err, sizeof err));
    assert_non_null(strstr(err, "numbered 0"));
    free(bad);
    free(data);
}

static void json_roundtrip(void **state)
{
    (void)state;
    char err[200];
    const char *doc =
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_AZURE\",\"run_id\":\"r\","
        "\"run_completed\":{\"kind\":\"RUN_KIND_DELTA\",\"counts\":{\"people\":3,\"skipped\":1}}}";
    Envelope *env = (Envelope *)events_from_json(&panel__v1__envelope__descriptor, doc, strlen(doc),
                                                 err, sizeof err);
    assert_non_null(env);
    assert_int_equal(env->payload_case, PB_PAYLOAD_RUN_COMPLETED);
    assert_int_equal(env->run_completed->kind, PB_RUN_KIND_DELTA);
    assert_int_equal(env->run_completed->counts->people, 3);
    struct buf out;
    buf_init(&out, 0);
    assert_int_equal(events_to_json(&env->base, &out), 0);
    assert_non_null(strstr(out.data, "\"kind\":\"RUN_KIND_DELTA\""));
    assert_non_null(strstr(out.data, "\"skipped\":1"));
    buf_free(&out);
    events_free(env);

    const char *bad = "{\"tenant_id\":\"t1\",\"no_such_field\":1}";
    assert_null(
        events_from_json(&panel__v1__envelope__descriptor, bad, strlen(bad), err, sizeof err));
    assert_non_null(strstr(err, "no_such_field"));
}

/* events_to_json_value gives the object json_loads reads from events_to_json's text, for
 * every kind of field: strings (UTF-8, escapes, empty), booleans, int64, enums, nested and
 * repeated messages, repeated strings; and refuses a uint64 the text cannot carry either. */
static void json_value_equals_parsed_text(void **state)
{
    (void)state;
    char err[200];
    const char *docs[] = {
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_AZURE\",\"run_id\":\"r\","
        "\"occurred_at_ms\":-1700000000123,\"person_observed\":{\"person\":{\"source_id\":\"a-1\","
        "\"email\":\"Zo\\u00eb \\\"Q\\\"\\\\x\\n@example.org\",\"display_name\":\"\","
        "\"suspended\":false,\"is_admin\":true,\"proxy_addresses\":{\"values\":[\"SMTP:a@b\","
        "\"smtp:c@d\"]},\"other_mails\":{},\"cleared_fields\":[\"job_title\",\"department\"]}}}",
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_GOOGLE\",\"run_id\":\"r\","
        "\"device_observed\":{\"device\":{\"device_id\":\"d1\",\"auto_update_expiration_ms\":"
        "9223372036854775807,\"recent_users\":[{\"type\":\"USER_TYPE_MANAGED\",\"email\":\"x@y\"},"
        "{}],\"recent_users_present\":true}}}",
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_GOOGLE\",\"run_id\":\"r\","
        "\"run_completed\":{\"kind\":\"RUN_KIND_FULL\",\"counts\":{\"people\":0,"
        "\"pages\":9223372036854775807}}}",
        /* the public events: repeated messages and repeated enums, nested Person fields */
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_PANEL\",\"person_changed\":{\"kind\":"
        "\"CHANGE_KIND_RESTORED\",\"person\":{\"person_id\":\"p-1\",\"fields\":{\"email\":"
        "\"\\u00e9@x.example\",\"given_name\":\"\\ud83d\\ude00\"},\"provenance\":[{\"field\":"
        "\"email\",\"source\":\"SOURCE_AZURE\"},{\"field\":\"given_name\",\"source\":"
        "\"SOURCE_GOOGLE\"},{}],\"sources\":[\"SOURCE_GOOGLE\",\"SOURCE_AZURE\"],"
        "\"removed\":false,\"version\":0},\"changed_fields\":[\"email\",\"\"]}}",
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_PANEL\",\"run_id\":\"\",\"asset_changed\":{"
        "\"kind\":\"ASSET_CHANGE_KIND_CHECKED_OUT\",\"asset\":{\"asset_id\":\"a-1\","
        "\"lifecycle\":\"ASSET_LIFECYCLE_LOST_STOLEN\",\"in_google\":true,\"manual\":false,"
        "\"version\":-9223372036854775808,\"current_checkout\":{\"checkout_id\":\"c\","
        "\"due_at_ms\":0,\"note\":\"tab\\there\\u0001\"},\"device\":{\"recent_users\":[]}},"
        "\"changed_fields\":[]}}",
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_GOOGLE\",\"auth_event\":{\"kind\":"
        "\"AUTH_EVENT_KIND_SCOPE_MISSING\",\"granted_scopes\":[\"a\",\"a\",\"\"],"
        "\"message\":\"line1\\nline2 \\\"quoted\\\" \\\\\",\"actor\":\"\"}}",
        "{\"tenant_id\":\"t1\",\"sync_alert\":{\"kind\":\"SYNC_ALERT_KIND_CHECKOUT_OVERDUE\","
        "\"pending_removals\":1,\"due_at_ms\":-1,\"cloud\":\"azure\"}}",
        "{\"tenant_id\":\"t1\",\"source\":\"SOURCE_AZURE\",\"object_removed\":{\"kind\":"
        "\"OBJECT_KIND_PERSON\",\"source_id\":\"u-1\",\"reason\":\"REMOVAL_REASON_DELETED\"}}",
        "{\"tenant_id\":\"t1\",\"org_unit_changed\":{\"kind\":\"CHANGE_KIND_CREATED\","
        "\"org_unit\":{\"org_unit_id\":\"id:1\",\"path\":\"/\\u00c9cole/\\u2028\"}}}",
        /* an enum by number: one the .proto does not name is carried as a number */
        "{\"tenant_id\":\"t1\",\"source\":7,\"auth_event\":{\"kind\":2}}",
        "{}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        ProtobufCMessage *m = events_from_json(&panel__v1__envelope__descriptor, docs[i],
                                               strlen(docs[i]), err, sizeof err);
        assert_non_null(m);
        struct buf text;
        buf_init(&text, 0);
        assert_int_equal(events_to_json(m, &text), 0);
        json_t *parsed = json_loads(text.data, 0, NULL), *built = events_to_json_value(m);
        assert_non_null(parsed);
        assert_non_null(built);
        assert_true(json_equal(parsed, built));
        json_decref(parsed);
        json_decref(built);
        buf_free(&text);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    Panel__V1__RunCounts counts = PANEL__V1__RUN_COUNTS__INIT;
    counts.has_people = 1;
    counts.people = (uint64_t)INT64_MAX + 1;
    assert_null(events_to_json_value(&counts.base));
}

/* The names come from the .proto's descriptor, and read back as events_source_str writes. */
static void source_names_read_back_through_the_descriptor(void **state)
{
    (void)state;
    const Panel__V1__Source all[] = {PB_SOURCE_GOOGLE, PB_SOURCE_AZURE, PB_SOURCE_PANEL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_int_equal(events_source_from_str(events_source_str(all[i])), all[i]);
    assert_int_equal(events_source_from_str("google"), PB_SOURCE_GOOGLE);
    assert_int_equal(events_source_from_str("azure"), PB_SOURCE_AZURE);
    const char *unknown[] = {NULL,          "",
                             "GOOGLE",      "Google",
                             "unspecified", "SOURCE_GOOGLE",
                             "google ",     "aws",
                             "google\x01",  "a_very_long_name_past_the_buffer_x"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_int_equal(events_source_from_str(unknown[i]), PB_SOURCE_UNSPECIFIED);
}

/* The changed_fields of a public event from merge_changed_fields' array. */
static void a_json_array_becomes_a_repeated_string_field(void **state)
{
    (void)state;
    size_t n = 99;
    json_t *names = json_pack("[s,s,i]", "display_name", "lifecycle", 3);
    char **v = events_strings_from_json(names, &n);
    assert_non_null(v);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "display_name");
    assert_string_equal(v[1], "lifecycle");
    assert_null(v[2]);
    free(v);
    v = events_strings_from_json(NULL, &n); /* nothing changed */
    assert_non_null(v);
    assert_int_equal(n, 0);
    free(v);
    json_decref(names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pack_decode_roundtrip_keeps_presence),
        cmocka_unit_test(decode_rejects_garbage_and_invalid_envelopes),
        cmocka_unit_test(decode_rejects_field_number_zero),
        cmocka_unit_test(json_roundtrip),
        cmocka_unit_test(json_value_equals_parsed_text),
        cmocka_unit_test(source_names_read_back_through_the_descriptor),
        cmocka_unit_test(a_json_array_becomes_a_repeated_string_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
