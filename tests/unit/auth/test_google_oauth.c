/* google_oauth: the consent URL and the scope check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "google_oauth.h"

#include <stdio.h>
#include <string.h>

static const struct google_cfg cfg = {
    .auth_url = "http://127.0.0.1:8090/o/oauth2/v2/auth",
    .token_url = "http://127.0.0.1:8090/token",
    .revoke_url = "http://127.0.0.1:8090/revoke",
    .client_id = "panel-google-client",
    .client_secret = "panel-google-secret",
    .redirect_uri = "http://127.0.0.1:8081/oauth/google/callback",
};

static void test_consent_url(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8192);
    assert_int_equal(
        google_consent_url(&b, &cfg, "STATE123", "NONCE456", "CHALLENGE", "admin@d.k12.example"),
        0);
    const char *u = b.data;
    assert_true(strncmp(u, "http://127.0.0.1:8090/o/oauth2/v2/auth?", 39) == 0);
    assert_non_null(strstr(u, "response_type=code"));
    assert_non_null(strstr(u, "client_id=panel-google-client"));
    assert_non_null(
        strstr(u, "redirect_uri=http%3A%2F%2F127.0.0.1%3A8081%2Foauth%2Fgoogle%2Fcallback"));
    assert_non_null(strstr(u, "access_type=offline"));
    assert_non_null(strstr(u, "prompt=consent"));
    assert_non_null(strstr(u, "include_granted_scopes=true"));
    assert_non_null(strstr(u, "state=STATE123"));
    assert_non_null(strstr(u, "nonce=NONCE456"));
    /* who consents is named by an id_token: openid and email, nothing more */
    assert_non_null(strstr(u, "%20openid%20email&"));
    assert_non_null(strstr(u, "code_challenge=CHALLENGE"));
    assert_non_null(strstr(u, "code_challenge_method=S256"));
    assert_non_null(strstr(u, "login_hint=admin%40d.k12.example"));
    /* Exactly the three read-only Directory scopes, and never the secret. */
    assert_non_null(strstr(u, "admin.directory.user.readonly"));
    assert_non_null(strstr(u, "admin.directory.orgunit.readonly"));
    assert_non_null(strstr(u, "admin.directory.device.chromeos.readonly"));
    assert_null(strstr(u, "admin.directory.user%20"));
    assert_null(strstr(u, "panel-google-secret"));
    const char *p = u;
    int nscopes = 0;
    while ((p = strstr(p, "readonly"))) {
        nscopes++;
        p++;
    }
    assert_int_equal(nscopes, 3);
    buf_free(&b);
}

static void test_missing_scopes(void **state)
{
    (void)state;
    const char *missing[GOOGLE_NSCOPES];
    char all[1024];
    snprintf(all, sizeof all, "%s %s  %s", GOOGLE_SCOPE_DEVICES, GOOGLE_SCOPE_USERS,
             GOOGLE_SCOPE_ORGUNIT);
    assert_int_equal(google_missing_scopes(all, missing), 0);
    char two[1024];
    snprintf(two, sizeof two, "openid %s %s", GOOGLE_SCOPE_USERS, GOOGLE_SCOPE_ORGUNIT);
    assert_int_equal(google_missing_scopes(two, missing), 1);
    assert_string_equal(missing[0], GOOGLE_SCOPE_DEVICES);
    /* A prefix is not the scope; the write scope is not the read-only one. */
    assert_int_equal(google_missing_scopes("https://www.googleapis.com/auth/admin.directory.user "
                                           "https://www.googleapis.com/auth/admin.directory.user."
                                           "readonlyX",
                                           missing),
                     3);
    assert_int_equal(google_missing_scopes(NULL, missing), 3);
    assert_int_equal(google_missing_scopes("", missing), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consent_url),
        cmocka_unit_test(test_missing_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
