"""Sync requests are never lost or stuck, and a refused permission says what is missing.

The whole suite on the emulator (auth, google-sync, azure-sync, merger, api; real PostgreSQL
and Kafka), as `make demo` wires it:
- a request queued while the tenant's run is in flight is run after it, and a later request
  is not folded into it;
- a request no fetcher starts expires visibly (status, reason) and does not absorb the next;
- Google's 403 `forbidden` on the devices listing: the connection says which permission is
  missing and what to do, no device is removed, the people and org unit changes apply;
- Graph's 403 `Authorization_RequestDenied`: the same for Microsoft."""
import unittest

from harness import http, psql, wait_until
from whole_suite import SuiteTestCase

START_TIMEOUT_S = 15
DEVICE_SCOPE = "https://www.googleapis.com/auth/admin.directory.device.chromeos.readonly"
ENDED = ("completed", "failed", "held", "expired")


class SyncRequests(SuiteTestCase):
    SUITE = dict(name="req", people=60, azure_people=30, shared=10, devices=12, ous=5,
                 env={"PANEL_AUTH_RUN_START_TIMEOUT_S": str(START_TIMEOUT_S),
                      "PANEL_AUTH_SCHEDULER_TICK_MS": "500"})

    def tearDown(self):
        self.emulator("DELETE", "/control/faults")

    def emulator(self, method, path, body=None):
        status, _, data = http(method, self.d.emu_admin + path, body)
        self.assertLess(status, 300, data)
        return data

    def request(self, provider, preview=False):
        _, body = self.call("POST", "/v1/sync", {"provider": provider, "preview": preview},
                            expect=202)
        (req,) = body["requests"]
        return req

    def get_run(self, run_id):
        return self.call("GET", f"/v1/sync/runs/{run_id}", expect=200)[1]

    def wait_status(self, run_id, statuses=ENDED, timeout=120):
        return wait_until(lambda: (lambda r: r if r["status"] in statuses else None)(
            self.get_run(run_id)), timeout=timeout, interval=0.3,
            what=f"run {run_id} to reach {statuses}")

    def connection(self, provider):
        _, conns = self.call("GET", "/v1/connections", expect=200)
        return next(c for c in conns["connections"] if c["provider"] == provider)

    def auth_connection(self, provider):
        status, _, body = http("GET", f"{self.d.env['PANEL_AUTH_URL']}/internal/tenants/"
                               f"{self.tenant}/connections", None,
                               self.d.service_secrets.header("api"))
        self.assertEqual(status, 200, body)
        return next(c for c in body["connections"] if c["provider"] == provider)

    # ------------------------------------------------------------------ item 8
    def test_request_queued_during_a_run_runs_after_it(self):
        # The real run is slowed on its users listing, so the preview is queued behind it.
        self.emulator("POST", "/control/faults", {"route": "google.users", "kind": "slow",
                                                  "delay_ms": 4000, "count": 1})
        real = self.request("google")
        self.assertFalse(real["coalesced"])
        self.wait_status(real["run_id"], ("running",), timeout=60)
        preview = self.request("google", preview=True)
        self.assertFalse(preview["coalesced"], "a preview never joins a real run")
        self.assertEqual(self.wait_status(real["run_id"])["status"], "completed")
        # The preview was queued during the real run: it is run afterwards, not dropped.
        run = self.wait_status(preview["run_id"], timeout=90)
        self.assertEqual(run["status"], "completed", run)
        self.assertTrue(run["preview"])
        self.assertIsNotNone(run["started_at"])
        # A later request is a run of its own, not folded into an old one.
        later = self.request("google", preview=True)
        self.assertFalse(later["coalesced"], later)
        self.assertNotEqual(later["run_id"], preview["run_id"])
        self.assertEqual(self.wait_status(later["run_id"])["status"], "completed")

    def test_request_no_fetcher_starts_expires_visibly(self):
        name, proc = next((n, p) for n, p in self.d.procs if n == "azure-sync")
        proc.terminate()
        proc.wait(timeout=30)
        self.d.procs.remove((name, proc))
        try:
            first = self.request("azure")
            self.assertFalse(first["coalesced"])
            run = self.wait_status(first["run_id"], ("expired",), timeout=START_TIMEOUT_S + 30)
            self.assertEqual(run["failure_reason"], "not_started")
            self.assertIn("no fetcher started this run", run["message"])
            self.assertIsNotNone(run["finished_at"])
            listed = self.call("GET", "/v1/sync/runs?source=azure&status=expired",
                               expect=200)[1]
            self.assertIn(first["run_id"], [r["run_id"] for r in listed["items"]])
            for conn in (self.connection("azure"), self.auth_connection("azure")):
                self.assertEqual(conn["last_run"]["run_id"], first["run_id"])
                self.assertEqual(conn["last_run"]["status"], "expired")
                self.assertEqual(conn["last_run"]["failure_reason"], "not_started")
            # The next request (a schedule would be the same) is not folded into it.
            second = self.request("azure")
            self.assertFalse(second["coalesced"], second)
            self.assertNotEqual(second["run_id"], first["run_id"])
        finally:
            self.d.start("azure-sync", self.d.ports["azure-sync"], {})
        self.assertEqual(self.wait_status(second["run_id"])["status"], "completed")
        # The expired request was already on the topic: a fetcher that starts it late records
        # what really happened instead of leaving it expired.
        late = self.wait_status(first["run_id"], ("completed", "failed", "held"))
        self.assertEqual(late["status"], "completed", late)

    # ------------------------------------------------------------------ item 10
    def test_google_403_on_devices_shows_the_missing_permission_and_removes_no_device(self):
        base = f"/control/districts/{self.district}/google"
        users = self.emulator("GET", base + "/users")["items"]
        devices = self.emulator("GET", base + "/devices")["items"]
        renamed = users[3]
        self.emulator("PATCH", f"{base}/users/{renamed['id']}",
                      {"name": {"givenName": "Refused", "familyName": "Listing",
                                "fullName": "Refused Listing"}})
        ou = self.emulator("POST", base + "/orgunits",
                           {"name": "Permission Test", "parentOrgUnitPath": "/"})
        gone = devices[0]["deviceId"]
        self.emulator("DELETE", f"{base}/devices/{gone}")
        devices_before = int(psql("SELECT count(*) FROM assets WHERE tenant_id = :'t' "
                                  "AND in_google;", t=self.tenant)[0][0])
        self.emulator("POST", "/control/faults", {"route": "google.devices", "kind": "status",
                                                  "status": 403, "reason": "forbidden",
                                                  "count": 1000})
        req = self.request("google")
        run = self.wait_status(req["run_id"])
        self.assertEqual((run["status"], run["failure_reason"]), ("failed", "forbidden"), run)
        self.assertEqual(run["forbidden_listings"], ["devices"])
        self.assertIn("Not Authorized to access this resource/api", run["message"])
        # The connection says what is missing and what to do, in the api and in auth.
        for conn in (self.connection("google"), self.auth_connection("google")):
            self.assertEqual(conn["status"], "permission_missing", conn)
            (missing,) = conn["missing_permissions"]
            self.assertEqual(missing["listing"], "devices")
            self.assertEqual(missing["scope"], DEVICE_SCOPE)
            self.assertIn("ChromeOS", missing["privilege"])
            self.assertIn("Admin console", missing["action"])
            self.assertEqual(missing["run_id"], req["run_id"])
        # Nothing of the refused kind is removed; the other listings' changes applied.
        self.assertEqual(int(psql("SELECT count(*) FROM assets WHERE tenant_id = :'t' "
                                  "AND in_google;", t=self.tenant)[0][0]), devices_before)
        self.assertEqual(psql("SELECT in_google FROM assets WHERE tenant_id = :'t' "
                              "AND device_id = :'d';", t=self.tenant, d=gone), [["t"]])
        self.assertEqual(psql("SELECT fields->>'display_name' FROM person_sources "
                              "WHERE tenant_id = :'t' AND source = 'google' AND source_id = :'i';",
                              t=self.tenant, i=renamed["id"]), [["Refused Listing"]])
        self.assertEqual(psql("SELECT name FROM org_units WHERE tenant_id = :'t' "
                              "AND org_unit_id = :'o' AND removed_at IS NULL;", t=self.tenant,
                              o=ou["orgUnitId"]), [["Permission Test"]])
        # Once the privilege is back, the next run lists devices again and the warning goes.
        self.emulator("DELETE", "/control/faults")
        again = self.wait_status(self.request("google")["run_id"])
        self.assertEqual(again["status"], "completed", again)
        conn = self.connection("google")
        self.assertEqual((conn["status"], conn["missing_permissions"]), ("connected", []))
        self.assertEqual(psql("SELECT in_google FROM assets WHERE tenant_id = :'t' "
                              "AND device_id = :'d';", t=self.tenant, d=gone), [["f"]])

    def test_graph_403_shows_the_missing_permission(self):
        path = f"/control/districts/{self.district}/azure/permission"
        self.emulator("POST", path, {"granted": False})
        try:
            req = self.request("azure")
            run = self.wait_status(req["run_id"])
            self.assertEqual((run["status"], run["failure_reason"]), ("failed", "forbidden"), run)
            self.assertEqual(run["forbidden_listings"], ["users"])
            self.assertIn("Authorization_RequestDenied", run["message"])
            conn = self.connection("azure")
            self.assertEqual(conn["status"], "permission_missing", conn)
            (missing,) = conn["missing_permissions"]
            self.assertEqual((missing["listing"], missing["scope"]), ("users", "User.Read.All"))
            self.assertIn("admin consent", missing["action"])
        finally:
            self.emulator("POST", path, {"granted": True})
        again = self.wait_status(self.request("azure")["run_id"])
        self.assertEqual(again["status"], "completed", again)
        self.assertEqual(self.connection("azure")["status"], "connected")


if __name__ == "__main__":
    unittest.main()
