"""The whole suite on the emulator, wired as `make demo` wires it (scripts/demo.py), every
binary from the sanitizer build (build/asan): a first full sync, then emulator faults
(malformed and truncated pages, 30% 5xx, connection resets, slow pages with expired page
tokens, the Google grant revoked mid-run). Every run completes or fails cleanly, nothing is
deleted by a broken run, every service stays up. At the end: no secret or token in any log,
event, API answer or the database, and every service exits on SIGTERM with zero leaks."""
import glob
import os
import signal
import subprocess
import sys
import unittest

import fetch_helpers
import harness
import suite
import whole_suite

sys.path.insert(0, os.path.join(harness.ROOT, "scripts"))
import demo  # noqa: E402

# The sanitizer build tests/run.py just made (the plain one under --no-asan).
ASAN_BIN = os.path.join(harness.SAN_BUILD or harness.BUILD, "bin")
PEOPLE, AZURE, SHARED, DEVICES, OUS = 300, 200, 120, 60, 8
USERS_PAGE = 50  # Google users per page: PEOPLE take several pages (Google's default is 500)
RESULT = {}  # for tests/soak.py's table


class FaultySuiteTest(whole_suite.SuiteTestCase):
    SUITE = dict(name="rel", people=PEOPLE, azure_people=AZURE, shared=SHARED, devices=DEVICES,
                 ous=OUS, timeout=300,
                 env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23",
                      "PANEL_GOOGLE_USERS_PAGE_SIZE": str(USERS_PAGE)})

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(ASAN_BIN, "panel-merger")):
            raise RuntimeError(f"{ASAN_BIN} is missing: run the tests through tests/run.py")
        cls.old_bin = demo.BIN
        demo.BIN = ASAN_BIN  # every service and the emulator from the sanitizer build
        os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        try:
            super().setUpClass()
        except BaseException:  # whole_suite.start stopped what it started
            demo.BIN = cls.old_bin
            raise
        cls.auth = cls.d.env["PANEL_AUTH_URL"]
        cls.hdr = cls.d.service_secrets.header("api")
        cls.answers = []

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        demo.BIN = cls.old_bin

    # ------------------------------------------------------------ helpers
    def control(self, method, path, body=None):
        status, _, reply = harness.http(method, self.d.emu_admin + path, body)
        self.assertLess(status, 300, f"{method} {path}: {reply}")
        return reply

    def fault(self, **spec):
        return self.control("POST", "/control/faults", spec)

    def sync(self, provider):
        status, _, body = harness.http("POST", f"{self.auth}/internal/tenants/{self.tenant}/sync",
                                       {"provider": provider,
                                        "actor": f"person:admin@{self.district}.k12.example"},
                                       headers=self.hdr)
        self.assertEqual(status, 202, body)
        return body["requests"][0]["run_id"]

    def wait_end(self, run_id, timeout=300):
        return suite.wait_run(self.tenant, run_id, ("completed", "failed", "held", "revoked"),
                              timeout=timeout)

    def users_pages_asked(self):
        return self.control("GET", "/control/stats")["requests"].get("google.users", 0)

    def google_listing_restarts(self):
        with open(os.path.join(self.run_dir, "logs", "google-sync.log"), "rb") as f:
            return f.read().decode("utf-8", "replace").count("restarting the listing")

    def assert_run_read_every_google_person(self, run_id):
        """The run observed every user Google lists, and the tenant's Google People are
        exactly those users, none removed."""
        users = self.control("GET", f"/control/districts/{self.district}/google/users")["items"]
        self.assertEqual(len(users), PEOPLE)
        events = fetch_helpers.run_events(self.tenant, run_id)
        observed = {p["source_id"] for p in
                    fetch_helpers.payloads(events, "person_observed", "person")}
        self.assertEqual(observed, {u["id"] for u in users})
        emails = {u["primaryEmail"].strip().lower() for u in users}
        ours = {r[0] for r in harness.psql("SELECT email_norm FROM people WHERE tenant_id = :'t' "
                                           "AND 'google' = ANY(sources) AND removed_at IS NULL",
                                           t=self.tenant)}
        self.assertEqual(ours, emails)

    def assert_all_alive(self):
        for name, p in self.d.procs:
            self.assertIsNone(p.poll(), f"{name} died; see {self.run_dir}/logs/{name}.log")

    def assert_nothing_lost(self, before, what):
        after = suite.canonical_dump(self.tenant)
        for table in before:
            live_before = {tuple(r) for r in before[table]}
            live_after = {tuple(r) for r in after[table]}
            self.assertEqual(live_before - live_after, set(),
                             f"{what}: rows of {table} changed or went away")

    # ------------------------------------------------------------ the scenario
    def test_faults_then_secrets_and_leaks(self):
        before = suite.canonical_dump(self.tenant)
        self.assertGreater(len(before["people"]), 0)
        injected = 0
        outcomes = {}
        # Pages the fetchers cannot parse: the run fails, nothing is deleted.
        # (Azure runs after the first are delta rounds: graph.delta as well as graph.users.)
        for route, kind, provider in (("google.users", "malformed", "google"),
                                      ("google.devices", "truncate", "google"),
                                      ("graph.users graph.delta", "malformed", "azure"),
                                      ("graph.users graph.delta", "truncate", "azure")):
            self.control("DELETE", "/control/faults")
            for r in route.split():
                self.fault(route=r, kind=kind, count=1000)
            run = self.sync(provider)
            outcomes[f"{kind} {route}"] = self.wait_end(run)
            self.assertEqual(outcomes[f"{kind} {route}"], "failed", f"{kind} {route}")
            self.assert_all_alive()
            self.assert_nothing_lost(before, f"{kind} {route}")
        # Flaky providers: 30% 5xx / throttled / resets; slow pages whose tokens expire.
        for spec in ({"route": "*", "kind": "status", "status": 503, "rate": 0.3},
                     {"route": "*", "kind": "status", "status": 429, "retry_after": "0.2",
                      "rate": 0.3},
                     {"route": "*", "kind": "reset", "rate": 0.3}):
            self.control("DELETE", "/control/faults")
            self.fault(**spec)
            runs = [self.sync("google"), self.sync("azure")]
            for r in runs:
                outcomes[f"{spec['kind']} {spec.get('status', '')} {r}"] = self.wait_end(r)
                # retried through: the run completes (docs/reliability.md), never just "ends"
                self.assertEqual(outcomes[f"{spec['kind']} {spec.get('status', '')} {r}"],
                                 "completed", f"{spec} run {r}")
            self.assert_all_alive()
            self.assert_nothing_lost(before, str(spec))
        # Slow users pages whose tokens expire once the second page was asked for: the
        # listing restarts (users pages of USERS_PAGE, so the district's People take several
        # pages and the listing really holds a page token) and the run still reads everyone.
        self.control("DELETE", "/control/faults")
        self.fault(route="google.users", kind="slow", delay_ms=400, count=1000)
        restarts = self.google_listing_restarts()
        users_asked = self.users_pages_asked()
        run = self.sync("google")
        harness.wait_until(lambda: self.users_pages_asked() >= users_asked + 2, timeout=60,
                           what="the second users page of the run")
        self.control("POST", "/control/expire-page-tokens")
        outcomes["expired page tokens"] = self.wait_end(run)
        self.assertEqual(outcomes["expired page tokens"], "completed")
        self.assertGreater(self.google_listing_restarts(), restarts, "the listing restarted")
        self.assert_run_read_every_google_person(run)
        self.assert_nothing_lost(before, "expired page tokens")
        # The tokens the fetchers were handed, to look for them everywhere later.
        tokens = []
        for provider in ("google", "azure"):
            fetcher = "google-sync" if provider == "google" else "azure-sync"
            st, _, body = harness.http("POST", f"{self.auth}/internal/token",
                                       {"tenant_id": self.tenant, "provider": provider},
                                       headers=self.d.service_secrets.header(fetcher))
            self.assertEqual(st, 200, body)
            tokens.append(body["access_token"])
        # The grant is revoked at Google while a run pages slowly.
        self.control("DELETE", "/control/faults")
        self.fault(route="google.devices", kind="slow", delay_ms=1500, count=1000)
        run = self.sync("google")
        harness.wait_until(lambda: suite.run_status(self.tenant, run) == "running", timeout=60)
        self.control("POST", f"/control/districts/{self.district}/google/revoke")
        outcomes["revoked mid-run"] = self.wait_end(run)
        self.assertEqual(outcomes["revoked mid-run"], "failed")
        self.assert_nothing_lost(before, "revoked mid-run")
        stats = self.control("GET", "/control/stats")
        injected = stats.get("faults_injected", 0)
        self.assertGreater(injected, 0, stats)
        RESULT["faults_injected"] = injected
        self.control("DELETE", "/control/faults")
        self.assert_all_alive()
        print(f"\nfaults injected: {injected}; outcomes: {outcomes}", flush=True)

        # API answers of a few routes, kept for the secrets scan.
        answers = []
        for path in ("/v1/people?limit=50", "/v1/assets?limit=50", "/v1/connections",
                     "/v1/sync/runs", "/v1/org-units"):
            st, h, body = harness.http("GET", self.d.api_url.rstrip("/") + path,
                                       headers={"Authorization": "Bearer " + self.key})
            self.assertEqual(st, 200, f"{path}: {body}")
            answers.append(repr(body) + repr(h))

        # SIGTERM everything: exit 0 within the grace period, no sanitizer report.
        codes = {}
        for name, p in self.d.procs:
            p.send_signal(signal.SIGTERM)
        for name, p in self.d.procs:
            try:
                codes[name] = p.wait(30)
            except subprocess.TimeoutExpired:
                codes[name] = "no exit within 30 s"
        secrets_ = list(self.d.service_secrets.values.values()) + [
                    self.d.env["PANEL_GOOGLE_CLIENT_SECRET"],
                    self.d.env["PANEL_MS_CLIENT_SECRET"],
                    read(os.path.join(self.run_dir, "auth-key")).split(":")[1],
                    self.key.split(".", 1)[1]] + tokens
        texts = {"api answers": "\n".join(answers)}
        for log in glob.glob(os.path.join(self.run_dir, "logs", "*.log")):
            with open(log, errors="replace") as f:
                texts[log] = f.read()
        for name, code in codes.items():
            log = texts.get(os.path.join(self.run_dir, "logs", f"{name}.log"), "")
            for marker in ("LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
                self.assertNotIn(marker, log, f"{name}: {marker}\n{log[-6000:]}")
            self.assertEqual(code, 0, f"{name} exit status {code}\n{log[-3000:]}")
        for topic in ("panel.auth.events", "panel.sync.requests", "panel.source.events",
                      "panel.people.events", "panel.assets.events", "panel.orgunits.events",
                      "panel.source.events.dlq"):
            texts["topic " + topic] = "\n".join(
                str(e) for e in harness.consume(topic, timeout_ms=2000))
        p = subprocess.run(["pg_dump", "--data-only", os.environ["PANEL_PG_URL"]],
                           capture_output=True, text=True, errors="replace", timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        texts["pg_dump"] = p.stdout
        for where, text in texts.items():
            self.assertEqual(suite.find_secrets(text, secrets_), [], f"a secret in {where}")


def read(path):
    with open(path) as f:
        return f.read().strip()


if __name__ == "__main__":
    unittest.main()
