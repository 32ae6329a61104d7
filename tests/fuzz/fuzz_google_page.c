/* Fuzz target: a Google Directory API page as google-sync processes it. The first byte picks
 * the listing (org units, users, devices) and the HTTP status; the rest is the body. The body
 * goes through the error classification (google_error, google_classify, google_failure,
 * google_invalid_input) and, parsed, every entry of the listing's array through the
 * listing's mapping table (fmap_map) and on to protobuf packing and JSON, as the run does;
 * the nextPageToken read from the raw body must be the parsed one. */
#include "fuzz_common.h"
#include "google.h"
#include "json.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_first_call();
    if (size < 1)
        return 0;
    static const struct {
        const struct fmap_spec *spec;
        const char *items;
    } listings[] = {
        {&google_orgunit_spec, "organizationUnits"},
        {&google_user_spec, "users"},
        {&google_device_spec, "chromeosdevices"},
    };
    unsigned sel = data[0] % 3;
    long status = fuzz_status(data[0] / 3u);
    struct buf body;
    if (fuzz_buf(&body, data + 1, size - 1)) {
        buf_free(&body);
        return 0;
    }
    char msg[512];
    (void)google_classify(status, &body, NULL);
    (void)google_failure(status, &body, msg, sizeof msg);
    (void)google_invalid_input(status, &body);
    const char *reason = NULL, *message = NULL;
    json_t *err = google_error(&body, &reason, &message);
    if (err && (!reason || !message))
        abort(); /* the header promises "" rather than NULL */
    json_decref(err);

    json_t *page = pjson_parse(body.data ? body.data : "", body.len, NULL, 0);
    json_t *items = page ? json_object_get(page, listings[sel].items) : NULL;
    if (json_is_array(items)) {
        size_t i;
        json_t *obj;
        json_array_foreach(items, i, obj)
        {
            char why[256];
            struct fmap_stats st = {0};
            fuzz_consume_message(
                fmap_map(listings[sel].spec, obj, FMAP_FULL, &st, why, sizeof why));
        }
    }
    /* The cursor read from the raw body (the next request goes out before the parse) is the
     * parsed page's whenever the body is a valid page. */
    const char *raw = NULL;
    size_t raw_len = 0;
    int found = pjson_scan_member_string(body.data ? body.data : "", body.len, "nextPageToken",
                                         &raw, &raw_len);
    const char *token = pjson_str(page, "nextPageToken");
    if (found && json_is_object(page) &&
        (!token || strlen(token) != raw_len || memcmp(token, raw, raw_len) != 0))
        abort();
    json_decref(page);
    buf_free(&body);
    return 0;
}
