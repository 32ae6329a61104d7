/* lib/db against the real PostgreSQL started by tests/run.py (PANEL_PG_URL): named statements
 * prepared on first use, the pool's waits, and a broken connection opened again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "pg.h"

static const char *pg_url(void)
{
    const char *v = getenv("PANEL_PG_URL");
    if (!v || !*v)
        fail_msg("PANEL_PG_URL is not set: run through `make test` (tests/run.py starts the "
                 "servers)");
    return v;
}

static struct db_pool *pool_of(int size)
{
    char err[512];
    struct db_pool *p = db_pool_new(pg_url(), size, 10, err, sizeof err);
    if (!p)
        fail_msg("db_pool_new: %s", err);
    return p;
}

static struct db_conn *get(struct db_pool *p)
{
    char err[512];
    struct db_conn *c = NULL;
    enum db_result r = db_get(p, 2000, &c, err, sizeof err);
    if (r != DB_OK)
        fail_msg("db_get: %s: %s", db_result_str(r), err);
    return c;
}

/* The text of row 0, column 0 of st, which must succeed. */
static void first_value_is(struct db_conn *c, const struct db_stmt *st, const char *want)
{
    char err[512];
    PGresult *res = db_query(c, PGRES_TUPLES_OK, st, 0, NULL, err, sizeof err);
    if (!res)
        fail_msg("%s: %s", st->name, err);
    assert_string_equal(PQgetvalue(res, 0, 0), want);
    PQclear(res);
}

/* Two modules may each declare the statement they share (the api had two outbox_put
 * objects): the name, not the object, says whether it is prepared on a connection. */
static void two_declarations_of_one_statement_share_its_preparation(void **state)
{
    (void)state;
    static const char sql_a[] = "SELECT 'same'::text";
    static const char sql_b[] = "SELECT 'same'::text"; /* an equal text at another address */
    static const struct db_stmt first = {"dbtest_shared", sql_a};
    static const struct db_stmt second = {"dbtest_shared", sql_b};
    struct db_pool *p = pool_of(1);
    struct db_conn *c = get(p);
    first_value_is(c, &first, "same");
    first_value_is(c, &second, "same");
    first_value_is(c, &first, "same");
    db_put(c);
    db_pool_destroy(p);
}

/* One name standing for two texts is a mistake: it fails at its first use, on every
 * connection, instead of running whichever text was prepared there first. */
static void one_name_with_two_texts_fails_at_first_use(void **state)
{
    (void)state;
    static const struct db_stmt one = {"dbtest_clash", "SELECT 1"};
    static const struct db_stmt two = {"dbtest_clash", "SELECT 2"};
    char err[512] = "";
    struct db_pool *p = pool_of(2);
    struct db_conn *a = get(p), *b = get(p);
    first_value_is(a, &one, "1");
    assert_null(db_query(a, PGRES_TUPLES_OK, &two, 0, NULL, err, sizeof err));
    assert_non_null(strstr(err, "dbtest_clash"));
    /* The other connection has prepared neither: the second text is refused there too. */
    PGresult *res = db_exec(b, &two, 0, NULL);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    first_value_is(b, &one, "1");
    db_put(a);
    db_put(b);
    db_pool_destroy(p);
}

/* A connection remembers every statement it prepared: the api's pool forgot those past
 * 160, and running one of them again failed ("prepared statement already exists"). */
static void a_connection_keeps_hundreds_of_statements(void **state)
{
    (void)state;
    enum { N = 400 };
    static char names[N][32], sqls[N][48], want[N][16];
    static struct db_stmt stmts[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "dbtest_many_%d", i);
        snprintf(sqls[i], sizeof sqls[i], "SELECT %d::text", i);
        snprintf(want[i], sizeof want[i], "%d", i);
        stmts[i] = (struct db_stmt){names[i], sqls[i]};
    }
    struct db_pool *p = pool_of(1);
    struct db_conn *c = get(p);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++)
            first_value_is(c, &stmts[i], want[i]);
    db_put(c);
    db_pool_destroy(p);
}

static const struct db_stmt st_timeout = {"dbtest_timeout", "SHOW statement_timeout"};
static const struct db_stmt st_pid = {"dbtest_pid", "SELECT pg_backend_pid()::text"};

/* A connection that broke is opened again with the same session settings
 * (statement_timeout), and its statements are prepared again there. */
static void a_broken_connection_comes_back_with_its_settings(void **state)
{
    (void)state;
    char err[512], pid[32];
    long before = pgx_statement_timeout_ms();
    pgx_set_statement_timeout_ms(4321);
    struct db_pool *p = pool_of(1);
    struct db_conn *c = get(p);
    first_value_is(c, &st_timeout, "4321ms");
    PGresult *res = db_exec(c, &st_pid, 0, NULL);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(pid, sizeof pid, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    PGconn *killer = pgx_connect(pg_url(), 10, err, sizeof err);
    assert_non_null(killer);
    const char *kp[] = {pid};
    res = PQexecParams(killer, "SELECT pg_terminate_backend($1::int)", 1, NULL, kp, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    PQfinish(killer);

    res = db_exec(c, &st_timeout, 0, NULL); /* fails: the server closed it */
    assert_int_not_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    db_put(c);

    c = get(p);
    first_value_is(c, &st_timeout, "4321ms");
    res = db_exec(c, &st_pid, 0, NULL);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_not_equal(PQgetvalue(res, 0, 0), pid);
    PQclear(res);
    db_put(c);
    db_pool_destroy(p);
    pgx_set_statement_timeout_ms(before);
}

static const struct db_stmt st_xact = {"dbtest_xact", "SELECT txid_current()::text"};

/* A connection given back inside a transaction is rolled back, not handed on half-done. */
static void a_connection_is_given_back_outside_any_transaction(void **state)
{
    (void)state;
    char err[512];
    struct db_pool *p = pool_of(1);
    struct db_conn *c = get(p);
    assert_int_equal(pgx_exec(db_pg(c), "BEGIN", err, sizeof err), 0);
    PGresult *res = db_exec(c, &st_xact, 0, NULL);
    PQclear(res);
    assert_int_equal(PQtransactionStatus(db_pg(c)), PQTRANS_INTRANS);
    db_put(c);
    c = get(p);
    assert_int_equal(PQtransactionStatus(db_pg(c)), PQTRANS_IDLE);
    db_put(c);
    db_pool_destroy(p);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

struct giver {
    struct db_conn *c;
    long after_ms;
};

static void *give_back_later(void *arg)
{
    struct giver *g = arg;
    struct timespec ts = {g->after_ms / 1000, (g->after_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    db_put(g->c);
    return NULL;
}

/* With every connection borrowed, db_get waits up to its limit: DB_BUSY after it, or the
 * connection given back in the meantime. */
static void a_full_pool_waits_then_answers_busy(void **state)
{
    (void)state;
    char err[512];
    struct db_pool *p = pool_of(1);
    struct db_conn *c = get(p), *other = NULL;
    double t0 = now_ms();
    assert_int_equal(db_get(p, 300, &other, err, sizeof err), DB_BUSY);
    assert_null(other);
    assert_true(now_ms() - t0 >= 290);

    struct giver g = {c, 200};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, give_back_later, &g), 0);
    assert_int_equal(db_get(p, 5000, &other, err, sizeof err), DB_OK);
    assert_ptr_equal(other, c);
    pthread_join(t, NULL);
    db_put(other);
    db_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_declarations_of_one_statement_share_its_preparation),
        cmocka_unit_test(one_name_with_two_texts_fails_at_first_use),
        cmocka_unit_test(a_connection_keeps_hundreds_of_statements),
        cmocka_unit_test(a_broken_connection_comes_back_with_its_settings),
        cmocka_unit_test(a_connection_is_given_back_outside_any_transaction),
        cmocka_unit_test(a_full_pool_waits_then_answers_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
