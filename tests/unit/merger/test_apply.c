/* The apply modules' parts that need no database: which object an observation is about,
 * the dates PostgreSQL accepts, the per-run counters, the content hash of a staged row, the
 * fields and addresses of a Person row, the remerge queue, the reading of an upsert's result
 * (a PGresult built in memory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "apply.h"
#include "apply_ctx.h"
#include "apply_observe.h"
#include "apply_people.h"
#include "apply_removals.h"

#include "json_fixtures.h"

static void an_observation_names_its_kind_and_source_id(void **state)
{
    (void)state;
    Envelope env;
    Panel__V1__PersonObserved po = PANEL__V1__PERSON_OBSERVED__INIT;
    Panel__V1__Person p = PANEL__V1__PERSON__INIT;
    Panel__V1__DeviceObserved dob = PANEL__V1__DEVICE_OBSERVED__INIT;
    Panel__V1__Device d = PANEL__V1__DEVICE__INIT;
    Panel__V1__OrgUnitObserved oob = PANEL__V1__ORG_UNIT_OBSERVED__INIT;
    Panel__V1__OrgUnit ou = PANEL__V1__ORG_UNIT__INIT;
    const char *id = "unset";
    panel__v1__envelope__init(&env);
    p.source_id = "g-1";
    d.device_id = "dev-1";
    ou.org_unit_id = "ou-1";

    env.payload_case = PB_PAYLOAD_PERSON_OBSERVED;
    env.person_observed = &po;
    assert_string_equal(observe_kind(&env, &id), "person");
    assert_null(id); /* a dead-lettered observation may lack its object */
    po.person = &p;
    assert_string_equal(observe_kind(&env, &id), "person");
    assert_string_equal(id, "g-1");

    env.payload_case = PB_PAYLOAD_DEVICE_OBSERVED;
    env.device_observed = NULL;
    assert_null(observe_kind(&env, &id));
    env.device_observed = &dob;
    dob.device = &d;
    assert_string_equal(observe_kind(&env, &id), "device");
    assert_string_equal(id, "dev-1");

    env.payload_case = PB_PAYLOAD_ORG_UNIT_OBSERVED;
    env.org_unit_observed = &oob;
    oob.org_unit = &ou;
    assert_string_equal(observe_kind(&env, &id), "org_unit");
    assert_string_equal(id, "ou-1");

    env.payload_case = PB_PAYLOAD_RUN_COMPLETED;
    assert_null(observe_kind(&env, &id));
    assert_null(id);
    assert_null(observe_kind(NULL, &id));
}

static void only_dates_postgresql_accepts_are_kept(void **state)
{
    (void)state;
    assert_string_equal(observe_date("2026-03-01T08:15:00.123Z", true), "2026-03-01T08:15:00.123Z");
    assert_non_null(observe_date("2024-02-29T23:59:59Z", true)); /* a leap day */
    assert_null(observe_date("2026-02-30T08:15:00Z", true));     /* no such day */
    assert_null(observe_date("2026-03-01", true));               /* no time */
    assert_null(observe_date("yesterday", true));
    assert_null(observe_date(NULL, true));
    assert_string_equal(observe_date("2026-03-01", false), "2026-03-01");
    assert_null(observe_date("2026-03-01T08:15:00Z", false));
}

static void counters_are_kept_per_run_and_tenant(void **state)
{
    (void)state;
    char err[128];
    struct actx *c = actx_new(NULL, err, sizeof err);
    assert_non_null(c);
    const char *run = "11111111-1111-4111-8111-111111111111";
    actx_count_applied(c, "d1", run, false, false);
    actx_count_applied(c, "d1", run, true, true);
    actx_count_applied(c, "d1", run, true, false);
    actx_count_skipped(c, "d1", run);
    actx_count_seen(c, "d1", run);
    actx_count_observed(c, "d1", run);
    actx_count_applied(c, "d2", run, true, true);  /* another tenant: its own counters */
    actx_count_applied(c, "d1", NULL, true, true); /* no run: counted nowhere */
    assert_int_equal(c->nruns, 2);
    struct run_counts *rc = actx_run_counts(c, "d1", run);
    assert_ptr_equal(rc, &c->runs[0]);
    assert_int_equal(rc->seen, 5);
    assert_int_equal(rc->unchanged, 1);
    assert_int_equal(rc->created, 1);
    assert_int_equal(rc->updated, 1);
    assert_int_equal(rc->skipped, 1);
    assert_int_equal(rc->observed, 1);
    assert_int_equal(c->runs[1].created, 1);
    assert_string_equal(c->runs[1].tenant, "d2");
    /* past MAX_RUNS runs in one segment nothing more is counted, and nothing breaks */
    char t[16];
    for (int i = 2; i < MAX_RUNS; i++) {
        snprintf(t, sizeof t, "t%d", i);
        assert_non_null(actx_run_counts(c, t, run));
    }
    assert_null(actx_run_counts(c, "one-too-many", run));
    actx_count_applied(c, "one-too-many", run, true, true);
    assert_int_equal(c->nruns, MAX_RUNS);
    actx_free(c);
}

/* The hash the C side gives a full row is the md5 PostgreSQL gives md5(fields::text). */
static void a_full_row_gets_the_hash_postgresql_would_give_it(void **state)
{
    (void)state;
    char err[128];
    struct actx *c = actx_new(NULL, err, sizeof err);
    assert_non_null(c);
    json_t *rows = obj("[{\"f\":{\"b\":1,\"a\":\"x\"},\"h\":\"stale\"},"
                       "{\"f\":{\"a\":\"x\"},\"delta\":true,\"h\":\"stale\"},"
                       "{\"f\":{\"a\":0.5}}]");
    actx_rows_hash(c, rows);
    /* md5('{"a": "x", "b": 1}'), jsonb's text of the fields */
    assert_string_equal(str(json_array_get(rows, 0), "h"), "19afc29426da0042fc4e8b7c6b727fdf");
    assert_null(json_object_get(json_array_get(rows, 1), "h")); /* a delta: SQL combines it */
    assert_null(json_object_get(json_array_get(rows, 2), "h")); /* a real number: SQL hashes */
    json_decref(rows);
    actx_free(c);
}

static void a_person_row_keeps_what_the_cloud_provided(void **state)
{
    (void)state;
    Panel__V1__Person p = PANEL__V1__PERSON__INIT;
    char *cleared[] = {"department"};
    p.source_id = "a-1";
    p.email = "Ann@D.org";
    p.display_name = "Ann";
    p.n_cleared_fields = 1;
    p.cleared_fields = cleared;
    json_t *f = people_fields(&p, "ann@d.org");
    assert_non_null(f);
    assert_null(json_object_get(f, "source_id"));
    assert_null(json_object_get(f, "cleared_fields"));
    assert_string_equal(str(f, "display_name"), "Ann");
    assert_string_equal(str(f, "email"), "Ann@D.org");
    assert_string_equal(str(f, "email_normalized"), "ann@d.org");
    json_decref(f);
    /* a delta without the address: the stored one stays */
    f = people_fields(&p, NULL);
    assert_non_null(f);
    assert_null(json_object_get(f, "email"));
    assert_null(json_object_get(f, "email_normalized"));
    assert_string_equal(str(f, "display_name"), "Ann");
    json_decref(f);
}

static void azure_mail_and_smtp_proxies_may_link_a_person(void **state)
{
    (void)state;
    Panel__V1__Person p = PANEL__V1__PERSON__INIT;
    Panel__V1__StringList proxies = PANEL__V1__STRING_LIST__INIT;
    Panel__V1__StringList others = PANEL__V1__STRING_LIST__INIT;
    char *pv[] = {"SMTP:Ann@D.org", "smtp:ann.old@d.org", "SIP:ann@d.org", "x500:/o=d"};
    char *ov[] = {"ann@home.example"};
    proxies.n_values = 4;
    proxies.values = pv;
    others.n_values = 1;
    others.values = ov;
    p.mail = " Ann.M@D.org ";
    p.proxy_addresses = &proxies;
    p.other_mails = &others; /* never a join key */
    json_t *alt = people_alt_emails(&p);
    json_t *want = obj("[\"ann.m@d.org\",\"ann@d.org\",\"ann.old@d.org\"]");
    assert_true(json_equal(alt, want));
    json_decref(alt);
    json_decref(want);
    Panel__V1__Person none = PANEL__V1__PERSON__INIT;
    alt = people_alt_emails(&none);
    assert_int_equal(json_array_size(alt), 0);
    json_decref(alt);
}

static void the_remerge_queue_names_tenant_person_and_run(void **state)
{
    (void)state;
    json_t *persons = json_array();
    assert_int_equal(people_queue_remerge(persons, "d1", "p-1", NULL, false), 0);
    assert_int_equal(people_queue_remerge(persons, "d1", "p-2", "r-1", true), 0);
    json_t *want = obj("[{\"tenant_id\":\"d1\",\"person_id\":\"p-1\",\"run_id\":null,"
                       "\"unsuspended\":false},"
                       "{\"tenant_id\":\"d1\",\"person_id\":\"p-2\",\"run_id\":\"r-1\","
                       "\"unsuspended\":true}]");
    assert_true(json_equal(persons, want));
    json_decref(persons);
    json_decref(want);
}

/* The rows of the buffered statements name their columns; a row missing a required member
 * is not recorded (as before: the statement never saw it). */
static void buffered_rows_name_their_columns(void **state)
{
    (void)state;
    struct run_counts rc = {.tenant = "d1",
                            .run_id = "11111111-1111-4111-8111-111111111111",
                            .seen = 7,
                            .created = 1,
                            .updated = 2,
                            .unchanged = 3,
                            .skipped = 1,
                            .match_cases = 1,
                            .removed = 4,
                            .observed = 6};
    json_t *row = run_counts_row(&rc);
    json_t *want = obj("{\"tenant_id\":\"d1\",\"run_id\":\"11111111-1111-4111-8111-111111111111\","
                       "\"seen\":7,\"created\":1,\"updated\":2,\"unchanged\":3,\"skipped\":1,"
                       "\"match_cases\":1,\"removed\":4,\"observed\":6}");
    assert_true(json_equal(row, want));
    json_decref(row);
    json_decref(want);
    struct run_outcome o = {.tenant_id = "d1",
                            .run_id = "r-1",
                            .object_kind = "person",
                            .source = "google",
                            .source_id = "g-1",
                            .outcome = "skipped",
                            .reason = "no usable e-mail address"};
    row = run_outcome_row(&o);
    want = obj("{\"tenant_id\":\"d1\",\"run_id\":\"r-1\",\"object_kind\":\"person\","
               "\"source\":\"google\",\"source_id\":\"g-1\",\"email\":null,"
               "\"outcome\":\"skipped\",\"reason\":\"no usable e-mail address\"}");
    assert_true(json_equal(row, want));
    json_decref(row);
    json_decref(want);
    o.reason = NULL;
    assert_null(run_outcome_row(&o));
    struct removal rm = {.tenant_id = "d1", .object_kind = "device", .source_id = "dev-1"};
    row = removals_row(&rm);
    want = obj("{\"tenant_id\":\"d1\",\"object_kind\":\"device\",\"source\":null,"
               "\"source_id\":\"dev-1\",\"run_id\":null}");
    assert_true(json_equal(row, want));
    json_decref(row);
    json_decref(want);
    rm.source_id = NULL;
    assert_null(removals_row(&rm));
}

/* A result as an upsert statement returns it: index, changed, new, old fields, run. */
static PGresult *upsert_result(const char *const (*rows)[5], int n)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[5];
    static char *names[5] = {"i", "changed", "isnew", "od", "r"};
    memset(att, 0, sizeof att);
    for (int k = 0; k < 5; k++) {
        att[k].name = names[k];
        att[k].format = 0;
    }
    assert_true(PQsetResultAttrs(r, 5, att));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 5; k++)
            if (rows[i][k])
                assert_true(PQsetvalue(r, i, k, (char *)rows[i][k], (int)strlen(rows[i][k])));
            else
                assert_true(PQsetvalue(r, i, k, NULL, -1));
    return r;
}

/* The shared reading of a device or org unit upsert's result: counts, old fields, changes. */
static void an_upserted_row_is_counted_and_compared(void **state)
{
    (void)state;
    char err[128];
    struct actx *c = actx_new(NULL, err, sizeof err);
    assert_non_null(c);
    const char *run = "11111111-1111-4111-8111-111111111111";
    json_t *rows = obj("[{\"t\":\"d1\",\"f\":{\"path\":\"/A\",\"name\":\"A\"}},"
                       "{\"t\":\"d1\",\"f\":{\"path\":\"/B2\",\"name\":\"B\"}},"
                       "{\"t\":\"d1\",\"f\":{\"path\":\"/C\"}}]");
    const char *const res[3][5] = {
        {"0", "f", "f", "{\"path\":\"/A\",\"name\":\"A\"}", run},
        {"1", "t", "f", "{\"path\":\"/B\",\"name\":\"B\"}", run},
        {"2", "t", "t", "{}", NULL},
    };
    PGresult *r = upsert_result(res, 3);
    struct upsert_row u;
    assert_int_equal(actx_upsert_row(c, r, 0, rows, &u), 0); /* unchanged */
    assert_int_equal(actx_upsert_row(c, r, 1, rows, &u), 1);
    assert_string_equal(u.tenant, "d1");
    assert_string_equal(u.run, run);
    assert_false(u.isnew);
    assert_string_equal(json_string_value(json_object_get(u.old_fields, "path")), "/B");
    json_t *want = obj("[\"path\"]");
    assert_true(json_equal(u.changed, want));
    json_decref(want);
    actx_upsert_row_clear(&u);
    assert_int_equal(actx_upsert_row(c, r, 2, rows, &u), 1);
    assert_true(u.isnew);
    assert_null(u.old_fields); /* a new object had nothing before */
    assert_null(u.run);
    assert_ptr_equal(u.staged, json_array_get(rows, 2));
    actx_upsert_row_clear(&u);
    assert_int_equal(c->rows_changed, 2);
    struct run_counts *rc = actx_run_counts(c, "d1", run);
    assert_int_equal(rc->seen, 2); /* the row without a run is counted nowhere */
    assert_int_equal(rc->unchanged, 1);
    assert_int_equal(rc->updated, 1);
    assert_int_equal(rc->created, 0);
    PQclear(r);
    json_decref(rows);
    actx_free(c);
}

/* What upsert_each_visit saw: the rows it was called for, and the one to fail at (-1: none). */
struct visits {
    int seen[4], n, fail_at;
};

static int upsert_each_visit(struct actx *c, PGresult *r, int i, const struct upsert_row *u,
                             void *arg)
{
    (void)c;
    (void)r;
    struct visits *v = arg;
    assert_non_null(u->changed); /* a changed row, read */
    v->seen[v->n++] = i;
    return i == v->fail_at ? -1 : 0;
}

/* The loop of the device and org unit upserts: only changed rows, in order; a failure stops. */
static void upsert_each_calls_back_for_changed_rows_only(void **state)
{
    (void)state;
    char err[128];
    struct actx *c = actx_new(NULL, err, sizeof err);
    assert_non_null(c);
    json_t *rows = obj("[{\"t\":\"d1\",\"f\":{\"a\":1}},{\"t\":\"d1\",\"f\":{\"a\":2}},"
                       "{\"t\":\"d1\",\"f\":{\"a\":3}}]");
    const char *const res[3][5] = {
        {"0", "t", "t", NULL, NULL},
        {"1", "f", "f", "{\"a\":2}", NULL},
        {"2", "t", "f", "{\"a\":1}", NULL},
    };
    PGresult *r = upsert_result(res, 3);
    struct visits v = {.fail_at = -1};
    assert_int_equal(actx_upsert_each(c, r, rows, upsert_each_visit, &v), 0);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.seen[0], 0);
    assert_int_equal(v.seen[1], 2); /* the unchanged row 1 is skipped */
    assert_int_equal(c->rows_changed, 2);
    struct visits stop = {.fail_at = 0};
    assert_int_equal(actx_upsert_each(c, r, rows, upsert_each_visit, &stop), -1);
    assert_int_equal(stop.n, 1); /* nothing after the failure */
    PQclear(r);
    json_decref(rows);
    actx_free(c);
}

static void results_have_names(void **state)
{
    (void)state;
    assert_string_equal(apply_result_str(APPLY_OK), "ok");
    assert_string_equal(apply_result_str(APPLY_FENCED), "fenced");
    assert_string_equal(apply_result_str(APPLY_ERROR), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_observation_names_its_kind_and_source_id),
        cmocka_unit_test(only_dates_postgresql_accepts_are_kept),
        cmocka_unit_test(counters_are_kept_per_run_and_tenant),
        cmocka_unit_test(a_full_row_gets_the_hash_postgresql_would_give_it),
        cmocka_unit_test(a_person_row_keeps_what_the_cloud_provided),
        cmocka_unit_test(azure_mail_and_smtp_proxies_may_link_a_person),
        cmocka_unit_test(the_remerge_queue_names_tenant_person_and_run),
        cmocka_unit_test(buffered_rows_name_their_columns),
        cmocka_unit_test(an_upserted_row_is_counted_and_compared),
        cmocka_unit_test(upsert_each_calls_back_for_changed_rows_only),
        cmocka_unit_test(results_have_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
