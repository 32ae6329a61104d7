/* apply_people: see apply_people.h. */
#include "apply_people.h"
#include "apply_ctx.h"
#include "buf.h"
#include "crypto.h"
#include "ids.h"
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEOPLE_SEEN_CTE ACTX_RUN_SEEN_CTE("person", "d")

static int person_event(struct actx *c, const char *tenant, const char *run, const char *person_id,
                        const struct merge_person *mp, int64_t version, Panel__V1__ChangeKind kind,
                        const json_t *changed)
{
    int rc = -1;
    char id[EVENTS_ID_LEN], perr[256];
    Envelope env;
    Panel__V1__PersonChanged pc = PANEL__V1__PERSON_CHANGED__INIT;
    Panel__V1__MergedPerson m = PANEL__V1__MERGED_PERSON__INIT;
    size_t nprov = json_object_size(mp->provenance), nsrc = json_array_size(mp->sources);
    size_t nch;
    Panel__V1__FieldSource *fs = calloc(nprov ? nprov : 1, sizeof *fs);
    Panel__V1__FieldSource **fsp = calloc(nprov ? nprov : 1, sizeof *fsp);
    Panel__V1__Source *srcs = calloc(nsrc ? nsrc : 1, sizeof *srcs);
    char **ch = events_strings_from_json(changed, &nch);
    ProtobufCMessage *fields =
        events_from_json_value(&panel__v1__person__descriptor, mp->fields, perr, sizeof perr);
    if (!fs || !fsp || !srcs || !ch || !fields) {
        snprintf(c->err, c->errlen, "building PersonChanged: %s", fields ? "out of memory" : perr);
        goto out;
    }
    if (events_envelope_init(&env, id, tenant, PB_SOURCE_PANEL, run))
        goto out;
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(mp->provenance, key, v)
    {
        panel__v1__field_source__init(&fs[i]);
        fs[i].field = (char *)key;
        fs[i].has_source = 1;
        fs[i].source = events_source_from_str(json_string_value(v));
        fsp[i] = &fs[i];
        i++;
    }
    for (i = 0; i < nsrc; i++)
        srcs[i] = events_source_from_str(json_string_value(json_array_get(mp->sources, i)));
    m.person_id = (char *)person_id;
    m.fields = (Panel__V1__Person *)fields;
    m.n_provenance = nprov;
    m.provenance = fsp;
    m.n_sources = nsrc;
    m.sources = srcs;
    m.has_removed = 1;
    m.removed = mp->removed;
    m.has_version = 1;
    m.version = version;
    pc.has_kind = 1;
    pc.kind = kind;
    pc.person = &m;
    pc.n_changed_fields = nch;
    pc.changed_fields = ch;
    env.payload_case = PB_PAYLOAD_PERSON_CHANGED;
    env.person_changed = &pc;
    rc = actx_outbox_add(c, &env, TOPIC_PEOPLE_EVENTS, person_id);
out:
    if (fields)
        protobuf_c_message_free_unpacked(fields, NULL);
    free(fs);
    free(fsp);
    free(srcs);
    free(ch);
    return rc;
}

/* Merge one Person from its Google and Azure rows (either NULL); when the result differs from
 * what is stored (old fields, removed flag, sources as PostgreSQL prints text[], version; 0 =
 * a Person not created yet), append its new row to upd and its event to the outbox.
 * unsuspended: one of its rows came back from an Azure soft delete (a restored account). */
static int remerge_one(struct actx *c, const char *tenant, const char *pid, const char *run,
                       const json_t *old, const json_t *g, const json_t *a, bool was_removed,
                       bool unsuspended, int64_t version, const char *old_sources, json_t *upd)
{
    struct merge_person mp;
    json_t *changed = NULL;
    if (merge_person_compute(g, a, &mp)) {
        snprintf(c->err, c->errlen, "out of memory merging a person");
        return -1;
    }
    /* '{google,azure}' as PostgreSQL prints text[] vs JSON ["google","azure"] */
    char pgsrcs[64] = "{";
    for (size_t k = 0; k < json_array_size(mp.sources); k++) {
        size_t l = strlen(pgsrcs);
        snprintf(pgsrcs + l, sizeof pgsrcs - l, "%s%s", k ? "," : "",
                 json_string_value(json_array_get(mp.sources, k)));
    }
    size_t l = strlen(pgsrcs);
    snprintf(pgsrcs + l, sizeof pgsrcs - l, "}");
    bool same = version > 0 && json_equal((json_t *)old, mp.fields) && was_removed == mp.removed &&
                old_sources && strcmp(pgsrcs, old_sources) == 0;
    int rc = 0;
    if (!same && !(version == 0 && mp.removed)) {
        Panel__V1__ChangeKind kind = version == 0                 ? PB_CHANGE_KIND_CREATED
                                     : mp.removed                 ? PB_CHANGE_KIND_REMOVED
                                     : was_removed || unsuspended ? PB_CHANGE_KIND_RESTORED
                                                                  : PB_CHANGE_KIND_UPDATED;
        changed = merge_changed_fields(mp.removed ? mp.fields : old, mp.fields);
        if (mp.removed) { /* the shown values stay on the tombstone */
            json_decref(mp.fields);
            mp.fields = old ? json_deep_copy(old) : json_object();
            json_decref(mp.provenance);
            mp.provenance = json_object();
        }
        const char *email = json_string_value(json_object_get(mp.fields, "email_normalized"));
        const char *dn = json_string_value(json_object_get(mp.fields, "display_name"));
        json_t *row = json_pack("{s:s,s:s,s:s?,s:s,s:s?,s:s?,s:s?,s:b,s:O,s:O,s:O,s:b,s:I}", "t",
                                tenant, "p", pid, "e", email, "dn", dn ? dn : "", "gn",
                                json_string_value(json_object_get(mp.fields, "given_name")), "fn",
                                json_string_value(json_object_get(mp.fields, "family_name")), "ou",
                                json_string_value(json_object_get(mp.fields, "org_unit_path")),
                                "susp", json_is_true(json_object_get(mp.fields, "suspended")), "f",
                                mp.fields, "prov", mp.provenance, "src", mp.sources, "rm",
                                mp.removed, "v", (json_int_t)(version + 1));
        if (!row || !changed || json_array_append_new(upd, row) ||
            person_event(c, tenant, run, pid, &mp, version + 1, kind, changed)) {
            if (!*c->err)
                snprintf(c->err, c->errlen, "out of memory merging a person");
            rc = -1;
        }
    }
    json_decref(changed);
    merge_person_clear(&mp);
    return rc;
}

int people_queue_remerge(json_t *persons, const char *tenant, const char *pid, const char *run,
                         bool unsuspended)
{
    return json_array_append_new(persons,
                                 json_pack("{s:s,s:s,s:s?,s:b}", "tenant_id", tenant, "person_id",
                                           pid, "run_id", run, "unsuspended", unsuspended));
}

/* Recompute the People in persons (people_queue_remerge) from their live source rows;
 * write the ones that changed and their outbox rows. */
int people_remerge(struct actx *c, json_t *persons)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *upd = json_array();
    if (json_array_size(persons) == 0) {
        rc = 0;
        goto out;
    }
    r = actx_query_json(
        c,
        "SELECT p.tenant_id, p.person_id, p.fields, p.removed_at IS NOT NULL, p.version,"
        " x.run_id, g.fields, a.fields,"
        " p.sources::text, x.unsuspended, g.suspended_in_source, a.suspended_in_source"
        " FROM (SELECT tenant_id, person_id, min(run_id) AS run_id,"
        "  bool_or(coalesce(unsuspended, false)) AS unsuspended"
        "  FROM jsonb_to_recordset($1::jsonb) AS v(tenant_id text, person_id uuid, run_id text,"
        "  unsuspended boolean)"
        "  GROUP BY tenant_id, person_id) x"
        " JOIN people p ON p.tenant_id = x.tenant_id AND p.person_id = x.person_id"
        /* each cloud's live row; merge.c makes of it what the Person shows. Two live rows of
         * one cloud (an admin linked a second account): the smallest source id, bytewise,
         * whatever the database's collation — the same row in any order of arrival */
        " LEFT JOIN LATERAL (SELECT ps.fields, ps.suspended_in_source FROM person_sources ps"
        "  WHERE ps.tenant_id = p.tenant_id AND ps.person_id = p.person_id"
        "  AND ps.source = 'google' AND ps.removed_at IS NULL"
        "  ORDER BY ps.source_id COLLATE \"C\" LIMIT 1) g ON true"
        " LEFT JOIN LATERAL (SELECT ps.fields, ps.suspended_in_source FROM person_sources ps"
        "  WHERE ps.tenant_id = p.tenant_id AND ps.person_id = p.person_id"
        "  AND ps.source = 'azure' AND ps.removed_at IS NULL"
        "  ORDER BY ps.source_id COLLATE \"C\" LIMIT 1) a ON true"
        " ORDER BY p.tenant_id, p.person_id FOR UPDATE OF p",
        persons, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *old = col_json(r, i, 2), *g = col_json(r, i, 6), *a = col_json(r, i, 7);
        if ((col_bool(r, i, 10) && merge_source_suspended(g)) ||
            (col_bool(r, i, 11) && merge_source_suspended(a))) {
            snprintf(c->err, c->errlen, "out of memory merging a person");
            json_decref(old);
            json_decref(g);
            json_decref(a);
            goto out;
        }
        int e = remerge_one(c, col_str(r, i, 0), col_str(r, i, 1), col_str(r, i, 5), old, g, a,
                            col_bool(r, i, 3), col_bool(r, i, 9), col_i64(r, i, 4),
                            col_str(r, i, 8), upd);
        json_decref(old);
        json_decref(g);
        json_decref(a);
        if (e)
            goto out;
    }
    if (json_array_size(upd) > 0) {
        PGresult *u = actx_query_json(
            c,
            "UPDATE people p SET email_norm = CASE WHEN v.e IS NULL OR (NOT v.rm AND EXISTS"
            " (SELECT 1 FROM people o WHERE o.tenant_id = v.t AND o.email_norm = v.e"
            " AND o.removed_at IS NULL AND o.person_id <> v.p)) THEN p.email_norm ELSE v.e END,"
            " display_name = v.dn,"
            " given_name = v.gn, family_name = v.fn, org_unit_path = v.ou, suspended = v.susp,"
            " fields = v.f, provenance = v.prov,"
            " sources = ARRAY(SELECT jsonb_array_elements_text(v.src)),"
            " removed_at = CASE WHEN v.rm THEN coalesce(p.removed_at, now()) END,"
            " version = v.v, updated_at = now()"
            " FROM jsonb_to_recordset($1::jsonb) AS v(t text, p uuid, e text, dn text, gn text,"
            " fn text, ou text, susp boolean, f jsonb, prov jsonb, src jsonb, rm boolean, v bigint)"
            " WHERE p.tenant_id = v.t AND p.person_id = v.p",
            upd, PGRES_COMMAND_OK);
        if (!u)
            goto out;
        c->rows_changed += strtol(PQcmdTuples(u), NULL, 10);
        PQclear(u);
    }
    rc = 0;
out:
    PQclear(r);
    json_decref(upd);
    return rc;
}

/* The i-th address row u links by ("e", then each of "alt") as the key "t\x1faddress" in k;
 * false when there is no such address. */
static bool row_address_key(const json_t *u, const char *t, size_t i, char *k, size_t klen)
{
    const json_t *a =
        i == 0 ? json_object_get(u, "e") : json_array_get(json_object_get(u, "alt"), i - 1);
    if (!json_is_string(a))
        return false;
    snprintf(k, klen, "%s\x1f%s", t, json_string_value(a));
    return true;
}

/* The new Person (an entry of people_link's newpeople) that a row of cloud s linking by
 * address list u's "e" and "alt" meets in this batch: one created for a row of the other
 * cloud that has one of these addresses (newaddr: "t\x1faddress" -> {"s","have"}). */
static json_t *new_person_by_address(const json_t *newaddr, const json_t *u, const char *t,
                                     const char *s)
{
    char k[700];
    for (size_t i = 0; i <= json_array_size(json_object_get(u, "alt")); i++) {
        json_t *hit = row_address_key(u, t, i, k, sizeof k) ? json_object_get(newaddr, k) : NULL;
        if (hit && strcmp(json_string_value(json_object_get(hit, "s")), s) != 0)
            return json_object_get(hit, "have");
    }
    return NULL;
}

/* Record the addresses of u (cloud s) as leading to the new Person have; the first row to
 * claim an address keeps it. -1 when out of memory. */
static int new_person_addresses_add(json_t *newaddr, const json_t *u, const char *t, const char *s,
                                    json_t *have)
{
    char k[700];
    for (size_t i = 0; i <= json_array_size(json_object_get(u, "alt")); i++) {
        if (!row_address_key(u, t, i, k, sizeof k) || json_object_get(newaddr, k))
            continue;
        json_t *v = json_pack("{s:s,s:O}", "s", s, "have", have);
        if (!v || json_object_set_new(newaddr, k, v))
            return -1;
    }
    return 0;
}

/* Link changed, unlinked source rows to People: by e-mail (and Azure's other addresses);
 * none -> a new Person; more than one -> an open match case, never a guess. Writes no link:
 * sets "p" (the Person) on each row of unlinked that gets one, appends existing People to
 * remerge to persons and new People to newpeople as {"t","p","e","r","google","azure"} (the
 * rows' new fields), which people_create inserts already merged. */
static int people_link(struct actx *c, json_t *unlinked, json_t *persons, json_t *newpeople)
{
    int rc = -1;
    PGresult *r = NULL, *r2 = NULL;
    json_t *newp = json_object(), *slim = json_array();
    json_t *cases = json_array(), *claimed = json_object(), *newaddr = json_object();
    if (json_array_size(unlinked) == 0) {
        rc = 0;
        goto out;
    }
    /* only what the candidate query reads (not the fields) */
    for (size_t k = 0; k < json_array_size(unlinked); k++) {
        json_t *u = json_array_get(unlinked, k);
        if (json_array_append_new(
                slim, json_pack("{s:O,s:O,s:O,s:O,s:O,s:O}", "i", json_object_get(u, "i"), "t",
                                json_object_get(u, "t"), "s", json_object_get(u, "s"), "id",
                                json_object_get(u, "id"), "e", json_object_get(u, "e"), "alt",
                                json_object_get(u, "alt")))) {
            snprintf(c->err, c->errlen, "out of memory linking people");
            goto out;
        }
    }
    r = actx_query_json(
        c,
        "WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(i int, t text, s text,"
        "  id text, e text, alt text[])),"
        " k AS (SELECT i, t, s, id, e FROM u"
        "  UNION SELECT u.i, u.t, u.s, u.id, a FROM u, unnest(u.alt) AS a),"
        /* live source rows that know any of the batch's addresses: one probe of index
         * person_sources_addresses with all of them (a per-key probe inside the join
         * probed once per row and key) */
        " c AS MATERIALIZED (SELECT ps.tenant_id, ps.source, ps.person_id, a.a"
        "  FROM person_sources ps, unnest(ps.addresses) AS a(a)"
        "  WHERE ps.removed_at IS NULL AND ps.addresses &&"
        "  (SELECT coalesce(array_agg(DISTINCT k.e) FILTER (WHERE k.e IS NOT NULL), '{}')"
        "  FROM k)),"
        /* a live Person whose shown address is one of the row's, or one whose other cloud's
         * row knows the address (an alias, a proxy address): either order of arrival
         * finds the same Person */
        " m AS (SELECT k.i, p.person_id FROM k JOIN people p ON p.tenant_id = k.t"
        "  AND p.email_norm = k.e AND p.removed_at IS NULL"
        "  UNION SELECT k.i, p.person_id FROM c JOIN k ON k.t = c.tenant_id"
        "  AND k.e = c.a AND k.s <> c.source"
        "  JOIN people p ON p.tenant_id = c.tenant_id AND p.person_id = c.person_id"
        "  AND p.removed_at IS NULL)"
        " SELECT u.i, coalesce(json_agg(DISTINCT m.person_id)"
        " FILTER (WHERE m.person_id IS NOT NULL), '[]'),"
        /* candidates that already have another live account of the same cloud */
        " coalesce(json_agg(DISTINCT m.person_id) FILTER (WHERE EXISTS (SELECT 1"
        "  FROM person_sources o WHERE o.tenant_id = u.t AND o.person_id = m.person_id"
        "  AND o.source = u.s AND o.source_id <> u.id AND o.removed_at IS NULL)), '[]')"
        " FROM u LEFT JOIN m ON m.i = u.i"
        " GROUP BY u.i, u.t, u.s, u.id ORDER BY u.i",
        slim, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *u = json_array_get(unlinked, col_index(r, i, 0));
        json_t *cand = col_json(r, i, 1), *taken = col_json(r, i, 2);
        const char *t = json_string_value(json_object_get(u, "t"));
        const char *e = json_string_value(json_object_get(u, "e"));
        const char *s = json_string_value(json_object_get(u, "s"));
        const char *id = json_string_value(json_object_get(u, "id"));
        const char *run = json_string_value(json_object_get(u, "r"));
        const char *pid = NULL, *why = NULL;
        char newid[EVENTS_ID_LEN], ck[700];
        if (!e) { /* no address known at all: it stays unlinked until one arrives */
            json_decref(cand);
            json_decref(taken);
            continue;
        }
        if (json_array_size(cand) == 1) {
            pid = json_string_value(json_array_get(cand, 0));
        } else if (json_array_size(cand) == 0) {
            /* One new Person per tenant and e-mail, so that Google's and Azure's rows arriving
             * in the same batch meet, also through an address of the other cloud's row (an
             * alias, a proxy address), as they would in two batches. */
            char gk[700];
            snprintf(gk, sizeof gk, "%s\x1f%s", t, e);
            json_t *have = json_object_get(newp, gk);
            if (!have)
                have = new_person_by_address(newaddr, u, t, s);
            if (have) {
                pid = json_string_value(json_object_get(have, "p"));
            } else {
                if (crypto_uuid(newid)) {
                    json_decref(cand);
                    json_decref(taken);
                    snprintf(c->err, c->errlen, "uuid generation failed");
                    goto out;
                }
                have = json_pack("{s:s,s:s,s:s,s:s?}", "t", t, "p", newid, "e", e, "r", run);
                if (!have || json_object_set_new(newp, gk, have) ||
                    json_array_append(newpeople, have) ||
                    new_person_addresses_add(newaddr, u, t, s, have)) {
                    json_decref(cand);
                    json_decref(taken);
                    snprintf(c->err, c->errlen, "out of memory linking people");
                    goto out;
                }
                pid = newid;
            }
        } else {
            why = "email matches more than one Person";
        }
        if (pid) {
            /* Two accounts of one cloud are never silently one Person. */
            snprintf(ck, sizeof ck, "%s\x1f%s\x1f%s", t, pid, s);
            if (json_array_size(taken) > 0 || json_object_get(claimed, ck)) {
                why = strcmp(s, "google") == 0
                          ? "email belongs to a Person that already has another google account"
                          : "email belongs to a Person that already has another azure account";
                json_t *only = json_pack("[s]", pid); /* pid may point into cand */
                json_decref(cand);
                cand = only;
                pid = NULL;
            } else {
                json_object_set_new(claimed, ck, json_true());
            }
        }
        if (why) {
            if (json_array_append_new(cases,
                                      json_pack("{s:s,s:s,s:s,s:O,s:s?,s:s}", "t", t, "s", s, "id",
                                                id, "c", cand, "r", run, "why", why))) {
                json_decref(cand);
                json_decref(taken);
                snprintf(c->err, c->errlen, "out of memory recording a match case");
                goto out;
            }
            actx_outcome_add(c, t, run, "person", s, id, e, "match_case", why);
            struct run_counts *rcnt = run ? actx_run_counts(c, t, run) : NULL;
            if (rcnt)
                rcnt->match_cases++;
        }
        json_decref(taken);
        if (pid) {
            char gk[700];
            snprintf(gk, sizeof gk, "%s\x1f%s", t, e);
            json_t *np = json_object_get(newp, gk);
            int fail = json_object_set_new(u, "p", json_string(pid));
            if (np && strcmp(json_string_value(json_object_get(np, "p")), pid) == 0) {
                /* a new Person: merged from the rows of this batch (a full row's fields are
                 * the ones sent; a changed delta's came back merged as "nf") */
                const char *merged = json_string_value(json_object_get(u, "nf"));
                json_t *nf = json_is_true(json_object_get(u, "isnew")) || !merged
                                 ? json_incref(json_object_get(u, "f"))
                                 : json_loads(merged, 0, NULL);
                fail = fail || !nf || json_object_set_new(np, s, nf);
            } else {
                fail = fail || people_queue_remerge(persons, t, pid, run, false);
            }
            if (fail) {
                json_decref(cand);
                snprintf(c->err, c->errlen, "out of memory linking people");
                goto out;
            }
        }
        json_decref(cand);
    }
    if (json_array_size(cases) > 0) {
        r2 = actx_query_json(
            c,
            "INSERT INTO match_cases (tenant_id, source, source_id, candidates, reason, run_id)"
            " SELECT v.t, v.s, v.id, ARRAY(SELECT jsonb_array_elements_text(v.c))::uuid[],"
            " v.why, v.r FROM jsonb_to_recordset($1::jsonb)"
            " AS v(t text, s text, id text, c jsonb, r uuid, why text)"
            " ON CONFLICT (tenant_id, source, source_id) WHERE status = 'open' DO NOTHING",
            cases, PGRES_COMMAND_OK);
        if (!r2)
            goto out;
        PQclear(r2);
        r2 = NULL;
    }
    rc = 0;
out:
    PQclear(r);
    json_decref(newp);
    json_decref(slim);
    json_decref(cases);
    json_decref(claimed);
    json_decref(newaddr);
    return rc;
}

/* Insert the new People of people_link, merged from their rows, with their CREATED events. */
static int people_create(struct actx *c, json_t *newpeople)
{
    int rc = -1;
    json_t *ins = json_array();
    for (size_t i = 0; i < json_array_size(newpeople); i++) {
        json_t *np = json_array_get(newpeople, i);
        size_t before = json_array_size(ins);
        if (remerge_one(c, json_string_value(json_object_get(np, "t")),
                        json_string_value(json_object_get(np, "p")),
                        json_string_value(json_object_get(np, "r")), NULL,
                        json_object_get(np, "google"), json_object_get(np, "azure"), false, false,
                        0, "{}", ins))
            goto out;
        /* the e-mail it was linked by (no live Person has it) */
        if (json_array_size(ins) > before)
            json_object_set(json_array_get(ins, before), "e", json_object_get(np, "e"));
    }
    if (json_array_size(ins) > 0) {
        PGresult *r = actx_query_json(
            c,
            "INSERT INTO people (tenant_id, person_id, email_norm, display_name,"
            " given_name, family_name, org_unit_path, suspended, fields, provenance,"
            " sources, version)"
            " SELECT v.t, v.p, v.e, v.dn, v.gn, v.fn, v.ou, v.susp, v.f, v.prov,"
            " ARRAY(SELECT jsonb_array_elements_text(v.src)), v.v"
            " FROM jsonb_to_recordset($1::jsonb) AS v(t text, p uuid, e text, dn text,"
            " gn text, fn text, ou text, susp boolean, f jsonb, prov jsonb, src jsonb,"
            " v bigint)",
            ins, PGRES_COMMAND_OK);
        if (!r)
            goto out;
        c->rows_changed += strtol(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    rc = 0;
out:
    json_decref(ins);
    return rc;
}

/* The e-mail addresses Azure gives besides the primary one that may link a row: mail and
 * SMTP proxy addresses (never otherMails). */
json_t *people_alt_emails(const Panel__V1__Person *p)
{
    json_t *alt = json_array();
    char norm[320];
    if (p->mail && ids_email_normalize(p->mail, norm, sizeof norm) == 0)
        json_array_append_new(alt, json_string(norm));
    for (size_t i = 0; p->proxy_addresses && i < p->proxy_addresses->n_values; i++) {
        const char *a = merge_smtp_address(p->proxy_addresses->values[i]);
        if (a && ids_email_normalize(a, norm, sizeof norm) == 0)
            json_array_append_new(alt, json_string(norm));
    }
    return alt;
}

/* The fields a cloud provided, as a JSON object (no source_id, no cleared_fields).
 * email_norm NULL: a delta observation that did not carry the address (the stored one stays). */
json_t *people_fields(const Panel__V1__Person *p, const char *email_norm)
{
    json_t *f = events_to_json_value(&p->base);
    if (f) {
        json_object_del(f, "source_id");
        json_object_del(f, "cleared_fields");
        if (email_norm)
            json_object_set_new(f, "email_normalized", json_string(email_norm));
        else {
            json_object_del(f, "email");
            json_object_del(f, "email_normalized");
        }
    }
    return f;
}

/* The rows the compare statement needs: keys, hash, run, and the fields only where SQL needs
 * them (a delta's, to combine with the stored ones, or a row the C side could not hash). A
 * no-change resync then sends a few dozen bytes per row instead of its fields. New reference,
 * NULL when out of memory. */
static json_t *compare_rows(const json_t *rows)
{
    json_t *out = json_array();
    for (size_t i = 0; out && i < json_array_size(rows); i++) {
        json_t *row = json_array_get(rows, i), *h = json_object_get(row, "h");
        json_t *delta = json_object_get(row, "delta");
        json_t *f = json_is_true(delta) || !h ? json_object_get(row, "f") : NULL;
        if (json_array_append_new(
                out, json_pack("{s:O,s:O,s:O,s:O,s:O*,s:O*,s:O,s:O,s:O}", "i",
                               json_object_get(row, "i"), "t", json_object_get(row, "t"), "s",
                               json_object_get(row, "s"), "id", json_object_get(row, "id"), "h", h,
                               "f", f, "r", json_object_get(row, "r"), "delta", delta, "cl",
                               json_object_get(row, "cl")))) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

/* Apply PersonObserved rows: rows is an array of {"i","t","s","id","e","f","r","delta","cl",
 * "alt"} deduplicated per source row. */
/* Sorted, without repeats. */
static int cmp_key(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Add the lock keys of a row's linking addresses ("e" and "alt") to keys. -1 when out of
 * memory. */
static int lock_keys_add(const json_t *row, long long **keys, size_t *n, size_t *cap)
{
    const char *t = json_string_value(json_object_get(row, "t"));
    const json_t *e = json_object_get(row, "e"), *alt = json_object_get(row, "alt");
    size_t more = 1 + json_array_size(alt);
    if (!t)
        return 0;
    if (*n + more > *cap) {
        size_t ncap = (*cap ? *cap * 2 : 256) + more;
        long long *k = realloc(*keys, ncap * sizeof *k);
        if (!k)
            return -1;
        *keys = k;
        *cap = ncap;
    }
    if (json_is_string(e))
        (*keys)[(*n)++] = merge_address_lock_key(t, json_string_value(e));
    for (size_t i = 0; i < json_array_size(alt); i++)
        if (json_is_string(json_array_get(alt, i)))
            (*keys)[(*n)++] = merge_address_lock_key(t, json_string_value(json_array_get(alt, i)));
    return 0;
}

/* Take the advisory locks of keys (sorted here) until the transaction ends. Another member
 * applying another partition of the district that links one of these addresses waits until
 * this batch commits, then finds what it created; increasing order means no deadlock among
 * them. */
static int lock_addresses(struct actx *c, long long *keys, size_t n)
{
    if (n == 0)
        return 0;
    qsort(keys, n, sizeof *keys, cmp_key);
    struct buf b;
    buf_init(&b, 0);
    int bad = buf_appends(&b, "{");
    for (size_t i = 0; i < n && !bad; i++)
        if (i == 0 || keys[i] != keys[i - 1])
            bad = buf_appendf(&b, i ? ",%lld" : "%lld", keys[i]);
    bad = bad || buf_appends(&b, "}");
    int rc = -1;
    if (bad) {
        snprintf(c->err, c->errlen, "out of memory locking addresses");
    } else {
        const char *params[1] = {b.data};
        PGresult *r = actx_query(c,
                                 "SELECT count(pg_advisory_xact_lock(k))"
                                 " FROM unnest($1::bigint[]) AS k",
                                 1, params, PGRES_TUPLES_OK);
        rc = r ? 0 : -1;
        PQclear(r);
    }
    buf_free(&b);
    return rc;
}

int people_lock_batch(struct actx *c, const Envelope *const *envs, size_t n)
{
    long long *keys = NULL;
    size_t nkeys = 0, capkeys = 0;
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const Envelope *env = envs[i];
        if (!env || env->payload_case != PB_PAYLOAD_PERSON_OBSERVED)
            continue;
        const Panel__V1__Person *p = env->person_observed->person;
        char norm[320];
        const char *email = p->email_normalized ? p->email_normalized : p->email;
        json_t *row = json_pack("{s:s,s:s?,s:o}", "t", env->tenant_id, "e",
                                ids_email_normalize(email, norm, sizeof norm) == 0 ? norm : NULL,
                                "alt", people_alt_emails(p));
        int bad = !row || lock_keys_add(row, &keys, &nkeys, &capkeys);
        json_decref(row);
        if (bad) {
            snprintf(c->err, c->errlen, "out of memory locking addresses");
            goto out;
        }
    }
    rc = lock_addresses(c, keys, nkeys);
out:
    free(keys);
    return rc;
}

int people_apply(struct actx *c, json_t *rows)
{
    int rc = -1;
    PGresult *r = NULL;
    json_t *unlinked = json_array(), *persons = json_array(), *newpeople = json_array();
    json_t *ups = json_array(), *cmp = NULL;
    long long *keys = NULL;
    size_t nkeys = 0, capkeys = 0;
    if (json_array_size(rows) == 0) {
        rc = 0;
        goto out;
    }
    actx_rows_hash(c, rows);
    cmp = compare_rows(rows);
    if (!cmp)
        goto oom;
    /* 1: compare with the stored rows (hash), record the sightings; write nothing else */
    /* A full row comes with its hash ("h", see rows_hash) and without its fields
     * (compare_rows); only a delta's fields are sent and parsed, to be combined with the
     * stored ones. */
    r = actx_query_json(
        c,
        "WITH s AS (SELECT * FROM json_to_recordset($1::json) AS x(i int, t text, s text,"
        "  id text, f json, h text, r uuid, delta boolean, cl text[])),"
        " c AS (SELECT s.i, s.t, s.s, s.id, s.r, s.delta, s.h,"
        "  CASE WHEN s.delta AND ps.fields IS NOT NULL"
        "  THEN (ps.fields || s.f::jsonb) - coalesce(s.cl, '{}')"
        "  WHEN s.delta OR s.h IS NULL THEN s.f::jsonb END AS nf,"
        "  ps.content_hash AS oh, ps.removed_at IS NOT NULL AS was_removed,"
        "  ps.source_id IS NULL AS isnew, ps.person_id AS opid,"
        "  coalesce(ps.suspended_in_source, false) AS susp"
        "  FROM s LEFT JOIN person_sources ps ON ps.tenant_id = s.t AND ps.source = s.s"
        "  AND ps.source_id = s.id),"
        " h AS (SELECT c.*, coalesce(c.h, md5(c.nf::text)) AS nh FROM c),"
        /* seen again after an Azure soft delete: the account was restored */
        " d AS (SELECT h.*, isnew OR oh <> nh OR was_removed OR susp AS changed"
        "  FROM h)," PEOPLE_SEEN_CTE
        /* observed again: a removal reported earlier in the run no longer holds, nor does a
         * removal another run holds for an admin's approval */
        " rr AS (DELETE FROM run_reported_removals x USING d WHERE x.tenant_id = d.t"
        "  AND x.run_id = d.r AND x.object_kind = 'person' AND x.source = d.s"
        "  AND x.source_id = d.id),"
        " hr AS (UPDATE run_outcomes o SET outcome = 'held_removal_cancelled',"
        "  reason = 'observed again by run ' || d.r || ' before the approval' FROM d"
        "  WHERE o.outcome = 'held_removal' AND o.tenant_id = d.t AND o.source = d.s"
        "  AND o.source_id = d.id AND o.object_kind = 'person' AND o.run_id IS DISTINCT FROM d.r"
        "  AND EXISTS (SELECT 1 FROM sync_runs sr WHERE sr.tenant_id = o.tenant_id"
        "  AND sr.run_id = o.run_id AND sr.status = 'held') RETURNING o.tenant_id, o.run_id),"
        " hc AS (UPDATE sync_runs sr SET pending_removals = greatest(sr.pending_removals - x.n, 0)"
        "  FROM (SELECT tenant_id, run_id, count(*) AS n FROM hr GROUP BY 1, 2) x"
        "  WHERE sr.tenant_id = x.tenant_id AND sr.run_id = x.run_id)"
        /* a full row's new fields are the ones sent: only a delta's come back */
        " SELECT i, changed, isnew, opid, CASE WHEN changed AND delta THEN nf::text END,"
        "  CASE WHEN changed THEN nh END, susp FROM d ORDER BY i",
        cmp, PGRES_TUPLES_OK);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *row = json_array_get(rows, col_index(r, i, 0));
        bool changed = col_bool(r, i, 1), isnew = col_bool(r, i, 2), unsusp = col_bool(r, i, 6);
        const char *pid = col_str(r, i, 3);
        const char *t = json_string_value(json_object_get(row, "t"));
        const char *run = json_string_value(json_object_get(row, "r"));
        if (isnew && !json_is_string(json_object_get(row, "e"))) {
            /* a delta of an object we never had, without an address to link it by */
            actx_outcome_add(c, t, run, "person", json_string_value(json_object_get(row, "s")),
                             json_string_value(json_object_get(row, "id")), NULL, "skipped",
                             "no usable e-mail address");
            actx_count_skipped(c, t, run);
            continue;
        }
        actx_count_applied(c, t, run, changed, isnew);
        if (!changed)
            continue;
        c->rows_changed++;
        const char *delta_fields = col_str(r, i, 4); /* NULL for a full row */
        /* the row's addresses as written (a delta's from its fields merged by SQL) */
        json_t *merged = delta_fields ? json_loads(delta_fields, 0, NULL) : NULL;
        json_t *addrs = merge_person_addresses(delta_fields ? merged : json_object_get(row, "f"));
        json_decref(merged);
        json_t *up = json_pack("{s:s,s:O,s:O,s:s?,s:O?,s:s?,s:s,s:s?,s:o*}", "t", t, "s",
                               json_object_get(row, "s"), "id", json_object_get(row, "id"), "p",
                               pid, "f", delta_fields ? NULL : json_object_get(row, "f"), "ft",
                               delta_fields, "h", col_str(r, i, 5), "r", run, "a", addrs);
        if (!addrs || !up || json_array_append_new(ups, up) ||
            lock_keys_add(row, &keys, &nkeys, &capkeys))
            goto oom;
        if (pid) {
            if (people_queue_remerge(persons, t, pid, run, unsusp))
                goto oom;
        } else {
            json_t *u = json_copy(row); /* shallow: the fields are shared */
            if (!u)
                goto oom;
            json_object_set_new(u, "i", json_integer((json_int_t)json_array_size(unlinked)));
            if (delta_fields)
                json_object_set_new(u, "nf", json_string(delta_fields));
            if (!json_is_string(json_object_get(u, "e")) && delta_fields) {
                /* a delta without the address: link by the one stored */
                json_t *nf = json_loads(delta_fields, 0, NULL);
                json_t *e = json_object_get(nf, "email_normalized");
                json_object_set(u, "e", json_is_string(e) ? e : json_null());
                json_decref(nf);
            }
            if (!json_equal(json_object_get(u, "e"), json_object_get(row, "e")) &&
                lock_keys_add(u, &keys, &nkeys, &capkeys))
                goto oom;
            json_object_set_new(u, "isnew", json_boolean(isnew));
            json_object_set(u, "up", up); /* people_link's "p" goes into the upsert row */
            json_array_append_new(unlinked, u);
        }
    }
    PQclear(r);
    r = NULL;
    /* Before anything is decided from what other transactions committed: the candidates
     * (people_link) and the remerges below read the rows as the lock holders left them. */
    if (lock_addresses(c, keys, nkeys))
        goto out;
    if (people_link(c, unlinked, persons, newpeople))
        goto out;
    for (size_t k = 0; k < json_array_size(unlinked); k++) {
        json_t *u = json_array_get(unlinked, k), *p = json_object_get(u, "p");
        if (p)
            json_object_set(json_object_get(u, "up"), "p", p);
    }
    /* 2: the new People, already merged (the rows below reference them) */
    if (people_create(c, newpeople))
        goto out;
    /* 3: the changed source rows, each written once, with its Person */
    if (json_array_size(ups) > 0) {
        r = actx_query_json(
            c,
            "INSERT INTO person_sources AS ps (tenant_id, source, source_id, person_id,"
            " email_norm, fields, addresses, content_hash, last_seen_run)"
            " SELECT v.t, v.s, v.id, v.p, v.nf->>'email_normalized', v.nf, v.a, v.h, v.r"
            " FROM (SELECT x.*, coalesce(x.f, x.ft::jsonb) AS nf"
            "  FROM jsonb_to_recordset($1::jsonb) AS x(t text, s text, id text, p uuid, f jsonb,"
            "  ft text, h text, r uuid, a text[])) v"
            " ON CONFLICT (tenant_id, source, source_id) DO UPDATE SET"
            " person_id = EXCLUDED.person_id, email_norm = EXCLUDED.email_norm,"
            " fields = EXCLUDED.fields, addresses = EXCLUDED.addresses,"
            " content_hash = EXCLUDED.content_hash, removed_at = NULL,"
            " suspended_in_source = false, last_seen_run = EXCLUDED.last_seen_run,"
            " updated_at = now()",
            ups, PGRES_COMMAND_OK);
        if (!r)
            goto out;
        PQclear(r);
        r = NULL;
    }
    /* 4: the existing People whose rows changed */
    if (people_remerge(c, persons))
        goto out;
    rc = 0;
    goto out;
oom:
    snprintf(c->err, c->errlen, "out of memory applying people");
out:
    PQclear(r);
    json_decref(unlinked);
    json_decref(persons);
    json_decref(newpeople);
    json_decref(ups);
    json_decref(cmp);
    free(keys);
    return rc;
}
