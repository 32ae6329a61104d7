/* Fuzz target: a Microsoft Graph /users or /users/delta page as azure-sync processes it. The
 * first byte picks full or delta mapping and the HTTP status; the rest is the body. The body
 * goes through the error classification (graph_error, http_classify_default, graph_failure,
 * graph_delta_expired) and, parsed, every entry of "value" through the mapping table
 * (full or partial), as the fetcher's own graph_entry_read() reads each entry. */
#include "fuzz_common.h"
#include "graph.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_first_call();
    if (size < 1)
        return 0;
    int delta = data[0] & 1;
    long status = fuzz_status(data[0] >> 1);
    struct buf body;
    if (fuzz_buf(&body, data + 1, size - 1)) {
        buf_free(&body);
        return 0;
    }
    char msg[512];
    (void)http_classify_default(status, &body, NULL);
    (void)graph_failure(status, &body, msg, sizeof msg);
    (void)graph_delta_expired(status, &body);
    const char *code = NULL, *message = NULL;
    json_t *err = graph_error(&body, &code, &message);
    if (err && (!code || !message))
        abort();
    json_decref(err);

    json_t *page = pjson_parse(body.data ? body.data : "", body.len, NULL, 0);
    json_t *value = page ? json_object_get(page, "value") : NULL;
    if (json_is_array(value)) {
        size_t i;
        json_t *obj;
        json_array_foreach(value, i, obj)
        {
            /* the fetcher's own reading of an entry (graph_entry_read, as publish_value) */
            const char *id = NULL;
            Panel__V1__RemovalReason reason = PB_REMOVAL_REASON_UNSPECIFIED;
            int flags = -1;
            enum graph_entry kind = graph_entry_read(obj, delta, &id, &reason, &flags);
            if ((kind == GRAPH_ENTRY_OBJECT) != !json_object_get(obj, "@removed"))
                abort();
            if (kind != GRAPH_ENTRY_OBJECT && kind != GRAPH_ENTRY_IGNORED && !delta)
                abort(); /* a full listing never deletes by report */
            if (kind == GRAPH_ENTRY_REMOVED &&
                (!id || !*id || strlen(id) > FMAP_MAX_ID ||
                 (reason != PB_REMOVAL_REASON_DELETED && reason != PB_REMOVAL_REASON_CHANGED)))
                abort(); /* an ObjectRemoved needs a usable id and a known reason */
            if (kind != GRAPH_ENTRY_OBJECT)
                continue;
            char why[256];
            struct fmap_stats st = {0};
            fuzz_consume_message(fmap_map(&graph_user_spec, obj, flags, &st, why, sizeof why));
        }
    }
    (void)pjson_str(page, "@odata.nextLink");
    (void)pjson_str(page, "@odata.deltaLink");
    json_decref(page);
    buf_free(&body);
    return 0;
}
