"""The api's database pool when every connection is taken: a request waits up to 5 s for one,
then is answered 503 unavailable; the pool serves again once a connection is given back."""
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


if __name__ == "__main__":
    unittest.main()
