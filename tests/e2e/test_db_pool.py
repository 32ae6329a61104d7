"""The database pools when every connection is taken: an api request waits up to 5 s for one,
then is answered 503 unavailable; the pool serves again once a connection is given back. auth
gives its connection back before calling a provider's token endpoint, so a slow provider does
not use up its pool."""
import os
import subprocess
import threading
import time
import unittest

import harness
from harness import http, psql

SECRET = "pool-test-service-secret-0123456789"


def panelctl(*args):
    return subprocess.run([harness.binary("panelctl"), *args], check=True,
                          capture_output=True).stdout


class DbPoolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.api = harness.Process("panel-api", env={
            "PANEL_API_DB_POOL_SIZE": "1", "PANEL_SERVICE_SECRET": SECRET})
        cls.tenant = harness.new_tenant("pool")
        cls.key = panelctl("apikey-create", cls.tenant, "admin", "e2e").decode().strip()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {self.key}"}
        h.update(headers or {})
        return http(method, self.api.url + path, body=body, headers=h, timeout=60)

    def test_a_request_finding_no_free_connection_is_503_after_the_wait(self):
        st, _, out = self.call("POST", "/v1/assets", {"serial_number": "SN-POOL-1"})
        self.assertEqual(st, 201, out)
        asset_id = out["asset_id"]
        # Another session locks the Asset: a PATCH of it then waits inside the api, holding
        # the pool's only connection.
        locker = subprocess.Popen(
            ["psql", os.environ["PANEL_PG_URL"], "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            locker.stdin.write("BEGIN;\nSELECT 'locked' FROM assets WHERE asset_id = "
                               f"'{asset_id}' FOR UPDATE;\n")
            locker.stdin.flush()
            self.assertEqual(locker.stdout.readline().strip(), "locked")
            patched = {}

            def patch():
                patched["reply"] = self.call("PATCH", f"/v1/assets/{asset_id}",
                                             {"model": "Pool Test"})
            t = threading.Thread(target=patch)
            t.start()
            harness.wait_until(
                lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                             "'Lock' AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()"
                             )[0][0] != "0",
                timeout=30, what="the PATCH waiting on the Asset's lock")

            t0 = time.monotonic()
            st, hdrs, out = self.call("GET", "/v1/people")
            waited = time.monotonic() - t0
            self.assertEqual(st, 503, out)
            self.assertEqual(out["error"]["code"], "unavailable", out)
            self.assertEqual(out["error"]["request_id"], hdrs.get("X-Request-Id"))
            self.assertGreaterEqual(waited, 4.5, "answered before the pool's wait of 5 s")
            self.assertTrue(t.is_alive(), "the PATCH did not wait for the lock")
        finally:
            locker.stdin.write("ROLLBACK;\n")
            locker.stdin.close()
            locker.wait(timeout=30)
            locker.stdout.close()
        t.join(timeout=60)
        st, _, out = patched["reply"]
        self.assertEqual(st, 200, out)
        self.assertEqual(out["model"], "Pool Test")
        # The connection is back in the pool: the next request is served at once.
        st, _, out = self.call("GET", f"/v1/assets/{asset_id}")
        self.assertEqual(st, 200, out)
        self.assertEqual(out["model"], "Pool Test")


class AuthTokenCallHoldsNoConnection(unittest.TestCase):
    """auth with a pool of one connection: while one token request waits on a slow Google
    token endpoint, another district's token request is served (it would find the pool empty
    for as long as the provider takes if the first kept its connection). The slow reply (12 s)
    stays under auth's 15 s per attempt, so the first request is served too."""

    def test_a_slow_provider_does_not_hold_the_pool(self):
        import test_auth as ta
        harness.require_env()
        emu = ta.start_emulator()
        env = {"PANEL_AUTH_DB_POOL_SIZE": "1"}
        port = harness.free_port()
        env.update(ta.auth_env(emu.url))
        env["PANEL_AUTH_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        auth = harness.Process("panel-auth", port=port, env=env)
        try:
            fixture = ta.AuthFlows("run")
            fixture.emu, fixture.auth = emu, auth
            slow_t, fast_t = harness.new_tenant("poolslow"), harness.new_tenant("poolfast")
            fixture.connect_google(slow_t, fixture.new_district())
            fixture.connect_google(fast_t, fixture.new_district())

            def token_requests():
                _, _, stats = http("GET", emu.admin_url + "/control/stats")
                return stats["requests"].get("google.token", 0)
            before = token_requests()
            st, _, out = http("POST", emu.admin_url + "/control/faults",
                              {"route": "google.token", "kind": "slow", "delay_ms": 12000,
                               "count": 1})
            self.assertEqual(st, 201, out)
            slow = {}
            t = threading.Thread(target=lambda: slow.update(
                reply=fixture.token(slow_t, "google")))
            t.start()
            harness.wait_until(lambda: token_requests() > before, timeout=30,
                               what="the first token request to reach Google")
            st, _, out = fixture.token(fast_t, "google")
            self.assertEqual(st, 200, out)
            self.assertTrue(out["access_token"])
            self.assertTrue(t.is_alive(), "the slow token request was answered first")
            t.join(timeout=60)
            st, _, out = slow["reply"]
            self.assertEqual(st, 200, out)
            self.assertTrue(out["access_token"])
        finally:
            auth.stop()
            emu.stop()


if __name__ == "__main__":
    unittest.main()
