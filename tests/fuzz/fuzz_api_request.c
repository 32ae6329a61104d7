/* Fuzz target: the api's request parsing (services/api/params.c, people.c). The input is
 * used as a raw query string (strict parameter check, string/limit/bool/date/enum readers),
 * as a cursor (HMAC-signed keyset: a forged or edited one must be refused, never decoded),
 * as a search term turned into a LIKE pattern, and as a JSON body. A cursor the api encodes
 * itself must decode to the same values. */
#include "fuzz_common.h"
#include "ids.h"
#include "json.h"
#include "params.h"
#include "people.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_first_call()) {
        static const unsigned char key[32] = "fuzz-cursor-key-0123456789abcdef";
        params_cursor_key(key);
    }
    char *q = fuzz_cstr(data, size);
    if (!q)
        return 0;
    char msg[256], out[PARAMS_MAX_VALUE], date[11];
    static const char *const allowed[] = {"limit",  "cursor",        "q",      "email",
                                          "status", "updated_since", "source", NULL};
    static const char *const choices[] = {"active", "removed", "all", NULL};
    long limit = 0;
    bool b = false;
    (void)params_check(q, allowed, msg, sizeof msg);
    (void)params_str(q, "q", out, sizeof out, msg, sizeof msg);
    if (params_limit(q, 50, 1000, &limit, msg, sizeof msg) == 0 && (limit < 1 || limit > 1000))
        abort(); /* the header promises [1, max] */
    (void)params_bool(q, "include_removed", &b, msg, sizeof msg);
    if (params_date(q, "due", date, msg, sizeof msg) == 0 && !params_is_date(date))
        abort();
    (void)params_enum(q, "status", choices, out, sizeof out, msg, sizeof msg);
    (void)params_is_timestamp(q);
    (void)ids_uuid_valid(q);
    (void)ids_utf8_valid(q, size);

    /* Any input as a cursor: with one, two or three keys, for two scopes. */
    char vals[PARAMS_CURSOR_KEYS][PARAMS_CURSOR_MAX];
    for (int n = 1; n <= PARAMS_CURSOR_KEYS; n++)
        (void)params_cursor_decode("people", q, n, vals, msg, sizeof msg);
    /* Our own cursor round-trips and is refused for another scope. */
    if (size < 600 && !memchr(q, 0x1f, size) && strlen(q) == size) {
        const char *keys[2] = {q, "0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"};
        char cur[PARAMS_CURSOR_MAX * 2];
        if (params_cursor_encode("people", keys, 2, cur, sizeof cur) == 0) {
            if (params_cursor_decode("people", cur, 2, vals, msg, sizeof msg) != 0 ||
                strcmp(vals[0], q) != 0 || strcmp(vals[1], keys[1]) != 0)
                abort();
            if (params_cursor_decode("assets", cur, 2, vals, msg, sizeof msg) == 0)
                abort(); /* a cursor of one route is no cursor of another */
        }
    }
    char pattern[PARAMS_MAX_VALUE * 2 + 8];
    (void)people_like_pattern(q, pattern, sizeof pattern);
    json_t *body = pjson_parse((const char *)data, size, NULL, 0);
    json_decref(body);
    free(q);
    return 0;
}
