/* lib/outbox against the real PostgreSQL started by tests/run.py (PANEL_PG_URL, migrated):
 * the bytes stored are the packed envelope itself, rows keep the order they were queued in
 * across statements, and a refused write says why. Each test works in a transaction it rolls
 * back, so the merger's relay of a running e2e suite never sees these rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "pg.h"

static PGconn *connect_in_transaction(void)
{
    char err[512];
    const char *url = getenv("PANEL_PG_URL");
    if (!url || !*url)
        fail_msg("PANEL_PG_URL is not set: run through tests/run.py (it starts PostgreSQL)");
    PGconn *pg = pgx_connect(url, 30, err, sizeof err);
    if (!pg)
        fail_msg("%s", err);
    assert_int_equal(pgx_exec(pg, "BEGIN", err, sizeof err), 0);
    return pg;
}

static void close_rolled_back(PGconn *pg)
{
    char err[256];
    assert_int_equal(pgx_exec(pg, "ROLLBACK", err, sizeof err), 0);
    PQfinish(pg);
}

/* An AuthEvent whose message holds every byte value a text encoding could spoil. */
static void make_envelope(Envelope *env, Panel__V1__AuthEvent *ev, char id[EVENTS_ID_LEN],
                          const char *tenant, const char *message)
{
    assert_int_equal(events_envelope_init(env, id, tenant, PB_SOURCE_GOOGLE, NULL), 0);
    panel__v1__auth_event__init(ev);
    ev->has_kind = 1;
    ev->kind = PB_AUTH_EVENT_KIND_AUTHORIZED;
    ev->message = (char *)message;
    env->payload_case = PB_PAYLOAD_AUTH_EVENT;
    env->auth_event = ev;
}

static void stored_payload_is_the_packed_envelope(void **state)
{
    (void)state;
    char err[512], id[EVENTS_ID_LEN], tenant[64];
    PGconn *pg = connect_in_transaction();
    Envelope env;
    Panel__V1__AuthEvent ev;
    snprintf(tenant, sizeof tenant, "outbox-test-%d", (int)getpid());
    /* a multi-byte UTF-8 message: packed, its length prefix and text make many byte values */
    make_envelope(&env, &ev, id, tenant, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"\\ \x01");
    size_t len = 0;
    uint8_t *packed = events_pack(&env, &len);
    assert_non_null(packed);

    PGresult *failed = NULL;
    assert_int_equal(outbox_write(pg, &env, TOPIC_AUTH_EVENTS, tenant, &failed, err, sizeof err),
                     0);
    assert_null(failed);
    const char *p[1] = {id};
    PGresult *res = PQexecParams(pg,
                                 "SELECT payload, tenant_id, topic, msg_key, sent_at IS NULL"
                                 " FROM outbox WHERE event_id = $1::uuid",
                                 1, NULL, p, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    assert_int_equal(PQgetlength(res, 0, 0), (int)len);
    assert_memory_equal(PQgetvalue(res, 0, 0), packed, len);
    assert_memory_equal(PQgetvalue(res, 0, 1), tenant, strlen(tenant));
    assert_memory_equal(PQgetvalue(res, 0, 2), TOPIC_AUTH_EVENTS, strlen(TOPIC_AUTH_EVENTS));
    assert_memory_equal(PQgetvalue(res, 0, 3), tenant, strlen(tenant));
    assert_int_equal(PQgetvalue(res, 0, 4)[0], 1); /* binary bool: not sent yet */
    PQclear(res);
    free(packed);
    close_rolled_back(pg);
}

static void rows_keep_their_order_across_statements(void **state)
{
    (void)state;
    enum { N = OUTBOX_ROWS_PER_STATEMENT * 2 + 7 };
    char err[512], tenant[64], entity[32];
    static char ids[N][EVENTS_ID_LEN];
    PGconn *pg = connect_in_transaction();
    struct outbox_batch *b = outbox_batch_new();
    assert_non_null(b);
    snprintf(tenant, sizeof tenant, "outbox-order-%d", (int)getpid());
    for (int i = 0; i < N; i++) {
        Envelope env;
        Panel__V1__AuthEvent ev;
        make_envelope(&env, &ev, ids[i], tenant, "order");
        snprintf(entity, sizeof entity, "e%d", i % 3);
        assert_int_equal(
            outbox_batch_add_entity(b, &env, TOPIC_ASSETS_EVENTS, entity, err, sizeof err), 0);
    }
    assert_int_equal(outbox_batch_count(b), N);
    char want_key[96]; /* keyed "<tenant>/<entity>": one entity's events in one partition */
    snprintf(want_key, sizeof want_key, "%s/e1", tenant);
    assert_string_equal(outbox_batch_row(b, 4)->key, want_key);
    assert_int_equal(outbox_batch_write(b, pg, NULL, err, sizeof err), 0);
    assert_int_equal(outbox_batch_count(b), 0);

    const char *p[1] = {tenant};
    PGresult *res = PQexecParams(pg,
                                 "SELECT event_id::text FROM outbox WHERE tenant_id = $1"
                                 " ORDER BY outbox_id",
                                 1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), N);
    for (int i = 0; i < N; i++)
        assert_string_equal(PQgetvalue(res, i, 0), ids[i]);
    PQclear(res);
    outbox_batch_free(b);
    close_rolled_back(pg);
}

/* Text a text-format COPY would have to escape (tab, newline, backslash, "\N", "\.") is
 * stored as it was given. */
static void delimiters_in_text_are_stored_as_they_are(void **state)
{
    (void)state;
    char err[512], id[EVENTS_ID_LEN], tenant[64], key[128];
    PGconn *pg = connect_in_transaction();
    Envelope env;
    Panel__V1__AuthEvent ev;
    snprintf(tenant, sizeof tenant, "outbox-text-%d", (int)getpid());
    snprintf(key, sizeof key, "%s/a\tb\nc\\d\\N\n\\.\r\x01", tenant);
    make_envelope(&env, &ev, id, tenant, "text");
    assert_int_equal(outbox_write(pg, &env, TOPIC_AUTH_EVENTS, key, NULL, err, sizeof err), 0);
    const char *p[1] = {id};
    PGresult *res = PQexecParams(pg, "SELECT msg_key FROM outbox WHERE event_id = $1::uuid", 1,
                                 NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), key);
    PQclear(res);
    close_rolled_back(pg);
}

static void a_refused_write_returns_the_result_and_keeps_the_rows(void **state)
{
    (void)state;
    char err[512], id[EVENTS_ID_LEN], tenant[64];
    PGconn *pg = connect_in_transaction();
    Envelope env;
    Panel__V1__AuthEvent ev;
    snprintf(tenant, sizeof tenant, "outbox-dup-%d", (int)getpid());
    make_envelope(&env, &ev, id, tenant, "twice");
    struct outbox_batch *b = outbox_batch_new();
    assert_non_null(b);
    /* the same event id twice: event_id is UNIQUE, so the database refuses the second */
    assert_int_equal(outbox_batch_add(b, &env, TOPIC_AUTH_EVENTS, tenant, err, sizeof err), 0);
    assert_int_equal(outbox_batch_add(b, &env, TOPIC_AUTH_EVENTS, tenant, err, sizeof err), 0);
    PGresult *failed = NULL;
    assert_int_equal(outbox_batch_write(b, pg, &failed, err, sizeof err), -1);
    assert_non_null(failed);
    assert_string_equal(PQresultErrorField(failed, PG_DIAG_SQLSTATE), "23505");
    assert_non_null(strstr(err, "outbox"));
    assert_int_equal(outbox_batch_count(b), 2);
    PQclear(failed);
    outbox_batch_free(b);
    close_rolled_back(pg);

    /* an envelope without a tenant is refused before the database */
    b = outbox_batch_new();
    env.tenant_id = (char *)"";
    assert_int_equal(outbox_batch_add(b, &env, TOPIC_AUTH_EVENTS, "k", err, sizeof err), -1);
    assert_int_equal(outbox_batch_count(b), 0);
    outbox_batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stored_payload_is_the_packed_envelope),
        cmocka_unit_test(rows_keep_their_order_across_statements),
        cmocka_unit_test(delimiters_in_text_are_stored_as_they_are),
        cmocka_unit_test(a_refused_write_returns_the_result_and_keeps_the_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
