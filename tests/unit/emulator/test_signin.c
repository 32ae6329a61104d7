/* The emulator's OpenID Connect side: its id_tokens verify with lib/oidc (what auth uses)
 * against its own JWKS, with the claims each provider sends; rotation keeps the old key
 * published; the test modes make tokens lib/oidc must refuse; sign-in people are validated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "emu.h"
#include "json.h"
#include "oidc.h"
#include "signin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE   "http://emu.test:1234"
#define CLIENT "client-1"

struct fixture {
    struct emu_config cfg;
    struct emu *e;
    struct oidc_provider *p;
    struct district *alpha;
};

/* lib/oidc fetches the emulator's current JWKS through this hook. */
static int fetch_jwks(void *ctx, const char *url, struct buf *out, char *err, size_t errlen)
{
    struct fixture *f = ctx;
    (void)url;
    (void)err;
    (void)errlen;
    json_t *j = emu_signin_jwks(f->e);
    char *text = j ? pjson_dump_compact(j) : NULL;
    json_decref(j);
    buf_reset(out);
    int rc = text ? buf_appends(out, text) : -1;
    free(text);
    return rc;
}

static int64_t clock_now;
static int64_t test_clock(void)
{
    return clock_now;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[256];
    f->cfg.districts = "alpha:people=5,azure_people=5,shared=2,devices=1,ous=2,seed=1;"
                       "beta:people=5,azure_people=5,shared=2,devices=1,ous=2,seed=2";
    f->cfg.consent = "auto";
    f->cfg.page_ttl = f->cfg.delta_ttl = 600;
    f->e = emu_new(&f->cfg, err, sizeof err);
    assert_non_null(f->e);
    f->alpha = emu_district(f->e, "alpha");
    assert_non_null(f->alpha);
    clock_now = 1000000;
    struct oidc_provider_opts o = {.jwks_uri = BASE "/oauth2/v3/certs",
                                   .fetch = fetch_jwks,
                                   .fetch_ctx = f,
                                   .clock_ms = test_clock};
    f->p = oidc_provider_new(&o, err, sizeof err);
    assert_non_null(f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    oidc_provider_destroy(f->p);
    emu_destroy(f->e);
    free(f);
    return 0;
}

static enum oidc_err verify(struct fixture *f, const char *tok, const char *issuer,
                            struct oidc_claims *cl)
{
    struct oidc_expect x = {.issuer = issuer, .audience = CLIENT, .nonce = "n-1"};
    char err[256];
    return oidc_verify_id_token(f->p, tok, &x, cl, err, sizeof err);
}

static void people_are_validated_and_stable(void **state)
{
    struct fixture *f = *state;
    struct signin_person a, b;
    const char *domain = district_domain(f->alpha);
    char email[320], other[320];
    snprintf(email, sizeof email, "Jane@%s", domain);
    snprintf(other, sizeof other, "jane@%s", district_domain(emu_district(f->e, "beta")));
    assert_int_equal(emu_signin_add(f->e, f->alpha, other, true, true), -1);
    assert_int_equal(emu_signin_add(f->e, f->alpha, "no-at-sign", true, true), -1);
    assert_false(emu_signin_find(f->e, email, "google", &a));
    assert_int_equal(emu_signin_add(f->e, f->alpha, email, true, false), 0);
    assert_false(emu_signin_find(f->e, email, "microsoft", &a)); /* Google only */
    assert_true(emu_signin_find(f->e, email, "google", &a));
    assert_ptr_equal(a.district, f->alpha);
    assert_int_equal(strlen(a.google_sub), 21);
    assert_int_equal(strlen(a.ms_oid), 36);
    emu_signin_person(f->alpha, email, &b);
    assert_string_equal(a.google_sub, b.google_sub);
    assert_string_equal(a.ms_oid, b.ms_oid);
    /* the district's own admin is always there */
    assert_true(emu_signin_find(f->e, district_admin_email(f->alpha), "microsoft", &b));
    assert_string_not_equal(a.google_sub, b.google_sub);
}

static void google_token_verifies_with_lib_oidc(void **state)
{
    struct fixture *f = *state;
    struct signin_person p;
    struct oidc_claims cl;
    emu_signin_person(f->alpha, district_admin_email(f->alpha), &p);
    char *t = emu_signin_google_id_token(f->e, BASE, &p, CLIENT, "n-1");
    assert_non_null(t);
    assert_int_equal(verify(f, t, BASE, &cl), OIDC_OK);
    assert_string_equal(cl.sub, p.google_sub);
    assert_string_equal(cl.email, p.email);
    assert_true(cl.email_verified);
    assert_string_equal(cl.hd, district_domain(f->alpha));
    assert_string_equal(cl.azp, CLIENT);
    assert_int_equal(verify(f, t, "http://other.test", &cl), OIDC_ERR_ISSUER);
    free(t);
}

static void microsoft_token_verifies_with_the_tenant_template(void **state)
{
    struct fixture *f = *state;
    struct signin_person p;
    struct oidc_claims cl;
    emu_signin_person(f->alpha, district_admin_email(f->alpha), &p);
    char *t = emu_signin_ms_id_token(f->e, BASE, &p, CLIENT, "n-1");
    assert_non_null(t);
    assert_int_equal(verify(f, t, BASE "/" OIDC_TENANT_MARKER "/v2.0", &cl), OIDC_OK);
    assert_string_equal(cl.tid, district_tenant_id(f->alpha));
    assert_string_equal(cl.oid, p.ms_oid);
    assert_string_equal(cl.preferred_username, p.email);
    free(t);
}

static void rotation_and_test_modes(void **state)
{
    struct fixture *f = *state;
    struct signin_person p;
    struct oidc_claims cl;
    emu_signin_person(f->alpha, district_admin_email(f->alpha), &p);
    char *old = emu_signin_google_id_token(f->e, BASE, &p, CLIENT, "n-1");
    assert_int_equal(verify(f, old, BASE, &cl), OIDC_OK);
    assert_int_equal(emu_signin_rotate(f->e), 0);
    char *fresh = emu_signin_google_id_token(f->e, BASE, &p, CLIENT, "n-1");
    /* the new kid makes the cache refresh */
    assert_int_equal(verify(f, fresh, BASE, &cl), OIDC_OK);
    assert_int_equal(verify(f, old, BASE, &cl), OIDC_OK); /* still published */
    free(old);
    free(fresh);

    struct {
        enum signin_mode mode;
        enum oidc_err want;
    } cases[] = {{SIGNIN_UNKNOWN_KEY, OIDC_ERR_UNKNOWN_KEY},
                 {SIGNIN_EXPIRED, OIDC_ERR_EXPIRED},
                 {SIGNIN_OTHER_AUDIENCE, OIDC_ERR_AUDIENCE}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        emu_signin_set_mode(f->e, cases[i].mode);
        char *t = emu_signin_google_id_token(f->e, BASE, &p, CLIENT, "n-1");
        clock_now += 61 * 1000; /* a refresh would be allowed: it must not help */
        assert_int_equal(verify(f, t, BASE, &cl), cases[i].want);
        free(t);
    }
    emu_signin_set_mode(f->e, SIGNIN_NORMAL);
    enum signin_mode m;
    assert_int_equal(signin_mode_parse("expired", &m), 0);
    assert_int_equal(m, SIGNIN_EXPIRED);
    assert_int_equal(signin_mode_parse("Expired", &m), -1);
    assert_int_equal(signin_mode_parse(NULL, &m), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(people_are_validated_and_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(google_token_verifies_with_lib_oidc, setup, teardown),
        cmocka_unit_test_setup_teardown(microsoft_token_verifies_with_the_tenant_template, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rotation_and_test_modes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
