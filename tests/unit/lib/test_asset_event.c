#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "asset_event.h"
#include "crypto.h"

static void lifecycle_text_and_enum_come_from_one_table(void **state)
{
    (void)state;
    char buf[32];
    static const char *const texts[] = {"in_storage", "deployed", "in_repair", "lost_stolen",
                                        "retired"};
    for (int i = 0; i < 5; i++) {
        Panel__V1__AssetLifecycle l = asset_lifecycle_from_text(texts[i]);
        assert_int_equal(l, i + 1);
        assert_string_equal(asset_lifecycle_text(l, buf, sizeof buf), texts[i]);
    }
    assert_int_equal(asset_lifecycle_from_text("DEPLOYED"), PB_ASSET_LIFECYCLE_DEPLOYED);
    assert_int_equal(asset_lifecycle_from_text("unspecified"), 0);
    assert_int_equal(asset_lifecycle_from_text("stolen"), 0);
    assert_int_equal(asset_lifecycle_from_text(""), 0);
    assert_int_equal(asset_lifecycle_from_text(NULL), 0);
    assert_string_equal(asset_lifecycle_text(0, buf, sizeof buf), "");
    assert_string_equal(asset_lifecycle_text(99, buf, sizeof buf), "");
}

static void google_status_maps_to_lifecycle_and_checkout(void **state)
{
    (void)state;
    assert_string_equal(asset_status_lifecycle("ACTIVE"), "deployed");
    assert_string_equal(asset_status_lifecycle("DISABLED"), "lost_stolen");
    assert_string_equal(asset_status_lifecycle("DEPROVISIONED"), "retired");
    assert_string_equal(asset_status_lifecycle("PRE_PROVISIONED"), "in_storage");
    assert_string_equal(asset_status_lifecycle("SHIPPED"), "in_storage");
    assert_string_equal(asset_status_lifecycle("INACTIVE"), "in_storage");
    assert_string_equal(asset_status_lifecycle("RETURN_REQUESTED"), "in_repair");
    assert_string_equal(asset_status_lifecycle("RETURN_ARRIVED"), "in_repair");
    assert_string_equal(asset_status_lifecycle("DELINQUENT"), "deployed");
    assert_null(asset_status_lifecycle("UNKNOWN"));
    assert_null(asset_status_lifecycle("SOMETHING_NEW"));
    assert_null(asset_status_lifecycle(NULL));
    assert_true(asset_status_blocks_checkout("DISABLED"));
    assert_true(asset_status_blocks_checkout("DEPROVISIONED"));
    assert_false(asset_status_blocks_checkout("ACTIVE"));
    assert_false(asset_status_blocks_checkout("UNKNOWN"));
    assert_false(asset_status_blocks_checkout(NULL));
    assert_false(asset_status_blocks_checkout(""));
}

static void auto_update_expiry_falls_back_to_the_deprecated_ms(void **state)
{
    (void)state;
    char out[11];
    Panel__V1__Device d = PANEL__V1__DEVICE__INIT;
    assert_null(asset_auto_update_expiry(&d, out));
    assert_string_equal(out, "");
    d.has_auto_update_expiration_ms = 1;
    d.auto_update_expiration_ms = 1717200000000LL; /* 2024-06-01T00:00:00Z */
    assert_string_equal(asset_auto_update_expiry(&d, out), "2024-06-01");
    d.auto_update_through = "2027-06-30";
    assert_string_equal(asset_auto_update_expiry(&d, out), "2027-06-30");
    d.auto_update_through = "2027-02-30"; /* not a date: the ms value is used */
    assert_string_equal(asset_auto_update_expiry(&d, out), "2024-06-01");
    d.auto_update_through = "June 2027";
    assert_string_equal(asset_auto_update_expiry(&d, out), "2024-06-01");
    d.auto_update_expiration_ms = -5;
    assert_null(asset_auto_update_expiry(&d, out));
    d.auto_update_expiration_ms = 9223372036854775807LL;
    assert_null(asset_auto_update_expiry(&d, out));
    assert_null(asset_auto_update_expiry(NULL, out));
}

/* The one row batch holds, decoded (it must be the only one). */
static Envelope *decode_only_row(struct outbox_batch *b)
{
    char err[200];
    assert_int_equal(outbox_batch_count(b), 1);
    const struct outbox_row *row = outbox_batch_row(b, 0);
    Envelope *env = events_decode(row->payload, row->payload_len, err, sizeof err);
    assert_non_null(env);
    return env;
}

static void asset_event_carries_the_whole_asset_and_its_checkout(void **state)
{
    (void)state;
    char err[200];
    json_t *asset = json_loads(
        "{\"asset_id\":\"8d6e3c4a-1b2c-4d5e-8f90-0123456789ab\",\"asset_tag\":\"A-10001\","
        "\"device\":{\"device_id\":\"dev-1\",\"status\":\"DISABLED\","
        "\"annotated_asset_id\":\"A-10001\",\"auto_update_expiration_ms\":1717200000000,"
        "\"recent_users\":[{\"type\":\"USER_TYPE_MANAGED\",\"email\":\"a@d.example\"}]},"
        "\"in_google\":true,\"manual\":false,\"lifecycle\":\"lost_stolen\",\"version\":4,"
        "\"current_checkout\":{\"checkout_id\":\"c-1\",\"person_id\":\"p-1\","
        "\"checked_out_at_ms\":1700000000000,\"note\":\"cart 3\"}}",
        0, NULL);
    json_t *changed = json_pack("[s,s]", "status", "lifecycle");
    struct outbox_batch *b = outbox_batch_new();
    assert_non_null(b);
    assert_int_equal(asset_event_add(b, "district-1", NULL, asset, PB_ASSET_CHANGE_KIND_UPDATED,
                                     changed, err, sizeof err),
                     0);
    const struct outbox_row *row = outbox_batch_row(b, 0);
    assert_non_null(row);
    assert_string_equal(row->tenant, "district-1");
    assert_string_equal(row->topic, "panel.assets.events");
    assert_string_equal(row->key, "district-1/8d6e3c4a-1b2c-4d5e-8f90-0123456789ab");
    Envelope *env = decode_only_row(b);
    assert_string_equal(env->event_id, row->event_id);
    assert_int_equal(env->source, PB_SOURCE_PANEL);
    assert_int_equal(env->payload_case, PB_PAYLOAD_ASSET_CHANGED);
    const Panel__V1__AssetChanged *ac = env->asset_changed;
    assert_int_equal(ac->kind, PB_ASSET_CHANGE_KIND_UPDATED);
    assert_int_equal(ac->n_changed_fields, 2);
    assert_string_equal(ac->changed_fields[1], "lifecycle");
    assert_true(ac->asset->has_lifecycle);
    assert_int_equal(ac->asset->lifecycle, PB_ASSET_LIFECYCLE_LOST_STOLEN);
    assert_int_equal(ac->asset->version, 4);
    assert_string_equal(ac->asset->asset_tag, "A-10001");
    assert_string_equal(ac->asset->device->status, "DISABLED");
    assert_int_equal(ac->asset->device->n_recent_users, 1);
    assert_non_null(ac->asset->current_checkout);
    assert_string_equal(ac->asset->current_checkout->person_id, "p-1");
    assert_int_equal(ac->asset->current_checkout->checked_out_at_ms, 1700000000000LL);
    assert_false(ac->asset->current_checkout->has_due_at_ms);
    events_free(env);
    outbox_batch_clear(b);

    /* checked in: no current_checkout; an unknown lifecycle text is left out, not guessed */
    json_object_del(asset, "current_checkout");
    json_object_set_new(asset, "lifecycle", json_string("misplaced"));
    assert_int_equal(asset_event_add(b, "district-1", "5b0b8c1e-0000-4000-8000-000000000001", asset,
                                     PB_ASSET_CHANGE_KIND_CHECKED_IN, NULL, err, sizeof err),
                     0);
    env = decode_only_row(b);
    assert_null(env->asset_changed->asset->current_checkout);
    assert_false(env->asset_changed->asset->has_lifecycle);
    assert_string_equal(env->run_id, "5b0b8c1e-0000-4000-8000-000000000001");
    events_free(env);
    outbox_batch_clear(b);

    /* a field the .proto does not have is refused with a message */
    json_object_set_new(asset, "colour", json_string("red"));
    assert_int_equal(asset_event_add(b, "district-1", NULL, asset, PB_ASSET_CHANGE_KIND_UPDATED,
                                     NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "AssetChanged"));
    assert_int_equal(outbox_batch_count(b), 0);
    outbox_batch_free(b);
    json_decref(asset);
    json_decref(changed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lifecycle_text_and_enum_come_from_one_table),
        cmocka_unit_test(google_status_maps_to_lifecycle_and_checkout),
        cmocka_unit_test(auto_update_expiry_falls_back_to_the_deprecated_ms),
        cmocka_unit_test(asset_event_carries_the_whole_asset_and_its_checkout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
