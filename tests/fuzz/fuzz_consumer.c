/* Fuzz target: what the merger's consumer does with one message from panel.source.events
 * (services/merger/intake.h, dlq.h) — the verdict on the value's bytes (apply, undecodable,
 * invalid), the dead letter's reason and headers, and the failure bookkeeping a batch of
 * such messages goes through. Input: a flags byte, the partition (4 bytes) and offset
 * (8 bytes, little-endian), then the message's value; the flags' low six bits are the batch
 * size less one (envelope_seeds.py writes seeds). */
#include "dlq.h"
#include "fuzz_common.h"
#include "intake.h"

#define PREFIX 13
/* The source topic's partitions, as the consumer would have learned them. */
#define FUZZ_TOPIC_PARTITIONS 16

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The reason travels in a Kafka header and a PostgreSQL text column: fixed printable text. */
static void check_reason(const char *why, size_t whylen)
{
    size_t n = strnlen(why, whylen);
    if (n == 0 || n == whylen)
        abort();
    for (size_t i = 0; i < n; i++)
        if (why[i] < 0x20 || why[i] > 0x7e)
            abort();
}

static void check_headers(int32_t partition, int64_t offset, const char *why)
{
    struct dlq_headers h;
    dlq_headers_fill(&h, partition, offset, why);
    if (strcmp(h.name[0], "x-panel-dlq-reason") || strcmp(h.name[1], "x-panel-dlq-partition") ||
        strcmp(h.name[2], "x-panel-dlq-offset"))
        abort();
    if (h.value[0] != why || h.len[0] != strlen(why))
        abort();
    /* the origin reads back exactly */
    char *end = NULL;
    if (strtoll(h.value[1], &end, 10) != partition || *end || h.len[1] != strlen(h.value[1]))
        abort();
    if (strtoll(h.value[2], &end, 10) != offset || *end || h.len[2] != strlen(h.value[2]))
        abort();
}

/* Each byte of the value, read as one batch outcome, drives the failure bookkeeping of a
 * consumer taking at most cap events per batch. */
static void check_failures(size_t cap, const uint8_t *data, size_t size)
{
    struct intake_failures f = {0};
    for (size_t i = 0; i < size && i < 256; i++) {
        uint8_t b = data[i];
        enum apply_result ar = (b & 3) == 0 ? APPLY_OK : (b & 3) == 1 ? APPLY_FENCED : APPLY_ERROR;
        bool db_up = b & 4, timed_out = b & 8;
        size_t n = intake_batch_limit(&f, cap);
        if (n != (f.isolate ? 1 : cap))
            abort();
        if (ar == APPLY_OK) {
            intake_applied(&f, n);
            if (f.fails != 0)
                abort();
            continue;
        }
        struct intake_failures before = f;
        enum intake_next next = intake_failed(&f, ar, db_up, timed_out, n);
        bool counted = ar == APPLY_ERROR && db_up && !timed_out;
        if (!counted && next != INTAKE_RETRY && !(ar == APPLY_ERROR && db_up))
            abort(); /* an outage or a fenced batch never isolates or dead-letters */
        if (!counted && next == INTAKE_RETRY &&
            (f.fails != before.fails || f.isolate != before.isolate))
            abort();
        if (next == INTAKE_ISOLATE && (n < 2 || f.isolate != n || f.fails != 0))
            abort();
        if (next == INTAKE_DEAD_LETTER) {
            if (n != 1 || f.fails < INTAKE_DEAD_AFTER)
                abort();
            if (b & 0x10) { /* the dead letter went out: back to normal */
                intake_dead_lettered(&f);
                if (f.fails != 0 || f.isolate > before.isolate)
                    abort();
            }
        }
        if (n > 1 && f.fails >= INTAKE_ISOLATE_AFTER)
            abort(); /* a failing batch is split at the third counted failure */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fuzz_first_call();
    if (size < PREFIX)
        return 0;
    int32_t partition = (int32_t)(uint32_t)le(data + 1, 4);
    int64_t offset = (int64_t)le(data + 5, 8);
    const uint8_t *value = data + PREFIX;
    size_t len = size - PREFIX;
    Envelope *env = (Envelope *)&env; /* must be overwritten */
    char why[256];
    memset(why, 'x', sizeof why);
    enum intake_verdict v =
        intake_check(len ? value : NULL, len, FUZZ_TOPIC_PARTITIONS, &env, why, sizeof why);
    switch (v) {
    case INTAKE_APPLY:
        if (!env || why[0] != '\0')
            abort();
        break;
    case INTAKE_UNDECODABLE:
        if (env)
            abort();
        check_reason(why, sizeof why);
        break;
    case INTAKE_INVALID: {
        if (!env)
            abort();
        check_reason(why, sizeof why);
        /* the verdict is the validation's: the same envelope fails it again */
        char again[256];
        if (apply_validate(env, FUZZ_TOPIC_PARTITIONS, again, sizeof again) == 0 ||
            strcmp(again, why))
            abort();
        break;
    }
    default:
        abort();
    }
    if (v != INTAKE_APPLY)
        check_headers(partition, offset, why);
    events_free(env);
    check_failures(1 + (data[0] & 0x3f), value, len);
    return 0;
}
