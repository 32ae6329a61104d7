/* Graph's reference pages (tests/reference/azure) map as docs/sources.md says: mail-else-UPN
 * email, nulls as cleared fields, delta objects carrying only what was sent; Graph's errors
 * are classified as PROVIDERS.md says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "json.h"
#include "panel/v1/pb_short_names.h"
#include "reference.h"

static Panel__V1__Person *map_nth(const char *file, size_t i, int flags, char *why)
{
    return (Panel__V1__Person *)ref_map_nth(&graph_user_spec, file, "value", i, flags, NULL, why);
}

static bool cleared(const Panel__V1__Person *p, const char *field)
{
    for (size_t i = 0; i < p->n_cleared_fields; i++)
        if (strcmp(p->cleared_fields[i], field) == 0)
            return true;
    return false;
}

#define USERS  "tests/reference/azure/users_page.json"
#define DELTA  "tests/reference/azure/delta_page.json"
#define ERRORS "tests/reference/azure/errors.json"

static void full_user_maps(void **state)
{
    (void)state;
    char why[256];
    Panel__V1__Person *p = map_nth(USERS, 0, FMAP_FULL, why);
    assert_non_null(p);
    assert_string_equal(p->source_id, "6e7b768e-07e2-4810-8459-485f84f8f204");
    assert_string_equal(p->display_name, "José Ñúñez");
    assert_string_equal(p->given_name, "José");
    assert_string_equal(p->family_name, "Ñúñez");
    assert_string_equal(p->mail, "Jose.Nunez@demo.k12.example");
    assert_string_equal(p->user_principal_name, "jnunez@demo.onmicrosoft.com");
    assert_string_equal(p->email, "Jose.Nunez@demo.k12.example"); /* mail wins */
    assert_string_equal(p->email_normalized, "jose.nunez@demo.k12.example");
    assert_int_equal(p->other_mails->n_values, 1);
    assert_string_equal(p->proxy_addresses->values[0], "SMTP:Jose.Nunez@demo.k12.example");
    assert_true(p->has_suspended && !p->suspended);
    assert_string_equal(p->job_title, "Teacher");
    assert_string_equal(p->department, "Science");
    assert_string_equal(p->employee_id, "E-20417");
    assert_string_equal(p->office_location, "Room 12");
    assert_string_equal(p->user_type, "Member");
    assert_string_equal(p->created_at, "2020-01-01T00:00:00Z");
    assert_int_equal(p->n_cleared_fields, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void null_mail_falls_back_to_upn_and_is_cleared(void **state)
{
    (void)state;
    char why[256];
    Panel__V1__Person *p = map_nth(USERS, 1, FMAP_FULL, why);
    assert_non_null(p);
    assert_null(p->mail);
    assert_string_equal(p->email, "Guest_Ext#EXT#@demo.onmicrosoft.com");
    assert_string_equal(p->email_normalized, "guest_ext#ext#@demo.onmicrosoft.com");
    assert_true(p->has_suspended && p->suspended); /* accountEnabled false */
    assert_true(cleared(p, "mail"));
    assert_true(cleared(p, "given_name"));
    assert_true(cleared(p, "job_title"));
    assert_false(cleared(p, "display_name"));
    assert_int_equal(p->other_mails->n_values, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    assert_null(map_nth(USERS, 2, FMAP_FULL, why)); /* neither mail nor UPN */
    assert_non_null(strstr(why, "no email"));
    assert_null(map_nth(USERS, 3, FMAP_FULL, why)); /* no id */
}

static void delta_objects_carry_only_what_was_sent(void **state)
{
    (void)state;
    char why[256];
    Panel__V1__Person *p = map_nth(DELTA, 0, FMAP_PARTIAL, why);
    assert_non_null(p);
    assert_string_equal(p->display_name, "José Renamed");
    assert_null(p->email); /* mail not sent: unchanged, never replaced by a guess */
    assert_null(p->given_name);
    assert_false(p->has_suspended);
    assert_int_equal(p->n_cleared_fields, 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);

    p = map_nth(DELTA, 1, FMAP_PARTIAL, why);
    assert_non_null(p);
    assert_true(p->has_suspended && p->suspended);
    assert_int_equal(p->n_cleared_fields, 1);
    assert_string_equal(p->cleared_fields[0], "job_title");
    protobuf_c_message_free_unpacked(&p->base, NULL);

    p = map_nth(DELTA, 4, FMAP_PARTIAL, why);
    assert_non_null(p);
    assert_string_equal(p->email, "new.upn@demo.k12.example");
    assert_true(cleared(p, "mail"));
    protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void errors_are_classified(void **state)
{
    (void)state;
    char msg[256];
    struct buf thr = ref_body(ERRORS, "throttled_429"), denied = ref_body(ERRORS, "denied_403"),
               tok = ref_body(ERRORS, "token_401"), sync = ref_body(ERRORS, "sync_state_400"),
               sync2 = ref_body(ERRORS, "sync_state_lower_400"),
               resync = ref_body(ERRORS, "resync_400"), bad = ref_body(ERRORS, "bad_request_400");
    assert_int_equal(http_classify_default(429, &thr, NULL), HTTP_RETRY_THROTTLED);
    assert_int_equal(http_classify_default(503, NULL, NULL), HTTP_RETRY_YES);
    assert_int_equal(http_classify_default(504, NULL, NULL), HTTP_RETRY_YES);
    assert_int_equal(http_classify_default(403, &denied, NULL), HTTP_RETRY_NO);
    assert_int_equal(graph_failure(403, &denied, msg, sizeof msg), PB_RUN_FAILURE_REASON_FORBIDDEN);
    assert_non_null(strstr(msg, "Authorization_RequestDenied"));
    assert_int_equal(graph_failure(401, &tok, msg, sizeof msg), PB_RUN_FAILURE_REASON_REVOKED);
    assert_int_equal(graph_failure(429, &thr, msg, sizeof msg), PB_RUN_FAILURE_REASON_THROTTLED);
    assert_int_equal(graph_failure(400, &bad, msg, sizeof msg),
                     PB_RUN_FAILURE_REASON_PROVIDER_ERROR);
    assert_true(graph_delta_expired(400, &sync));
    assert_true(graph_delta_expired(400, &sync2));
    assert_true(graph_delta_expired(400, &resync));
    assert_true(graph_delta_expired(410, NULL));
    assert_false(graph_delta_expired(400, &bad));
    assert_false(graph_delta_expired(403, &denied));
    assert_false(graph_delta_expired(200, NULL));
    buf_free(&thr);
    buf_free(&denied);
    buf_free(&tok);
    buf_free(&sync);
    buf_free(&sync2);
    buf_free(&resync);
    buf_free(&bad);
}

#define EXTENSION "tests/reference/azure/users_page_extension.json"
#define GRAD_ATTR "extension_0a1b2c3d4e5f40718293a4b5c6d7e8f9_graduationYear"

/* PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE: the extension is added to $select only when
 * configured, and must be a directory extension's name. */
static void graduation_year_attribute_is_selected_only_when_configured(void **state)
{
    (void)state;
    char err[256];
    struct graph g = {.graph_url = "http://x"};
    assert_int_equal(graph_prepare(&g, err, sizeof err), 0);
    assert_null(strstr(g.select, "extension_"));
    assert_null(g.user_spec.configured[0].json);
    g.graduation_year_attribute = GRAD_ATTR;
    assert_int_equal(graph_prepare(&g, err, sizeof err), 0);
    assert_non_null(strstr(g.select, ",createdDateTime," GRAD_ATTR));
    assert_string_equal(g.user_spec.configured[0].json, GRAD_ATTR);
    static const char *const bad[] = {"graduationYear",
                                      "extension_0a1b2c3d4e5f40718293a4b5c6d7e8f9_",
                                      "extension_0a1b2c3d_graduationYear",
                                      "extension_0a1b2c3d4e5f40718293a4b5c6d7e8fg_graduationYear",
                                      "extension_0a1b2c3d4e5f40718293a4b5c6d7e8f9_grad,displayName",
                                      "extension_0a1b2c3d4e5f40718293a4b5c6d7e8f9_grad&$filter=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g.graduation_year_attribute = bad[i];
        assert_int_equal(graph_prepare(&g, err, sizeof err), -1);
        assert_non_null(strstr(err, "PANEL_AZURE_GRADUATION_YEAR_ATTRIBUTE"));
    }
}

/* An Integer extension (a number) or a String one holding digits; null clears (Graph's
 * cleared value); out of range or not a year is left out and counted; absent is nothing. */
static void graduation_year_maps_from_the_extension(void **state)
{
    (void)state;
    char why[256], err[256];
    struct graph g = {.graduation_year_attribute = GRAD_ATTR};
    assert_int_equal(graph_prepare(&g, err, sizeof err), 0);
    json_t *page = ref_load(EXTENSION);
    static const struct {
        int year; /* 0: absent */
        bool cleared;
        unsigned ignored;
    } want[] = {{2030, false, 0}, {2032, false, 0}, {0, true, 0},
                {0, false, 1},    {0, false, 1},    {0, false, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        for (int flags = FMAP_FULL; flags <= FMAP_PARTIAL; flags++) {
            struct fmap_stats st = {0};
            Panel__V1__Person *p = (Panel__V1__Person *)fmap_map(
                &g.user_spec, json_array_get(json_object_get(page, "value"), i), flags, &st, why,
                sizeof why);
            assert_non_null(p);
            assert_int_equal(p->has_graduation_year, want[i].year != 0);
            if (want[i].year)
                assert_int_equal(p->graduation_year, want[i].year);
            assert_int_equal(cleared(p, "graduation_year"), want[i].cleared);
            assert_int_equal(st.ignored, want[i].ignored);
            protobuf_c_message_free_unpacked(&p->base, NULL);
        }
    }
    json_decref(page);
}

/* @removed entries as Graph sends them in a delta round (reason "deleted" or "changed"). */
static void removed_entries_are_read_once(void **state)
{
    (void)state;
    char longid[FMAP_MAX_ID + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    static const struct {
        const char *json;
        enum graph_entry kind;
        Panel__V1__RemovalReason reason;
    } cases[] = {
        {"{\"id\":\"u-1\",\"displayName\":\"A\"}", GRAPH_ENTRY_OBJECT, 0},
        {"{\"id\":\"u-1\",\"@removed\":{\"reason\":\"deleted\"}}", GRAPH_ENTRY_REMOVED,
         PB_REMOVAL_REASON_DELETED},
        {"{\"id\":\"u-1\",\"@removed\":{\"reason\":\"changed\"}}", GRAPH_ENTRY_REMOVED,
         PB_REMOVAL_REASON_CHANGED},
        {"{\"id\":\"u-1\",\"@removed\":{}}", GRAPH_ENTRY_REMOVED, PB_REMOVAL_REASON_CHANGED},
        {"{\"id\":\"u-1\",\"@removed\":null}", GRAPH_ENTRY_REMOVED, PB_REMOVAL_REASON_CHANGED},
        {"{\"@removed\":{\"reason\":\"deleted\"}}", GRAPH_ENTRY_REMOVAL_UNUSABLE, 0},
        {"{\"id\":\"\",\"@removed\":{\"reason\":\"deleted\"}}", GRAPH_ENTRY_REMOVAL_UNUSABLE, 0},
        {"{\"id\":7,\"@removed\":{\"reason\":\"deleted\"}}", GRAPH_ENTRY_REMOVAL_UNUSABLE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *obj = json_loads(cases[i].json, 0, NULL);
        const char *id = NULL;
        Panel__V1__RemovalReason reason = PB_REMOVAL_REASON_UNSPECIFIED;
        assert_non_null(obj);
        assert_int_equal(graph_entry_kind(obj, &id, &reason), cases[i].kind);
        if (cases[i].kind == GRAPH_ENTRY_REMOVED) {
            assert_string_equal(id, "u-1");
            assert_int_equal(reason, cases[i].reason);
        }
        json_decref(obj);
    }
    json_t *obj = json_pack("{s:s,s:{s:s}}", "id", longid, "@removed", "reason", "deleted");
    const char *id = NULL;
    Panel__V1__RemovalReason reason = 0;
    assert_int_equal(graph_entry_kind(obj, &id, &reason), GRAPH_ENTRY_REMOVAL_UNUSABLE);
    json_decref(obj);
}

/* Each Graph request carries the access token, so a round follows a nextLink or deltaLink
 * only under PANEL_GRAPH_URL: a look-alike host, a user-info prefix or another port is a
 * malformed page, never a request (docs/security.md). */
static void links_outside_the_graph_url_are_never_followed(void **state)
{
    (void)state;
    struct graph g = {.graph_url = "https://graph.microsoft.com"};
    static const char *const inside[] = {
        "https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc",
        "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x%2Fy",
        "https://graph.microsoft.com/",
        "https://graph.microsoft.com",
    };
    static const char *const outside[] = {
        "https://graph.microsoft.com.evil.example/v1.0/users/delta",
        "https://graph.microsoft.com@evil.example/v1.0/users/delta",
        "https://graph.microsoft.com:8443/v1.0/users/delta",
        "https://graph.microsoft.comevil/v1.0",
        "http://graph.microsoft.com/v1.0/users/delta",
        "HTTPS://GRAPH.MICROSOFT.COM.EVIL/v1.0",
        "https://evil.example/https://graph.microsoft.com/v1.0",
        "//graph.microsoft.com/v1.0/users/delta",
        "/v1.0/users/delta",
        "https://graph.microsoft.co",
        "",
    };
    for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++)
        assert_true(graph_link_inside(&g, inside[i]));
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
        assert_false(graph_link_inside(&g, outside[i]));
    /* the emulator's base URL has a port and a path prefix: the same rule */
    g.graph_url = "http://127.0.0.1:8090/graph";
    assert_true(graph_link_inside(&g, "http://127.0.0.1:8090/graph/v1.0/users/delta"));
    assert_false(graph_link_inside(&g, "http://127.0.0.1:8090/graphx/v1.0/users/delta"));
    assert_false(graph_link_inside(&g, "http://127.0.0.1:80901/graph/v1.0"));
    assert_false(graph_link_inside(&g, "http://127.0.0.1:8091/graph/v1.0/users/delta"));
}

/* A full listing ignores every @removed entry; a delta round reads objects partially. */
static void entries_as_a_listing_reads_them(void **state)
{
    (void)state;
    json_t *user = json_loads("{\"id\":\"u-1\",\"displayName\":\"A\"}", 0, NULL);
    json_t *gone = json_loads("{\"id\":\"u-2\",\"@removed\":{\"reason\":\"deleted\"}}", 0, NULL);
    json_t *bad = json_loads("{\"@removed\":{\"reason\":\"deleted\"}}", 0, NULL);
    const char *id = NULL;
    Panel__V1__RemovalReason reason = PB_REMOVAL_REASON_UNSPECIFIED;
    int flags = -1;
    assert_int_equal(graph_entry_read(user, false, &id, &reason, &flags), GRAPH_ENTRY_OBJECT);
    assert_int_equal(flags, FMAP_FULL);
    assert_int_equal(graph_entry_read(user, true, &id, &reason, &flags), GRAPH_ENTRY_OBJECT);
    assert_int_equal(flags, FMAP_PARTIAL);
    assert_int_equal(graph_entry_read(gone, false, &id, &reason, &flags), GRAPH_ENTRY_IGNORED);
    assert_int_equal(graph_entry_read(bad, false, &id, &reason, &flags), GRAPH_ENTRY_IGNORED);
    assert_int_equal(graph_entry_read(bad, true, &id, &reason, &flags),
                     GRAPH_ENTRY_REMOVAL_UNUSABLE);
    assert_int_equal(graph_entry_read(gone, true, &id, &reason, &flags), GRAPH_ENTRY_REMOVED);
    assert_string_equal(id, "u-2");
    assert_int_equal(reason, PB_REMOVAL_REASON_DELETED);
    json_decref(user);
    json_decref(gone);
    json_decref(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entries_as_a_listing_reads_them),
        cmocka_unit_test(full_user_maps),
        cmocka_unit_test(null_mail_falls_back_to_upn_and_is_cleared),
        cmocka_unit_test(delta_objects_carry_only_what_was_sent),
        cmocka_unit_test(errors_are_classified),
        cmocka_unit_test(graduation_year_attribute_is_selected_only_when_configured),
        cmocka_unit_test(graduation_year_maps_from_the_extension),
        cmocka_unit_test(removed_entries_are_read_once),
        cmocka_unit_test(links_outside_the_graph_url_are_never_followed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
