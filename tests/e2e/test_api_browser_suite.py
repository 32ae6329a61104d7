"""issue 9's acceptance run: the admin page in headless Chromium (playwright-core,
tests/browser/admin_page_suite.mjs) against the whole suite — emulator, auth, google-sync,
azure-sync, merger, api — on the real PostgreSQL and Kafka. Screenshots:
tests/screenshots/api/suite-*.png."""
import json
import os
import secrets
import subprocess
import unittest

import harness
from test_api import new_key
from test_api_browser import BROWSER_DIR, ensure_playwright

DISTRICT = "uisuite"


class AdminPageOnTheSuite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        ensure_playwright()
        cls.procs = []
        secret = secrets.token_hex(24)
        emu_port, emu_admin = harness.free_port(), harness.free_port()
        api_port, auth_port, merger_port = (harness.free_port() for _ in range(3))
        emu = f"http://127.0.0.1:{emu_port}"
        cls.emu_admin = f"http://127.0.0.1:{emu_admin}"
        cls.emu = emu
        cls.api_url = f"http://127.0.0.1:{api_port}"
        common = {
            "PANEL_SERVICE_SECRET": secret,
            "PANEL_AUTH_URL": f"http://127.0.0.1:{auth_port}",
            "PANEL_MERGER_URL": f"http://127.0.0.1:{merger_port}",
            "PANEL_GOOGLE_AUTH_URL": emu + "/o/oauth2/v2/auth",
            "PANEL_GOOGLE_TOKEN_URL": emu + "/token",
            "PANEL_GOOGLE_REVOKE_URL": emu + "/revoke",
            "PANEL_GOOGLE_API_URL": emu,
            "PANEL_MS_LOGIN_URL": emu,
            "PANEL_GRAPH_URL": emu,
            "PANEL_GOOGLE_CLIENT_ID": "panel-google-client",
            "PANEL_GOOGLE_CLIENT_SECRET": "panel-google-secret",
            "PANEL_MS_CLIENT_ID": "panel-ms-client",
            "PANEL_MS_CLIENT_SECRET": "panel-ms-secret",
        }

        def start(name, port, extra):
            env = dict(common)
            env.update(extra)
            cls.procs.append(harness.Process(name, port=port, env=env))
        try:
            start("panel-emulator", emu_port, {
                "PANEL_EMULATOR_ADMIN_PORT": str(emu_admin),
                "PANEL_EMULATOR_DISTRICTS": f"{DISTRICT}:people=40,azure_people=30,shared=20,"
                                            "devices=12,ous=6,seed=7",
                "PANEL_EMULATOR_CONSENT": "page"})
            start("panel-auth", auth_port, {
                "PANEL_AUTH_KEYS": "k1:" + secrets.token_hex(32),
                "PANEL_AUTH_ACTIVE_KEY_ID": "k1",
                "PANEL_AUTH_PUBLIC_URL": f"http://127.0.0.1:{auth_port}",
                "PANEL_ADMIN_URL": cls.api_url + "/"})
            start("panel-merger", merger_port, {})
            start("panel-google-sync", None, {})
            start("panel-azure-sync", None, {})
            start("panel-api", api_port, {})
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.stop()

    def test_authorize_sync_revoke_and_checkout_in_the_browser(self):
        tenant = harness.new_tenant("apisuite")
        key = new_key(tenant, "admin")
        fixture = {"url": self.api_url, "key": key, "admin": f"admin@{DISTRICT}.k12.example",
                   "emulator_admin": self.emu_admin, "emulator": self.emu, "district": DISTRICT}
        p = subprocess.run(["node", os.path.join(BROWSER_DIR, "admin_page_suite.mjs")],
                           env=dict(os.environ, FIXTURE=json.dumps(fixture),
                                    SHOTS=os.path.join(harness.ROOT, "tests", "screenshots",
                                                       "api")),
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + "\n" + "\n".join(
            f"--- {x.name}:\n{x.log_tail(1500)}" for x in self.procs))
        rows = harness.psql("SELECT status FROM connections WHERE tenant_id = :'t' AND "
                            "provider = 'google'", t=tenant)
        self.assertEqual(rows, [["revoked"]])
        people = harness.psql("SELECT count(*) FROM people WHERE tenant_id = :'t'", t=tenant)
        self.assertGreater(int(people[0][0]), 0)
        self.assertEqual(harness.psql("SELECT count(*) FROM checkouts WHERE tenant_id = :'t' "
                                      "AND checked_in_at IS NOT NULL", t=tenant), [["1"]])


if __name__ == "__main__":
    unittest.main()
