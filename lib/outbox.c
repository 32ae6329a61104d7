/* outbox: see outbox.h. */
#include "outbox.h"

#include "buf.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rows go as one binary COPY per OUTBOX_ROWS_PER_STATEMENT rows: PostgreSQL reads them in
 * order (outbox_id, a serial, grows in the order of the batch) and parses no statement text
 * or JSON per row. */
#define OUTBOX_COPY_SQL                                                                            \
    "COPY outbox (tenant_id, event_id, topic, msg_key, payload) FROM STDIN (FORMAT binary)"
#define OUTBOX_FIELDS 5

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

/* One COPY of rows [from, from + n). */
static int write_rows(const struct outbox_batch *b, size_t from, size_t n, struct pgx_copy *copy,
                      PGconn *pg, PGresult **failed, char *err, size_t errlen)
{
    pgx_copy_reset(copy);
    for (size_t i = 0; i < n; i++) {
        const struct outbox_row *row = &b->rows[from + i];
        if (pgx_copy_row(copy, OUTBOX_FIELDS) || pgx_copy_text(copy, row->tenant) ||
            pgx_copy_uuid(copy, row->event_id) || pgx_copy_text(copy, row->topic) ||
            pgx_copy_text(copy, row->key) || pgx_copy_bytes(copy, row->payload, row->payload_len)) {
            snprintf(err, errlen, "outbox row of event %s: not a uuid, or out of memory",
                     row->event_id);
            return -1;
        }
    }
    return pgx_copy_send(pg, OUTBOX_COPY_SQL, copy, failed, err, errlen);
}

int outbox_batch_write(struct outbox_batch *b, PGconn *pg, PGresult **failed, char *err,
                       size_t errlen)
{
    int rc = -1;
    struct pgx_copy copy;
    if (failed)
        *failed = NULL;
    pgx_copy_init(&copy, 0);
    for (size_t from = 0; from < b->n; from += OUTBOX_ROWS_PER_STATEMENT) {
        size_t n =
            b->n - from < OUTBOX_ROWS_PER_STATEMENT ? b->n - from : OUTBOX_ROWS_PER_STATEMENT;
        if (write_rows(b, from, n, &copy, pg, failed, err, errlen))
            goto out;
    }
    outbox_batch_clear(b);
    rc = 0;
out:
    pgx_copy_free(&copy);
    return rc;
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
