/* router: pattern matching, segments, 404/405, caller checks, body limits, request ids and
 * the error body, the last ones over a real listener on a free port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "buf.h"
#include "callers.h"
#include "httpd.h"
#include "router.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_SECRET    "api-secret-0123456789"
#define GOOGLE_SECRET "google-secret-0123456789"

static int echo(struct router_req *q)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"route\":\"%s\",\"tenant\":\"%s\",\"body\":%zu,\"caller\":\"%s\"}", q->pattern,
             router_param(q, "tenant") ? router_param(q, "tenant") : "", q->body.len,
             caller_name(q->caller));
    return httpd_reply(q->conn, 200, "application/json", text, strlen(text), NULL);
}

static const struct router_route routes[] = {
    {"GET", "/internal/tenants/{tenant}/connections", echo, CALLER_API, 0},
    {"PUT", "/internal/tenants/{tenant}/settings", echo, CALLER_API, 64},
    {"GET", "/internal/tenants/{tenant}/settings", echo, CALLER_API, 0},
    {"POST", "/internal/tenants/{tenant}/runs/{run}/approve", echo, CALLER_API, 64},
    {"POST", "/internal/token", echo, CALLER_GOOGLE_SYNC, 64},
    {"GET", "/internal/x/", echo, CALLER_API, 0},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static struct router *make(void)
{
    char err[256];
    struct router *rt = router_new(routes, NROUTES, NULL, NULL, err, sizeof err);
    /* Internal tables need callers: made public they are refused. */
    assert_null(rt);
    struct callers *c = callers_new("T", "api:" API_SECRET, CALLER_API, err, sizeof err);
    assert_non_null(c);
    rt = router_new(routes, NROUTES, c, NULL, err, sizeof err);
    assert_non_null(rt);
    callers_destroy(c); /* router_match does not use it */
    return rt;
}

/* A table matched without serving: the router and the outputs of one router_match. */
struct matching {
    struct router *rt;
    struct router_req q;
    const struct router_route *r;
    char allow[ROUTER_ALLOW_MAX];
};

static int matching_setup(void **state)
{
    struct matching *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->rt = make();
    *state = m;
    return 0;
}

static int matching_teardown(void **state)
{
    struct matching *m = *state;
    router_destroy(m->rt);
    free(m);
    return 0;
}

static enum router_match match(struct matching *m, const char *method, const char *path)
{
    return router_match(m->rt, method, path, &m->q, &m->r, m->allow);
}

static void patterns_match_segment_by_segment(void **state)
{
    struct matching *m = *state;
    assert_int_equal(match(m, "POST", "/internal/tenants/t-1/runs/r9/approve"), ROUTER_MATCHED);
    assert_ptr_equal(m->r, &routes[3]);
    assert_string_equal(m->q.pattern, "/internal/tenants/{tenant}/runs/{run}/approve");
    assert_int_equal(m->q.nparams, 2);
    assert_string_equal(router_param(&m->q, "tenant"), "t-1");
    assert_string_equal(router_param(&m->q, "run"), "r9");
    assert_null(router_param(&m->q, "case"));
    assert_int_equal(match(m, "POST", "/internal/token"), ROUTER_MATCHED);
    assert_int_equal(m->q.nparams, 0);
    /* A trailing "/" is a segment of its own, both ways. */
    assert_int_equal(match(m, "GET", "/internal/x/"), ROUTER_MATCHED);
    const char *misses[] = {"/internal/x",
                            "/internal/token/",
                            "/internal/tenants//connections", /* an empty {tenant} */
                            "/internal/tenants/t/connections/more",
                            "/internal/tenants/t",
                            "/internal/tenants/t/runs/r/approvex",
                            "internal/token",
                            "",
                            "/",
                            "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p"};
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++)
        assert_int_equal(match(m, "GET", misses[i]), ROUTER_NO_ROUTE);
    char long_path[ROUTER_PATH_MAX + 10];
    memset(long_path, 'a', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[sizeof long_path - 1] = '\0';
    assert_int_equal(match(m, "GET", long_path), ROUTER_NO_ROUTE);
}

static void a_known_path_with_another_method_lists_the_allowed_ones(void **state)
{
    struct matching *m = *state;
    assert_int_equal(match(m, "DELETE", "/internal/tenants/t/settings"), ROUTER_NO_METHOD);
    assert_null(m->r);
    assert_string_equal(m->allow, "PUT, GET");
    assert_int_equal(match(m, "GET", "/internal/token"), ROUTER_NO_METHOD);
    assert_string_equal(m->allow, "POST");
    /* Method names are exact. */
    assert_int_equal(match(m, "get", "/internal/token"), ROUTER_NO_METHOD);
}

static void malformed_tables_are_refused(void **state)
{
    (void)state;
    char err[256];
    struct callers *c = callers_new("T", "api:" API_SECRET, CALLER_API, err, sizeof err);
    const struct router_route bad[][1] = {
        {{"GET", "relative/path", echo, CALLER_API, 0}},
        {{"GET", "/a//b", echo, CALLER_API, 0}},
        {{"GET", "/a/x{id}", echo, CALLER_API, 0}},
        {{"GET", "/a/{}", echo, CALLER_API, 0}},
        {{"GET", "/{a}/{b}/{c}/{d}/{e}", echo, CALLER_API, 0}},
        {{NULL, "/a", echo, CALLER_API, 0}},
        {{"GET", "/a", NULL, CALLER_API, 0}},
        {{"GET", "/a", echo, 0, 0}}, /* an internal route nobody may call */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(router_new(bad[i], 1, c, NULL, err, sizeof err));
        assert_true(strlen(err) > 0);
    }
    /* A public route naming callers. */
    assert_null(router_new(routes, 1, NULL, NULL, err, sizeof err));
    callers_destroy(c);
}

static void the_error_body_has_code_message_and_request_id(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    assert_int_equal(httpd_append_error_members(&b, "not_found", "no \"such\" route", "id-1"), 0);
    assert_string_equal(b.data, "\"code\":\"not_found\",\"message\":\"no \\\"such\\\" route\","
                                "\"request_id\":\"id-1\"");
    buf_reset(&b);
    assert_int_equal(httpd_append_error_members(&b, "c", "m", NULL), 0);
    assert_string_equal(b.data, "\"code\":\"c\",\"message\":\"m\"");
    buf_free(&b);
}

/* ------------------------------------------------------------------ over HTTP */

struct served {
    struct httpd *h;
    struct callers *callers;
    struct router *rt;
};

static int serve_setup(void **state)
{
    char err[256];
    struct served *s = calloc(1, sizeof *s);
    struct httpd_opts o = {.addr = "127.0.0.1", .port = 0, .threads = 4};
    s->h = httpd_new(&o, err, sizeof err);
    s->callers = callers_new("T", "api:" API_SECRET " google-sync:" GOOGLE_SECRET,
                             CALLER_API | CALLER_GOOGLE_SYNC, err, sizeof err);
    s->rt = router_new(routes, NROUTES, s->callers, NULL, err, sizeof err);
    if (!s->h || !s->callers || !s->rt || router_mount(s->rt, s->h, "/internal", "internal"))
        return -1;
    *state = s;
    return 0;
}

static int serve_teardown(void **state)
{
    struct served *s = *state;
    httpd_destroy(s->h);
    router_destroy(s->rt);
    callers_destroy(s->callers);
    free(s);
    return 0;
}

struct reply {
    int status;
    char head[4096];
    char body[4096];
};

/* One request on its own connection; the reply's status, header block and body. */
static void request(struct served *s, const char *method, const char *path, const char *secret,
                    const char *request_id, const char *body, struct reply *out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)httpd_port(s->h))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct buf req;
    buf_init(&req, 1 << 20);
    assert_int_equal(buf_appendf(&req,
                                 "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 "Content-Length: %zu\r\n",
                                 method, path, body ? strlen(body) : 0),
                     0);
    if (secret)
        assert_int_equal(buf_appendf(&req, "Authorization: Bearer %s\r\n", secret), 0);
    if (request_id)
        assert_int_equal(buf_appendf(&req, "X-Request-Id: %s\r\n", request_id), 0);
    assert_int_equal(buf_appendf(&req, "\r\n%s", body ? body : ""), 0);
    assert_int_equal(send(fd, req.data, req.len, 0), (ssize_t)req.len);
    buf_free(&req);
    char all[16384];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof all - 1 && (k = recv(fd, all + n, sizeof all - 1 - n, 0)) > 0)
        n += (size_t)k;
    all[n] = '\0';
    close(fd);
    char *end = strstr(all, "\r\n\r\n");
    assert_non_null(end);
    *end = '\0';
    snprintf(out->head, sizeof out->head, "%.4000s\r\n", all);
    snprintf(out->body, sizeof out->body, "%.4000s", end + 4);
    out->status = (int)strtol(all + 9, NULL, 10); /* "HTTP/1.1 NNN" */
}

/* The value of a reply header, copied into out ("" when absent). */
static void header(const struct reply *r, const char *name, char *out, size_t outlen)
{
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = strstr(r->head, key);
    out[0] = '\0';
    if (p) {
        p += strlen(key);
        snprintf(out, outlen, "%.*s", (int)strcspn(p, "\r"), p);
    }
}

/* The error reply's code, and its request id equal to the header's. */
static void assert_error(const struct reply *r, int status, const char *code)
{
    char id[128], expect[256];
    assert_int_equal(r->status, status);
    header(r, "X-Request-Id", id, sizeof id);
    assert_true(strlen(id) > 0);
    snprintf(expect, sizeof expect, "{\"error\":{\"code\":\"%s\",", code);
    assert_true(strncmp(r->body, expect, strlen(expect)) == 0);
    snprintf(expect, sizeof expect, "\"request_id\":\"%s\"}}", id);
    assert_non_null(strstr(r->body, expect));
}

static void unknown_callers_get_401_before_any_404(void **state)
{
    struct served *s = *state;
    struct reply r;
    const char *paths[] = {"/internal/token", "/internal/no-such-route",
                           "/internal/tenants/t/connections"};
    for (size_t i = 0; i < 3; i++) {
        request(s, "GET", paths[i], NULL, NULL, NULL, &r);
        assert_error(&r, 401, "unauthorized");
        request(s, "GET", paths[i], "not-a-known-secret-at-all", NULL, NULL, &r);
        assert_error(&r, 401, "unauthorized");
    }
}

static void known_callers_get_404_405_403_and_the_route(void **state)
{
    struct served *s = *state;
    struct reply r;
    char allow[64];
    request(s, "GET", "/internal/no-such-route", API_SECRET, NULL, NULL, &r);
    assert_error(&r, 404, "not_found");
    request(s, "DELETE", "/internal/tenants/t/settings", API_SECRET, NULL, NULL, &r);
    assert_error(&r, 405, "method_not_allowed");
    header(&r, "Allow", allow, sizeof allow);
    assert_string_equal(allow, "PUT, GET");
    /* The api may not ask for tokens; google-sync may not read connections. */
    request(s, "POST", "/internal/token", API_SECRET, NULL, "{}", &r);
    assert_error(&r, 403, "forbidden_caller");
    request(s, "GET", "/internal/tenants/t/connections", GOOGLE_SECRET, NULL, NULL, &r);
    assert_error(&r, 403, "forbidden_caller");
    request(s, "GET", "/internal/tenants/t%2Dx/connections", API_SECRET, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"route\":\"/internal/tenants/{tenant}/connections\","
                                "\"tenant\":\"t-x\",\"body\":0,\"caller\":\"api\"}");
}

static void bodies_past_the_route_limit_are_413(void **state)
{
    struct served *s = *state;
    struct reply r;
    char body[100];
    memset(body, 'x', 64);
    body[64] = '\0';
    request(s, "PUT", "/internal/tenants/t/settings", API_SECRET, NULL, body, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"body\":64"));
    memset(body, 'x', 65);
    body[65] = '\0';
    request(s, "PUT", "/internal/tenants/t/settings", API_SECRET, NULL, body, &r);
    assert_error(&r, 413, "body_too_large");
}

static void request_ids_are_echoed_when_valid_and_made_otherwise(void **state)
{
    struct served *s = *state;
    struct reply r;
    char id[128];
    request(s, "GET", "/internal/tenants/t/connections", API_SECRET, "gw-7f3a:42/abc", NULL, &r);
    header(&r, "X-Request-Id", id, sizeof id);
    assert_string_equal(id, "gw-7f3a:42/abc");
    request(s, "GET", "/internal/nope", API_SECRET, "gw-1", NULL, &r);
    assert_error(&r, 404, "not_found");
    assert_non_null(strstr(r.body, "\"request_id\":\"gw-1\""));
    /* Absent, too long or with a quote: a new id of 32 hex characters. */
    char too_long[HTTPD_REQUEST_ID_MAX + 2];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = {NULL, too_long, "q\"uote"};
    for (size_t i = 0; i < 3; i++) {
        request(s, "GET", "/internal/nope", API_SECRET, bad[i], NULL, &r);
        assert_error(&r, 404, "not_found");
        header(&r, "X-Request-Id", id, sizeof id);
        assert_int_equal(strlen(id), 32);
        assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(patterns_match_segment_by_segment, matching_setup,
                                        matching_teardown),
        cmocka_unit_test_setup_teardown(a_known_path_with_another_method_lists_the_allowed_ones,
                                        matching_setup, matching_teardown),
        cmocka_unit_test(malformed_tables_are_refused),
        cmocka_unit_test(the_error_body_has_code_message_and_request_id),
        cmocka_unit_test_setup_teardown(unknown_callers_get_401_before_any_404, serve_setup,
                                        serve_teardown),
        cmocka_unit_test_setup_teardown(known_callers_get_404_405_403_and_the_route, serve_setup,
                                        serve_teardown),
        cmocka_unit_test_setup_teardown(bodies_past_the_route_limit_are_413, serve_setup,
                                        serve_teardown),
        cmocka_unit_test_setup_teardown(request_ids_are_echoed_when_valid_and_made_otherwise,
                                        serve_setup, serve_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
