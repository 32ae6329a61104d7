"""End-to-end tests of panel-api against the real PostgreSQL.

Directory rows are loaded with psql as the merger would write them. auth's and the merger's
internal routes (docs/contracts.md sections 2 and 4) are served by a small stub in this file, which
records what it was asked; everything else is real."""
import json
import os
import re
import subprocess
import threading
import time
import unittest
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler

import harness
from harness import http, psql

SECRET = "test-service-secret-0123456789"


class Stub(BaseHTTPRequestHandler):
    """auth + merger internal routes, as agreed in docs/contracts.md."""
    calls = []
    request_ids = []  # the X-Request-Id of every call, as the api passed it on
    consent_url = None  # when set, every authorize answers this URL (browser tests)

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"null") if n else None
        Stub.calls.append((method, self.path, body))
        Stub.request_ids.append(self.headers.get("X-Request-Id"))
        if self.headers.get("Authorization") != f"Bearer {SECRET}":
            return self.reply(401, {"error": {"code": "unauthenticated", "message": "no"}})
        parts = self.path.strip("/").split("/")
        # internal tenants T ...
        if len(parts) < 4 or parts[:2] != ["internal", "tenants"]:
            return self.reply(404, {"error": {"code": "not_found", "message": "no route"}})
        tenant, rest = parts[2], parts[3:]
        actor = str((body or {}).get("actor", ""))
        if rest[0] != "runs" and rest[0] != "match-cases" and method in ("POST", "PUT") and \
                not (actor.startswith("person:") and "@" in actor or
                     actor.startswith("apikey:") and len(actor) > 7):
            # auth's rule: "actor" is required: "person:<email>" or "apikey:<key id>"
            return self.reply(400, {"error": {"code": "invalid_argument",
                                              "message": "actor must name who acts"}})
        if rest[-1] == "authorize" and Stub.consent_url:
            return self.reply(200, {"consent_url": Stub.consent_url})
        if rest[-1] == "authorize":
            hint = actor[7:] if actor.startswith("person:") else ""
            return self.reply(200, {"consent_url": f"http://consent.example/{rest[0]}?t={tenant}"
                                                   f"&login_hint={hint}"})
        if rest[-1] == "deauthorize":
            return self.reply(200, {"status": "deauthorized", "remote_revoke": "done"})
        if rest == ["sync"]:
            providers = [body["provider"]] if body.get("provider") else ["google", "azure"]
            return self.reply(202, {"requests": [{"provider": p, "run_id": str(uuid.uuid4()),
                                                  "coalesced": False} for p in providers]})
        if rest == ["settings"] and method == "PUT":
            if body.get("sync_interval_seconds") == 301:
                return self.reply(422, {"error": {"code": "invalid_interval",
                                                  "message": "interval too long"}})
            if isinstance(body.get("pause_windows"), list):
                # auth owns the schedule: it replaces the windows, all or none, and answers
                # 400 when PostgreSQL refuses one (a window that ends before it starts)
                values = [(w.get("starts_at"), w.get("ends_at"), w.get("reason") or "")
                          for w in body["pause_windows"] if isinstance(w, dict)]
                try:
                    psql("BEGIN; DELETE FROM pause_windows WHERE tenant_id = :'t'; " +
                         "".join(f"INSERT INTO pause_windows (tenant_id, starts_at, ends_at, "
                                 f"reason) VALUES (:'t', :'s{i}', :'e{i}', :'r{i}'); "
                                 for i in range(len(values))) + "COMMIT",
                         t=tenant, **{f"{k}{i}": v for i, w in enumerate(values)
                                      for k, v in zip("ser", w)})
                except (RuntimeError, ValueError):  # ValueError: a NUL psql cannot take
                    return self.reply(400, {"error": {"code": "invalid_argument", "message":
                                                      "a pause window has an invalid time or "
                                                      "ends before it starts"}})
            return self.reply(200, {"status": "ok"})
        if rest[0] == "runs" and rest[-1] in ("approve", "reject"):
            st = psql("SELECT status FROM sync_runs WHERE tenant_id = :'t' AND run_id = :'r'",
                      t=tenant, r=rest[1])
            if not st or st[0][0] != "held":
                return self.reply(409, {"error": {"code": "not_held",
                                                  "message": "the run is not held"}})
            psql("UPDATE sync_runs SET status = :'s', decided_by = :'a' "
                 "WHERE tenant_id = :'t' AND run_id = :'r'",
                 s="approved" if rest[-1] == "approve" else "rejected", a=body["admin"],
                 t=tenant, r=rest[1])
            # the merger's answer (services/merger/routes.c): the run, its status, removals
            return self.reply(200, {"run_id": rest[1], "removed": 0,
                                    "status": "approved" if rest[-1] == "approve"
                                    else "rejected"})
        if rest[0] == "match-cases" and rest[-1] == "resolve":
            # as the merger does: the case is closed by the actor
            psql("UPDATE match_cases SET status = 'resolved', resolved_by = :'a', "
                 "resolved_at = now() WHERE tenant_id = :'t' AND case_id = :'c'",
                 a=body["admin"], t=tenant, c=rest[1])
            return self.reply(200, {"case_id": rest[1], "status": "resolved",
                                    "person_id": body["person_id"] or str(uuid.uuid4())})
        return self.reply(404, {"error": {"code": "not_found", "message": "no route"}})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")


def panelctl(*args, stdin=None):
    p = subprocess.run([harness.binary("panelctl")] + list(args), capture_output=True,
                       input=stdin, check=True)
    return p.stdout


def new_key(tenant, role):
    return panelctl("apikey-create", tenant, role, "e2e").decode().strip()


def person(tenant, name, email=None, ou="/Students", sources=("google",), removed=False,
           fields=None, provenance=None):
    pid = str(uuid.uuid4())
    email = email or f"{name.lower().replace(' ', '.')}.{pid[:6]}@d.example"
    fields = fields or {"display_name": name, "email": email, "org_unit_path": ou}
    provenance = provenance or {k: sources[0] for k in fields}
    psql("INSERT INTO people (tenant_id, person_id, email_norm, display_name, org_unit_path, "
         "sources, fields, provenance, removed_at) VALUES (:'t', :'p', :'e', :'n', :'ou', "
         ":'s'::text[], :'f'::jsonb, :'pv'::jsonb, "
         + ("now()" if removed else "NULL") + ")",
         t=tenant, p=pid, e=email, n=name, ou=ou, s="{" + ",".join(sources) + "}",
         f=json.dumps(fields), pv=json.dumps(provenance))
    return pid


def asset(tenant, serial, tag=None, google=True, model="Chromebook 314", ou="/Students",
          aue=None, lifecycle="deployed"):
    aid = str(uuid.uuid4())
    psql("INSERT INTO assets (tenant_id, asset_id, device_id, serial_number, asset_tag, model, "
         "google_status, lifecycle, org_unit_path, in_google, manual, auto_update_expiry, "
         "device) VALUES (:'t', :'a', " + ("'dev-' || :'a'" if google else "NULL") +
         ", :'s', NULLIF(:'tag', ''), :'m', 'ACTIVE', :'l', :'ou', " +
         ("true, false" if google else "false, true") + ", NULLIF(:'aue', '')::date, "
         "'{\"notes\": \"from google\"}')",
         t=tenant, a=aid, s=serial, tag=tag or "", m=model, l=lifecycle, ou=ou, aue=aue or "")
    return aid


def mutating_routes(asset_id, person_id, run_id, case_id):
    """Every route that changes something, with a body it accepts (for role and tenant checks)."""
    return [
        ("POST", "/v1/assets", {"asset_tag": "V-" + uuid.uuid4().hex[:6]}),
        ("PATCH", f"/v1/assets/{asset_id}", {"lifecycle": "in_repair"}),
        ("POST", f"/v1/assets/{asset_id}/retire", None),
        ("POST", f"/v1/assets/{asset_id}/audit", {}),
        ("POST", f"/v1/assets/{asset_id}/checkout", {"person_id": person_id}),
        ("POST", f"/v1/assets/{asset_id}/checkin", {}),
        ("POST", "/v1/checkouts/bulk", {"items": [{"asset_id": asset_id,
                                                    "person_id": person_id}]}),
        ("POST", "/v1/checkins/bulk", {"items": [{"asset_id": asset_id}]}),
        ("POST", "/v1/sync", {"provider": "google"}),
        ("PUT", "/v1/sync/settings", {"delete_threshold_count": 5}),
        ("POST", f"/v1/sync/runs/{run_id}/approve", {}),
        ("POST", f"/v1/sync/runs/{run_id}/reject", {}),
        ("POST", f"/v1/sync/match-cases/{case_id}/resolve", {"person_id": person_id}),
        ("POST", "/v1/connections/google/authorize", {}),
        ("POST", "/v1/connections/microsoft/authorize", {}),
        ("POST", "/v1/connections/google/deauthorize", {}),
        ("POST", "/v1/connections/microsoft/deauthorize", {}),
    ]


def fixture_run_and_case(tenant, status="held"):
    """A run of tenant (held: 600 pending removals) with two outcomes, and an open match case
    of that run naming a new Person: (run id, case id, that Person's id)."""
    run = str(uuid.uuid4())
    psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, seen, removed, "
         "pending_removals, report) VALUES (:'t', :'r', 'google', :'s', 10, 0, 600, "
         "'{\"would_remove\": 600}')", t=tenant, r=run, s=status)
    psql("INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, email, "
         "outcome, reason) VALUES (:'t', :'r', 'person', 'g9', 'x@d.example', 'skipped', "
         "'no email'), (:'t', :'r', 'device', 'd9', NULL, 'invalid', 'no serial')",
         t=tenant, r=run)
    case = str(uuid.uuid4())
    cand = person(tenant, "Candidate")
    psql("INSERT INTO match_cases (tenant_id, case_id, source, source_id, candidates, "
         "reason, run_id) VALUES (:'t', :'c', 'azure', :'s', ARRAY[:'p']::uuid[], "
         "'two people share the email', :'r')",
         t=tenant, c=case, s="az-" + case[:8], p=cand, r=run)
    return run, case, cand


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.stub, cls.api = harness.api_with_stub(Stub, SECRET)
        cls.a = harness.new_tenant("apia")
        cls.b = harness.new_tenant("apib")
        cls.key_a = new_key(cls.a, "admin")
        cls.key_view = new_key(cls.a, "viewer")
        cls.key_b = new_key(cls.b, "admin")

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.stub.shutdown()

    def call(self, method, path, body=None, key=None, headers=None, raw=None):
        h = {"Authorization": f"Bearer {key or self.key_a}"}
        h.update(headers or {})
        return http(method, self.api.url + path, body=raw if raw is not None else body,
                    headers=h)

    def ok(self, method, path, body=None, status=200, key=None, headers=None):
        st, _, out = self.call(method, path, body, key, headers)
        self.assertEqual(st, status, f"{method} {path}: {out}")
        return out

    def err(self, method, path, status, code=None, body=None, key=None, raw=None,
            headers=None):
        st, hdrs, out = self.call(method, path, body, key, headers, raw)
        self.assertEqual(st, status, f"{method} {path}: {out}")
        self.assertIsInstance(out, dict, out)
        # A 401 also says where a person signs in.
        self.assertEqual(set(out), {"error", "signin"} if status == 401 else {"error"})
        self.assertIsInstance(out["error"]["message"], str)
        # Every error names its request, as the X-Request-Id header does.
        self.assertEqual(out["error"].get("request_id"), hdrs.get("X-Request-Id"), out)
        self.assertTrue(out["error"]["request_id"])
        if status == 405:
            self.assertIn(method, out["error"]["message"])
            self.assertNotIn(method, hdrs.get("Allow", "").split(", "), hdrs)
            self.assertTrue(hdrs.get("Allow"), f"405 without Allow: {hdrs}")
        if code:
            self.assertEqual(out["error"]["code"], code, out)
        return out

    # ------------------------------------------------------------------ authentication

    def test_authentication(self):
        st, _, out = http("GET", self.api.url + "/v1/people")
        self.assertEqual(st, 401)
        self.assertEqual(out["error"]["code"], "unauthenticated")
        self.err("GET", "/v1/people", 401, key="pk_nope.nope")
        self.err("GET", "/v1/people", 401, key="not-a-key")
        # Routes are matched only after authentication: an unknown path, or a known one with
        # another method, tells a caller without a valid key nothing.
        self.err("GET", "/v1/nothing-here", 401, key="pk_nope.nope")
        self.err("DELETE", "/v1/people", 401, key="pk_nope.nope")
        key_id, secret = self.key_a[3:].split(".")
        self.err("GET", "/v1/people", 401, key=f"pk_{key_id}.{secret}x")
        doomed = new_key(self.a, "admin")
        self.ok("GET", "/v1/people", key=doomed)
        panelctl("apikey-revoke", doomed.split(".")[0])
        self.err("GET", "/v1/people", 401, key=doomed)
        stored = psql("SELECT secret_hash FROM api_keys WHERE key_id = :'k'", k=key_id)
        self.assertNotIn(secret, stored[0][0])

    # ------------------------------------------------------------------ people

    def test_people_filters_detail_and_errors(self):
        t = harness.new_tenant("apip")
        key = new_key(t, "admin")
        ada = person(t, "Ada Lovelace", ou="/Staff", sources=("google", "azure"),
                     fields={"display_name": "Ada Lovelace", "job_title": "Teacher",
                             "org_unit_path": "/Staff"},
                     provenance={"display_name": "azure", "job_title": "azure",
                                 "org_unit_path": "google"})
        psql("INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
             "fields, content_hash) VALUES (:'t', 'google', 'g1', :'p', 'ada@d.example', "
             "'{\"display_name\": \"Ada L\"}', 'h1'), (:'t', 'azure', 'a1', :'p', "
             "'ada@d.example', '{\"display_name\": \"Ada Lovelace\"}', 'h2')", t=t, p=ada)
        bob = person(t, "Bob Smith", ou="/Students")
        gone = person(t, "Carl Gone", removed=True)
        dev = asset(t, "SN-P1")
        self.ok("POST", f"/v1/assets/{dev}/checkout", {"person_id": bob}, 201, key=key)

        def names(q):
            out = self.ok("GET", "/v1/people" + q, key=key)
            return [p["display_name"] for p in out["items"]]
        self.assertEqual(names(""), ["Ada Lovelace", "Bob Smith"])
        self.assertEqual(names("?q=LOVE"), ["Ada Lovelace"])
        self.assertEqual(names("?q=" + urllib.parse.quote("bob.smith")), ["Bob Smith"])
        self.assertEqual(names("?q=%25"), [])  # a literal %, not a wildcard
        self.assertEqual(names("?org_unit=/Staff"), ["Ada Lovelace"])
        self.assertEqual(names("?source=azure"), ["Ada Lovelace"])
        self.assertEqual(names("?status=removed"), ["Carl Gone"])
        self.assertEqual(names("?status=all"), ["Ada Lovelace", "Bob Smith", "Carl Gone"])
        self.assertEqual(names("?has_checkouts=true"), ["Bob Smith"])
        self.assertEqual(names("?has_checkouts=false"), ["Ada Lovelace"])

        detail = self.ok("GET", f"/v1/people/{ada}", key=key)
        self.assertEqual(detail["provenance"]["display_name"], "azure")
        self.assertEqual(detail["provenance"]["org_unit_path"], "google")
        self.assertEqual([s["source"] for s in detail["source_records"]], ["azure", "google"])
        self.assertEqual(detail["status"], "active")
        self.assertEqual(self.ok("GET", f"/v1/people/{gone}", key=key)["status"], "removed")
        history = self.ok("GET", f"/v1/people/{bob}/checkouts", key=key)["items"]
        self.assertEqual([c["asset_id"] for c in history], [dev])

        self.err("GET", "/v1/people?colour=red", 400, "invalid_parameter", key=key)
        self.err("GET", "/v1/people?status=sleeping", 400, "invalid_parameter", key=key)
        self.err("GET", "/v1/people?source=yahoo", 400, key=key)
        self.err("GET", "/v1/people?has_checkouts=maybe", 400, key=key)
        self.err("GET", "/v1/people?limit=0", 400, key=key)
        self.err("GET", "/v1/people?limit=501", 400, key=key)
        self.err("GET", "/v1/people?limit=ten", 400, key=key)
        self.err("GET", "/v1/people?q=%FF%FE", 400, key=key)
        self.err("GET", "/v1/people?q=a&q=b", 400, key=key)
        self.err("GET", "/v1/people?cursor=garbage", 400, "invalid_cursor", key=key)
        self.err("GET", f"/v1/people/{uuid.uuid4()}", 404, "not_found", key=key)
        self.err("GET", "/v1/people/not-a-uuid", 404, key=key)
        self.err("GET", "/v1/nothing-here", 404, key=key)
        self.err("DELETE", f"/v1/people/{ada}", 405, key=key)

    def test_pagination_is_stable_under_concurrent_inserts(self):
        t = harness.new_tenant("apipg")
        key = new_key(t, "viewer")
        original = sorted(person(t, f"Person {i:03d}") for i in range(40))
        stop = threading.Event()

        def writer():  # another client keeps inserting People all through the listing
            n = 0
            while not stop.is_set():
                person(t, f"Person {n % 40:03d}b")
                person(t, "Aaron Early")
                n += 1
        th = threading.Thread(target=writer)
        th.start()
        seen, cursor, pages = [], None, 0
        try:
            while True:
                q = "?limit=7" + (f"&cursor={cursor}" if cursor else "")
                out = self.ok("GET", "/v1/people" + q, key=key)
                seen += [(p["display_name"], p["person_id"]) for p in out["items"]]
                pages += 1
                person(t, f"Person {pages:03d}a")  # and at least one between every two pages
                cursor = out["next_cursor"]
                if not cursor:
                    break
        finally:
            stop.set()
            th.join()
        ids = [pid for _, pid in seen]
        self.assertEqual(len(ids), len(set(ids)), "a row was served twice")
        self.assertTrue(set(original) <= set(ids), "a row that existed all along was skipped")
        keys = [(n.lower(), pid) for n, pid in seen]
        self.assertEqual(keys, sorted(keys))
        # A cursor is bound to its list and cannot be edited.
        out = self.ok("GET", "/v1/people?limit=2", key=key)
        c = out["next_cursor"]
        self.err("GET", "/v1/assets?cursor=" + c, 400, "invalid_cursor", key=key)
        payload, mac = c.split(".")
        forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
        self.err("GET", "/v1/people?cursor=" + forged, 400, "invalid_cursor", key=key)

    def test_list_queries_use_indexes(self):
        t = harness.new_tenant("apiix")
        psql("INSERT INTO people (tenant_id, email_norm, display_name, org_unit_path) "
             "SELECT :'t', 'p' || i || '@d.example', 'Person ' || i, '/OU' || (i % 50) "
             "FROM generate_series(1, 10000) i", t=t)
        psql("INSERT INTO assets (tenant_id, serial_number, model, org_unit_path) "
             "SELECT :'t', 'SN' || i, 'M', '/OU' || (i % 50) FROM generate_series(1, 10000) i",
             t=t)
        psql("INSERT INTO checkouts (tenant_id, asset_id, person_id, checked_out_by, "
             "checked_in_at) SELECT a.tenant_id, a.asset_id, p.person_id, 'x', now() "
             "FROM (SELECT asset_id, tenant_id, row_number() OVER () n FROM assets "
             "WHERE tenant_id = :'t') a JOIN (SELECT person_id, row_number() OVER () n "
             "FROM people WHERE tenant_id = :'t') p USING (n)", t=t)
        psql("ANALYZE people; ANALYZE assets; ANALYZE checkouts")

        # The index each list query's plan must use.
        for index, sql in (
            ("people_name",
             "SELECT person_id FROM people p WHERE p.tenant_id = :'t' AND "
             "(lower(p.display_name), p.person_id) > ('person 5', "
             "'00000000-0000-0000-0000-000000000000'::uuid) AND p.removed_at IS NULL "
             "ORDER BY lower(p.display_name), p.person_id LIMIT 51"),
            ("assets_pkey",
             "SELECT asset_id FROM assets a WHERE a.tenant_id = :'t' AND a.asset_id > "
             "'80000000-0000-0000-0000-000000000000' ORDER BY a.asset_id LIMIT 51"),
            ("assets_serial",
             "SELECT asset_id FROM assets a WHERE a.tenant_id = :'t' AND "
             "a.serial_number = 'SN77' ORDER BY a.asset_id LIMIT 51"),
            ("checkouts_recent",
             "SELECT 1 FROM checkouts c WHERE c.tenant_id = :'t' "
             "ORDER BY c.checked_out_at DESC, c.checkout_id DESC LIMIT 51"),
            ("checkouts_person",
             "SELECT 1 FROM checkouts c WHERE c.tenant_id = :'t' AND c.person_id = "
             "'00000000-0000-0000-0000-000000000000' "
             "ORDER BY c.checked_out_at DESC, c.checkout_id DESC LIMIT 51"),
        ):
            with self.subTest(index=index):
                plan = "\n".join(r[0] for r in psql("EXPLAIN " + sql, t=t))
                self.assertIn(index, plan)
        # The API's own list answers quickly on this tenant, page after page.
        key = new_key(t, "viewer")
        out = self.ok("GET", "/v1/people?limit=100", key=key)
        out = self.ok("GET", "/v1/people?limit=100&cursor=" + out["next_cursor"], key=key)
        self.assertEqual(len(out["items"]), 100)

    def test_people_search_by_any_address_is_index_backed(self):
        """200,000 People, each with a Google row (primary + alias) and every tenth with an
        Azure row whose mail is elsewhere and whose proxy addresses hold the Google one."""
        t = harness.new_tenant("apiaddr")
        psql("INSERT INTO people (tenant_id, email_norm, display_name) "
             "SELECT :'t', 'm' || i || '@ms.d.example', 'Person ' || i "
             "FROM generate_series(1, 200000) i", t=t)
        psql("INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
             "fields, content_hash) SELECT p.tenant_id, 'google', 'g' || p.n, p.person_id, "
             "'u' || p.n || '@d.example', jsonb_build_object('email_normalized', "
             "'u' || p.n || '@d.example', 'aliases', jsonb_build_object('values', "
             "jsonb_build_array('alias' || p.n || '@d.example'))), 'h' "
             "FROM (SELECT tenant_id, person_id, substr(email_norm, 2, "
             "position('@' in email_norm) - 2) AS n FROM people WHERE tenant_id = :'t') p", t=t)
        psql("INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
             "fields, content_hash) SELECT p.tenant_id, 'azure', 'a' || p.n, p.person_id, "
             "p.email_norm, jsonb_build_object('email_normalized', p.email_norm, 'mail', "
             "upper(p.email_norm), 'proxy_addresses', jsonb_build_object('values', "
             "jsonb_build_array('SMTP:' || p.email_norm, 'smtp:U' || p.n || '@D.example')), "
             "'other_mails', jsonb_build_object('values', jsonb_build_array("
             "'other' || p.n || '@d.example'))), 'h' "
             "FROM (SELECT tenant_id, person_id, email_norm, substr(email_norm, 2, "
             "position('@' in email_norm) - 2) AS n FROM people WHERE tenant_id = :'t') p "
             "WHERE p.n::int % 10 = 0", t=t)
        psql("ANALYZE people; ANALYZE person_sources")
        # the api's statement (services/api/people.c), as its generic plan would run it
        plan = "\n".join(r[0] for r in psql(
            "EXPLAIN SELECT p.person_id FROM people p WHERE p.tenant_id = :'t' AND p.removed_at "
            "IS NULL AND (lower(p.display_name) LIKE '%u1770@d.example%' OR p.email_norm LIKE "
            "'%u1770@d.example%' OR p.person_id IN (SELECT s.person_id FROM person_sources s "
            "WHERE s.tenant_id = :'t' AND s.removed_at IS NULL AND "
            "s.addresses @> ARRAY['u1770@d.example'])) "
            "ORDER BY lower(p.display_name), p.person_id LIMIT 51", t=t))
        self.assertIn("person_sources_addresses", plan)
        self.assertNotIn("Seq Scan on person_sources", plan)
        key = new_key(t, "viewer")
        for q, n in (("u1770@d.example", 1770), ("ALIAS99@d.example", 99),
                     ("m250@ms.d.example", 250), (" u250@d.example", 250)):
            started = time.monotonic()
            out = self.ok("GET", "/v1/people?q=" + urllib.parse.quote(q), key=key)
            self.assertLess(time.monotonic() - started, 2.0, q)
            self.assertEqual([p["display_name"] for p in out["items"]], [f"Person {n}"], q)
        self.assertEqual(self.ok("GET", "/v1/people?q=other20@d.example", key=key)["items"], [],
                         "otherMails are never an address of the Person")
        # The same searches, and a substring of names, on an api whose statement timeout is
        # tight (PANEL_PG_STATEMENT_TIMEOUT_MS, docs/operations.md): every one answers 200
        # with its People; a search past the timeout would answer 503.
        tight = harness.Process("panel-api", env=dict(
            {k: self.api.env[k] for k in ("PANEL_AUTH_URL", "PANEL_MERGER_URL",
                                          "PANEL_SERVICE_SECRET")},
            PANEL_PG_STATEMENT_TIMEOUT_MS="1000"))
        try:
            for q, names in (("u1770@d.example", ["Person 1770"]),
                             ("ALIAS99@d.example", ["Person 99"]),
                             ("person 19999", ["Person 19999"] +
                              [f"Person {n}" for n in range(199990, 200000)])):
                st, _, out = http("GET", tight.url + "/v1/people?limit=50&q=" +
                                  urllib.parse.quote(q),
                                  headers={"Authorization": f"Bearer {key}"}, timeout=30)
                self.assertEqual(st, 200, (q, out))
                self.assertEqual([p["display_name"] for p in out["items"]], names, q)
        finally:
            tight.stop()

    def test_org_unit_subtree_filters_and_device_search(self):
        """org_unit is a subtree filter on People and Assets (/Students includes
        /Students/Grade 5 but not /Students-old); q finds a Chromebook by MAC (with or
        without separators), annotated user, recent user or the Person it is out to;
        google_status and last_seen_before filter."""
        t = harness.new_tenant("apisub")
        key = new_key(t, "admin")
        asset(t, "SUB-1", ou="/Students")
        a2 = asset(t, "SUB-2", ou="/Students/Grade 5")
        a3 = asset(t, "SUB-3", ou="/Students-old")
        a4 = asset(t, "SUB-4", ou="/Staff")
        psql("UPDATE assets SET device = device || '{\"mac_address\": \"e8b1fc0011aa\", "
             "\"annotated_user\": \"lab cart 3\", \"recent_users\": [{\"type\": "
             "\"USER_TYPE_MANAGED\", \"email\": \"ruth.recent@d.example\"}]}', "
             "last_sync = '2026-01-10T08:00:00Z', google_status = 'DISABLED' "
             "WHERE asset_id = :'a'", a=a2)
        psql("UPDATE assets SET last_sync = now() WHERE asset_id IN (:'a', :'b')", a=a3, b=a4)
        person(t, "Grace Five", ou="/Students/Grade 5")
        person(t, "Sam Students", ou="/Students")
        person(t, "Olga Old", ou="/Students-old")
        holder = person(t, "Holly Holder", ou="/Staff")
        self.ok("POST", f"/v1/assets/{a4}/checkout", {"person_id": holder}, 201, key=key)

        def serials(q):
            return sorted(a["serial_number"] for a in
                          self.ok("GET", "/v1/assets" + q, key=key)["items"])

        def names(q):
            return sorted(p["display_name"] for p in
                          self.ok("GET", "/v1/people" + q, key=key)["items"])
        self.assertEqual(serials("?org_unit=/Students"), ["SUB-1", "SUB-2"])
        self.assertEqual(serials("?org_unit=/Students/"), ["SUB-1", "SUB-2"])
        self.assertEqual(serials("?org_unit=/Students/Grade%205"), ["SUB-2"])
        self.assertEqual(serials("?org_unit=/Stud"), [])
        self.assertEqual(serials("?org_unit=/"), ["SUB-1", "SUB-2", "SUB-3", "SUB-4"])
        self.assertEqual(names("?org_unit=/Students"), ["Grace Five", "Sam Students"])
        self.assertEqual(names("?org_unit=/Students-old"), ["Olga Old"])
        self.err("GET", "/v1/assets?org_unit=Students", 400, "invalid_parameter", key=key)
        self.err("GET", "/v1/people?org_unit=Students", 400, "invalid_parameter", key=key)
        self.assertEqual(serials("?q=E8:B1:FC:00"), ["SUB-2"])
        self.assertEqual(serials("?q=e8b1fc0011"), ["SUB-2"])
        self.assertEqual(serials("?q=lab%20cart"), ["SUB-2"])
        self.assertEqual(serials("?q=ruth.recent"), ["SUB-2"])
        self.assertEqual(serials("?q=holly"), ["SUB-4"])
        self.assertEqual(serials("?q=::"), [])  # separators alone match no MAC
        self.assertEqual(serials("?google_status=DISABLED"), ["SUB-2"])
        self.assertEqual(serials("?last_seen_before=2026-02-01"), ["SUB-1", "SUB-2"])
        self.err("GET", "/v1/assets?last_seen_before=yesterday", 400, key=key)

        # Audit history: every audit with who, when and its note, newest first.
        self.ok("POST", f"/v1/assets/{a2}/audit", {"note": "in cart 3"}, key=key)
        self.ok("POST", f"/v1/assets/{a2}/audit", {"next_audit_due": "2027-01-15"}, key=key)
        hist = self.ok("GET", f"/v1/assets/{a2}/audits", key=key)
        self.assertEqual([h["note"] for h in hist["items"]], [None, "in cart 3"])
        self.assertTrue(all(h["audited_by"].startswith("apikey:") for h in hist["items"]))
        page = self.ok("GET", f"/v1/assets/{a2}/audits?limit=1", key=key)
        page2 = self.ok("GET", f"/v1/assets/{a2}/audits?limit=1&cursor=" +
                        page["next_cursor"], key=key)
        self.assertEqual(page2["items"][0]["note"], "in cart 3")
        self.err("GET", f"/v1/assets/{uuid.uuid4()}/audits", 404, key=key)
        self.err("GET", f"/v1/assets/{a2}/audits", 404, key=self.key_b)
        self.err("POST", f"/v1/assets/{a2}/audit", 400, "invalid_field", {"note": 5}, key=key)

    def test_held_run_removals_name_people_and_assets(self):
        """A held run's held_removal outcomes name the Person (by the run's cloud and source
        id), the Chromebook (by device id) and the org unit they would remove."""
        t = harness.new_tenant("apihold")
        key = new_key(t, "viewer")
        run = str(uuid.uuid4())
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, pending_removals) "
             "VALUES (:'t', :'r', 'google', 'held', 3)", t=t, r=run)
        pid = person(t, "Gone Person", ou="/Students/Grade 5")
        psql("INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
             "content_hash) SELECT :'t', 'google', 'g-gone', person_id, email_norm, 'h' "
             "FROM people WHERE person_id = :'p'", t=t, p=pid)
        aid = asset(t, "SN-GONE", tag="TAG-GONE")
        psql("INSERT INTO org_units (tenant_id, org_unit_id, path, name, content_hash) "
             "VALUES (:'t', 'id:old', '/Old', 'Old', 'h')", t=t)
        psql("INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, outcome, "
             "reason) VALUES (:'t', :'r', 'person', 'g-gone', 'held_removal', 'threshold'), "
             "(:'t', :'r', 'device', 'dev-' || :'a', 'held_removal', 'threshold'), "
             "(:'t', :'r', 'org_unit', 'id:old', 'held_removal', 'threshold'), "
             "(:'t', :'r', 'person', 'g-other', 'skipped', 'no email')", t=t, r=run, a=aid)
        out = self.ok("GET", f"/v1/sync/runs/{run}/outcomes?outcome=held_removal", key=key)
        got = [(o["object_kind"], o["display_name"], o["person_id"], o["serial_number"],
                o["asset_tag"], o["asset_id"], o["org_unit_path"]) for o in out["items"]]
        self.assertEqual(got, [
            ("person", "Gone Person", pid, None, None, None, "/Students/Grade 5"),
            ("device", None, None, "SN-GONE", "TAG-GONE", aid, "/Students"),
            ("org_unit", None, None, None, None, None, "/Old")])
        self.assertTrue(out["items"][0]["email"].startswith("gone.person."))
        self.assertEqual(len(self.ok("GET", f"/v1/sync/runs/{run}/outcomes", key=key)["items"]), 4)
        self.err("GET", f"/v1/sync/runs/{run}/outcomes?outcome=gone", 400, "invalid_parameter",
                 key=key)
        self.err("GET", f"/v1/sync/runs/{run}/outcomes?outcome=held_removal", 404,
                 key=self.key_b)

    def export(self, name, key, url=None):
        """GET /v1/exports/<name> streamed: (headers, rows as lists) parsed by csv."""
        import csv
        import io
        import urllib.request
        req = urllib.request.Request((url or self.api.url) + "/v1/exports/" + name,
                                     headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=300) as resp:
            headers = dict(resp.headers)
            rows = list(csv.reader(io.TextIOWrapper(resp, encoding="utf-8", newline="")))
        return headers, rows

    def test_csv_exports(self):
        """People, Assets, checkouts and overdue as CSV: chunked (no Content-Length), one
        district's rows only, dates in the district's time zone, formulas defused."""
        t = harness.new_tenant("apicsv")
        psql("UPDATE tenants SET time_zone = 'America/Chicago' WHERE tenant_id = :'t'", t=t)
        key = new_key(t, "viewer")
        admin = new_key(t, "admin")
        evil = person(t, "=HYPERLINK(\"http://x.example\",\"click\")")
        kid = person(t, "Kid, \"Junior\" Smith")
        a1 = asset(t, "CSV-1", tag="TAG-CSV-1")
        a2 = asset(t, "CSV-2")
        asset(self.b, "CSV-OTHER")
        self.ok("POST", f"/v1/assets/{a1}/checkout", {"person_id": kid,
                                                      "due_at": "2020-01-02T15:00:00Z"},
                201, key=admin)
        self.ok("POST", f"/v1/assets/{a2}/checkout", {"person_id": evil}, 201, key=admin)
        h, rows = self.export("people.csv", key)
        self.assertEqual(h.get("Transfer-Encoding"), "chunked")
        self.assertNotIn("Content-Length", h)
        self.assertTrue(h["Content-Type"].startswith("text/csv"))
        self.assertIn(f'filename="{t}-people.csv"', h["Content-Disposition"])
        self.assertEqual(rows[0][:3], ["person_id", "email", "display_name"])
        names = sorted(r[2] for r in rows[1:])
        self.assertEqual(names, sorted(["'=HYPERLINK(\"http://x.example\",\"click\")",
                                        "Kid, \"Junior\" Smith"]))
        h, rows = self.export("assets.csv", key)
        head = rows[0]
        by_serial = {r[head.index("serial_number")]: dict(zip(head, r)) for r in rows[1:]}
        self.assertEqual(sorted(by_serial), ["CSV-1", "CSV-2"])
        self.assertEqual(by_serial["CSV-1"]["checked_out_to"], "Kid, \"Junior\" Smith")
        self.assertEqual(by_serial["CSV-1"]["asset_tag"], "TAG-CSV-1")
        _, rows = self.export("checkouts.csv", key)
        self.assertEqual(len(rows), 3)
        _, rows = self.export("overdue.csv", key)
        head = rows[0]
        self.assertEqual(len(rows), 2)
        over = dict(zip(head, rows[1]))
        self.assertEqual(over["serial_number"], "CSV-1")
        self.assertEqual(over["due_at"], "2020-01-02 09:00:00-06")  # Chicago, not UTC
        self.assertGreater(int(over["days_overdue"]), 300)
        _, rows = self.export("people.csv", self.key_b)
        self.assertEqual(len(rows), 1)  # the header only: nothing of district A
        self.err("GET", "/v1/exports/secrets.csv", 404, key=key)
        self.err("GET", "/v1/exports/people.csv?limit=5", 400, key=key)
        self.err("POST", "/v1/exports/people.csv", 405, key=admin)
        st, _, _ = http("GET", self.api.url + "/v1/exports/people.csv")
        self.assertEqual(st, 401)

    def test_csv_export_of_200000_rows_is_streamed(self):
        """A 200,000-row export is sent while PostgreSQL produces it: the api's peak memory
        grows by far less than the CSV's size (a fresh api process, so earlier requests'
        peaks do not hide it; from the plain build, as ASan's shadow memory and quarantine
        make the peak say nothing about the api's own use)."""
        t = harness.new_tenant("apicsvbig")
        key = new_key(t, "viewer")
        psql("INSERT INTO assets (tenant_id, serial_number, model, org_unit_path, asset_tag, "
             "device) SELECT :'t', 'BIG-' || i, 'Chromebook 314 with a longer model name', "
             "'/Students/Grade ' || (i % 12), 'T-' || i, jsonb_build_object('mac_address', "
             "md5(i::text), 'notes', 'cart ' || (i % 40) || ' shelf ' || (i % 7)) "
             "FROM generate_series(1, 200000) i", t=t)
        api = harness.Process("panel-api", env={k: self.api.env[k] for k in (
            "PANEL_AUTH_URL", "PANEL_MERGER_URL", "PANEL_SERVICE_SECRET")}, plain=True)
        try:
            def peak_kb():
                with open(f"/proc/{api.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            return int(line.split()[1])
            self.ok("GET", "/v1/assets?limit=1", key=key)
            before = peak_kb()
            import urllib.request
            req = urllib.request.Request(api.url + "/v1/exports/assets.csv",
                                         headers={"Authorization": f"Bearer {key}"})
            size, lines = 0, 0
            with urllib.request.urlopen(req, timeout=300) as resp:
                self.assertEqual(resp.headers.get("Transfer-Encoding"), "chunked")
                while True:
                    block = resp.read(1 << 16)
                    if not block:
                        break
                    size += len(block)
                    lines += block.count(b"\n")
            grown_mb = (peak_kb() - before) / 1024
        finally:
            api.stop()
        self.assertEqual(lines, 200001)
        self.assertGreater(size, 30 * 1024 * 1024)
        self.assertLess(grown_mb, 12, f"the api grew {grown_mb:.1f} MB for a "
                                      f"{size / 1048576:.1f} MB export")

    def test_alerts_listed_and_published_once(self):
        """A held run, a failed run, a revoked connection and an overdue checkout: listed by
        GET /v1/alerts and published once each as SyncAlert events on panel.sync.events
        (through the outbox), even with two api processes looking."""
        import time
        t = harness.new_tenant("apialert")
        key = new_key(t, "viewer")
        held, failed = str(uuid.uuid4()), str(uuid.uuid4())
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, pending_removals, "
             "finished_at) VALUES (:'t', :'h', 'google', 'held', 640, now())", t=t, h=held)
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, failure_reason, "
             "message, finished_at) VALUES (:'t', :'f', 'azure', 'failed', 'throttled', "
             "'Graph kept answering 429', now())", t=t, f=failed)
        psql("INSERT INTO connections (tenant_id, provider, status, revoked_at) VALUES "
             "(:'t', 'google', 'revoked', now())", t=t)
        kid = person(t, "Late Kid")
        dev = asset(t, "SN-LATE")
        admin = new_key(t, "admin")
        self.ok("POST", f"/v1/assets/{dev}/checkout", {"person_id": kid,
                                                       "due_at": "2021-05-01T12:00:00Z"},
                201, key=admin)
        alerts = self.ok("GET", "/v1/alerts", key=key)["items"]
        self.assertEqual([(a["kind"], a.get("cloud"), a.get("count")) for a in alerts],
                         [("run_held", "google", 640), ("run_failed", "azure", None),
                          ("connection_revoked", "google", None),
                          ("checkouts_overdue", None, 1)])
        self.assertEqual(self.ok("GET", "/v1/alerts", key=self.key_b)["items"], [])
        self.err("POST", "/v1/alerts", 405, key=admin)
        env = {k: self.api.env[k] for k in ("PANEL_AUTH_URL", "PANEL_MERGER_URL",
                                           "PANEL_SERVICE_SECRET")}
        env["PANEL_API_ALERTS_SECONDS"] = "5"
        apis = [harness.Process("panel-api", env=env), harness.Process("panel-api", env=env)]

        def published(n):
            def rows():
                found = psql("SELECT encode(payload, 'hex'), msg_key FROM outbox WHERE "
                             "tenant_id = :'t' AND topic = 'panel.sync.events' "
                             "ORDER BY outbox_id", t=t)
                return found if len(found) >= n else None
            return harness.wait_until(rows, timeout=60, what=f"{n} alerts in the outbox")
        try:
            rows = published(4)
            # A new happening is published by a later scan; the first four are not again.
            late2 = asset(t, "SN-LATE-2")
            self.ok("POST", f"/v1/assets/{late2}/checkout",
                    {"person_id": kid, "due_at": "2022-05-01T12:00:00Z"}, 201, key=admin)
            rows = published(5)
        finally:
            for a in apis:
                a.stop()
        self.assertEqual(len(rows), 5)
        self.assertEqual({k for _, k in rows}, {t})
        events = [json.loads(panelctl("decode", stdin=bytes.fromhex(h))) for h, _ in rows]
        got = sorted((e["sync_alert"]["kind"], e["sync_alert"].get("cloud"), e.get("run_id"))
                     for e in events)
        self.assertEqual(got, sorted([
            ("SYNC_ALERT_KIND_RUN_HELD", "google", held),
            ("SYNC_ALERT_KIND_RUN_FAILED", "azure", failed),
            ("SYNC_ALERT_KIND_CONNECTION_REVOKED", "google", None),
            ("SYNC_ALERT_KIND_CHECKOUT_OVERDUE", None, None),
            ("SYNC_ALERT_KIND_CHECKOUT_OVERDUE", None, None)]))
        by_kind = {e["sync_alert"]["kind"]: e["sync_alert"] for e in events}
        self.assertEqual(int(by_kind["SYNC_ALERT_KIND_RUN_HELD"]["pending_removals"]), 640)
        self.assertIn("640 removals", by_kind["SYNC_ALERT_KIND_RUN_HELD"]["message"])
        self.assertEqual(by_kind["SYNC_ALERT_KIND_RUN_FAILED"]["failure_reason"], "throttled")
        overdue = [e["sync_alert"] for e in events
                   if e["sync_alert"]["kind"] == "SYNC_ALERT_KIND_CHECKOUT_OVERDUE"]
        self.assertEqual({(o["asset_id"], o["person_id"]) for o in overdue},
                         {(dev, kid), (late2, kid)})
        self.assertEqual(psql("SELECT count(*) FROM sync_alerts WHERE tenant_id = :'t'", t=t),
                         [["5"]])

    def test_swapped_devices_filter(self):
        """swapped=true: checked out to one Person while Google says another used it last."""
        t = harness.new_tenant("apiswap")
        key = new_key(t, "admin")
        ann = person(t, "Ann Out", email="ann.out@d.example")
        swapped = asset(t, "SW-1")
        same = asset(t, "SW-2")
        asset(t, "SW-3")  # not checked out, used by someone: not swapped
        for a, last in ((swapped, "Bob.Other@d.example"), (same, "ANN.OUT@d.example")):
            psql("UPDATE assets SET device = jsonb_build_object('recent_users', "
                 "jsonb_build_array(jsonb_build_object('type', 'USER_TYPE_MANAGED', "
                 "'email', :'e'))) WHERE asset_id = :'a'", a=a, e=last)
            self.ok("POST", f"/v1/assets/{a}/checkout", {"person_id": ann}, 201, key=key)
        psql("UPDATE assets SET device = '{\"recent_users\": [{\"email\": \"x@d.example\"}]}' "
             "WHERE tenant_id = :'t' AND serial_number = 'SW-3'", t=t)

        def serials(q):
            return sorted(a["serial_number"] for a in
                          self.ok("GET", "/v1/assets" + q, key=key)["items"])
        self.assertEqual(serials("?swapped=true"), ["SW-1"])
        self.assertEqual(serials("?swapped=false"), ["SW-2", "SW-3"])
        self.err("GET", "/v1/assets?swapped=maybe", 400, "invalid_parameter", key=key)
        # A checkout names its Asset (a Person's history reads as tags and serials).
        hist = self.ok("GET", f"/v1/people/{ann}/checkouts", key=key)["items"]
        self.assertEqual(sorted(c["serial_number"] for c in hist), ["SW-1", "SW-2"])

    def test_org_unit_subtree_filter_uses_an_index(self):
        t = harness.new_tenant("apisubix")
        psql("INSERT INTO people (tenant_id, email_norm, display_name, org_unit_path) "
             "SELECT :'t', 'p' || i || '@d.example', 'Person ' || i, "
             "'/Students/Grade ' || (i % 12) || '/Room ' || (i % 40) "
             "FROM generate_series(1, 20000) i", t=t)
        psql("INSERT INTO assets (tenant_id, serial_number, model, org_unit_path) "
             "SELECT :'t', 'SN' || i, 'M', '/Students/Grade ' || (i % 12) || '/Room ' || (i % 40) "
             "FROM generate_series(1, 20000) i", t=t)
        psql("ANALYZE people; ANALYZE assets")

        def plan(sql):
            return "\n".join(r[0] for r in psql("EXPLAIN " + sql, t=t))
        cond = ("{c} COLLATE \"C\" >= '/Students/Grade 3' AND {c} COLLATE \"C\" < "
                "'/Students/Grade 3' || '0' AND (length({c}) = length('/Students/Grade 3') "
                "OR substr({c}, length('/Students/Grade 3') + 1, 1) = '/')")
        self.assertIn("assets_ou_tree", plan(
            "SELECT asset_id FROM assets a WHERE a.tenant_id = :'t' AND "
            + cond.format(c="a.org_unit_path")))
        self.assertIn("people_ou_tree", plan(
            "SELECT person_id FROM people p WHERE p.tenant_id = :'t' AND "
            + cond.format(c="p.org_unit_path")))

    # ------------------------------------------------------------------ org units

    def test_org_units(self):
        t = harness.new_tenant("apiou")
        key = new_key(t, "viewer")
        psql("INSERT INTO org_units (tenant_id, org_unit_id, path, name, parent_id, parent_path, "
             "content_hash) VALUES (:'t', 'id:root', '/', 'District', NULL, NULL, 'h'), "
             "(:'t', 'id:s', '/Students', 'Students', 'id:root', '/', 'h'), "
             "(:'t', 'id:s9', '/Students/Grade 9', 'Grade 9', 'id:s', '/Students', 'h')", t=t)
        person(t, "Kid One", ou="/Students")
        person(t, "Kid Two", ou="/Students")
        asset(t, "SN-OU", ou="/Students")
        flat = self.ok("GET", "/v1/org-units", key=key)["items"]
        self.assertEqual([o["path"] for o in flat], ["/", "/Students", "/Students/Grade 9"])
        self.assertEqual(flat[2]["parent_id"], "id:s")
        tree = self.ok("GET", "/v1/org-units?format=tree", key=key)["items"]
        self.assertEqual(len(tree), 1)
        self.assertEqual(tree[0]["children"][0]["children"][0]["name"], "Grade 9")
        one = self.ok("GET", "/v1/org-units/id:s", key=key)
        self.assertEqual((one["people_count"], one["assets_count"], one["children_count"]),
                         (2, 1, 1))
        self.err("GET", "/v1/org-units/id:nope", 404, key=key)
        self.err("GET", "/v1/org-units?format=xml", 400, key=key)
        self.err("GET", "/v1/org-units/id:s", 404, key=self.key_b)

    # ------------------------------------------------------------------ assets

    def test_assets_list_lookup_and_lifecycle(self):
        t = harness.new_tenant("apias")
        key = new_key(t, "admin")
        a1 = asset(t, "SN-A1", tag="TAG-1", aue="2025-06-01", model="Model X")
        a2 = asset(t, "SN-A2", aue="2030-06-01", lifecycle="in_repair")
        kid = person(t, "Kid")
        self.ok("POST", f"/v1/assets/{a2}/checkout", {"person_id": kid}, 201, key=key)

        def serials(q):
            return sorted(a["serial_number"] for a in
                          self.ok("GET", "/v1/assets" + q, key=key)["items"])
        self.assertEqual(serials("?serial=SN-A1"), ["SN-A1"])
        self.assertEqual(serials("?asset_tag=TAG-1"), ["SN-A1"])
        self.assertEqual(serials("?model=Model%20X"), ["SN-A1"])
        self.assertEqual(serials("?status=in_repair"), ["SN-A2"])
        self.assertEqual(serials("?checked_out=true"), ["SN-A2"])
        self.assertEqual(serials("?checked_out=false"), ["SN-A1"])
        self.assertEqual(serials("?in_google=true"), ["SN-A1", "SN-A2"])
        self.assertEqual(serials("?aue_before=2026-01-01"), ["SN-A1"])
        self.assertEqual(serials("?q=a2"), ["SN-A2"])
        self.assertEqual(serials("?org_unit=/Students"), ["SN-A1", "SN-A2"])
        self.err("GET", "/v1/assets?aue_before=2026-02-30", 400, key=key)
        self.err("GET", "/v1/assets?aue_before=tomorrow", 400, key=key)
        self.err("GET", "/v1/assets?status=broken", 400, key=key)
        self.err("GET", "/v1/assets?color=red", 400, key=key)

        page1 = self.ok("GET", "/v1/assets?limit=1", key=key)
        page2 = self.ok("GET", "/v1/assets?limit=1&cursor=" + page1["next_cursor"], key=key)
        self.assertIsNone(page2["next_cursor"])
        self.assertNotEqual(page1["items"][0]["asset_id"], page2["items"][0]["asset_id"])

        self.assertEqual(self.ok("GET", "/v1/assets/by-tag/TAG-1", key=key)["asset_id"], a1)
        self.assertEqual([a["asset_id"] for a in
                          self.ok("GET", "/v1/assets/by-serial/SN-A1", key=key)["items"]], [a1])
        self.err("GET", "/v1/assets/by-tag/NOPE", 404, key=key)
        self.assertEqual(self.ok("GET", "/v1/assets/by-serial/NOPE", key=key)["items"], [])
        self.assertEqual(self.ok("GET", f"/v1/assets/{a2}", key=key)["current_checkout"]
                         ["person_id"], kid)

        # Manual assets.
        m = self.ok("POST", "/v1/assets", {"serial_number": "MAN-1", "asset_tag": "M-1",
                                           "model": "Projector", "notes": "room 12",
                                           "org_unit_path": "/Staff"}, 201, key=key)
        self.assertTrue(m["manual"])
        self.assertEqual((m["lifecycle"], m["notes"]), ("in_storage", "room 12"))
        self.err("POST", "/v1/assets", 422, "missing_field", {"model": "x"}, key=key)
        self.err("POST", "/v1/assets", 400, "unknown_field", {"serial_number": "x", "os": 1},
                 key=key)
        self.err("POST", "/v1/assets", 400, "invalid_field", {"serial_number": 12}, key=key)
        self.err("POST", "/v1/assets", 422, "invalid_lifecycle",
                 {"serial_number": "x", "lifecycle": "melted"}, key=key)
        self.err("POST", "/v1/assets", 409, "conflict", {"asset_tag": "M-1"}, key=key)
        self.err("POST", "/v1/assets", 400, "invalid_json", raw=b"{not json", key=key)
        self.err("POST", "/v1/assets", 400, "invalid_json", raw=b'{"asset_tag": "\xff"}',
                 key=key)
        self.err("POST", "/v1/assets", 400, "invalid_json", raw=b"[1]", key=key)
        self.err("POST", "/v1/assets", 413, "body_too_large",
                 {"notes": "x" * (300 * 1024)}, key=key)
        edited = self.ok("PATCH", f"/v1/assets/{m['asset_id']}",
                         {"model": "Projector 2", "notes": None, "asset_tag": None}, key=key)
        self.assertEqual((edited["model"], edited["notes"], edited["asset_tag"]),
                         ("Projector 2", None, None))

        # Chromebook fields are Google's.
        self.err("PATCH", f"/v1/assets/{a1}", 422, "read_only_field", {"serial_number": "X"},
                 key=key)
        self.err("PATCH", f"/v1/assets/{a1}", 422, "read_only_field", {"notes": "x"}, key=key)
        life = self.ok("PATCH", f"/v1/assets/{a1}", {"lifecycle": "lost_stolen",
                                                     "asset_tag": "TAG-1b"}, key=key)
        self.assertEqual(life["lifecycle"], "lost_stolen")
        self.assertTrue(life["lifecycle_changed_by"].startswith("apikey:"))
        self.assertEqual(life["serial_number"], "SN-A1")

        # Audits.
        aud = self.ok("POST", f"/v1/assets/{a1}/audit", {"next_audit_due": "2020-01-01"},
                      key=key)
        self.assertIsNotNone(aud["audited_at"])
        self.assertTrue(aud["audit_overdue"])
        self.assertEqual(serials("?audit_due_before=2021-01-01"), ["SN-A1"])
        self.err("POST", f"/v1/assets/{a1}/audit", 400, "invalid_field",
                 {"next_audit_due": "01/02/2020"}, key=key)

        # Retire: not while checked out; then checkouts are refused.
        self.err("POST", f"/v1/assets/{a2}/retire", 409, "checked_out", key=key)
        self.ok("POST", f"/v1/assets/{a2}/checkin", {}, key=key)
        self.assertEqual(self.ok("POST", f"/v1/assets/{a2}/retire", key=key)["lifecycle"],
                         "retired")
        self.err("POST", f"/v1/assets/{a2}/retire", 409, "already_retired", key=key)
        self.err("POST", f"/v1/assets/{a2}/checkout", 409, "asset_retired",
                 {"person_id": kid}, key=key)
        self.err("GET", f"/v1/assets/{uuid.uuid4()}", 404, key=key)
        self.err("PUT", f"/v1/assets/{a1}", 405, key=key)

    # ------------------------------------------------------------------ checkouts

    def outbox(self, tenant, asset_id):
        rows = psql("SELECT encode(payload, 'hex'), msg_key, topic FROM outbox "
                    "WHERE tenant_id = :'t' AND msg_key = :'k' ORDER BY outbox_id",
                    t=tenant, k=f"{tenant}/{asset_id}")
        out = []
        for hexdata, key, topic in rows:
            self.assertEqual(topic, "panel.assets.events")
            env = json.loads(panelctl("decode", stdin=bytes.fromhex(hexdata)))
            out.append(env)
        return out

    def test_checkout_rules_history_and_outbox(self):
        t = harness.new_tenant("apico")
        key = new_key(t, "admin")
        dev = asset(t, "SN-C1")
        kid = person(t, "Kid A")
        other = person(t, "Kid B")
        removed = person(t, "Kid Gone", removed=True)
        co = self.ok("POST", f"/v1/assets/{dev}/checkout",
                     {"person_id": kid, "due_at": "2020-01-31T15:00:00Z", "note": "cart 3"},
                     201, key=key)
        self.assertEqual((co["person_id"], co["asset_id"], co["note"]), (kid, dev, "cart 3"))
        self.assertTrue(co["open"])
        self.assertTrue(co["overdue"])
        self.err("POST", f"/v1/assets/{dev}/checkout", 409, "already_checked_out",
                 {"person_id": other}, key=key)
        overdue = self.ok("GET", "/v1/checkouts?overdue=true", key=key)["items"]
        self.assertEqual([c["checkout_id"] for c in overdue], [co["checkout_id"]])
        ci = self.ok("POST", f"/v1/assets/{dev}/checkin", {"condition": "scratched",
                                                           "note": "ok"}, key=key)
        self.assertEqual((ci["open"], ci["condition"]), (False, "scratched"))
        self.err("POST", f"/v1/assets/{dev}/checkin", 409, "not_checked_out", {}, key=key)
        self.err("POST", f"/v1/assets/{dev}/checkout", 409, "person_removed",
                 {"person_id": removed}, key=key)
        self.err("POST", f"/v1/assets/{dev}/checkout", 404, "person_not_found",
                 {"person_id": str(uuid.uuid4())}, key=key)
        self.err("POST", f"/v1/assets/{dev}/checkout", 400, "missing_field", {}, key=key)
        self.err("POST", f"/v1/assets/{dev}/checkout", 400, "invalid_field",
                 {"person_id": kid, "due_at": "next friday"}, key=key)
        self.err("POST", f"/v1/assets/{dev}/checkout", 400, "invalid_field",
                 {"person_id": "abc"}, key=key)
        self.ok("POST", f"/v1/assets/{dev}/checkout", {"person_id": other}, 201, key=key)
        history = self.ok("GET", f"/v1/assets/{dev}/checkouts", key=key)["items"]
        self.assertEqual([c["person_id"] for c in history], [other, kid])
        self.assertEqual(len(self.ok("GET", f"/v1/assets/{dev}/checkouts?open=true",
                                     key=key)["items"]), 1)
        self.assertEqual(len(self.ok("GET", f"/v1/checkouts?person_id={kid}",
                                     key=key)["items"]), 1)
        self.err("GET", "/v1/checkouts?person_id=zzz", 400, key=key)

        events = self.outbox(t, dev)
        kinds = [e["asset_changed"]["kind"] for e in events]
        self.assertEqual(kinds, ["ASSET_CHANGE_KIND_CHECKED_OUT", "ASSET_CHANGE_KIND_CHECKED_IN",
                                 "ASSET_CHANGE_KIND_CHECKED_OUT"])
        last = events[-1]
        self.assertEqual(last["tenant_id"], t)
        self.assertEqual(last["source"], "SOURCE_PANEL")
        self.assertEqual(last["asset_changed"]["asset"]["current_checkout"]["person_id"], other)
        self.assertNotIn("current_checkout", events[1]["asset_changed"]["asset"])
        versions = [e["asset_changed"]["asset"]["version"] for e in events]
        self.assertEqual(versions, sorted(versions))

    def test_panel_notes_on_a_chromebook(self):
        """A coordinator's own notes on a Chromebook: editable (Google's notes stay read-only),
        in the Asset JSON next to Google's, in the AssetChanged event and in the CSV export."""
        t = harness.new_tenant("apinotes")
        key = new_key(t, "admin")
        dev = asset(t, "SN-NOTES-1")
        before = self.ok("GET", f"/v1/assets/{dev}", key=key)
        self.assertEqual((before["notes"], before["panel_notes"]), ("from google", None))
        edited = self.ok("PATCH", f"/v1/assets/{dev}", {"panel_notes": "cracked hinge, cart 4"},
                         key=key)
        self.assertEqual((edited["notes"], edited["panel_notes"]),
                         ("from google", "cracked hinge, cart 4"))
        self.assertEqual(edited["version"], before["version"] + 1)
        self.assertEqual(psql("SELECT panel_notes, device ->> 'notes' FROM assets "
                              "WHERE asset_id = :'a'", a=dev), [["cracked hinge, cart 4",
                                                                 "from google"]])
        self.err("PATCH", f"/v1/assets/{dev}", 422, "read_only_field", {"notes": "x"}, key=key)
        self.err("PATCH", f"/v1/assets/{dev}", 400, "invalid_field",
                 {"panel_notes": "x" * 2001}, key=key)
        self.err("PATCH", f"/v1/assets/{dev}", 400, "invalid_field", {"panel_notes": 7},
                 key=key)
        ev = self.outbox(t, dev)[-1]["asset_changed"]
        self.assertEqual(ev["kind"], "ASSET_CHANGE_KIND_UPDATED")
        self.assertEqual(ev["changed_fields"], ["panel_notes"])
        self.assertEqual(ev["asset"]["panel_notes"], "cracked hinge, cart 4")
        self.assertEqual(ev["asset"]["version"], edited["version"])
        _, rows = self.export("assets.csv", key)
        row = dict(zip(rows[0], rows[1]))
        self.assertEqual((row["notes"], row["panel_notes"]),
                         ("from google", "cracked hinge, cart 4"))
        # null clears it; a hand-added Asset has both its own notes and Panel notes
        self.assertIsNone(self.ok("PATCH", f"/v1/assets/{dev}", {"panel_notes": None},
                                  key=key)["panel_notes"])
        self.assertNotIn("panel_notes", self.outbox(t, dev)[-1]["asset_changed"]["asset"])
        m = self.ok("POST", "/v1/assets", {"serial_number": "MAN-NOTES", "notes": "room 12",
                                           "panel_notes": "spare"}, 201, key=key)
        self.assertEqual((m["notes"], m["panel_notes"]), ("room 12", "spare"))

    def test_bulk_checkout_is_all_or_nothing(self):
        t = harness.new_tenant("apibk")
        key = new_key(t, "admin")
        cart = [asset(t, f"SN-CART-{i:02d}") for i in range(30)]
        kids = [person(t, f"Kid {i:02d}") for i in range(30)]
        busy = cart[7]
        self.ok("POST", f"/v1/assets/{busy}/checkout", {"person_id": kids[0]}, 201, key=key)
        before = psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t'", t=t)[0][0]
        items = [{"asset_id": a, "person_id": k, "due_at": "2030-06-30"}
                 for a, k in zip(cart, kids)]
        out = self.err("POST", "/v1/checkouts/bulk", 409, "bulk_rejected", {"items": items},
                       key=key)
        per_item = out["error"]["items"]
        self.assertEqual(len(per_item), 30)
        self.assertEqual([i["index"] for i in per_item if i["status"] != 200], [7])
        self.assertEqual(per_item[7]["code"], "already_checked_out")
        self.assertEqual(psql("SELECT count(*) FROM checkouts WHERE tenant_id = :'t'", t=t)[0][0],
                         "1")
        self.assertEqual(psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t'", t=t)[0][0],
                         before)
        self.ok("POST", f"/v1/assets/{busy}/checkin", {}, key=key)
        done = self.ok("POST", "/v1/checkouts/bulk", {"items": items}, 201, key=key)["items"]
        self.assertEqual([c["asset_id"] for c in done], cart)
        self.assertEqual(psql("SELECT count(*) FROM checkouts WHERE tenant_id = :'t' AND "
                              "checked_in_at IS NULL", t=t)[0][0], "30")
        back = [{"asset_id": a, "condition": "good"} for a in cart[:10]]
        back.append({"asset_id": str(uuid.uuid4())})
        out = self.err("POST", "/v1/checkins/bulk", 404, "bulk_rejected", {"items": back},
                       key=key)
        self.assertEqual(out["error"]["items"][10]["code"], "asset_not_found")
        ret = self.ok("POST", "/v1/checkins/bulk", {"items": back[:10]}, key=key)["items"]
        self.assertTrue(all(not c["open"] for c in ret))
        self.err("POST", "/v1/checkouts/bulk", 400, "invalid_field", {"items": []}, key=key)
        self.err("POST", "/v1/checkouts/bulk", 400, "invalid_field",
                 {"items": [{"asset_id": cart[0], "person_id": kids[0]}] * 101}, key=key)
        self.err("POST", "/v1/checkouts/bulk", 400, "unknown_field",
                 {"items": [{"asset_id": cart[0], "person_id": kids[0], "x": 1}]}, key=key)

    # ------------------------------------------------------------------ idempotency

    def test_idempotency_key_replays(self):
        t = harness.new_tenant("apiid")
        key = new_key(t, "admin")
        dev = asset(t, "SN-I1")
        kid = person(t, "Kid I")
        h = {"Idempotency-Key": "req-" + uuid.uuid4().hex}
        st1, _, first = self.call("POST", f"/v1/assets/{dev}/checkout", {"person_id": kid},
                                  key=key, headers=h)
        st2, h2, again = self.call("POST", f"/v1/assets/{dev}/checkout", {"person_id": kid},
                                   key=key, headers=h)
        self.assertEqual((st1, st2), (201, 201))
        self.assertEqual(first, again)
        self.assertEqual(h2.get("Idempotent-Replayed"), "true")
        self.assertEqual(psql("SELECT count(*) FROM checkouts WHERE tenant_id = :'t'", t=t)[0][0],
                         "1")
        self.err("POST", f"/v1/assets/{dev}/checkout", 422, "idempotency_key_reused",
                 {"person_id": kid, "note": "different"}, key=key, headers=h)
        # Replies are per caller: a viewer replaying the admin's key is refused on its own
        # role, never handed the admin's stored reply.
        viewer = new_key(t, "viewer")
        st, hdrs, out = self.call("POST", f"/v1/assets/{dev}/checkout", {"person_id": kid},
                                  key=viewer, headers=h)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"))
        self.assertIsNone(hdrs.get("Idempotent-Replayed"))
        # The same key in another tenant is another request.
        other = asset(self.b, "SN-I2")
        self.err("POST", f"/v1/assets/{other}/checkin", 409, "not_checked_out", {},
                 key=self.key_b, headers=h)
        self.err("POST", "/v1/assets", 400, "invalid_idempotency_key", {"asset_tag": "z"},
                 key=key, headers={"Idempotency-Key": "x" * 300})
        # A refusal is replayed too (the handler's rolled-back transaction does not lose it).
        h2 = {"Idempotency-Key": "req-" + uuid.uuid4().hex}
        for _ in range(2):
            st, hdrs, out = self.call("POST", f"/v1/assets/{dev}/checkout",
                                      {"person_id": kid}, key=key, headers=h2)
            self.assertEqual((st, out["error"]["code"]), (409, "already_checked_out"))
        self.assertEqual(hdrs.get("Idempotent-Replayed"), "true")
        stored = psql("SELECT status FROM idempotency_keys WHERE tenant_id = :'t' "
                      "AND idem_key = :'k'", t=t, k=h2["Idempotency-Key"])
        self.assertEqual(stored, [["409"]])
        # Concurrent requests with one key: exactly one acts. A manual Asset without a tag,
        # which every execution could create (a checkout could be won by one request anyway).
        h3 = {"Idempotency-Key": "race-" + uuid.uuid4().hex}
        serial = "SN-RACE-" + uuid.uuid4().hex[:6]
        results = []

        def go():
            results.append(self.call("POST", "/v1/assets", {"serial_number": serial},
                                     key=key, headers=h3))
        threads = [threading.Thread(target=go) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        made = [out for st, _, out in results if st == 201]
        self.assertTrue(made, results)
        self.assertTrue(all(out == made[0] for out in made), "a replay is the first reply")
        self.assertTrue(all(st == 201 or (st, out["error"]["code"]) == (409, "request_in_progress")
                            for st, _, out in results), results)
        self.assertEqual(psql("SELECT count(*) FROM assets WHERE tenant_id = :'t' AND "
                              "serial_number = :'s'", t=t, s=serial), [["1"]])
        # Without the key, a retry is a second request: 409.
        self.err("POST", f"/v1/assets/{dev}/checkout", 409, "already_checked_out",
                 {"person_id": kid}, key=key)

    # ------------------------------------------------------------------ roles and tenants

    def test_viewer_cannot_change_anything(self):
        dev = asset(self.a, "SN-V1")
        kid = person(self.a, "Kid V")
        run, case, _ = fixture_run_and_case(self.a)
        before = len(Stub.calls)
        for method, path, body in mutating_routes(dev, kid, run, case):
            with self.subTest(route=f"{method} {path}"):
                self.err(method, path, 403, "forbidden", body, key=self.key_view)
        self.assertEqual(len(Stub.calls), before, "a viewer's request reached auth/merger")
        got = self.ok("GET", f"/v1/assets/{dev}", key=self.key_view)
        self.assertEqual((got["lifecycle"], got["current_checkout"]), ("deployed", None))
        for path in ("/v1/people", "/v1/assets", "/v1/org-units", "/v1/checkouts",
                     "/v1/connections", "/v1/sync/runs", "/v1/sync/match-cases",
                     "/v1/sync/settings", f"/v1/sync/runs/{run}"):
            self.ok("GET", path, key=self.key_view)

    def test_tenant_isolation_on_every_route(self):
        dev = asset(self.a, "SN-ISO", tag="ISO-" + uuid.uuid4().hex[:6])
        kid = person(self.a, "Kid Iso")
        self.ok("POST", f"/v1/assets/{dev}/checkout", {"person_id": kid}, 201)
        run, case, _ = fixture_run_and_case(self.a)
        tag = self.ok("GET", f"/v1/assets/{dev}")["asset_tag"]
        reads = [f"/v1/people/{kid}", f"/v1/people/{kid}/checkouts", f"/v1/assets/{dev}",
                 f"/v1/assets/{dev}/checkouts", f"/v1/assets/by-tag/{tag}",
                 f"/v1/sync/runs/{run}", f"/v1/sync/runs/{run}/outcomes",
                 f"/v1/sync/match-cases/{case}"]
        for path in reads:
            with self.subTest(route=path):
                self.err("GET", path, 404, key=self.key_b)
        self.assertEqual(self.ok("GET", "/v1/assets/by-serial/SN-ISO", key=self.key_b)["items"],
                         [])
        b_kid = person(self.b, "Kid of B")
        calls = len(Stub.calls)
        writes = [r for r in mutating_routes(dev, b_kid, run, case)
                  if (dev in r[1] or run in r[1] or case in r[1])]
        writes += [("POST", "/v1/checkouts/bulk",
                    {"items": [{"asset_id": dev, "person_id": b_kid}]}),
                   ("POST", "/v1/checkins/bulk", {"items": [{"asset_id": dev}]})]
        for method, path, body in writes:
            with self.subTest(route=f"{method} {path}"):
                self.err(method, path, 404, body=body, key=self.key_b)
        self.assertEqual(len(Stub.calls), calls, "another tenant's id reached auth/merger")
        # A's person given to B's asset: 404 as well.
        b_dev = asset(self.b, "SN-ISO-B")
        self.err("POST", f"/v1/assets/{b_dev}/checkout", 404, "person_not_found",
                 {"person_id": kid}, key=self.key_b)
        # Lists never show the other tenant's rows.
        for path, ident in (("/v1/people?status=all&limit=500", kid),
                            ("/v1/assets?limit=500", dev),
                            ("/v1/checkouts?limit=500", dev),
                            ("/v1/sync/runs?limit=500", run),
                            ("/v1/sync/match-cases?status=all&limit=500", case)):
            with self.subTest(list=path):
                self.assertNotIn(ident, json.dumps(self.ok("GET", path, key=self.key_b)))
        still = self.ok("GET", f"/v1/assets/{dev}")
        self.assertEqual(still["current_checkout"]["person_id"], kid)

    # ------------------------------------------------------------------ sync and connections

    def test_sync_runs_cases_and_settings(self):
        t = harness.new_tenant("apisy")
        key = new_key(t, "admin")
        run, case, cand = fixture_run_and_case(t)
        done, _, _ = fixture_run_and_case(t, status="completed")

        runs = self.ok("GET", "/v1/sync/runs", key=key)["items"]
        self.assertEqual({r["run_id"] for r in runs}, {run, done})
        held = self.ok("GET", "/v1/sync/runs?status=held", key=key)["items"]
        self.assertEqual([r["run_id"] for r in held], [run])
        self.assertEqual(self.ok("GET", "/v1/sync/runs?source=azure", key=key)["items"], [])
        one = self.ok("GET", f"/v1/sync/runs/{run}", key=key)
        self.assertEqual((one["pending_removals"], one["report"]), (600, {"would_remove": 600}))
        outcomes = self.ok("GET", f"/v1/sync/runs/{run}/outcomes?limit=1", key=key)
        self.assertEqual(outcomes["items"][0]["reason"], "no email")
        more = self.ok("GET", f"/v1/sync/runs/{run}/outcomes?limit=1&cursor="
                       + outcomes["next_cursor"], key=key)
        self.assertEqual(more["items"][0]["reason"], "no serial")
        self.err("GET", "/v1/sync/runs?status=sleeping", 400, key=key)
        self.err("GET", f"/v1/sync/runs/{uuid.uuid4()}", 404, key=key)

        self.assertEqual(self.ok("POST", f"/v1/sync/runs/{run}/approve", key=key)["status"],
                         "approved")
        self.assertEqual(Stub.calls[-1][1], f"/internal/tenants/{t}/runs/{run}/approve")
        actor = "apikey:" + key[3:].split(".")[0]
        self.assertEqual(Stub.calls[-1][2]["admin"], actor)
        self.err("POST", f"/v1/sync/runs/{run}/reject", 409, "not_held", key=key)
        self.err("POST", f"/v1/sync/runs/{run}/approve", 400, "unknown_field", {"x": 1},
                 key=key)

        cases = self.ok("GET", "/v1/sync/match-cases", key=key)["items"]
        self.assertEqual(len(cases), 2)
        mine = [c for c in cases if c["case_id"] == case][0]
        self.assertEqual(mine["candidates"][0]["person_id"], cand)
        self.assertEqual(mine["status"], "open")
        first = self.ok("GET", "/v1/sync/match-cases?limit=1", key=key)
        rest = self.ok("GET", "/v1/sync/match-cases?limit=1&cursor=" + first["next_cursor"],
                       key=key)
        self.assertEqual({first["items"][0]["case_id"], rest["items"][0]["case_id"]},
                         {c["case_id"] for c in cases})
        self.ok("GET", f"/v1/sync/match-cases/{case}", key=key)
        res = self.ok("POST", f"/v1/sync/match-cases/{case}/resolve", {"person_id": cand},
                      key=key)
        self.assertEqual(res["person_id"], cand)
        self.assertEqual(Stub.calls[-1][2]["person_id"], cand)
        self.ok("POST", f"/v1/sync/match-cases/{case}/resolve", {"person_id": None}, key=key)
        self.assertIsNone(Stub.calls[-1][2]["person_id"])
        self.err("POST", f"/v1/sync/match-cases/{case}/resolve", 400, "missing_field", {},
                 key=key)
        self.err("POST", f"/v1/sync/match-cases/{case}/resolve", 404,
                 body={"person_id": str(uuid.uuid4())}, key=key)
        self.err("GET", "/v1/sync/match-cases?status=weird", 400, key=key)

        req = self.ok("POST", "/v1/sync", {"provider": "google"}, 202, key=key)
        self.assertEqual([r["provider"] for r in req["requests"]], ["google"])
        self.assertEqual(Stub.calls[-1][2]["preview"], False)
        both = self.ok("POST", "/v1/sync", {"preview": True}, 202, key=key)
        self.assertEqual(len(both["requests"]), 2)
        self.assertEqual(Stub.calls[-1][2], {"provider": None, "preview": True, "actor": actor})
        # Who asked comes from authentication: a body naming someone is refused.
        self.err("POST", "/v1/sync", 400, "unknown_field", {"admin": "boss@d.example"}, key=key)
        self.err("POST", "/v1/sync", 422, "invalid_field", {"provider": "yahoo"}, key=key)
        self.err("POST", "/v1/sync", 400, "invalid_field", {"preview": "yes"}, key=key)

        s = self.ok("GET", "/v1/sync/settings", key=key)
        self.assertEqual((s["delete_threshold_count"], s["delete_threshold_percent"]), (500, 10))
        s = self.ok("PUT", "/v1/sync/settings", {"delete_threshold_count": 50,
                                                 "delete_threshold_percent": 5,
                                                 "sync_interval_seconds": 3600,
                                                 "pause_windows": [
                                                     {"starts_at": "2026-12-20T00:00:00Z",
                                                      "ends_at": "2027-01-05T00:00:00Z",
                                                      "reason": "winter break"}]}, key=key)
        self.assertEqual((s["delete_threshold_count"], s["delete_threshold_percent"]), (50, 5))
        self.assertEqual(Stub.calls[-1][0:2], ("PUT", f"/internal/tenants/{t}/settings"))
        self.assertEqual(Stub.calls[-1][2]["sync_interval_seconds"], 3600)
        self.assertEqual(Stub.calls[-1][2]["actor"], actor)
        self.err("PUT", "/v1/sync/settings", 422, "invalid_field",
                 {"delete_threshold_percent": 101}, key=key)
        self.err("PUT", "/v1/sync/settings", 422, "invalid_field",
                 {"delete_threshold_count": "5"}, key=key)
        self.err("PUT", "/v1/sync/settings", 400, "invalid_field",
                 {"pause_windows": [{"starts_at": "soon", "ends_at": "later"}]}, key=key)
        self.err("PUT", "/v1/sync/settings", 422, "invalid_interval",
                 {"sync_interval_seconds": 301}, key=key)
        self.assertEqual(self.ok("GET", "/v1/sync/settings", key=key)["delete_threshold_count"],
                         50)

    def test_connections(self):
        t = harness.new_tenant("apicn")
        key = new_key(t, "admin")
        st = self.ok("GET", "/v1/connections", key=key)["connections"]
        self.assertEqual([(c["provider"], c["status"]) for c in st],
                         [("google", "never"), ("azure", "never")])
        psql("INSERT INTO connections (tenant_id, provider, status, granted_scopes, "
             "authorized_by, authorized_at, next_sync_at) VALUES (:'t', 'google', 'connected', "
             "'{https://www.googleapis.com/auth/admin.directory.user.readonly}', "
             "'admin@d.example', now(), now() + interval '4 hours')", t=t)
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, seen, created) VALUES "
             "(:'t', gen_random_uuid(), 'google', 'completed', 42, 40)", t=t)
        psql("INSERT INTO pause_windows (tenant_id, starts_at, ends_at) VALUES "
             "(:'t', now() - interval '1 hour', now() + interval '1 hour')", t=t)
        g = self.ok("GET", "/v1/connections", key=key)["connections"][0]
        self.assertEqual((g["status"], g["paused"], g["last_run"]["seen"]),
                         ("connected", True, 42))
        self.assertIsNotNone(g["next_sync_at"])

        actor = "apikey:" + key[3:].split(".")[0]
        # A consent is given in a browser by a signed-in admin: an API key cannot start one,
        # and auth is not asked.
        calls = len(Stub.calls)
        for provider in ("google", "microsoft"):
            out = self.err("POST", f"/v1/connections/{provider}/authorize", 403,
                           "session_required", key=key)
            self.assertIn("signed in", out["error"]["message"])
        self.assertEqual(len(Stub.calls), calls)
        # A session starts it; auth gets the person and the session's stored hash, which the
        # consent's state is bound to.
        import hashlib
        sid, _ = harness.new_session(t, "boss@d.example")
        cookie = {"Cookie": "panel_session=" + sid, "X-CSRF-Token": harness.session_csrf(sid)}
        for provider in ("google", "microsoft"):
            st, _, out = http("POST", self.api.url + f"/v1/connections/{provider}/authorize", {},
                              headers=cookie)
            self.assertEqual(st, 200, out)
            self.assertIn(f"/{provider}", out["consent_url"])
            self.assertEqual(Stub.calls[-1][1:], (
                f"/internal/tenants/{t}/{provider}/authorize",
                {"actor": "person:boss@d.example",
                 "session_hash": hashlib.sha256(sid.encode()).hexdigest()}))
        # The consenting admin is whoever is authenticated, never a body field.
        self.err("POST", "/v1/connections/google/authorize", 400, "unknown_field",
                 {"admin": "boss@d.example"}, key=key)
        out = self.ok("POST", "/v1/connections/google/deauthorize", key=key)
        self.assertEqual(out["status"], "deauthorized")
        self.assertEqual(Stub.calls[-1][2], {"actor": actor})
        self.err("POST", "/v1/connections/yahoo/authorize", 404, key=key)
        self.err("GET", "/v1/connections/google/authorize", 405, key=key)

    def test_upstream_down_is_502_not_500(self):
        t = harness.new_tenant("apiup")
        key = new_key(t, "admin")
        api = harness.Process("panel-api", env={
            "PANEL_AUTH_URL": f"http://127.0.0.1:{harness.free_port()}",
            "PANEL_MERGER_URL": f"http://127.0.0.1:{harness.free_port()}",
            "PANEL_SERVICE_SECRET": "wrong-secret-but-long-enough"})
        try:
            st, _, out = http("POST", api.url + "/v1/sync", body={},
                              headers={"Authorization": f"Bearer {key}"})
            self.assertEqual((st, out["error"]["code"]), (502, "upstream_unavailable"))
        finally:
            api.stop()
        # Auth refusing our secret is our misconfiguration: 502, never passed on as 401.
        api = harness.Process("panel-api", env={
            "PANEL_AUTH_URL": self.stub.url,
            "PANEL_SERVICE_SECRET": "wrong-secret-but-long-enough"})
        try:
            st, _, out = http("POST", api.url + "/v1/sync", body={},
                              headers={"Authorization": f"Bearer {key}"})
            self.assertEqual((st, out["error"]["code"]), (502, "upstream_error"))
        finally:
            api.stop()

    def test_request_id_is_kept_or_made_and_in_every_error(self):
        st, hdrs, _ = self.call("GET", "/v1/people", headers={"X-Request-Id": "gw-123:abc"})
        self.assertEqual((st, hdrs.get("X-Request-Id")), (200, "gw-123:abc"))
        st, hdrs, out = self.call("GET", f"/v1/people/{uuid.uuid4()}",
                                  headers={"X-Request-Id": "gw-404"})
        self.assertEqual((st, hdrs.get("X-Request-Id")), (404, "gw-404"))
        self.assertEqual(out["error"]["request_id"], "gw-404")
        # Too long or unprintable: replaced by one of ours, never echoed.
        for bad in ("x" * 65, "a b", "caf\u00e9".encode().decode("latin-1")):
            st, hdrs, out = self.call("GET", "/v1/nothing", headers={"X-Request-Id": bad})
            self.assertEqual(st, 404)
            self.assertRegex(hdrs.get("X-Request-Id", ""), "^[0-9a-f]{32}$")
            self.assertEqual(out["error"]["request_id"], hdrs["X-Request-Id"])
        ids = {self.call("GET", "/v1/people")[1]["X-Request-Id"] for _ in range(3)}
        self.assertEqual(len(ids), 3)
        # 401s (before authentication) and 413s carry it as well.
        st, hdrs, out = http("GET", self.api.url + "/v1/people")
        self.assertEqual(out["error"]["request_id"], hdrs["X-Request-Id"])
        self.err("POST", "/v1/assets", 413, "body_too_large", raw=b"{" + b" " * (300 * 1024))
        # The api passes its request id on to auth and the merger, kept or made.
        for sent in ("gw-upstream-1", None):
            before = len(Stub.request_ids)
            st, hdrs, out = self.call("POST", "/v1/sync", {"provider": "google"},
                                      headers={"X-Request-Id": sent} if sent else None)
            self.assertIn(st, (202, 409), out)
            self.assertEqual(Stub.request_ids[before:], [sent or hdrs["X-Request-Id"]])

    def test_method_not_allowed_says_what_is_allowed(self):
        aid = str(uuid.uuid4())
        for method, path, allow in (("DELETE", "/v1/people", "GET"),
                                    ("PUT", "/v1/assets", "GET, POST"),
                                    ("DELETE", f"/v1/assets/{aid}", "GET, PATCH"),
                                    ("GET", "/v1/sync", "POST"),
                                    ("DELETE", "/v1/sync/settings", "GET, PUT"),
                                    ("GET", "/v1/checkouts/bulk", "POST")):
            with self.subTest(route=f"{method} {path}"):
                st, hdrs, _ = self.call(method, path, body={} if method != "GET" else None)
                self.assertEqual((st, hdrs.get("Allow")), (405, allow))

    def test_etag_and_if_match_stop_lost_updates(self):
        t = harness.new_tenant("apietag")
        key = new_key(t, "admin")
        aid = asset(t, "SN-ETAG", tag="TAG-ETAG", google=False)
        st, hdrs, out = self.call("GET", f"/v1/assets/{aid}", key=key)
        self.assertEqual(st, 200)
        etag = hdrs.get("ETag")
        self.assertEqual(etag, f'"{out["version"]}"')
        self.assertEqual(self.call("GET", "/v1/assets/by-tag/TAG-ETAG", key=key)[1].get("ETag"),
                         etag)
        # Two admins read version v; the first change wins, the second is refused (412).
        st, hdrs, first = self.call("PATCH", f"/v1/assets/{aid}", {"notes": "first"}, key=key,
                                    headers={"If-Match": etag})
        self.assertEqual(st, 200, first)
        self.assertEqual(hdrs.get("ETag"), f'"{first["version"]}"')
        self.assertEqual(first["version"], out["version"] + 1)
        e = self.err("PATCH", f"/v1/assets/{aid}", 412, "precondition_failed",
                     {"notes": "second"}, key=key, headers={"If-Match": etag})
        self.assertIn(str(first["version"]), e["error"]["message"])
        self.assertEqual(self.ok("GET", f"/v1/assets/{aid}", key=key)["notes"], "first")
        # A weak tag never matches (strong comparison); a list or * does.
        self.err("PATCH", f"/v1/assets/{aid}", 412, "precondition_failed", {"notes": "w"},
                 key=key, headers={"If-Match": "W/" + hdrs["ETag"]})
        self.ok("PATCH", f"/v1/assets/{aid}", {"notes": "list"}, key=key,
                headers={"If-Match": f'"999", {hdrs["ETag"]}'})
        self.ok("PATCH", f"/v1/assets/{aid}", {"notes": "star"}, key=key,
                headers={"If-Match": "*"})
        # The retire action honours it too. A 412 is not stored for its Idempotency-Key (the
        # precondition is a header the key's request hash does not cover): the retry with the
        # current ETag runs, and its replay repeats the reply's ETag.
        idem = {"Idempotency-Key": "retire-" + aid}
        self.err("POST", f"/v1/assets/{aid}/retire", 412, "precondition_failed", key=key,
                 headers=dict(idem, **{"If-Match": etag}))
        cur = self.call("GET", f"/v1/assets/{aid}", key=key)[1]["ETag"]
        st, hdrs, retired = self.call("POST", f"/v1/assets/{aid}/retire", key=key,
                                      headers=dict(idem, **{"If-Match": cur}))
        self.assertEqual((st, retired["lifecycle"]), (200, "retired"), retired)
        self.assertEqual(hdrs.get("ETag"), f'"{retired["version"]}"')
        st, again, body = self.call("POST", f"/v1/assets/{aid}/retire", key=key,
                                    headers=dict(idem, **{"If-Match": cur}))
        self.assertEqual((st, again.get("Idempotent-Replayed"), again.get("ETag")),
                         (200, "true", hdrs["ETag"]))
        self.assertEqual(body, retired)
        # Without If-Match the change goes through unless the gateway asks for it (428).
        self.ok("PATCH", f"/v1/assets/{aid}", {"notes": "no precondition"}, key=key)
        pid = person(t, "Etag Kid")
        st, hdrs, p = self.call("GET", f"/v1/people/{pid}", key=key)
        self.assertEqual(hdrs.get("ETag"), f'"{p["version"]}"')

    def test_if_match_required_by_configuration(self):
        t = harness.new_tenant("apiim")
        key = new_key(t, "admin")
        aid = asset(t, "SN-IM", google=False)
        api = harness.Process("panel-api", env={
            "PANEL_AUTH_URL": self.stub.url,
            "PANEL_MERGER_URL": self.stub.url,
            "PANEL_SERVICE_SECRET": SECRET, "PANEL_API_REQUIRE_IF_MATCH": "true"})
        try:
            auth = {"Authorization": f"Bearer {key}"}
            st, _, out = http("PATCH", api.url + f"/v1/assets/{aid}", body={"notes": "x"},
                              headers=auth)
            self.assertEqual((st, out["error"]["code"]), (428, "precondition_required"))
            st, hdrs, a = http("GET", api.url + f"/v1/assets/{aid}", headers=auth)
            st, _, out = http("PATCH", api.url + f"/v1/assets/{aid}", body={"notes": "x"},
                              headers=dict(auth, **{"If-Match": hdrs["ETag"]}))
            self.assertEqual((st, out["notes"]), (200, "x"))
            # Actions (POST) are not guarded by the requirement.
            st, _, out = http("POST", api.url + f"/v1/assets/{aid}/audit", body={},
                              headers=auth)
            self.assertEqual(st, 200, out)
        finally:
            api.stop()

    def test_openapi_describes_the_routes(self):
        """Every documented path and method is served (viewers: GETs answer, changes 403); a
        templated GET of a row that does not exist is the resource's 404, not the router's."""
        with open(os.path.join(harness.ROOT, "docs", "openapi.yaml")) as f:
            spec = f.read()
        routes, path = [], None
        for line in spec.splitlines():
            if line.startswith("  /v1/") and line.endswith(":"):
                path = line.strip()[:-1]
            elif path and line[:4] == "    " and line[4:].rstrip(":") in (
                    "get", "post", "put", "patch", "delete") and line.endswith(":"):
                routes.append((line.strip()[:-1].upper(), path))
            elif not line.startswith(" "):
                path = None
        self.assertGreater(len(routes), 25)
        ids = {"person_id": str(uuid.uuid4()), "asset_id": str(uuid.uuid4()),
               "run_id": str(uuid.uuid4()), "case_id": str(uuid.uuid4()),
               "org_unit_id": "id:none", "serial": "none", "asset_tag": "none",
               "provider": "google", "account_id": str(uuid.uuid4())}
        for method, path in routes:
            url = path
            for k, v in ids.items():
                url = url.replace("{" + k + "}", v)
            with self.subTest(route=f"{method} {path}"):
                st, _, out = self.call(method, url, body={} if method != "GET" else None,
                                       key=self.key_view)
                if method == "GET":
                    self.assertIn(st, (200, 404), out)
                    if st == 404:
                        self.assertIn("{", path, "a fixed documented path is not served")
                        # the row does not exist; the route itself must be served
                        self.assertEqual(out["error"]["message"], "no such resource", out)
                else:
                    self.assertEqual(st, 403, out)

    # ------------------------------------------------------------------ service

    def test_health_metrics_and_admin_page(self):
        self.assertEqual(http("GET", self.api.url + "/healthz")[0], 200)
        self.assertEqual(http("GET", self.api.url + "/readyz")[0], 200)
        def people_requests():
            """GET /v1/people answered 200, and timed, as counted (values, not names)."""
            st, _, body = http("GET", self.api.url + "/metrics")
            self.assertEqual(st, 200)
            text = body.decode() if isinstance(body, bytes) else str(body)

            def value(pattern):
                return sum(float(v) for v in re.findall("^" + pattern + r" (\S+)$", text, re.M))
            return text, (value(r'http_requests_total\{route="/v1/people",method="GET",'
                                r'code="200"\}'),
                          value(r'http_request_duration_seconds_count\{route="/v1/people"\}'))
        self.ok("GET", "/v1/people")
        text, before = people_requests()
        self.assertIn("# TYPE http_request_duration_seconds histogram", text)
        self.assertGreaterEqual(min(before), 1, text[-3000:])
        self.ok("GET", "/v1/people")
        self.ok("GET", "/v1/people")
        after = people_requests()[1]
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (2, 2))
        # A route with an id is counted by its pattern, never by the path with the id.
        unknown = str(uuid.uuid4())
        self.err("GET", f"/v1/assets/{unknown}", 404, "not_found")
        text = http("GET", self.api.url + "/metrics")[2]
        text = text.decode() if isinstance(text, bytes) else str(text)
        self.assertIn('route="/v1/assets/{id}"', text)
        self.assertNotIn(unknown, text)
        st, hdrs, page = http("GET", self.api.url + "/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", hdrs.get("Content-Type", ""))
        self.assertIn(b"<html", page)
        self.assertEqual(http("GET", self.api.url + "/app.js")[0], 200)
        self.assertEqual(http("GET", self.api.url + "/..%2fMakefile")[0], 404)
        self.assertEqual(http("GET", self.api.url + "/.git")[0], 404)
        self.assertEqual(http("GET", self.api.url + "/nope.html")[0], 404)


if __name__ == "__main__":
    unittest.main()
