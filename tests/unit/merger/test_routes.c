/* The merger's internal routes (services/merger/routes.c) over HTTP, up to the point where a
 * request would borrow a database connection: who may call them (the api only), the path's
 * limits, the body's shape. Nothing here reaches PostgreSQL (the pool is absent): the
 * decisions themselves are tested end to end (test_merger.py, test_hostile_input.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "httpd.h"
#include "log.h"
#include "routes.h"

#define API_SECRET    "api-secret-0123456789abcdef0123456789"
#define GOOGLE_SECRET "google-secret-0123456789abcdef01234567"
#define RUN           "0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"

struct served {
    struct httpd *h;
    struct callers *callers;
    struct routes_ctx ctx;
    struct http_client *client;
};

static int setup(void **state)
{
    char err[256];
    struct served *s = calloc(1, sizeof *s);
    struct httpd_opts o = {.addr = "127.0.0.1", .port = 0, .threads = 4};
    struct http_client_opts co = {.max_attempts = 1, .timeout_ms = 10000};
    if (!s)
        return -1;
    s->h = httpd_new(&o, err, sizeof err);
    /* google-sync is a known caller here, so that a route refusing it answers 403, not 401 */
    s->callers = callers_new("T", "api:" API_SECRET ",google-sync:" GOOGLE_SECRET,
                             CALLER_API | CALLER_GOOGLE_SYNC, err, sizeof err);
    s->client = http_client_new(&co, err, sizeof err);
    if (!s->h || !s->callers || !s->client)
        return -1;
    s->ctx.callers = s->callers;
    if (routes_register(s->h, &s->ctx))
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    struct served *s = *state;
    httpd_destroy(s->h); /* the listener stops before the routes go */
    routes_free(&s->ctx);
    callers_destroy(s->callers);
    http_client_destroy(s->client);
    free(s);
    return 0;
}

/* POST (or method) path with body and the caller's secret (NULL: none); the status, and the
 * error code of the reply in code. */
static long call(struct served *s, const char *method, const char *path, const char *secret,
                 const char *body, char *code, size_t codelen)
{
    char url[8192], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%ld%s", httpd_port(s->h), path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", secret ? secret : "");
    const char *const headers[] = {"Content-Type: application/json", secret ? auth : NULL, NULL};
    struct http_request req = {.method = method,
                               .url = url,
                               .headers = headers,
                               .body = body,
                               .body_len = body ? strlen(body) : 0};
    struct http_response resp;
    http_response_init(&resp);
    char err[256];
    enum http_result r = http_client_do(s->client, &req, &resp, err, sizeof err);
    if (r != HTTP_RESULT_OK)
        fail_msg("%s %s: %s", method, path, err);
    code[0] = '\0';
    json_t *j = resp.body.data ? json_loadb(resp.body.data, resp.body.len, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    snprintf(code, codelen, "%s", c ? c : "");
    json_decref(j);
    long status = resp.status;
    http_response_free(&resp);
    return status;
}

static void only_the_api_may_call_them(void **state)
{
    struct served *s = *state;
    char code[64];
    static const char *const paths[] = {
        "/internal/tenants/district-1/runs/" RUN "/approve",
        "/internal/tenants/district-1/runs/" RUN "/reject",
        "/internal/tenants/district-1/match-cases/" RUN "/resolve",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const char *body = "{\"admin\":\"person:a@d.org\"}";
        assert_int_equal(call(s, "POST", paths[i], NULL, body, code, sizeof code), 401);
        assert_int_equal(
            call(s, "POST", paths[i], "not-the-secret-0123456789abcdef", body, code, sizeof code),
            401);
        /* a known service that is not the api */
        assert_int_equal(call(s, "POST", paths[i], GOOGLE_SECRET, body, code, sizeof code), 403);
        /* the api, with a method the route does not serve */
        assert_int_equal(call(s, "GET", paths[i], API_SECRET, NULL, code, sizeof code), 405);
    }
}

static void a_decision_names_its_admin_in_a_json_body(void **state)
{
    struct served *s = *state;
    char code[64], admin[400];
    snprintf(admin, sizeof admin, "{\"admin\":\"%0*d\"}", 330, 0); /* 330 characters */
    static const char *const bad[] = {
        "",                                  /* no body: no admin */
        "{}",                                /* no admin */
        "{\"admin\":\"\"}",                  /* an empty one */
        "{\"admin\":7}",                     /* not a string */
        "{\"admin\":null}",                  /* null */
        "not json",                          /* not JSON */
        "{\"admin\":\"x\"",                  /* cut short */
        "[\"admin\"]",                       /* not an object */
        "{\"admin\":\"x\",\"person_id\":7}", /* a person_id that is no string */
    };
    const char *paths[] = {"/internal/tenants/district-1/runs/" RUN "/approve",
                           "/internal/tenants/district-1/match-cases/" RUN "/resolve"};
    for (size_t p = 0; p < 2; p++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            assert_int_equal(call(s, "POST", paths[p], API_SECRET, bad[i], code, sizeof code), 400);
            assert_string_equal(code, "bad_request");
        }
        assert_int_equal(call(s, "POST", paths[p], API_SECRET, admin, code, sizeof code), 400);
    }
}

static void ids_past_their_limits_are_no_route(void **state)
{
    struct served *s = *state;
    char code[64], path[512], tenant[81], id[41];
    const char *body = "{\"admin\":\"person:a@d.org\"}";
    memset(tenant, 't', 80);
    tenant[80] = '\0';
    memset(id, '1', 40);
    id[40] = '\0';
    snprintf(path, sizeof path, "/internal/tenants/%s/runs/" RUN "/approve", tenant);
    assert_int_equal(call(s, "POST", path, API_SECRET, body, code, sizeof code), 404);
    assert_string_equal(code, "not_found");
    snprintf(path, sizeof path, "/internal/tenants/district-1/runs/%s/reject", id);
    assert_int_equal(call(s, "POST", path, API_SECRET, body, code, sizeof code), 404);
    snprintf(path, sizeof path, "/internal/tenants/district-1/match-cases/%s/resolve", id);
    assert_int_equal(call(s, "POST", path, API_SECRET, body, code, sizeof code), 404);
    /* routes it does not have */
    assert_int_equal(call(s, "POST", "/internal/tenants/district-1/runs/" RUN "/delete", API_SECRET,
                          body, code, sizeof code),
                     404);
    assert_int_equal(
        call(s, "POST", "/internal/tenants/district-1/sync", API_SECRET, body, code, sizeof code),
        404);
}

static void a_body_past_the_limit_is_refused_unread(void **state)
{
    struct served *s = *state;
    char code[64];
    size_t n = 5000;
    char *body = malloc(n + 32);
    assert_non_null(body);
    int k = snprintf(body, n + 32, "{\"admin\":\"");
    memset(body + k, 'a', n);
    snprintf(body + k + n, 32, "\"}");
    assert_int_equal(call(s, "POST", "/internal/tenants/district-1/runs/" RUN "/approve",
                          API_SECRET, body, code, sizeof code),
                     413);
    free(body);
}

int main(void)
{
    log_init("test_routes", LOG_WARN); /* the access log of every refusal is not the point */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(only_the_api_may_call_them, setup, teardown),
        cmocka_unit_test_setup_teardown(a_decision_names_its_admin_in_a_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(ids_past_their_limits_are_no_route, setup, teardown),
        cmocka_unit_test_setup_teardown(a_body_past_the_limit_is_refused_unread, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
