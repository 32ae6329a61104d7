/* ms_consent: AADSTS classification by error_codes, the consent URL, tenant validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "json.h"
#include "ms_consent.h"

#include <string.h>

static enum ms_result classify(long status, const char *body)
{
    char err[128];
    json_t *j = body ? pjson_parse(body, strlen(body), err, sizeof err) : NULL;
    enum ms_result r = ms_classify_error(status, j);
    json_decref(j);
    return r;
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(classify(400,
                              "{\"error\":\"unauthorized_client\",\"error_description\":"
                              "\"AADSTS700016: Application not found\",\"error_codes\":[700016]}"),
                     MS_REVOKED);
    assert_int_equal(classify(400, "{\"error\":\"invalid_grant\",\"error_codes\":[65001]}"),
                     MS_REVOKED);
    assert_int_equal(classify(400, "{\"error\":\"invalid_request\",\"error_codes\":[90002]}"),
                     MS_REVOKED);
    assert_int_equal(classify(401, "{\"error\":\"invalid_client\",\"error_codes\":[7000215]}"),
                     MS_SECRET_INVALID);
    assert_int_equal(classify(401, "{\"error\":\"invalid_client\",\"error_codes\":[7000222]}"),
                     MS_SECRET_INVALID);
    /* The decision is on the codes, never the text. */
    assert_int_equal(classify(400, "{\"error\":\"invalid_request\",\"error_description\":"
                                   "\"AADSTS700016: looks revoked\",\"error_codes\":[50011]}"),
                     MS_REJECTED);
    assert_int_equal(classify(400, "{\"error\":\"invalid_request\",\"error_codes\":\"700016\"}"),
                     MS_REJECTED);
    assert_int_equal(classify(503, NULL), MS_UNAVAILABLE);
    assert_int_equal(classify(0, NULL), MS_UNAVAILABLE);
    assert_int_equal(classify(400, NULL), MS_REJECTED);
}

static void test_consent_url(void **state)
{
    (void)state;
    struct ms_cfg cfg = {"http://127.0.0.1:8090", "panel-ms-client", "panel-ms-secret",
                         "http://127.0.0.1:8081/oauth/microsoft/callback"};
    struct buf b;
    buf_init(&b, 8192);
    const char *tid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    assert_int_equal(ms_consent_url(&b, &cfg, tid, "ST", "admin@x.k12.example"), 0);
    /* for the signed-in admin's own directory, never "organizations" or "common" */
    assert_string_equal(b.data, "http://127.0.0.1:8090/3f2504e0-4f89-11d3-9a0c-0305e82c3301"
                                "/v2.0/adminconsent?client_id=panel-ms-client&scope=https%3A%2F%2F"
                                "graph.microsoft.com%2F.default&redirect_uri=http%3A%2F%2F127.0.0"
                                ".1%3A8081%2Foauth%2Fmicrosoft%2Fcallback&state=ST&login_hint="
                                "admin%40x.k12.example");
    assert_non_null(strstr(b.data, "client_id=panel-ms-client"));
    assert_non_null(strstr(b.data, "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"));
    assert_non_null(strstr(b.data, "state=ST"));
    assert_non_null(strstr(b.data, "login_hint=admin%40x.k12.example"));
    assert_null(strstr(b.data, "panel-ms-secret"));
    /* a directory that could change the URL's path is refused */
    buf_reset(&b);
    assert_int_equal(ms_consent_url(&b, &cfg, "../common", "ST", NULL), -1);
    assert_int_equal(ms_consent_url(&b, &cfg, NULL, "ST", NULL), -1);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_consent_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
