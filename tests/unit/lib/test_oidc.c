/* lib/oidc: tokens are signed here with OpenSSL directly (not with cjose, which verifies
 * them), so the test does not grade the library with its own homework. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "base64.h"
#include "crypto.h"
#include "oidc.h"

#define ISSUER   "https://accounts.example.test"
#define MS_ISS   "https://login.example.test/{tenantid}/v2.0"
#define CLIENT   "client-123.apps.example"
#define NONCE    "n0nce-AbC"
#define NOW      1800000000L
#define TENANT_A "11111111-2222-3333-4444-555555555555"

struct fixture {
    EVP_PKEY *key;       /* signs the tokens */
    EVP_PKEY *other_key; /* a key the JWKS does not hold */
    char jwks[4096];     /* what the fetch hook serves */
    char n_b64[700];     /* the modulus, base64url */
    int fetches;
    struct oidc_provider *p;
};

static void b64url(const void *data, size_t n, char *out, size_t outlen)
{
    assert_true(base64_encode(BASE64_URL, data, n, out, outlen) >= 0);
}

static void jwk_of(EVP_PKEY *k, const char *kid, char *out, size_t outlen, char *n_out,
                   size_t n_outlen)
{
    BIGNUM *n = NULL, *e = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    unsigned char nb[512], eb[8];
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    char n64[700], e64[16];
    b64url(nb, (size_t)nl, n64, sizeof n64);
    b64url(eb, (size_t)el, e64, sizeof e64);
    snprintf(out, outlen,
             "{\"kty\":\"RSA\",\"use\":\"sig\",\"alg\":\"RS256\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":"
             "\"%s\"}",
             kid, n64, e64);
    if (n_out)
        snprintf(n_out, n_outlen, "%s", n64);
    BN_free(n);
    BN_free(e);
}

static int64_t fake_clock = 1000000;
static int64_t test_clock(void)
{
    return fake_clock;
}

static int serve_jwks(void *ctx, const char *url, struct buf *out, char *err, size_t errlen)
{
    struct fixture *f = ctx;
    (void)url;
    (void)err;
    (void)errlen;
    f->fetches++;
    buf_reset(out);
    return buf_appends(out, f->jwks);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->key = EVP_RSA_gen(2048);
    f->other_key = EVP_RSA_gen(2048);
    assert_non_null(f->key);
    assert_non_null(f->other_key);
    char jwk[1500];
    jwk_of(f->key, "k1", jwk, sizeof jwk, f->n_b64, sizeof f->n_b64);
    /* an EC key and an encryption key are skipped, not fatal */
    snprintf(
        f->jwks, sizeof f->jwks,
        "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},%s]}",
        jwk);
    struct oidc_provider_opts o = {.jwks_uri = "https://keys.example.test/jwks",
                                   .fetch = serve_jwks,
                                   .fetch_ctx = f,
                                   .clock_ms = test_clock};
    char err[256];
    f->p = oidc_provider_new(&o, err, sizeof err);
    assert_non_null(f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    oidc_provider_destroy(f->p);
    EVP_PKEY_free(f->key);
    EVP_PKEY_free(f->other_key);
    free(f);
    return 0;
}

/* header.payload.signature with an RS256 signature by key over the first two. */
static char *sign_rs256(EVP_PKEY *key, const char *header, const char *payload)
{
    char h64[512], p64[4096], sig64[700];
    b64url(header, strlen(header), h64, sizeof h64);
    b64url(payload, strlen(payload), p64, sizeof p64);
    char *out = malloc(strlen(h64) + strlen(p64) + sizeof sig64 + 3);
    int n = snprintf(out, 8192, "%s.%s", h64, p64);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)out, (size_t)n), 1);
    EVP_MD_CTX_free(md);
    b64url(sig, siglen, sig64, sizeof sig64);
    snprintf(out + n, sizeof sig64 + 2, ".%s", sig64);
    return out;
}

static char *google_payload(char *buf, size_t len, const char *iss, const char *aud, long exp,
                            long iat, const char *nonce)
{
    snprintf(buf, len,
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"azp\":\"%s\",\"sub\":\"1098\",\"email\":\"jane@"
             "district.example\",\"email_verified\":true,\"hd\":\"district.example\","
             "\"nonce\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
             iss, aud, aud, nonce, iat, exp);
    return buf;
}

static enum oidc_err verify(struct fixture *f, const char *token, const char *issuer,
                            struct oidc_claims *cl)
{
    struct oidc_expect e = {.issuer = issuer, .audience = CLIENT, .nonce = NONCE, .now = NOW};
    char err[256] = "";
    enum oidc_err rc = oidc_verify_id_token(f->p, token, &e, cl, err, sizeof err);
    if (rc != OIDC_OK)
        assert_true(err[0] != '\0'); /* every refusal says why */
    return rc;
}

#define HDR_K1 "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}"

static void valid_token_gives_its_claims(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    char *t = sign_rs256(f->key, HDR_K1,
                         google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW - 5, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_OK);
    assert_string_equal(cl.sub, "1098");
    assert_string_equal(cl.email, "jane@district.example");
    assert_true(cl.email_verified);
    assert_string_equal(cl.hd, "district.example");
    assert_string_equal(cl.aud, CLIENT);
    assert_int_equal(cl.exp, NOW + 3600);
    assert_int_equal(f->fetches, 1); /* keys fetched on first use */
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_OK);
    assert_int_equal(f->fetches, 1); /* and cached */
    /* within the skew: expired 30 s ago, issued 30 s in the future */
    free(t);
    t = sign_rs256(f->key, HDR_K1,
                   google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW - 30, NOW + 30, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_OK);
    free(t);
}

/* Replace one character in the segment seg (0 header, 1 payload, 2 signature). */
static void flip_in_segment(char *t, int seg)
{
    char *s = t;
    for (int i = 0; i < seg; i++)
        s = strchr(s, '.') + 1;
    s += 10;
    *s = *s == 'A' ? 'B' : 'A';
}

static void tampered_tokens_are_refused(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    char *t = sign_rs256(f->key, HDR_K1,
                         google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, NONCE));
    char *t2 = strdup(t);
    flip_in_segment(t, 1);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_SIGNATURE);
    flip_in_segment(t2, 2);
    assert_int_equal(verify(f, t2, ISSUER, &cl), OIDC_ERR_SIGNATURE);
    free(t);
    free(t2);
    /* a payload swapped in from another token with the same header */
    char *a = sign_rs256(f->key, HDR_K1,
                         google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, NONCE));
    char *b = sign_rs256(f->key, HDR_K1,
                         google_payload(pl, sizeof pl, ISSUER, "other", NOW + 3600, NOW, NONCE));
    char *sig_b = strrchr(b, '.');
    char *sig_a = strrchr(a, '.');
    char *mixed = malloc(strlen(a) + strlen(b));
    snprintf(mixed, strlen(a) + strlen(b), "%.*s%s", (int)(sig_b - b), b, sig_a);
    assert_int_equal(verify(f, mixed, ISSUER, &cl), OIDC_ERR_SIGNATURE);
    free(a);
    free(b);
    free(mixed);
}

static void unknown_kid_refreshes_once_a_minute(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    const char *payload = google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, NONCE);
    char *good = sign_rs256(f->key, HDR_K1, payload);
    assert_int_equal(verify(f, good, ISSUER, &cl), OIDC_OK);
    assert_int_equal(f->fetches, 1);
    /* a token signed by a key the provider never published */
    char *t = sign_rs256(f->other_key, "{\"alg\":\"RS256\",\"kid\":\"k9\"}", payload);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_UNKNOWN_KEY);
    assert_int_equal(f->fetches, 2); /* one refresh for the unknown kid */
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_UNKNOWN_KEY);
    char *t3 = sign_rs256(f->other_key, "{\"alg\":\"RS256\",\"kid\":\"k10\"}", payload);
    assert_int_equal(verify(f, t3, ISSUER, &cl), OIDC_ERR_UNKNOWN_KEY);
    assert_int_equal(f->fetches, 2); /* no more within the minute */
    free(t3);
    /* the unknown key claiming a known kid fails the signature */
    char *t2 = sign_rs256(f->other_key, HDR_K1, payload);
    assert_int_equal(verify(f, t2, ISSUER, &cl), OIDC_ERR_SIGNATURE);
    free(good);
    free(t);
    free(t2);
}

static void rotated_key_is_fetched(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    const char *payload = google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, NONCE);
    char *t1 = sign_rs256(f->key, HDR_K1, payload);
    assert_int_equal(verify(f, t1, ISSUER, &cl), OIDC_OK);
    /* the provider rotates to k2 right after our first load: the unknown kid refreshes */
    char jwk_k2[1500], jwk_k3[1500];
    jwk_of(f->other_key, "k2", jwk_k2, sizeof jwk_k2, NULL, 0);
    snprintf(f->jwks, sizeof f->jwks, "{\"keys\":[%s]}", jwk_k2);
    char *t = sign_rs256(f->other_key, "{\"alg\":\"RS256\",\"kid\":\"k2\"}", payload);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_OK);
    assert_int_equal(f->fetches, 2);
    /* the old key left the JWKS with the refresh */
    assert_int_equal(verify(f, t1, ISSUER, &cl), OIDC_ERR_UNKNOWN_KEY);
    /* a second rotation within the minute waits for the minute to pass */
    jwk_of(f->key, "k3", jwk_k3, sizeof jwk_k3, NULL, 0);
    snprintf(f->jwks, sizeof f->jwks, "{\"keys\":[%s,%s]}", jwk_k2, jwk_k3);
    char *t3 = sign_rs256(f->key, "{\"alg\":\"RS256\",\"kid\":\"k3\"}", payload);
    fake_clock += 59 * 1000;
    assert_int_equal(verify(f, t3, ISSUER, &cl), OIDC_ERR_UNKNOWN_KEY);
    assert_int_equal(f->fetches, 2);
    fake_clock += 2 * 1000;
    assert_int_equal(verify(f, t3, ISSUER, &cl), OIDC_OK);
    assert_int_equal(f->fetches, 3);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_OK);
    free(t);
    free(t1);
    free(t3);
}

static void time_claims_are_checked(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    char *t = sign_rs256(
        f->key, HDR_K1, google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW - 61, NOW - 3600, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_EXPIRED);
    free(t);
    t = sign_rs256(f->key, HDR_K1,
                   google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 7200, NOW + 120, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_NOT_YET_VALID);
    free(t);
    snprintf(pl, sizeof pl,
             "{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"sub\":\"1\",\"nonce\":\"" NONCE
             "\",\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld}",
             NOW, NOW + 600, NOW + 3600);
    t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_NOT_YET_VALID);
    free(t);
    /* a time as a string is not silently read as a number */
    snprintf(pl, sizeof pl,
             "{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"sub\":\"1\",\"nonce\":\"" NONCE
             "\",\"iat\":%ld,\"exp\":\"%ld\"}",
             NOW, NOW + 3600);
    t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_CLAIMS);
    free(t);
}

static void audience_issuer_and_nonce_are_checked(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    char *t =
        sign_rs256(f->key, HDR_K1,
                   google_payload(pl, sizeof pl, ISSUER, "another-client", NOW + 3600, NOW, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_AUDIENCE);
    free(t);
    t = sign_rs256(
        f->key, HDR_K1,
        google_payload(pl, sizeof pl, "https://evil.example", CLIENT, NOW + 3600, NOW, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_ISSUER);
    free(t);
    /* an accepted alternative issuer (Google's scheme-less legacy form), and only that one */
    t = sign_rs256(
        f->key, HDR_K1,
        google_payload(pl, sizeof pl, "accounts.example.test", CLIENT, NOW + 3600, NOW, NONCE));
    struct oidc_expect alt = {.issuer = ISSUER,
                              .issuer_alt = "accounts.example.test",
                              .audience = CLIENT,
                              .nonce = NONCE,
                              .now = NOW};
    char aerr[256];
    assert_int_equal(oidc_verify_id_token(f->p, t, &alt, &cl, aerr, sizeof aerr), OIDC_OK);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_ISSUER);
    alt.issuer_alt = "other.example.test";
    assert_int_equal(oidc_verify_id_token(f->p, t, &alt, &cl, aerr, sizeof aerr), OIDC_ERR_ISSUER);
    free(t);
    t = sign_rs256(f->key, HDR_K1,
                   google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, "other-nonce"));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_NONCE);
    free(t);
    /* an array audience naming us, but issued to another party */
    snprintf(pl, sizeof pl,
             "{\"iss\":\"" ISSUER "\",\"aud\":[\"" CLIENT "\",\"x\"],\"azp\":\"x\",\"sub\":\"1\","
             "\"nonce\":\"" NONCE "\",\"iat\":%ld,\"exp\":%ld}",
             NOW, NOW + 3600);
    t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_AUDIENCE);
    free(t);
}

static void algorithms_other_than_rs256_are_refused(void **state)
{
    struct fixture *f = *state;
    char pl[1024], h64[128], p64[2048], tok[4096];
    struct oidc_claims cl;
    google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, NONCE);
    b64url(pl, strlen(pl), p64, sizeof p64);
    /* alg none, empty signature */
    const char *none = "{\"alg\":\"none\",\"kid\":\"k1\"}";
    b64url(none, strlen(none), h64, sizeof h64);
    snprintf(tok, sizeof tok, "%s.%s.", h64, p64);
    enum oidc_err rc = verify(f, tok, ISSUER, &cl);
    assert_int_equal(rc, OIDC_ERR_ALGORITHM);
    /* HS256 keyed with the public key's bytes (the classic key-confusion attack), with the
     * modulus text and with the whole JWKS */
    const char *secrets[] = {f->n_b64, f->jwks};
    for (size_t i = 0; i < 2; i++) {
        const char *hs = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
        b64url(hs, strlen(hs), h64, sizeof h64);
        int n = snprintf(tok, sizeof tok, "%s.%s", h64, p64);
        unsigned char mac[32];
        unsigned int maclen = 0;
        HMAC(EVP_sha256(), secrets[i], (int)strlen(secrets[i]), (unsigned char *)tok, (size_t)n,
             mac, &maclen);
        char m64[64];
        b64url(mac, maclen, m64, sizeof m64);
        snprintf(tok + n, sizeof tok - (size_t)n, ".%s", m64);
        assert_int_equal(verify(f, tok, ISSUER, &cl), OIDC_ERR_ALGORITHM);
    }
    /* RS512 by the right key is still refused: RS256 only */
    char *t = sign_rs256(f->key, "{\"alg\":\"RS512\",\"kid\":\"k1\"}", pl);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_ALGORITHM);
    free(t);
}

static void missing_claims_and_junk_are_refused(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    const char *without[] = {
        "{\"aud\":\"" CLIENT "\",\"sub\":\"1\",\"nonce\":\"" NONCE "\",\"iat\":%ld,\"exp\":%ld}",
        "{\"iss\":\"" ISSUER "\",\"sub\":\"1\",\"nonce\":\"" NONCE "\",\"iat\":%ld,\"exp\":%ld}",
        "{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"nonce\":\"" NONCE
        "\",\"iat\":%ld,\"exp\":%ld}",
        "{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"sub\":\"1\",\"nonce\":\"" NONCE
        "\",\"iat\":%ld,\"x\":%ld}",
        "{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"sub\":\"1\",\"nonce\":\"" NONCE
        "\",\"x\":%ld,\"exp\":%ld}",
    };
    for (size_t i = 0; i < sizeof without / sizeof *without; i++) {
        snprintf(pl, sizeof pl, without[i], NOW, NOW + 3600);
        char *t = sign_rs256(f->key, HDR_K1, pl);
        assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_CLAIMS);
        free(t);
    }
    snprintf(pl, sizeof pl,
             "{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT
             "\",\"sub\":\"1\",\"iat\":%ld,\"exp\":%ld}",
             NOW, NOW + 3600);
    char *t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_NONCE);
    free(t);
    t = sign_rs256(f->key, HDR_K1, "[1,2,3]");
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_MALFORMED);
    free(t);
    assert_int_equal(verify(f, "", ISSUER, &cl), OIDC_ERR_MALFORMED);
    assert_int_equal(verify(f, "a.b", ISSUER, &cl), OIDC_ERR_MALFORMED);
    assert_int_equal(verify(f, "a.b.c.d", ISSUER, &cl), OIDC_ERR_MALFORMED);
    assert_int_equal(verify(f, "a b.c.d", ISSUER, &cl), OIDC_ERR_MALFORMED);
    /* no kid in the header */
    t = sign_rs256(f->key, "{\"alg\":\"RS256\"}",
                   google_payload(pl, sizeof pl, ISSUER, CLIENT, NOW + 3600, NOW, NONCE));
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_UNKNOWN_KEY);
    free(t);
}

static void oversized_token_is_refused(void **state)
{
    struct fixture *f = *state;
    struct oidc_claims cl;
    size_t n = OIDC_MAX_TOKEN + 100;
    char *t = malloc(n + 1);
    memset(t, 'A', n);
    t[100] = '.';
    t[200] = '.';
    t[n] = '\0';
    assert_int_equal(verify(f, t, ISSUER, &cl), OIDC_ERR_TOO_LARGE);
    assert_int_equal(f->fetches, 0); /* refused before anything else */
    free(t);
}

static void microsoft_issuer_follows_the_tokens_tenant(void **state)
{
    struct fixture *f = *state;
    char pl[1024];
    struct oidc_claims cl;
    const char *fmt = "{\"iss\":\"https://login.example.test/%s/v2.0\",\"aud\":\"" CLIENT
                      "\",\"tid\":\"%s\",\"oid\":\"oid-1\",\"sub\":\"pairwise\","
                      "\"preferred_username\":\"Jane@District.example\",\"nonce\":\"" NONCE
                      "\",\"iat\":%ld,\"exp\":%ld,\"ver\":\"2.0\"}";
    snprintf(pl, sizeof pl, fmt, TENANT_A, TENANT_A, NOW, NOW + 3600);
    char *t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, MS_ISS, &cl), OIDC_OK);
    assert_string_equal(cl.tid, TENANT_A);
    assert_string_equal(cl.oid, "oid-1");
    assert_string_equal(cl.preferred_username, "Jane@District.example");
    free(t);
    /* issued by another directory than the one the token names */
    snprintf(pl, sizeof pl, fmt, "99999999-2222-3333-4444-555555555555", TENANT_A, NOW, NOW + 3600);
    t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, MS_ISS, &cl), OIDC_ERR_ISSUER);
    free(t);
    /* no tid at all, or one that would rewrite the URL */
    snprintf(pl, sizeof pl, fmt, "x", "a/b", NOW, NOW + 3600);
    t = sign_rs256(f->key, HDR_K1, pl);
    assert_int_equal(verify(f, t, MS_ISS, &cl), OIDC_ERR_ISSUER);
    free(t);
}

static int serve_doc(void *ctx, const char *url, struct buf *out, char *err, size_t errlen)
{
    (void)url;
    (void)err;
    (void)errlen;
    buf_reset(out);
    return buf_appends(out, ctx);
}

static void discovery_and_jwks_documents_are_bounded(void **state)
{
    (void)state;
    char err[256];
    struct oidc_discovery d;
    const char *doc = "{\"issuer\":\"https://accounts.example.test\",\"authorization_endpoint\":"
                      "\"https://accounts.example.test/auth\",\"token_endpoint\":\"https://"
                      "oauth2.example.test/token\",\"jwks_uri\":\"https://keys.example.test/"
                      "certs\",\"response_types_supported\":[\"code\"]}";
    struct oidc_provider_opts o = {.discovery_url = "https://accounts.example.test/.well-known/"
                                                    "openid-configuration",
                                   .fetch = serve_doc,
                                   .fetch_ctx = (void *)doc};
    struct oidc_provider *p = oidc_provider_new(&o, err, sizeof err);
    assert_non_null(p);
    assert_int_equal(oidc_provider_discovery(p, &d, err, sizeof err), OIDC_OK);
    assert_string_equal(d.token_endpoint, "https://oauth2.example.test/token");
    assert_string_equal(d.jwks_uri, "https://keys.example.test/certs");
    /* a JWKS with too many keys, none usable, or not JSON */
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_appends(&b, "{\"keys\":["), 0);
    for (int i = 0; i <= OIDC_MAX_KEYS; i++)
        assert_int_equal(buf_appendf(&b, "%s{\"kty\":\"RSA\",\"kid\":\"%d\"}", i ? "," : "", i), 0);
    assert_int_equal(buf_appends(&b, "]}"), 0);
    assert_int_equal(oidc_provider_set_jwks(p, b.data, b.len, err, sizeof err), OIDC_ERR_TOO_LARGE);
    buf_free(&b);
    assert_int_equal(oidc_provider_set_jwks(p, "{\"keys\":[]}", 11, err, sizeof err),
                     OIDC_ERR_DOCUMENT);
    assert_int_equal(oidc_provider_set_jwks(p, "nope", 4, err, sizeof err), OIDC_ERR_DOCUMENT);
    oidc_provider_destroy(p);
    /* a document without a token endpoint, or with a non-http one */
    assert_int_equal(oidc_discovery_parse("{\"issuer\":\"https://a\"}", 21, &d, err, sizeof err),
                     OIDC_ERR_DOCUMENT);
    const char *js = "{\"issuer\":\"https://a\",\"authorization_endpoint\":\"javascript:x\","
                     "\"token_endpoint\":\"https://t\",\"jwks_uri\":\"https://k\"}";
    assert_int_equal(oidc_discovery_parse(js, strlen(js), &d, err, sizeof err), OIDC_ERR_DOCUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(valid_token_gives_its_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(tampered_tokens_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_kid_refreshes_once_a_minute, setup, teardown),
        cmocka_unit_test_setup_teardown(rotated_key_is_fetched, setup, teardown),
        cmocka_unit_test_setup_teardown(time_claims_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(audience_issuer_and_nonce_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(algorithms_other_than_rs256_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_claims_and_junk_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_token_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(microsoft_issuer_follows_the_tokens_tenant, setup,
                                        teardown),
        cmocka_unit_test(discovery_and_jwks_documents_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
