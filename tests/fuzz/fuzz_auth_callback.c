/* Fuzz target: the OAuth callback parameters as auth's callbacks read them. The input is a
 * raw query string; each parameter is read with httpd_param into buffers of the callbacks'
 * sizes and then through the checks that run before anything reaches the database or a
 * provider URL: the state's shape, the Microsoft tenant, the granted scopes, the admin e-mail
 * and tenant id checks and the service-secret header check. The body of a provider's token
 * reply (the same bytes, parsed as JSON) goes through the AADSTS classification. */
#include "callers.h"
#include "fuzz_common.h"
#include "google_oauth.h"
#include "httpd.h"
#include "ids.h"
#include "json.h"
#include "ms_consent.h"
#include "routes.h"
#include "states.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_first_call();
    char *q = fuzz_cstr(data, size);
    if (!q)
        return 0;
    char state[STATE_LEN_MAX], code[4096], error[256], scope[4096], consent[16], tenant[160],
        admin[320];
    if (httpd_param(q, "state", state, sizeof state) == 0)
        (void)states_well_formed(state);
    (void)httpd_param(q, "code", code, sizeof code);
    (void)httpd_param(q, "error", error, sizeof error);
    if (httpd_param(q, "scope", scope, sizeof scope) == 0) {
        const char *missing[GOOGLE_NSCOPES];
        size_t n = google_missing_scopes(scope, missing);
        if (n > GOOGLE_NSCOPES)
            abort();
    }
    (void)httpd_param(q, "admin_consent", consent, sizeof consent);
    if (httpd_param(q, "tenant", tenant, sizeof tenant) == 0) {
        (void)ids_directory_valid(tenant);
        (void)ids_tenant_valid(tenant);
    }
    if (httpd_param(q, "admin", admin, sizeof admin) == 0)
        (void)ids_email_valid(admin);
    (void)ids_tenant_valid(q);
    (void)ids_email_valid(q);
    static struct callers *callers;
    if (!callers)
        callers = callers_new("FUZZ", "api:service-secret-of-the-api", CALLER_API, NULL, 0);
    (void)callers_identify(callers, q);
    callers_destroy(callers_new("FUZZ", q, CALLER_API | CALLER_GOOGLE_SYNC, NULL, 0));
    (void)states_well_formed(q);
    json_t *reply = pjson_parse((const char *)data, size, NULL, 0);
    (void)ms_classify_error(400, reply);
    (void)ms_classify_error(401, reply);
    json_decref(reply);
    free(q);
    return 0;
}
