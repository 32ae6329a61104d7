/* Google's reference pages (tests/reference/google) map to exactly these events, and
 * Google's errors are classified as PROVIDERS.md says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "google.h"
#include "json.h"
#include "panel/v1/pb_short_names.h"
#include "reference.h"

static ProtobufCMessage *map_nth(const struct fmap_spec *spec, const char *file, const char *key,
                                 size_t i, struct fmap_stats *st, char *why)
{
    return ref_map_nth(spec, file, key, i, FMAP_FULL, st, why);
}

#define USERS  "tests/reference/google/users_page.json"
#define ERRORS "tests/reference/google/errors.json"

static void user_fields_map(void **state)
{
    (void)state;
    char why[256];
    struct fmap_stats st = {0};
    Panel__V1__Person *p =
        (Panel__V1__Person *)map_nth(&google_user_spec, USERS, "users", 0, &st, why);
    assert_non_null(p);
    assert_string_equal(p->source_id, "104857600000000000001");
    assert_string_equal(p->email, "zoë.łukasz@demo.k12.example");
    assert_string_equal(p->email_normalized, "zoë.łukasz@demo.k12.example");
    assert_string_equal(p->given_name, "Zoë");
    assert_string_equal(p->family_name, "Łukasz-Müller");
    assert_string_equal(p->display_name, "Zoë Łukasz-Müller");
    assert_string_equal(p->org_unit_path, "/Students/Grade 7");
    assert_true(p->has_suspended && !p->suspended);
    assert_true(p->has_archived && !p->archived);
    assert_true(p->has_is_admin && !p->is_admin);
    assert_string_equal(p->employee_id, "E-20417"); /* the organization externalId */
    assert_string_equal(p->created_at, "2021-08-20T14:03:11.000Z");
    assert_null(p->last_login_at); /* 1970 = never signed in */
    assert_string_equal(p->photo_url, "https://photos.example/p/1.jpg");
    assert_int_equal(p->aliases->n_values, 2);
    assert_string_equal(p->aliases->values[1], "zl@demo.k12.example");
    assert_int_equal(p->n_cleared_fields, 0);
    assert_int_equal(st.truncated + st.ignored, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);

    p = (Panel__V1__Person *)map_nth(&google_user_spec, USERS, "users", 1, &st, why);
    assert_non_null(p);
    assert_string_equal(p->email, "  Admin@Demo.K12.Example "); /* kept as given */
    assert_string_equal(p->email_normalized, "admin@demo.k12.example");
    assert_true(p->suspended && p->archived && p->is_admin);
    assert_string_equal(p->suspension_reason, "ADMIN");
    assert_string_equal(p->last_login_at, "2024-05-06T07:08:09.000Z");
    assert_null(p->employee_id);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void bad_users_are_skipped_or_truncated(void **state)
{
    (void)state;
    char why[256];
    struct fmap_stats st = {0};
    assert_null(map_nth(&google_user_spec, USERS, "users", 2, &st, why));
    assert_non_null(strstr(why, "no email"));
    assert_null(map_nth(&google_user_spec, USERS, "users", 3, &st, why));
    assert_non_null(strstr(why, "missing id"));
    Panel__V1__Person *p =
        (Panel__V1__Person *)map_nth(&google_user_spec, USERS, "users", 4, &st, why);
    assert_non_null(p);
    assert_int_equal(strlen(p->given_name), FMAP_MAX_NAME); /* 128 two-byte letters */
    assert_false(p->has_suspended);                         /* "yes" is not a boolean */
    assert_int_equal(st.truncated, 1);
    assert_int_equal(st.ignored, 1);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void device_fields_map(void **state)
{
    (void)state;
    char why[256];
    const char *file = "tests/reference/google/devices_page.json";
    Panel__V1__Device *d =
        (Panel__V1__Device *)map_nth(&google_device_spec, file, "chromeosdevices", 0, NULL, why);
    assert_non_null(d);
    assert_string_equal(d->device_id, "d-0001");
    assert_string_equal(d->serial_number, "5CD1234XYZ");
    assert_string_equal(d->model, "Acer Chromebook 311");
    assert_string_equal(d->status, "ACTIVE");
    assert_string_equal(d->org_unit_path, "/Devices/Lab 1");
    assert_string_equal(d->org_unit_id, "03ph8a2z1");
    assert_string_equal(d->annotated_asset_id, "ASSET-77");
    assert_string_equal(d->annotated_user, "zoë.łukasz@demo.k12.example");
    assert_string_equal(d->annotated_location, "Room 101");
    assert_string_equal(d->notes, "cracked hinge\nreplaced 2024");
    assert_string_equal(d->mac_address, "a1b2c3d4e5f6");
    assert_string_equal(d->ethernet_mac_address, "0a0b0c0d0e0f");
    assert_string_equal(d->os_version, "126.0.6478.132");
    assert_string_equal(d->platform_version, "15886.44.0 (Official Build) stable-channel");
    assert_string_equal(d->firmware_version, "Google_Reks.8476.52.0");
    assert_string_equal(d->boot_mode, "Verified");
    assert_string_equal(d->last_sync, "2024-07-01T10:00:00.000Z");
    assert_string_equal(d->last_enrollment_time, "2022-09-01T08:00:00.000Z");
    assert_true(d->has_auto_update_expiration_ms);
    assert_true(d->auto_update_expiration_ms == 1780272000000LL);
    assert_string_equal(d->auto_update_through, "2026-06-01");
    assert_string_equal(d->device_license_type, "education");
    assert_string_equal(d->chrome_os_type, "chromeOsFlex");
    assert_true(d->has_recent_users_present && d->recent_users_present);
    assert_int_equal(d->n_recent_users, 2);
    assert_string_equal(d->recent_users[0]->type, "USER_TYPE_MANAGED");
    assert_string_equal(d->recent_users[0]->email, "zoë.łukasz@demo.k12.example");
    assert_null(d->recent_users[1]->email);
    protobuf_c_message_free_unpacked(&d->base, NULL);

    d = (Panel__V1__Device *)map_nth(&google_device_spec, file, "chromeosdevices", 1, NULL, why);
    assert_non_null(d);
    assert_string_equal(d->status, "SOME_NEW_STATUS"); /* unknown values kept */
    assert_false(d->has_recent_users_present);         /* BASIC projection look-alike */
    protobuf_c_message_free_unpacked(&d->base, NULL);
    assert_null(map_nth(&google_device_spec, file, "chromeosdevices", 2, NULL, why));
}

static void orgunit_fields_map(void **state)
{
    (void)state;
    char why[256];
    Panel__V1__OrgUnit *o =
        (Panel__V1__OrgUnit *)map_nth(&google_orgunit_spec, "tests/reference/google/orgunits.json",
                                      "organizationUnits", 0, NULL, why);
    assert_non_null(o);
    assert_string_equal(o->org_unit_id, "id:03ph8a2z2");
    assert_string_equal(o->path, "/Students/Grade 7");
    assert_string_equal(o->name, "Grade 7");
    assert_string_equal(o->description, "Kids' #1 + friends");
    assert_string_equal(o->parent_id, "id:03ph8a2z3");
    assert_string_equal(o->parent_path, "/Students");
    protobuf_c_message_free_unpacked(&o->base, NULL);
}

static void errors_are_classified(void **state)
{
    (void)state;
    char msg[256];
    struct buf rate = ref_body(ERRORS, "rate_403"), quota = ref_body(ERRORS, "quota_403"),
               forbidden = ref_body(ERRORS, "forbidden_403"), auth = ref_body(ERRORS, "auth_401"),
               invalid = ref_body(ERRORS, "invalid_input_400"),
               backend = ref_body(ERRORS, "backend_500");
    assert_int_equal(google_classify(429, &rate, NULL), HTTP_RETRY_THROTTLED);
    assert_int_equal(google_classify(403, &rate, NULL), HTTP_RETRY_THROTTLED);
    assert_int_equal(google_classify(403, &quota, NULL), HTTP_RETRY_THROTTLED);
    assert_int_equal(google_classify(403, &forbidden, NULL), HTTP_RETRY_NO);
    assert_int_equal(google_classify(500, &backend, NULL), HTTP_RETRY_YES);
    assert_int_equal(google_classify(503, NULL, NULL), HTTP_RETRY_YES);
    assert_int_equal(google_classify(400, &invalid, NULL), HTTP_RETRY_NO);
    assert_true(google_invalid_input(400, &invalid));
    assert_false(google_invalid_input(400, &backend));
    assert_int_equal(google_failure(403, &forbidden, msg, sizeof msg),
                     PB_RUN_FAILURE_REASON_FORBIDDEN);
    assert_non_null(strstr(msg, "Not Authorized"));
    assert_int_equal(google_failure(403, &rate, msg, sizeof msg), PB_RUN_FAILURE_REASON_THROTTLED);
    assert_int_equal(google_failure(401, &auth, msg, sizeof msg), PB_RUN_FAILURE_REASON_REVOKED);
    assert_int_equal(google_failure(500, &backend, msg, sizeof msg),
                     PB_RUN_FAILURE_REASON_PROVIDER_ERROR);
    struct buf junk;
    buf_init(&junk, 0);
    assert_int_equal(buf_appends(&junk, "<html>oops"), 0);
    assert_int_equal(google_classify(403, &junk, NULL), HTTP_RETRY_NO);
    assert_int_equal(google_failure(502, &junk, msg, sizeof msg),
                     PB_RUN_FAILURE_REASON_PROVIDER_ERROR);
    buf_free(&junk);
    buf_free(&rate);
    buf_free(&quota);
    buf_free(&forbidden);
    buf_free(&auth);
    buf_free(&invalid);
    buf_free(&backend);
}

#define CUSTOM "tests/reference/google/users_page_custom_schemas.json"

/* PANEL_GOOGLE_GRADUATION_YEAR_FIELD=Schema.Field: users are listed with projection=custom
 * and customFieldMask=Schema and customSchemas in fields=; unset, none of that is asked. */
static void graduation_year_field_is_requested_only_when_configured(void **state)
{
    (void)state;
    char err[256];
    struct google_opts g = {.api_url = "http://x"};
    assert_int_equal(google_opts_prepare(&g, err, sizeof err), 0);
    assert_non_null(strstr(g.users_query, "projection=basic"));
    assert_null(strstr(g.users_query, "customSchemas"));
    assert_null(strstr(g.users_query, "customFieldMask"));
    assert_null(g.user_spec.configured[0].json);

    g.graduation_year_field = "StudentInfo.GraduationYear";
    assert_int_equal(google_opts_prepare(&g, err, sizeof err), 0);
    assert_non_null(strstr(g.users_query, "projection=custom&customFieldMask=StudentInfo&"));
    assert_non_null(strstr(g.users_query, "fields=nextPageToken,users("));
    assert_non_null(strstr(g.users_query, ",customSchemas)"));
    assert_string_equal(g.user_spec.configured[0].json, "customSchemas.StudentInfo.GraduationYear");

    static const char *const bad[] = {"StudentInfo",  ".Year", "Student.",
                                      "A.B.C",        "a b.c", "x&projection=full.y",
                                      "Schema.Field#"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g.graduation_year_field = bad[i];
        assert_int_equal(google_opts_prepare(&g, err, sizeof err), -1);
        assert_non_null(strstr(err, "PANEL_GOOGLE_GRADUATION_YEAR_FIELD"));
    }
}

/* The custom field's value: a number, a string of digits or a multi-valued field's first
 * value; text, a two-digit year, a real number are left out (counted); other schemas and
 * users without the field give nothing. */
static void graduation_year_maps_from_the_custom_schema(void **state)
{
    (void)state;
    char why[256], err[256];
    struct google_opts g = {.graduation_year_field = "StudentInfo.GraduationYear"};
    assert_int_equal(google_opts_prepare(&g, err, sizeof err), 0);
    static const struct {
        int year; /* 0: absent */
        unsigned ignored;
    } want[] = {{2029, 0}, {2031, 0}, {2030, 0}, {0, 1}, {0, 1}, {0, 0}, {0, 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct fmap_stats st = {0};
        Panel__V1__Person *p =
            (Panel__V1__Person *)map_nth(&g.user_spec, CUSTOM, "users", i, &st, why);
        assert_non_null(p);
        assert_int_equal(p->has_graduation_year, want[i].year != 0);
        if (want[i].year)
            assert_int_equal(p->graduation_year, want[i].year);
        assert_int_equal(st.ignored, want[i].ignored);
        protobuf_c_message_free_unpacked(&p->base, NULL);
    }
    /* not configured: the value is not read even when the page has it */
    Panel__V1__Person *p =
        (Panel__V1__Person *)map_nth(&google_user_spec, CUSTOM, "users", 0, NULL, why);
    assert_non_null(p);
    assert_false(p->has_graduation_year);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(user_fields_map),
        cmocka_unit_test(bad_users_are_skipped_or_truncated),
        cmocka_unit_test(device_fields_map),
        cmocka_unit_test(orgunit_fields_map),
        cmocka_unit_test(errors_are_classified),
        cmocka_unit_test(graduation_year_field_is_requested_only_when_configured),
        cmocka_unit_test(graduation_year_maps_from_the_custom_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
