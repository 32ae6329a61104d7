#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch_map.h"
#include "json.h"
#include "panel/v1/pb_short_names.h"

static void truncation_never_splits_utf8(void **state)
{
    (void)state;
    bool cut = false;
    /* "é" is two bytes: a 3-byte cap keeps "aé", a 2-byte cap keeps only "a". */
    char *s = fmap_strndup_utf8("aéb", 3, &cut);
    assert_string_equal(s, "aé");
    assert_true(cut);
    free(s);
    s = fmap_strndup_utf8("aéb", 2, &cut);
    assert_string_equal(s, "a");
    assert_true(cut);
    free(s);
    s = fmap_strndup_utf8("short", 100, &cut);
    assert_string_equal(s, "short");
    assert_false(cut);
    free(s);
}

static void emails_are_trimmed_and_lower_cased(void **state)
{
    (void)state;
    char *s = fmap_normalize_email("  Jose.Nunez@Demo.K12.Example\t");
    assert_string_equal(s, "jose.nunez@demo.k12.example");
    free(s);
    s = fmap_normalize_email("zoë@DEMO.example");
    assert_string_equal(s, "zoë@demo.example"); /* non-ASCII kept as given */
    free(s);
    s = fmap_normalize_email("   ");
    assert_string_equal(s, "");
    free(s);
}

static const struct fmap_field fields[] = {
    {"name.first", FMAP_STR, "given_name", 8, NULL},
    {"enabled", FMAP_BOOL_NOT, "suspended", 0, NULL},
    {"admin", FMAP_BOOL, "is_admin", 0, NULL},
    {"title", FMAP_STR, "job_title", 0, NULL},
    {"tags", FMAP_STR_LIST, "aliases", 0, NULL},
};
static const char *const email_from[] = {"mail", "upn", NULL};
static const struct fmap_spec spec = {
    .desc = &panel__v1__person__descriptor,
    .fields = fields,
    .nfields = 5,
    .id_json = "id",
    .id_proto = "source_id",
    .email_from = email_from,
    .nulls_clear = true,
};

static Panel__V1__Person *map(const char *doc, int flags, struct fmap_stats *st, char *why)
{
    json_t *o = pjson_parse(doc, strlen(doc), NULL, 0);
    assert_non_null(o);
    ProtobufCMessage *m = fmap_map(&spec, o, flags, st, why, 256);
    json_decref(o);
    return (Panel__V1__Person *)m;
}

static void table_maps_fields_and_records_nulls(void **state)
{
    (void)state;
    struct fmap_stats st = {0};
    char why[256];
    Panel__V1__Person *p =
        map("{\"id\":\"u1\",\"name\":{\"first\":\"Bartholomew\"},\"enabled\":false,"
            "\"admin\":\"yes\",\"title\":null,\"mail\":null,\"upn\":\" U1@X.example\","
            "\"tags\":[\"a\",1,\"b\"],\"unknown\":{}}",
            FMAP_FULL, &st, why);
    assert_non_null(p);
    assert_string_equal(p->source_id, "u1");
    assert_string_equal(p->given_name, "Bartholo"); /* cut to 8 bytes */
    assert_true(p->has_suspended && p->suspended);
    assert_false(p->has_is_admin); /* "yes" is not a boolean: left out, not coerced */
    assert_null(p->job_title);
    assert_string_equal(p->email, " U1@X.example"); /* mail null: the UPN is the email */
    assert_string_equal(p->email_normalized, "u1@x.example");
    /* Only table fields are recorded as cleared ("mail" is not in this table). */
    assert_int_equal(p->n_cleared_fields, 1);
    assert_string_equal(p->cleared_fields[0], "job_title");
    assert_non_null(p->aliases);
    assert_int_equal(p->aliases->n_values, 2);
    assert_int_equal(st.truncated, 1);
    assert_int_equal(st.ignored, 1);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void objects_without_id_or_email_are_skipped(void **state)
{
    (void)state;
    char why[256];
    assert_null(map("{\"mail\":\"a@b.example\"}", FMAP_FULL, NULL, why));
    assert_non_null(strstr(why, "id"));
    assert_null(map("{\"id\":\"u2\",\"mail\":null,\"upn\":null}", FMAP_FULL, NULL, why));
    assert_non_null(strstr(why, "email"));
    assert_null(map("[1]", FMAP_FULL, NULL, why));
}

static void partial_objects_only_choose_from_sent_members(void **state)
{
    (void)state;
    char why[256];
    /* Delta: mail not sent (unchanged) -> the UPN must not replace the email. */
    Panel__V1__Person *p =
        map("{\"id\":\"u3\",\"upn\":\"new@x.example\"}", FMAP_PARTIAL, NULL, why);
    assert_non_null(p);
    assert_null(p->email);
    assert_null(p->email_normalized);
    assert_false(p->has_suspended);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    /* Delta: mail cleared and UPN sent -> the UPN is the email. */
    p = map("{\"id\":\"u3\",\"mail\":null,\"upn\":\"new@x.example\"}", FMAP_PARTIAL, NULL, why);
    assert_non_null(p);
    assert_string_equal(p->email, "new@x.example");
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

/* A year from a configured member three levels deep: an integer or a string of digits in
 * 1900..2200 is kept; anything else is left out and counted, never coerced; null clears. */
static void configured_year_is_read_strictly(void **state)
{
    (void)state;
    static const struct fmap_field year[] = {
        {"a.b.c", FMAP_YEAR, "graduation_year", 0, NULL},
    };
    struct fmap_spec ys = spec;
    ys.configured = year;
    ys.nconfigured = 1;
    static const struct {
        const char *value;
        int year; /* 0: absent */
    } cases[] = {
        {"2031", 2031},
        {"\"2031\"", 2031},
        {"[{\"value\":\"2030\"}]", 2030},
        {"1900", 1900},
        {"2200", 2200},
        {"1899", 0},
        {"2201", 0},
        {"\"-2031\"", 0},
        {"\" 2031\"", 0},
        {"\"2031a\"", 0},
        {"\"\"", 0},
        {"2031.0", 0},
        {"true", 0},
        {"{}", 0},
        {"\"99999999999999999999\"", 0},
        {"-9223372036854775807", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char doc[256], why[256];
        struct fmap_stats st = {0};
        snprintf(doc, sizeof doc,
                 "{\"id\":\"u9\",\"mail\":\"u9@x.example\",\"a\":{\"b\":{\"c\":%s}}}",
                 cases[i].value);
        json_t *o = pjson_parse(doc, strlen(doc), NULL, 0);
        assert_non_null(o);
        Panel__V1__Person *p = (Panel__V1__Person *)fmap_map(&ys, o, FMAP_FULL, &st, why, 256);
        json_decref(o);
        assert_non_null(p);
        if (cases[i].year) {
            assert_true(p->has_graduation_year);
            assert_int_equal(p->graduation_year, cases[i].year);
            assert_int_equal(st.ignored, 0);
        } else {
            assert_false(p->has_graduation_year);
            assert_int_equal(st.ignored, 1);
        }
        protobuf_c_message_free_unpacked(&p->base, NULL);
    }
    /* null: cleared (this table's spec records nulls); absent: nothing */
    char why[256];
    const char *cleared = "{\"id\":\"u9\",\"mail\":\"u9@x.example\",\"a\":{\"b\":{\"c\":null}}}";
    json_t *o = pjson_parse(cleared, strlen(cleared), NULL, 0);
    assert_non_null(o);
    Panel__V1__Person *p = (Panel__V1__Person *)fmap_map(&ys, o, FMAP_FULL, NULL, why, 256);
    json_decref(o);
    assert_non_null(p);
    assert_false(p->has_graduation_year);
    assert_int_equal(p->n_cleared_fields, 1);
    assert_string_equal(p->cleared_fields[0], "graduation_year");
    protobuf_c_message_free_unpacked(&p->base, NULL);
    /* not configured (json NULL): the member is not read */
    static const struct fmap_field unset[] = {{NULL, FMAP_YEAR, "graduation_year", 0, NULL}};
    ys.configured = unset;
    const char *named = "{\"id\":\"u9\",\"mail\":\"u9@x.example\",\"graduation_year\":2030}";
    o = pjson_parse(named, strlen(named), NULL, 0);
    assert_non_null(o);
    p = (Panel__V1__Person *)fmap_map(&ys, o, FMAP_FULL, NULL, why, 256);
    json_decref(o);
    assert_non_null(p);
    assert_false(p->has_graduation_year);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

/* A configured field is the provider's own copy: naming its member leaves the table alone. */
static void configured_fields_are_the_callers_copy(void **state)
{
    (void)state;
    static const struct fmap_field table[] = {
        {NULL, FMAP_YEAR, "graduation_year", 0, NULL},
    };
    struct fmap_field mine[1];
    struct fmap_spec configured;
    fmap_spec_configure(&configured, &spec, mine, table, 1);
    assert_ptr_equal(configured.fields, spec.fields);
    assert_int_equal(configured.nfields, spec.nfields);
    assert_string_equal(configured.id_json, spec.id_json);
    assert_ptr_equal(configured.configured, mine);
    assert_int_equal(configured.nconfigured, 1);
    mine[0].json = "extension_x";
    assert_null(table[0].json);
    assert_string_equal(configured.configured[0].proto, "graduation_year");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(configured_fields_are_the_callers_copy),
        cmocka_unit_test(truncation_never_splits_utf8),
        cmocka_unit_test(emails_are_trimmed_and_lower_cased),
        cmocka_unit_test(table_maps_fields_and_records_nulls),
        cmocka_unit_test(objects_without_id_or_email_are_skipped),
        cmocka_unit_test(partial_objects_only_choose_from_sent_members),
        cmocka_unit_test(configured_year_is_read_strictly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
