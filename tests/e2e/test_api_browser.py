"""The admin page in headless Chromium (Debian's), driven by playwright-core
(tests/browser/admin_page.mjs), against panel-api on the real PostgreSQL with the auth/merger
stub of test_api. The signed-in person's session is inserted as auth's sign-in makes it
(harness.new_session) and set as the browser's cookie. Screenshots: tests/screenshots/api/."""
import csv
import json
import os
import subprocess
import tempfile
import unittest
import uuid

import harness
from harness import new_session, psql
from test_api import SECRET, Stub, asset, person

AUTH_PUBLIC = "https://auth.panel.example"

BROWSER_DIR = os.path.join(harness.ROOT, "tests", "browser")


def ensure_playwright():
    """Install playwright-core from package.json when missing (no browser download: the
    test uses Debian's chromium)."""
    if os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True,
                   env=dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1"), timeout=300)


class AdminPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        ensure_playwright()
        cls.stub, cls.api = harness.api_with_stub(Stub, SECRET, {
            "PANEL_AUTH_PUBLIC_URL": AUTH_PUBLIC,
            "PANEL_COOKIE_SECURE": "false"})

    @classmethod
    def tearDownClass(cls):
        Stub.consent_url = None
        cls.api.stop()
        cls.stub.shutdown()

    def test_cloud_sync_people_and_checkout_in_the_browser(self):
        t = harness.new_tenant("apiui")
        psql("UPDATE tenants SET display_name = 'Springfield Public Schools', "
             "time_zone = 'America/Chicago' WHERE tenant_id = :'t'", t=t)
        email = f"jane.{uuid.uuid4().hex[:6]}@district.example"
        session, _ = new_session(t, email, "admin")
        viewer, _ = new_session(t, f"vic.{uuid.uuid4().hex[:6]}@district.example", "viewer")
        psql("INSERT INTO connections (tenant_id, provider, status, granted_scopes, "
             "authorized_by, authorized_at, next_sync_at) VALUES "
             "(:'t', 'google', 'connected', '{admin.directory.user.readonly}', "
             "'admin@district.example', now(), now() + interval '4 hours'), "
             "(:'t', 'azure', 'revoked', '{}', 'admin@district.example', now(), NULL)", t=t)
        held = str(uuid.uuid4())
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, seen, pending_removals) "
             "VALUES (:'t', :'r', 'google', 'held', 900, 600)", t=t, r=held)
        held2 = str(uuid.uuid4())  # still held when the viewer looks
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, seen, pending_removals, "
             "requested_at) VALUES (:'t', :'r', 'google', 'held', 900, 600, "
             "now() - interval '1 day')", t=t, r=held2)
        leaver = person(t, "Larry Leaver", ou="/Students/Grade 12")
        psql("INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
             "content_hash) SELECT :'t', 'google', 'g-leaver', person_id, email_norm, 'h' "
             "FROM people WHERE person_id = :'p'", t=t, p=leaver)
        preview = str(uuid.uuid4())
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, preview, seen, skipped, "
             "report, requested_at) VALUES (:'t', :'r', 'google', 'completed', true, 15, 1, "
             "'{\"would_create\": 12, \"would_update\": 3, \"would_remove\": 0}', "
             "now() - interval '2 days')", t=t, r=preview)
        dead = asset(t, "DEAD-" + uuid.uuid4().hex[:6].upper())
        dead_serial = psql("SELECT serial_number FROM assets WHERE asset_id = :'a'", a=dead)[0][0]
        psql("INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, email, "
             "outcome, reason) VALUES (:'t', :'p', 'person', 'g-noemail', NULL, 'skipped', "
             "'no email address'), (:'t', :'p', 'device', 'dev-' || :'d', NULL, 'invalid', "
             "'serial number too long')", t=t, p=preview, d=dead)
        person(t, "Ada Lovelace", ou="/Staff", sources=("google", "azure"),
               fields={"display_name": "Ada Lovelace", "job_title": "Teacher",
                       "org_unit_path": "/Staff"},
               provenance={"display_name": "azure", "job_title": "azure",
                           "org_unit_path": "google"})
        ada = psql("SELECT person_id FROM people WHERE tenant_id = :'t' AND "
                   "display_name = 'Ada Lovelace'", t=t)[0][0]
        kid = person(t, "Zed Student")
        serial = "UI-" + uuid.uuid4().hex[:8].upper()
        dev = asset(t, serial)
        psql("INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, outcome, "
             "reason) SELECT :'t', r, 'person', 'g-leaver', 'held_removal', 'not seen by the run' "
             "FROM unnest(ARRAY[:'r1', :'r2']::uuid[]) r UNION ALL SELECT :'t', r, 'device', "
             "'dev-' || :'a', 'held_removal', 'not seen by the run' "
             "FROM unnest(ARRAY[:'r1', :'r2']::uuid[]) r", t=t, r1=held, r2=held2, a=dev)
        case = str(uuid.uuid4())
        case_email = f"ada.{uuid.uuid4().hex[:4]}@other.example"
        psql("INSERT INTO person_sources (tenant_id, source, source_id, person_id, email_norm, "
             "fields, content_hash) VALUES (:'t', 'azure', 'az-case', NULL, :'e', "
             "'{\"display_name\": \"A. Lovelace\"}', 'h')", t=t, e=case_email)
        psql("INSERT INTO match_cases (tenant_id, case_id, source, source_id, candidates, "
             "reason, run_id) VALUES (:'t', :'c', 'azure', 'az-case', ARRAY[:'p']::uuid[], "
             "'two People share this address', :'r')", t=t, c=case, p=ada, r=held)
        Stub.consent_url = self.api.url + "/#cloud-sync?provider=google&result=connected"
        calls = len(Stub.calls)
        fixture = {"url": self.api.url, "session": session, "viewer_session": viewer,
                   "email": email, "tenant": t, "tenant_name": "Springfield Public Schools",
                   "auth_public": AUTH_PUBLIC, "email_other": "stranger@else.example",
                   "invitee": f"new.{uuid.uuid4().hex[:6]}@district.example",
                   "held_run": held,
                   "person_query": "lovelace", "person_name": "Ada Lovelace",
                   "serial": serial, "kid_query": "zed", "kid_name": "Zed Student",
                   "held_run2": held2, "leaver_name": "Larry Leaver",
                   "leaver_ou": "/Students/Grade 12", "preview_run": preview,
                   "dead_serial": dead_serial, "match_case": case, "case_email": case_email,
                   "doc_shots": os.path.join(harness.ROOT, "docs", "images")
                   if os.environ.get("PANEL_DOC_SHOTS") else ""}
        p = subprocess.run(["node", os.path.join(BROWSER_DIR, "admin_page.mjs")],
                           env=dict(os.environ, FIXTURE=json.dumps(fixture),
                                    SHOTS=os.path.join(harness.ROOT, "tests", "screenshots",
                                                       "api")),
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        paths = [c[1] for c in Stub.calls[calls:]]
        self.assertIn(f"/internal/tenants/{t}/sync", paths)
        self.assertIn(f"/internal/tenants/{t}/runs/{held}/approve", paths)
        self.assertIn(f"/internal/tenants/{t}/google/authorize", paths)
        rows = psql("SELECT person_id, condition, checked_in_at IS NOT NULL, due_at::date, "
                    "checked_out_by, checked_in_by FROM checkouts WHERE tenant_id = :'t' AND "
                    "asset_id = :'a'", t=t, a=dev)
        actor = "person:" + email
        self.assertEqual(rows, [[kid, "good", "t", "2030-06-30", actor, actor]])
        # Every change was the signed-in person's, sent with the session's CSRF token.
        self.assertEqual(psql("SELECT decided_by FROM sync_runs WHERE run_id = :'r'", r=held),
                         [[actor]])
        upstream = [c for c in Stub.calls[calls:] if c[0] == "POST"]
        self.assertTrue(upstream)
        for method, path, body in upstream:
            self.assertEqual(body.get("actor", body.get("admin")), actor, path)
        # The match case went to the merger with the chosen Person and the actor.
        resolves = [c for c in Stub.calls[calls:] if c[1].endswith(f"/match-cases/{case}/resolve")]
        self.assertEqual([(c[2]["person_id"], c[2]["admin"]) for c in resolves], [(ada, actor)])
        # A preview run was asked of auth; the thresholds were saved; the pause window went
        # to auth (which owns the schedule) with the actor.
        syncs = [c[2] for c in Stub.calls[calls:] if c[1] == f"/internal/tenants/{t}/sync"]
        self.assertIn(True, [b.get("preview") for b in syncs])
        self.assertEqual(psql("SELECT delete_threshold_count, delete_threshold_percent FROM "
                              "tenants WHERE tenant_id = :'t'", t=t), [["250", "5"]])
        puts = [c[2] for c in Stub.calls[calls:] if c[0] == "PUT"]
        self.assertEqual(len(puts), 1)
        self.assertEqual([w["reason"] for w in puts[0]["pause_windows"]], ["winter break"])
        # Typed as 08:00 in the district's zone (Chicago, UTC-6 in winter) by a browser set to
        # Tokyo: the instants sent are 14:00 UTC.
        self.assertEqual([(w["starts_at"], w["ends_at"]) for w in puts[0]["pause_windows"]],
                         [("2030-12-20T14:00:00.000Z", "2031-01-05T14:00:00.000Z")])
        # The invited person was added, promoted and removed by the signed-in admin.
        self.assertEqual(psql("SELECT role, created_by, removed_by FROM admin_accounts "
                              "WHERE tenant_id = :'t' AND email = :'e'", t=t,
                              e=fixture["invitee"]), [["admin", actor, actor]])
        # Sign-out ended the admin's session; the viewer's is untouched.
        self.assertEqual(psql("SELECT email, ended_at IS NOT NULL FROM admin_sessions "
                              "WHERE tenant_id = :'t' ORDER BY email", t=t),
                         sorted([[email, "t"], [psql("SELECT email FROM admin_accounts WHERE "
                                                     "tenant_id = :'t' AND role = 'viewer'",
                                                     t=t)[0][0], "f"]]))

    def test_coordinator_inventory_cart_and_lists_in_the_browser(self):
        """A coordinator's day (tests/browser/inventory_page.mjs): Chromebooks by org-unit
        subtree and MAC, an Asset's page, edit, audit, retire; a 30-device cart scanned in
        and checked out, then checked back in; overdue and audits due; a Person's readable
        details in the district's time zone. The database shows every change, by the
        signed-in person."""
        t = harness.new_tenant("apiinv")
        psql("UPDATE tenants SET display_name = 'Shelbyville Schools', "
             "time_zone = 'America/Chicago' WHERE tenant_id = :'t'", t=t)
        email = f"tess.{uuid.uuid4().hex[:6]}@district.example"
        session, _ = new_session(t, email, "admin")
        actor = "person:" + email
        person(t, "Ada Lovelace", ou="/Staff", sources=("google", "azure"),
               fields={"display_name": "Ada Lovelace", "job_title": "Teacher",
                       "org_unit_path": "/Staff", "other_mails": {"values": []},
                       "proxy_addresses": {"values": ["SMTP:ada@district.example",
                                                      "smtp:ada.l@old.example"]},
                       "last_login_at": "2026-03-02T15:04:00Z"},
               provenance={"display_name": "azure", "job_title": "azure",
                           "org_unit_path": "google", "other_mails": "azure",
                           "proxy_addresses": "azure", "last_login_at": "google"})
        kid = person(t, "Zed Student")
        holder = person(t, "Holly Holder", ou="/Staff")
        psql("INSERT INTO org_units (tenant_id, org_unit_id, path, name, parent_id, parent_path, "
             "content_hash) VALUES (:'t', 'id:r', '/', 'District', NULL, NULL, 'h'), "
             "(:'t', 'id:s', '/Students', 'Students', 'id:r', '/', 'h'), "
             "(:'t', 'id:s5', '/Students/Grade 5', 'Grade 5', 'id:s', '/Students', 'h'), "
             "(:'t', 'id:st', '/Staff', 'Staff', 'id:r', '/', 'h')", t=t)
        tag = uuid.uuid4().hex[:4].upper()
        grade5 = asset(t, "G5-" + tag, ou="/Students/Grade 5")
        psql("UPDATE assets SET device = '{\"mac_address\": \"e8b1fc0011aa\", "
             "\"os_version\": \"126.0.6478.132\", \"annotated_location\": \"\", "
             "\"recent_users\": [{\"type\": \"USER_TYPE_MANAGED\", "
             "\"email\": \"rita.recent@district.example\"}], \"notes\": \"2024 refresh\"}', "
             "panel_notes = 'charger missing' WHERE asset_id = :'a'",
             a=grade5)
        staff = asset(t, "ST-" + tag, ou="/Staff")
        retire = asset(t, "RT-" + tag)
        out_asset = asset(t, "OUT-" + tag, tag="OUT-" + tag)
        psql("INSERT INTO checkouts (tenant_id, asset_id, person_id, checked_out_by, due_at) "
             "VALUES (:'t', :'a', :'p', 'person:x@district.example', now() + interval '30 days')",
             t=t, a=grade5, p=holder)
        overdue = psql("INSERT INTO checkouts (tenant_id, asset_id, person_id, checked_out_by, "
                       "due_at, checked_out_at) VALUES (:'t', :'a', :'p', "
                       "'person:x@district.example', now() - interval '3 days', "
                       "now() - interval '40 days') RETURNING checkout_id", t=t, a=out_asset,
                       p=holder)[0][0]
        cart_ids, codes = [], []
        for i in range(30):
            serial = f"CB-{tag}-{i:02d}"
            by_tag = i % 3 != 2  # two thirds scanned by asset tag, the rest by serial
            cart_ids.append(asset(t, serial, tag=f"T{tag}{i:02d}", ou="/Students/Grade 5"))
            codes.append(f"T{tag}{i:02d}" if by_tag else serial)
        fixture = {"url": self.api.url, "session": session, "email": email, "tenant": t,
                   "grade5_asset": grade5, "grade5_serial": "G5-" + tag, "staff_asset": staff,
                   "staff_serial": "ST-" + tag,
                   "mac_typed": "E8:B1:FC:00:11", "mac_shown": "E8:B1:FC:00:11:AA",
                   "holder_name": "Holly Holder", "recent_user": "rita.recent@district.example",
                   "new_tag": "NEW-" + tag, "retire_serial": "RT-" + tag,
                   "cart_codes": codes, "unknown_code": "NOPE-" + tag,
                   "retired_code": "RT-" + tag, "out_code": "OUT-" + tag,
                   "kid_query": "zed", "kid_name": "Zed Student",
                   "overdue_checkout": overdue,
                   "person_query": "lovelace", "person_name": "Ada Lovelace",
                   "proxy_shown": "SMTP:ada@district.example, smtp:ada.l@old.example",
                   "login_shown": "Mar 2, 2026, 9:04 AM",
                   "download_dir": tempfile.mkdtemp(prefix="panel-csv-")}
        env = dict(os.environ, FIXTURE=json.dumps(fixture),
                   SHOTS=os.path.join(harness.ROOT, "tests", "screenshots", "api"))
        if os.environ.get("PANEL_DOC_SHOTS"):
            env["DOC_SHOTS"] = os.path.join(harness.ROOT, "docs", "images")
        p = subprocess.run(["node", os.path.join(BROWSER_DIR, "inventory_page.mjs")], env=env,
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(psql("SELECT asset_tag, lifecycle, lifecycle_changed_by, "
                              "next_audit_due::text FROM assets WHERE asset_id = :'a'",
                              a=grade5), [["NEW-" + tag, "in_repair", actor, "2020-01-15"]])
        self.assertEqual(psql("SELECT audited_by, note FROM asset_audits WHERE asset_id = :'a'",
                              a=grade5), [[actor, "seen in cart 3"]])
        self.assertEqual(psql("SELECT lifecycle FROM assets WHERE asset_id = :'a'", a=retire),
                         [["retired"]])
        # The 30 were checked out to the one Person together, then all checked in "good".
        rows = psql("SELECT person_id, checked_out_by, due_at::date::text, checked_in_by, "
                    "condition, count(*) FROM checkouts WHERE tenant_id = :'t' AND asset_id = "
                    "ANY (:'ids'::uuid[]) GROUP BY 1, 2, 3, 4, 5", t=t,
                    ids="{" + ",".join(cart_ids) + "}")
        self.assertEqual(rows, [[kid, actor, "2031-06-15", actor, "good", "30"]])
        # The CSVs the page downloaded parse, and hold what the lists showed.
        with open(os.path.join(fixture["download_dir"], "overdue.csv"), newline="") as f:
            overdue_rows = list(csv.DictReader(f))
        self.assertEqual([(r["serial_number"], r["person_name"]) for r in overdue_rows],
                         [("OUT-" + tag, "Holly Holder")])
        with open(os.path.join(fixture["download_dir"], "assets.csv"), newline="") as f:
            by_serial = {r["serial_number"]: r for r in csv.DictReader(f)}
        self.assertEqual(len(by_serial), 34)
        self.assertEqual(by_serial["G5-" + tag]["asset_tag"], "NEW-" + tag)
        self.assertEqual(by_serial["G5-" + tag]["last_used_by"], "rita.recent@district.example")
        self.assertEqual(by_serial["RT-" + tag]["lifecycle"], "retired")
        # The bad lines were not changed by the refused attempt.
        self.assertEqual(psql("SELECT count(*) FROM checkouts WHERE asset_id IN (:'a', :'b')",
                              a=out_asset, b=retire), [["1"]])


if __name__ == "__main__":
    unittest.main()
