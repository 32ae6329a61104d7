/* outbox: see outbox.h. */
#include "outbox.h"

#include "buf.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs of the parameters (pg_type.h is server-side only). */
#define OID_TEXT  25
#define OID_BYTEA 17
#define OID_UUID  2950

#define PARAMS_PER_ROW 5

struct outbox_batch {
    struct outbox_row *rows;
    size_t n, cap;
};

struct outbox_batch *outbox_batch_new(void)
{
    return calloc(1, sizeof(struct outbox_batch));
}

static void row_free(struct outbox_row *row)
{
    free(row->tenant);
    free(row->event_id);
    free(row->topic);
    free(row->key);
    free(row->payload);
}

void outbox_batch_clear(struct outbox_batch *b)
{
    for (size_t i = 0; b && i < b->n; i++)
        row_free(&b->rows[i]);
    if (b)
        b->n = 0;
}

void outbox_batch_free(struct outbox_batch *b)
{
    if (!b)
        return;
    outbox_batch_clear(b);
    free(b->rows);
    free(b);
}

size_t outbox_batch_count(const struct outbox_batch *b)
{
    return b ? b->n : 0;
}

const struct outbox_row *outbox_batch_row(const struct outbox_batch *b, size_t i)
{
    return b && i < b->n ? &b->rows[i] : NULL;
}

int outbox_batch_add(struct outbox_batch *b, const Envelope *env, const char *topic,
                     const char *key, char *err, size_t errlen)
{
    struct outbox_row row = {0};
    if (!env || !env->tenant_id || !*env->tenant_id || !env->event_id || !*env->event_id ||
        !topic || !key) {
        snprintf(err, errlen, "outbox row: the envelope has no tenant or event id");
        return -1;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct outbox_row *grown = realloc(b->rows, cap * sizeof *grown);
        if (!grown)
            goto oom;
        b->rows = grown;
        b->cap = cap;
    }
    row.payload = events_pack(env, &row.payload_len);
    row.tenant = strdup(env->tenant_id);
    row.event_id = strdup(env->event_id);
    row.topic = strdup(topic);
    row.key = strdup(key);
    if (!row.payload || !row.tenant || !row.event_id || !row.topic || !row.key)
        goto oom;
    b->rows[b->n++] = row;
    return 0;
oom:
    row_free(&row);
    snprintf(err, errlen, "out of memory building an outbox row");
    return -1;
}

int outbox_batch_add_entity(struct outbox_batch *b, const Envelope *env, const char *topic,
                            const char *entity_id, char *err, size_t errlen)
{
    struct buf key;
    int rc = -1;
    buf_init(&key, 0);
    if (!env || !env->tenant_id || !entity_id) {
        snprintf(err, errlen, "outbox row: no tenant or entity id for the key");
        goto out;
    }
    if (buf_appendf(&key, "%s/%s", env->tenant_id, entity_id)) {
        snprintf(err, errlen, "out of memory building an outbox row");
        goto out;
    }
    rc = outbox_batch_add(b, env, topic, key.data, err, errlen);
out:
    buf_free(&key);
    return rc;
}

/* INSERT of rows [from, from + n) as one statement with binary payloads. */
static int write_rows(const struct outbox_batch *b, size_t from, size_t n, PGconn *pg,
                      PGresult **failed, char *err, size_t errlen)
{
    int rc = -1;
    size_t np = n * PARAMS_PER_ROW;
    struct buf sql;
    PGresult *res = NULL;
    Oid *types = calloc(np, sizeof *types);
    const char **values = calloc(np, sizeof *values);
    int *lengths = calloc(np, sizeof *lengths), *formats = calloc(np, sizeof *formats);
    buf_init(&sql, 0);
    if (!types || !values || !lengths || !formats ||
        buf_appends(&sql, "INSERT INTO outbox (tenant_id, event_id, topic, msg_key, payload)"
                          " VALUES "))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct outbox_row *row = &b->rows[from + i];
        size_t p = i * PARAMS_PER_ROW;
        /* a VALUES list is read in its order, so outbox_id grows in the order of the batch */
        if (buf_appendf(&sql, "%s($%zu, $%zu, $%zu, $%zu, $%zu)", i ? ", " : "", p + 1, p + 2,
                        p + 3, p + 4, p + 5))
            goto oom;
        const char *text[] = {row->tenant, row->event_id, row->topic, row->key};
        const Oid oid[] = {OID_TEXT, OID_UUID, OID_TEXT, OID_TEXT};
        for (size_t k = 0; k < 4; k++) {
            types[p + k] = oid[k];
            values[p + k] = text[k];
        }
        types[p + 4] = OID_BYTEA;
        values[p + 4] = (const char *)row->payload;
        lengths[p + 4] = (int)row->payload_len;
        formats[p + 4] = 1; /* binary: the bytes themselves, no hex or base64 on the way */
    }
    res = PQexecParams(pg, sql.data, (int)np, types, values, lengths, formats, 0);
    if (!pgx_ok(res, PGRES_COMMAND_OK, err, errlen)) {
        if (failed) {
            *failed = res;
            res = NULL;
        }
        goto out;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory writing the outbox");
out:
    PQclear(res);
    buf_free(&sql);
    free(types);
    free(values);
    free(lengths);
    free(formats);
    return rc;
}

int outbox_batch_write(struct outbox_batch *b, PGconn *pg, PGresult **failed, char *err,
                       size_t errlen)
{
    if (failed)
        *failed = NULL;
    for (size_t from = 0; from < b->n; from += OUTBOX_ROWS_PER_STATEMENT) {
        size_t n =
            b->n - from < OUTBOX_ROWS_PER_STATEMENT ? b->n - from : OUTBOX_ROWS_PER_STATEMENT;
        if (write_rows(b, from, n, pg, failed, err, errlen))
            return -1;
    }
    outbox_batch_clear(b);
    return 0;
}

int outbox_write(PGconn *pg, const Envelope *env, const char *topic, const char *key,
                 PGresult **failed, char *err, size_t errlen)
{
    int rc = -1;
    struct outbox_batch *b = outbox_batch_new();
    if (failed)
        *failed = NULL;
    if (!b) {
        snprintf(err, errlen, "out of memory writing the outbox");
        goto out;
    }
    if (outbox_batch_add(b, env, topic, key, err, errlen) ||
        outbox_batch_write(b, pg, failed, err, errlen))
        goto out;
    rc = 0;
out:
    outbox_batch_free(b);
    return rc;
}
