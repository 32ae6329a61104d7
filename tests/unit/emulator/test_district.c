/* The district generator: determinism, counts, overlap between the clouds, data variety,
 * and the mutations the control API relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "district.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct district *make(const char *text)
{
    struct district_spec spec;
    char err[256];
    assert_int_equal(district_spec_parse(text, &spec, err, sizeof err), 0);
    struct district *d = district_generate(&spec, err, sizeof err);
    assert_non_null(d);
    return d;
}

static json_t *item_json(struct district *d, enum dcoll c, size_t i)
{
    json_t *o = json_loads(district_item(d, c, i)->json, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_spec_parse(void **state)
{
    (void)state;
    struct district_spec s;
    char err[256];
    assert_int_equal(district_spec_parse("demo:people=3000,azure_people=2000,shared=1500,"
                                         "devices=400,ous=60,seed=7",
                                         &s, err, sizeof err),
                     0);
    assert_string_equal(s.id, "demo");
    assert_int_equal(s.people, 3000);
    assert_int_equal(s.azure_people, 2000);
    assert_int_equal(s.shared, 1500);
    assert_int_equal(s.devices, 400);
    assert_int_equal(s.ous, 60);
    assert_int_equal(s.seed, 7);
    /* shared larger than either cloud, unknown key, bad id, bad number */
    assert_int_equal(
        district_spec_parse("x:people=10,azure_people=5,shared=6", &s, err, sizeof err), -1);
    assert_int_equal(district_spec_parse("x:colour=3", &s, err, sizeof err), -1);
    assert_int_equal(district_spec_parse("Bad_Id:people=3", &s, err, sizeof err), -1);
    assert_int_equal(district_spec_parse("x:people=abc", &s, err, sizeof err), -1);
    assert_int_equal(district_spec_parse("x:people=0", &s, err, sizeof err), -1);
}

static void test_spec_json(void **state)
{
    (void)state;
    struct district_spec s;
    char err[256];
    json_t *o =
        json_pack("{s:s,s:i,s:i,s:i}", "id", "j1", "people", 50, "azure_people", 40, "shared", 30);
    assert_int_equal(district_spec_from_json(o, &s, err, sizeof err), 0);
    assert_int_equal(s.people, 50);
    json_object_set_new(o, "people", json_string("50"));
    assert_int_equal(district_spec_from_json(o, &s, err, sizeof err), -1);
    json_decref(o);
}

static void test_deterministic(void **state)
{
    (void)state;
    const char *spec = "same:people=400,azure_people=300,shared=200,devices=150,ous=40,seed=9";
    struct district *a = make(spec), *b = make(spec);
    assert_string_equal(district_tenant_id(a), district_tenant_id(b));
    assert_string_equal(district_customer_id(a), district_customer_id(b));
    for (int c = 0; c < DC_COUNT; c++) {
        assert_int_equal(district_count(a, c), district_count(b, c));
        for (size_t i = 0; i < district_count(a, c); i++)
            assert_string_equal(district_item(a, c, i)->json, district_item(b, c, i)->json);
    }
    /* another seed gives other data */
    struct district *other = make("same:people=400,azure_people=300,shared=200,devices=150,"
                                  "ous=40,seed=10");
    assert_string_not_equal(district_item(a, DC_GUSERS, 1)->json,
                            district_item(other, DC_GUSERS, 1)->json);
    district_destroy(a);
    district_destroy(b);
    district_destroy(other);
}

static void test_counts_and_identity(void **state)
{
    (void)state;
    struct district *d = make("cnt:people=1000,azure_people=700,shared=500,devices=300,ous=50");
    assert_int_equal(district_live_count(d, DC_GUSERS), 1000);
    assert_int_equal(district_live_count(d, DC_AUSERS), 700);
    assert_int_equal(district_live_count(d, DC_DEVICES), 300);
    assert_int_equal(district_live_count(d, DC_OUS), 50);
    /* deleted Google users exist beyond the visible ones */
    assert_true(district_count(d, DC_GUSERS) > 1000);
    assert_string_equal(district_domain(d), "cnt.k12.example");
    assert_string_equal(district_admin_email(d), "admin@cnt.k12.example");
    assert_int_equal(strlen(district_customer_id(d)), 9);
    assert_int_equal(district_customer_id(d)[0], 'C');
    assert_int_equal(strlen(district_tenant_id(d)), 36);
    assert_string_equal(district_item(d, DC_GUSERS, 0)->key, "admin@cnt.k12.example");
    district_destroy(d);
}

static void test_tiny_trees(void **state)
{
    (void)state;
    /* as few OUs as a test wants: the rest of the objects live in the root */
    struct district *d = make("t0:people=3,azure_people=2,shared=1,devices=1,ous=0");
    assert_int_equal(district_live_count(d, DC_OUS), 0);
    assert_string_equal(district_item(d, DC_GUSERS, 0)->ou, "/");
    assert_string_equal(district_item(d, DC_DEVICES, 0)->ou, "/");
    district_destroy(d);
    d = make("t2:people=3,azure_people=2,shared=1,devices=1,ous=2");
    assert_int_equal(district_live_count(d, DC_OUS), 2);
    assert_string_equal(district_item(d, DC_GUSERS, 0)->ou, "/Staff");
    assert_string_equal(district_item(d, DC_DEVICES, 0)->ou, "/");
    district_destroy(d);
}

static void test_overlap(void **state)
{
    (void)state;
    struct district *d = make("ov:people=600,azure_people=500,shared=350,devices=10,ous=30");
    size_t shared = 0, nick = 0, mixed_case = 0, null_mail = 0, other_mail = 0, disabled = 0;
    for (size_t i = 0; i < district_count(d, DC_AUSERS); i++) {
        const struct ditem *a = district_item(d, DC_AUSERS, i);
        json_t *o = item_json(d, DC_AUSERS, i);
        const char *upn = json_string_value(json_object_get(o, "userPrincipalName"));
        json_t *mail = json_object_get(o, "mail");
        if (district_find(d, DC_GUSERS, a->key) >= 0) {
            shared++;
            long g = district_find(d, DC_GUSERS, a->key);
            json_t *go = item_json(d, DC_GUSERS, (size_t)g);
            const char *gfull =
                json_string_value(json_object_get(json_object_get(go, "name"), "fullName"));
            if (strcmp(gfull, json_string_value(json_object_get(o, "displayName"))))
                nick++;
            json_decref(go);
        }
        if (strcmp(upn, a->key))
            mixed_case++;
        if (json_is_null(mail))
            null_mail++;
        else if (strcasecmp(json_string_value(mail), upn))
            other_mail++;
        if (json_is_false(json_object_get(o, "accountEnabled")))
            disabled++;
        json_decref(o);
    }
    assert_int_equal(shared, 350);
    assert_true(nick > 0);       /* e.g. Google "Robert" vs Azure "Bob" */
    assert_true(mixed_case > 0); /* mixed-case UPNs */
    assert_true(null_mail > 0);
    assert_true(other_mail > 0);
    assert_true(disabled > 0);
    district_destroy(d);
}

static void test_variety(void **state)
{
    (void)state;
    struct district *d = make("var:people=2000,azure_people=100,shared=50,devices=800,ous=60");
    int suspended = 0, archived = 0, unicode = 0, apostrophe_ou = 0, plus_ou = 0, hash_ou = 0;
    int deprovisioned = 0, active = 0, notes_nl = 0, recent = 0;
    for (size_t i = 0; i < district_count(d, DC_GUSERS); i++) {
        const char *j = district_item(d, DC_GUSERS, i)->json;
        suspended += strstr(j, "\"suspended\":true") != NULL;
        archived += strstr(j, "\"archived\":true") != NULL;
        for (const char *p = j; *p; p++)
            if ((unsigned char)*p >= 0x80) {
                unicode++;
                break;
            }
        /* addresses are lower case ASCII without '+' */
        const char *key = district_item(d, DC_GUSERS, i)->key;
        for (const char *p = key; *p; p++) {
            assert_true((unsigned char)*p < 0x80);
            assert_true(*p != '+');
            assert_false(*p >= 'A' && *p <= 'Z');
        }
    }
    for (size_t i = 0; i < district_count(d, DC_OUS); i++) {
        const char *path = district_item(d, DC_OUS, i)->key;
        apostrophe_ou += strchr(path, '\'') != NULL;
        plus_ou += strchr(path, '+') != NULL;
        hash_ou += strchr(path, '#') != NULL;
    }
    for (size_t i = 0; i < district_count(d, DC_DEVICES); i++) {
        json_t *o = item_json(d, DC_DEVICES, i);
        const char *st = json_string_value(json_object_get(o, "status"));
        active += !strcmp(st, "ACTIVE");
        deprovisioned += !strcmp(st, "DEPROVISIONED");
        const char *notes = json_string_value(json_object_get(o, "notes"));
        notes_nl += notes && strchr(notes, '\n');
        recent += json_array_size(json_object_get(o, "recentUsers")) > 0;
        /* autoUpdateExpiration: int64 as a string; autoUpdateThrough: a date (absent on some
         * devices, see test_provider_shapes) */
        assert_true(json_is_string(json_object_get(o, "autoUpdateExpiration")));
        if (json_object_get(o, "autoUpdateThrough"))
            assert_int_equal(strlen(json_string_value(json_object_get(o, "autoUpdateThrough"))),
                             10);
        assert_null(strstr(json_string_value(json_object_get(o, "orgUnitId")), "id:"));
        json_decref(o);
    }
    assert_true(suspended > 0);
    assert_true(archived > 0);
    assert_true(unicode > 0);
    assert_true(apostrophe_ou > 0);
    assert_true(plus_ou > 0);
    assert_true(hash_ou > 0);
    assert_true(active > 600);
    assert_true(deprovisioned > 0);
    assert_true(notes_nl > 0);
    assert_true(recent > 0);
    district_destroy(d);
}

static void test_mutations(void **state)
{
    (void)state;
    struct district *d = make("mut:people=50,azure_people=40,shared=30,devices=20,ous=20");
    char err[256];
    json_t *out = NULL;
    /* add a Google user, then rename it: the id stays, the old address becomes an alias */
    json_t *u = json_pack("{s:s,s:{s:s,s:s}}", "primaryEmail", "New.Person@mut.k12.example", "name",
                          "givenName", "New", "familyName", "Person");
    assert_int_equal(district_add(d, DC_GUSERS, u, &out, err, sizeof err), 0);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(out, "id")));
    assert_string_equal(json_string_value(json_object_get(out, "primaryEmail")),
                        "new.person@mut.k12.example");
    json_decref(out);
    assert_int_equal(district_add(d, DC_GUSERS, u, &out, err, sizeof err), -3);
    json_decref(u);
    json_t *p = json_pack("{s:s}", "primaryEmail", "renamed@mut.k12.example");
    assert_int_equal(district_patch(d, DC_GUSERS, id, p, &out, err, sizeof err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "id")), id);
    assert_string_equal(json_string_value(json_array_get(json_object_get(out, "aliases"), 0)),
                        "new.person@mut.k12.example");
    json_decref(out);
    json_decref(p);
    size_t before = district_live_count(d, DC_GUSERS);
    assert_int_equal(district_delete(d, DC_GUSERS, id, false), 0);
    assert_int_equal(district_live_count(d, DC_GUSERS), before - 1);
    assert_int_equal(district_delete(d, DC_GUSERS, "nope", false), -2);

    /* Azure changes feed the delta log with the changed property names */
    uint64_t v0 = district_azure_version(d);
    const char *aid = district_item(d, DC_AUSERS, 3)->id;
    char aidc[64];
    snprintf(aidc, sizeof aidc, "%s", aid);
    p = json_pack("{s:s,s:s}", "jobTitle", "Principal", "displayName", "Someone Else");
    assert_int_equal(district_patch(d, DC_AUSERS, aidc, p, &out, err, sizeof err), 0);
    json_decref(out);
    json_decref(p);
    assert_int_equal(district_delete(d, DC_AUSERS, district_item(d, DC_AUSERS, 4)->id, false), 0);
    struct dchange_sum *ch = NULL;
    long n = district_azure_changes(d, v0, district_azure_version(d), &ch);
    assert_int_equal(n, 2);
    assert_int_equal(ch[0].kind, DCHANGE_UPDATED);
    assert_non_null(strstr(ch[0].props, ",jobTitle,"));
    assert_non_null(strstr(ch[0].props, ",displayName,"));
    assert_null(strstr(ch[0].props, ",mail,"));
    assert_int_equal(ch[1].kind, DCHANGE_SOFT);
    free(ch);
    /* nothing after the latest version */
    assert_int_equal(
        district_azure_changes(d, district_azure_version(d), district_azure_version(d), &ch), 0);
    free(ch);

    /* renaming an OU moves its children, users and devices */
    const struct ditem *ou = NULL;
    for (size_t i = 0; i < district_count(d, DC_OUS); i++)
        if (!strcmp(district_item(d, DC_OUS, i)->key, "/Students/Lincoln Elementary"))
            ou = district_item(d, DC_OUS, i);
    assert_non_null(ou);
    char ouid[64];
    snprintf(ouid, sizeof ouid, "%s", ou->id + 3);
    p = json_pack("{s:s}", "name", "Lincoln Elem");
    assert_int_equal(district_patch(d, DC_OUS, ouid, p, &out, err, sizeof err), 0);
    json_decref(p);
    json_decref(out);
    for (size_t i = 0; i < district_count(d, DC_OUS); i++)
        assert_null(strstr(district_item(d, DC_OUS, i)->key, "/Students/Lincoln Elementary"));
    for (size_t i = 0; i < district_count(d, DC_GUSERS); i++)
        assert_null(strstr(district_item(d, DC_GUSERS, i)->json, "/Students/Lincoln Elementary"));
    district_destroy(d);
}

/* Shapes real districts have: Google addresses that Entra keeps only as an smtp: proxy
 * address (mail elsewhere), devices with only the deprecated autoUpdateExpiration, archived
 * users and DISABLED/DEPROVISIONED devices carrying an annotatedAssetId. */
static void test_provider_shapes(void **state)
{
    (void)state;
    struct district *d =
        make("shp:people=400,azure_people=300,shared=200,proxy_joined=20,devices=200,ous=10");
    size_t proxied = 0, archived = 0, aue_only = 0, blocked_tagged = 0;
    for (size_t i = 0; i < district_count(d, DC_AUSERS); i++) {
        json_t *u = item_json(d, DC_AUSERS, i);
        json_t *px = json_object_get(u, "proxyAddresses");
        const char *mail = json_string_value(json_object_get(u, "mail"));
        if (json_array_size(px) == 2) {
            const char *second = json_string_value(json_array_get(px, 1));
            assert_int_equal(strncmp(second, "smtp:", 5), 0);
            assert_non_null(mail);
            assert_non_null(strstr(mail, "@ms.shp.k12.example"));
            /* the secondary address is a Google user's primary address */
            long g = -1;
            for (size_t k = 0; k < district_count(d, DC_GUSERS) && g < 0; k++)
                if (strcmp(district_item(d, DC_GUSERS, k)->key, second + 5) == 0)
                    g = (long)k;
            assert_true(g >= 0);
            proxied++;
        }
        json_decref(u);
    }
    assert_int_equal(proxied, 20);
    for (size_t i = 0; i < district_count(d, DC_GUSERS); i++) {
        json_t *u = item_json(d, DC_GUSERS, i);
        archived += json_is_true(json_object_get(u, "archived"));
        json_decref(u);
    }
    assert_true(archived > 0);
    for (size_t i = 0; i < district_count(d, DC_DEVICES); i++) {
        json_t *o = item_json(d, DC_DEVICES, i);
        const char *st = json_string_value(json_object_get(o, "status"));
        if (!json_object_get(o, "autoUpdateThrough")) {
            assert_non_null(json_string_value(json_object_get(o, "autoUpdateExpiration")));
            aue_only++;
        }
        if ((!strcmp(st, "DISABLED") || !strcmp(st, "DEPROVISIONED")) &&
            json_object_get(o, "annotatedAssetId"))
            blocked_tagged++;
        json_decref(o);
    }
    assert_true(aue_only >= 10);
    assert_true(blocked_tagged > 0);
    district_destroy(d);
    /* more proxy-joined than shared is refused */
    struct district_spec spec;
    char err[256];
    assert_int_equal(district_spec_parse("x:people=10,azure_people=5,shared=2,proxy_joined=3",
                                         &spec, err, sizeof err),
                     -1);
}

/* Graph's deleted-items restore: the user is listed again and whole in the next round. */
static void test_restore(void **state)
{
    (void)state;
    struct district *d = make("res:people=5,azure_people=10,shared=2,devices=1,ous=5");
    char id[64];
    snprintf(id, sizeof id, "%s", district_item(d, DC_AUSERS, 2)->id);
    uint64_t v0 = district_azure_version(d);
    size_t live = district_live_count(d, DC_AUSERS);
    assert_int_equal(district_restore(d, DC_AUSERS, id), -2); /* not deleted */
    assert_int_equal(district_delete(d, DC_AUSERS, id, false), 0);
    assert_int_equal(district_restore(d, DC_AUSERS, id), 0);
    assert_int_equal(district_live_count(d, DC_AUSERS), live);
    struct dchange_sum *ch = NULL;
    assert_int_equal(district_azure_changes(d, v0, district_azure_version(d), &ch), 1);
    assert_int_equal(ch[0].kind, DCHANGE_RESTORED);
    free(ch);
    /* a permanently deleted user cannot be restored */
    assert_int_equal(district_delete(d, DC_AUSERS, id, true), 0);
    assert_int_equal(district_restore(d, DC_AUSERS, id), -2);
    district_destroy(d);
}

/* Graph may list one object once per change in a round. */
static void test_repeats(void **state)
{
    (void)state;
    struct district *d = make("rep:people=5,azure_people=10,shared=2,devices=1,ous=5");
    char err[256], id[64];
    json_t *out = NULL;
    snprintf(id, sizeof id, "%s", district_item(d, DC_AUSERS, 1)->id);
    uint64_t v0 = district_azure_version(d);
    json_t *p = json_pack("{s:s}", "jobTitle", "Coach");
    assert_int_equal(district_patch(d, DC_AUSERS, id, p, &out, err, sizeof err), 0);
    json_decref(out);
    json_decref(p);
    p = json_pack("{s:s}", "officeLocation", "B-2");
    assert_int_equal(district_patch(d, DC_AUSERS, id, p, &out, err, sizeof err), 0);
    json_decref(out);
    json_decref(p);
    struct dchange_sum *ch = NULL;
    /* folded (the default): one entry with both names */
    assert_int_equal(district_azure_changes(d, v0, district_azure_version(d), &ch), 1);
    assert_string_equal(ch[0].props, ",jobTitle,officeLocation,");
    free(ch);
    district_set_delta_repeats(d, true);
    assert_int_equal(district_azure_changes(d, v0, district_azure_version(d), &ch), 2);
    assert_int_equal(ch[0].item, ch[1].item);
    assert_string_equal(ch[0].props, ",jobTitle,");
    assert_string_equal(ch[1].props, ",officeLocation,");
    free(ch);
    district_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_parse),      cmocka_unit_test(test_spec_json),
        cmocka_unit_test(test_deterministic),   cmocka_unit_test(test_counts_and_identity),
        cmocka_unit_test(test_overlap),         cmocka_unit_test(test_tiny_trees),
        cmocka_unit_test(test_variety),         cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_provider_shapes), cmocka_unit_test(test_restore),
        cmocka_unit_test(test_repeats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
