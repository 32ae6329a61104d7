"""The whole suite together on the emulator, as `make demo` wires it: auth, google-sync,
azure-sync, merger and api with the real PostgreSQL and Kafka. What a district admin relies
on: authorizing both clouds imports everyone once with Azure's values winning, the API shows
it with provenance, an immediate sync runs, checkouts publish events, and a revocation at
Google stops syncing without deleting anything."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

from harness import ROOT, consume, http, psql, wait_outbox_drained, wait_until
from whole_suite import SuiteTestCase

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import demo  # noqa: E402  (scripts/demo.py: the same wiring as `make demo`)

PEOPLE, AZURE, SHARED, DEVICES, OUS = 400, 250, 150, 60, 12


class WholeSuite(SuiteTestCase):
    SUITE = dict(name="suite", people=PEOPLE, azure_people=AZURE, shared=SHARED,
                 devices=DEVICES, ous=OUS)

    def emulator(self, method, path, body=None):
        return http(method, self.d.emu_admin + path, body)

    # ------------------------------------------------------------------ first sync
    def test_first_sync_imports_every_object_once(self):
        rows = psql("SELECT count(*), count(*) FILTER (WHERE sources @> '{google,azure}') "
                    "FROM people WHERE tenant_id = :'t' AND removed_at IS NULL;",
                    t=self.tenant)
        total, both = int(rows[0][0]), int(rows[0][1])
        self.assertEqual(both, SHARED, "one Person per email across the clouds")
        self.assertEqual(total, PEOPLE + AZURE - SHARED)
        status, _, users = self.emulator("GET", f"/control/districts/{self.district}/google/users")
        self.assertEqual(status, 200)
        emails = {u["primaryEmail"].strip().lower() for u in users["items"]}
        ours = {r[0] for r in psql("SELECT email_norm FROM people WHERE tenant_id = :'t' "
                                   "AND 'google' = ANY(sources);", t=self.tenant)}
        self.assertEqual(ours, emails)
        assets = int(psql("SELECT count(*) FROM assets WHERE tenant_id = :'t' AND in_google;",
                          t=self.tenant)[0][0])
        self.assertEqual(assets, DEVICES)
        ous = int(psql("SELECT count(*) FROM org_units WHERE tenant_id = :'t' "
                       "AND removed_at IS NULL;", t=self.tenant)[0][0])
        _, _, emu_ous = self.emulator("GET", f"/control/districts/{self.district}/google/orgunits")
        self.assertEqual(ous, len(emu_ous["items"]))

    def test_azure_wins_field_by_field_and_the_api_says_where_each_value_came_from(self):
        rows = psql(
            "SELECT p.person_id, g.fields->>'display_name', a.fields->>'display_name' "
            "FROM people p JOIN person_sources g ON g.tenant_id = p.tenant_id "
            "AND g.person_id = p.person_id AND g.source = 'google' "
            "JOIN person_sources a ON a.tenant_id = p.tenant_id AND a.person_id = p.person_id "
            "AND a.source = 'azure' WHERE p.tenant_id = :'t' "
            "AND g.fields->>'display_name' <> a.fields->>'display_name' LIMIT 1;",
            t=self.tenant)
        self.assertTrue(rows, "the district has people whose names differ between clouds")
        person_id, google_name, azure_name = rows[0]
        _, person = self.call("GET", f"/v1/people/{person_id}", expect=200)
        self.assertEqual(person["display_name"], azure_name)
        self.assertNotEqual(person["display_name"], google_name)
        self.assertEqual(person["provenance"].get("display_name"), "azure")
        if person.get("org_unit_path"):
            self.assertEqual(person["provenance"].get("org_unit_path"), "google")
        self.assertEqual(sorted(person["sources"]), ["azure", "google"])

    def test_public_people_events_carry_the_merged_person(self):
        wait_outbox_drained(self.tenant)
        events = consume("panel.people.events", key_prefix=self.tenant + "/", timeout_ms=4000)
        self.assertGreaterEqual(len(events), PEOPLE + AZURE - SHARED)
        ids = [e["event"]["event_id"] for e in events]
        self.assertEqual(len(ids), len(set(ids)), "each public event once")
        # Every Person of the district was announced, and only the district's People.
        people = {r[0] for r in psql("SELECT person_id::text FROM people WHERE tenant_id = :'t'",
                                     t=self.tenant)}
        announced = {e["event"]["person_changed"]["person"]["person_id"] for e in events}
        self.assertEqual(announced, people)
        one = events[0]["event"]["person_changed"]
        self.assertIn("person", one)
        self.assertTrue(one["person"]["person_id"])

    # ------------------------------------------------------------------ admin actions
    def test_immediate_sync_runs_and_a_no_change_resync_changes_nothing(self):
        run = self.sync_now("google")
        self.assertEqual(run["status"], "completed", run)
        self.assertEqual(run["created"], 0)
        self.assertEqual(run["updated"], 0)
        self.assertEqual(run["removed"], 0)
        self.assertGreaterEqual(run["seen"], PEOPLE + DEVICES)

    def test_checkout_and_checkin_publish_asset_events(self):
        # A Chromebook Google lists as ACTIVE: a DISABLED or DEPROVISIONED one cannot be
        # checked out (docs/sources.md).
        _, assets = self.call("GET", "/v1/assets?limit=50&checked_out=false&google_status=ACTIVE",
                              expect=200)
        _, people = self.call("GET", "/v1/people?limit=1", expect=200)
        asset_id = assets["items"][0]["asset_id"]
        person_id = people["items"][0]["person_id"]
        self.call("POST", f"/v1/assets/{asset_id}/checkout",
                  {"person_id": person_id, "note": "cart 3"}, expect=201)
        status, err = self.call("POST", f"/v1/assets/{asset_id}/checkout",
                                {"person_id": person_id})
        self.assertEqual(status, 409, err)
        self.call("POST", f"/v1/assets/{asset_id}/checkin", {"condition": "good"}, expect=200)

        def asset_events():
            evs = consume("panel.assets.events", key_prefix=f"{self.tenant}/{asset_id}",
                          timeout_ms=3000)
            kinds = [e["event"]["asset_changed"]["kind"] for e in evs]
            return kinds if "ASSET_CHANGE_KIND_CHECKED_IN" in kinds else None
        kinds = wait_until(asset_events, timeout=60, what="checkout events on the topic")
        self.assertLess(kinds.index("ASSET_CHANGE_KIND_CHECKED_OUT"),
                        kinds.index("ASSET_CHANGE_KIND_CHECKED_IN"))

    def latest_google_run(self):
        rows = psql("SELECT run_id, status FROM sync_runs WHERE tenant_id = :'t' AND "
                    "source = 'google' ORDER BY requested_at DESC LIMIT 1", t=self.tenant)
        return rows[0] if rows else None

    def reconnect_google(self, revoked_run_id, people_before):
        """Undo the revocation, as an admin would (sign in, Authorize, Allow), and wait for
        the sync that starts, so that the tests running after this one find Google connected
        and the directory as the first sync left it, whatever their order."""
        self.d.connect("google")
        wait_until(lambda: (lambda r: r and r[0] != revoked_run_id and
                            r[1] in ("completed", "held"))(self.latest_google_run()),
                   timeout=240, what="the sync after Google was connected again")
        _, conns = self.call("GET", "/v1/connections", expect=200)
        google = next(c for c in conns["connections"] if c["provider"] == "google")
        self.assertEqual(google["status"], "connected")
        self.assertEqual(self.latest_google_run()[1], "completed")
        after = psql("SELECT count(*) FROM people WHERE tenant_id = :'t' "
                     "AND removed_at IS NULL;", t=self.tenant)[0][0]
        self.assertEqual(after, people_before)

    # Leaves Google connected again when it ends (reconnect_google), so test order is free.
    def test_revocation_at_google_stops_syncing_and_deletes_nothing(self):
        before = psql("SELECT count(*) FROM people WHERE tenant_id = :'t' "
                      "AND removed_at IS NULL;", t=self.tenant)[0][0]
        status, _, body = self.emulator("POST",
                                        f"/control/districts/{self.district}/google/revoke")
        self.assertIn(status, (200, 204), body)
        run = {}  # the run after the revocation: reconnect_google waits for a later one
        self.addCleanup(lambda: self.reconnect_google(run.get("run_id"), before))
        run.update(self.sync_now("google"))
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["failure_reason"], "revoked")
        _, conns = self.call("GET", "/v1/connections", expect=200)
        google = next(c for c in conns["connections"] if c["provider"] == "google")
        self.assertEqual(google["status"], "revoked")
        after = psql("SELECT count(*) FROM people WHERE tenant_id = :'t' "
                     "AND removed_at IS NULL;", t=self.tenant)[0][0]
        self.assertEqual(after, before, "a revocation deletes nothing")


class DemoStopsCleanly(unittest.TestCase):
    """`make demo` then Ctrl-C leaves no process and no port behind (issue 10)."""

    def test_ctrl_c_leaves_nothing_running(self):
        run_dir = tempfile.mkdtemp(prefix="panel-demo-", dir=os.path.join(ROOT, ".run"))
        env = dict(os.environ)
        for k in ("PANEL_PG_URL", "PANEL_KAFKA_BROKERS", "PANEL_RUN_DIR"):
            env.pop(k, None)
        p = subprocess.Popen([sys.executable, "scripts/demo.py", "--run-dir", run_dir,
                              "--people", "120", "--azure-people", "80", "--shared", "40",
                              "--devices", "20", "--ous", "6"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = []
        deadline = time.time() + 300
        try:
            for line in p.stdout:
                out.append(line)
                if "Press Ctrl-C" in line or time.time() > deadline:
                    break
            self.assertIn("Press Ctrl-C", "".join(out), "".join(out))
            text = "".join(out)
            self.assertIn("People:", text)
            self.assertIn("API key:", text)
            with open(os.path.join(run_dir, "pids")) as f:
                pids = [int(line.split()[0]) for line in f]
            ports = [int(w.rsplit(":", 1)[1].rstrip("/)")) for w in text.split()
                     if w.startswith("http://127.0.0.1:")]
            p.send_signal(2)  # SIGINT, as Ctrl-C
            rest, _ = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, "".join(out) + rest)
        finally:
            if p.poll() is None:
                p.kill()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    alive = "zombie" not in f.read()
            except OSError:
                alive = False
            self.assertFalse(alive, f"process {pid} still running after Ctrl-C")
        for port in ports:
            self.assertTrue(demo.port_free(port), f"port {port} still taken after Ctrl-C")
        for name in ("pg", "kafka"):
            st = subprocess.run(["sh", f"scripts/{name}.sh", "status"], cwd=ROOT,
                                env=dict(env, PANEL_RUN_DIR=run_dir), capture_output=True)
            self.assertNotEqual(st.returncode, 0, f"{name} still running after Ctrl-C")


if __name__ == "__main__":
    unittest.main()
