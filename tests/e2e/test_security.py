"""Security evidence: the service secret guards every service-to-service route; OAuth
`state` and PKCE misuse is refused; a tenant's events never touch another tenant's rows and
public events carry only their own tenant; no secret ends up in a log, an event, an HTTP
answer or the database; the sanitizer builds of auth and the merger exit with zero leaks.

A full sync through the fetchers needs the emulator; these tests drive auth's HTTP flows and
the merger with synthetic fetcher runs (suite.run_events)."""
import glob
import os
import signal
import subprocess
import time
import unittest
import urllib.parse

import harness
import suite
from test_promises import dead_letters_total

# The sanitizer build tests/run.py just made (the plain one under --no-asan).
ASAN_BUILD = harness.SAN_BUILD or harness.BUILD


def secret_values():
    return list(suite.SECRETS.values.values()) + [
        suite.AUTH_KEY_HEX, suite.GOOGLE_CLIENT_SECRET, suite.MS_CLIENT_SECRET]


MS_DIRECTORY = "3f2a9c1e-8d7b-4c6a-9e5f-1a2b3c4d5e6f"


def signed_in(tenant, email, provider="google"):
    """A live session of the tenant's admin (signed in with Microsoft, in MS_DIRECTORY, for a
    Microsoft consent): (session id, its stored hash)."""
    import hashlib
    ms = provider == "microsoft"
    rows = harness.psql("SELECT account_id FROM admin_accounts WHERE tenant_id = :'t' AND "
                        "email = :'e' AND removed_at IS NULL", t=tenant, e=email)
    sid, _ = harness.new_session(tenant, email, provider="microsoft" if ms else "google",
                                 provider_tenant=MS_DIRECTORY if ms else None,
                                 account_id=rows[0][0] if rows else None)
    return sid, hashlib.sha256(sid.encode()).hexdigest()


def consent_params(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


class ServiceSecretTest(unittest.TestCase):
    """Internal routes answer 401 without the exact service secret."""

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.auth = suite.start_auth()
        cls.merger = suite.start_merger()

    @classmethod
    def tearDownClass(cls):
        cls.auth.stop()
        cls.merger.stop()

    def test_internal_routes_need_the_secret(self):
        tenant = harness.new_tenant("sec")
        s = suite.SERVICE_SECRET
        wrong = [None, "", "Bearer", "Bearer ", "bearer " + s, "Bearer " + s[:-1],
                 "Bearer " + s + "x", "Basic " + s, s, "Bearer  " + s, "Bearer " + s.upper()]
        run = "0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"
        routes = [(self.auth, "POST", f"/internal/tenants/{tenant}/google/authorize",
                   {"actor": "person:a@b.org"}),
                  (self.auth, "POST", f"/internal/tenants/{tenant}/microsoft/authorize",
                   {"actor": "person:a@b.org"}),
                  (self.auth, "POST", f"/internal/tenants/{tenant}/google/deauthorize",
                   {"actor": "person:a@b.org"}),
                  (self.auth, "GET", f"/internal/tenants/{tenant}/connections", None),
                  (self.auth, "POST", f"/internal/tenants/{tenant}/sync",
                   {"actor": "person:a@b.org"}),
                  (self.auth, "PUT", f"/internal/tenants/{tenant}/settings",
                   {"sync_interval_seconds": 3600, "actor": "person:a@b.org"}),
                  (self.auth, "POST", "/internal/token",
                   {"tenant_id": tenant, "provider": "google"}),
                  (self.merger, "POST", f"/internal/tenants/{tenant}/runs/{run}/approve",
                   {"admin": "a@b.org"}),
                  (self.merger, "POST", f"/internal/tenants/{tenant}/runs/{run}/reject",
                   {"admin": "a@b.org"})]
        for proc, method, path, body in routes:
            for h in wrong:
                hdr = {} if h is None else {"Authorization": h}
                status, _, reply = harness.http(method, proc.url + path, body, headers=hdr)
                self.assertEqual(status, 401, f"{method} {path} with {h!r}: {reply!r}")
        # The right secret gets past the check (a non-401 answer).
        status, _, _ = harness.http("GET", self.auth.url + f"/internal/tenants/{tenant}/connections",
                                    headers=suite.service_header())
        self.assertEqual(status, 200)
        self.assertEqual(harness.psql("SELECT count(*) FROM sync_runs WHERE tenant_id = :'t'",
                                      t=tenant), [["0"]])


    def test_merger_accepts_only_the_api(self):
        """The fetchers have no business with the merger's decisions: their credentials are
        unknown there (401); the api's gets past the check."""
        tenant = harness.new_tenant("sec")
        run = "0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"
        paths = [f"/internal/tenants/{tenant}/runs/{run}/approve",
                 f"/internal/tenants/{tenant}/runs/{run}/reject",
                 f"/internal/tenants/{tenant}/match-cases/{run}/resolve"]
        for caller in ("google-sync", "azure-sync"):
            for path in paths:
                status, _, reply = harness.http("POST", self.merger.url + path,
                                                {"admin": "a@b.org"},
                                                headers=suite.SECRETS.header(caller))
                self.assertEqual(status, 401, f"{caller}: {path}: {reply!r}")
        for path in paths:
            status, _, reply = harness.http("POST", self.merger.url + path, {"admin": "a@b.org"},
                                            headers=suite.service_header())
            self.assertNotIn(status, (401, 403), f"{path}: {reply!r}")


class OAuthStateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.auth = suite.start_auth({"PANEL_AUTH_STATE_TTL_S": "10"})

    @classmethod
    def tearDownClass(cls):
        cls.auth.stop()

    def authorize(self, tenant, provider="google"):
        session = signed_in(tenant, "admin@sec.k12.example", provider)
        status, _, body = harness.http(
            "POST", self.auth.url + f"/internal/tenants/{tenant}/{provider}/authorize",
            {"actor": "person:admin@sec.k12.example", "session_hash": session[1]},
            headers=suite.service_header())
        self.assertEqual(status, 200, body)
        params = consent_params(body["consent_url"])
        self.browsers = getattr(self, "browsers", {})
        self.browsers[params["state"]] = session[0]
        return body["consent_url"], params

    def callback(self, provider, **params):
        """In the browser that started the consent (its session cookie), if any."""
        path = "/oauth/google/callback" if provider == "google" else "/oauth/microsoft/callback"
        sid = getattr(self, "browsers", {}).get(params.get("state"))
        return suite.no_redirect_http("GET", self.auth.url + path + "?" +
                                      urllib.parse.urlencode(params),
                                      headers={"Cookie": "panel_session=" + sid} if sid else None)

    def test_consent_url_uses_pkce_and_a_fresh_state(self):
        tenant = harness.new_tenant("sec")
        url1, p1 = self.authorize(tenant)
        _, p2 = self.authorize(tenant)
        self.assertEqual(p1.get("code_challenge_method"), "S256")
        self.assertRegex(p1.get("code_challenge", ""), r"^[A-Za-z0-9_-]{43}$")
        self.assertNotEqual(p1["state"], p2["state"])
        self.assertNotEqual(p1["code_challenge"], p2["code_challenge"])
        self.assertNotIn("code_verifier", url1)
        self.assertNotIn(suite.GOOGLE_CLIENT_SECRET, url1)
        # Only the state's hash is stored, never the state itself.
        dump = pg_dump()
        self.assertNotIn(p1["state"], dump)
        self.assertNotIn(p2["state"], dump)

    def test_forged_tampered_replayed_and_crossed_states_are_refused(self):
        tenant = harness.new_tenant("sec")
        _, p = self.authorize(tenant)
        state = p["state"]
        forged = "A" * 43
        tampered = ("B" if state[0] != "B" else "C") + state[1:]
        for bad in (forged, tampered, state + "x", state[:-1], ""):
            status, _, body = self.callback("google", state=bad, code="c")
            self.assertEqual(status, 400, f"state {bad!r}: {body!r}")
        # A Google state is no Microsoft state.
        _, pm = self.authorize(tenant, "microsoft")
        status, _, _ = self.callback("google", state=pm["state"], code="c")
        self.assertEqual(status, 400)
        status, _, _ = self.callback("microsoft", state=state, admin_consent="True",
                                     tenant=MS_DIRECTORY)
        self.assertEqual(status, 400)
        # First use goes on to the provider (unreachable here: the flow ends in an error
        # redirect); the second use of the same state is refused.
        _, p2 = self.authorize(tenant)
        status, headers, _ = self.callback("google", state=p2["state"], code="c")
        self.assertIn(status, (302, 303))
        self.assertIn("result=error", headers.get("Location", ""))
        status, _, body = self.callback("google", state=p2["state"], code="c")
        self.assertEqual(status, 400, body)
        self.assertEqual(harness.psql(
            "SELECT count(*) FROM connections WHERE tenant_id = :'t' AND status = 'connected'",
            t=tenant), [["0"]])

    def test_expired_state_is_refused(self):
        tenant = harness.new_tenant("sec")
        _, p = self.authorize(tenant)
        time.sleep(11.5)
        status, _, body = self.callback("google", state=p["state"], code="c")
        self.assertEqual(status, 400, body)


def pg_dump():
    p = subprocess.run(["pg_dump", "--data-only", os.environ["PANEL_PG_URL"]],
                       capture_output=True, text=True, errors="replace", timeout=300)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)
    return p.stdout


class TenantIsolationEventsTest(unittest.TestCase):
    """Two districts with the same cloud ids and e-mails: one tenant's runs never change the
    other's rows, and a forged run end for another tenant's run id does nothing there."""

    def test_events_of_one_tenant_never_touch_another(self):
        harness.require_env()
        a, b = harness.new_tenant("iso"), harness.new_tenant("iso")
        m = suite.start_merger()
        try:
            run_a = suite.run_events(a, "google", range(200), devices=20, ous=3,
                                     domain="same.k12.example")
            suite.publish(a, run_a)
            suite.wait_run(a, run_a[0]["run_id"], ("completed",))
            before = suite.canonical_dump(a)
            # b: the same ids and e-mails with other names; then a full run that saw only
            # 10 of them (b's deletions must stay in b).
            run_b = suite.run_events(b, "google", range(200), devices=20, ous=3,
                                     domain="same.k12.example")
            for e in run_b:
                if "person_observed" in e:
                    e["person_observed"]["person"]["display_name"] = "Mallory"
            suite.publish(b, run_b)
            suite.wait_run(b, run_b[0]["run_id"], ("completed",))
            small = suite.run_events(b, "google", range(190, 200), domain="same.k12.example")
            suite.publish(b, small)
            suite.wait_run(b, small[0]["run_id"], ("completed", "held"))
            # A run of a still in progress; b forges its end (b's key, a's run id) and a
            # removal of a's object.
            run_a2 = suite.run_events(a, "google", range(10), complete=False,
                                      domain="same.k12.example")
            suite.publish(a, run_a2)
            harness.wait_until(lambda: suite.run_status(a, run_a2[0]["run_id"]) == "running")
            forged = [dict(run_a2[0], tenant_id=b, run_started=None,
                           run_completed={"kind": "RUN_KIND_FULL", "counts": {"people": 10}})]
            del forged[0]["run_started"]
            suite.publish(b, forged)
            probe = suite.run_events(b, "azure", range(3), domain="same.k12.example")
            suite.publish(b, probe)
            suite.wait_run(b, probe[0]["run_id"], ("completed",))
            self.assertEqual(suite.run_status(a, run_a2[0]["run_id"]), "running")
            after = suite.canonical_dump(a)
            self.assertEqual(before, after, "tenant b's events changed tenant a's rows")
            names = {r[1] for r in after["people"]}
            self.assertNotIn("Mallory", names)
            # Public events: keys and envelopes of one tenant only.
            for topic in ("panel.people.events", "panel.assets.events", "panel.orgunits.events"):
                for e in harness.consume(topic, timeout_ms=3000, key_prefix=a + "/"):
                    self.assertEqual(e["event"]["tenant_id"], a)
                    self.assertNotIn("Mallory", str(e["event"]))
        finally:
            m.stop()


class SecretsAndLeaksTest(unittest.TestCase):
    """Auth and the merger from the sanitizer build through authorize, callbacks, token
    requests and a synthetic sync; then SIGTERM: no leak report, no sanitizer error, and no
    secret in their logs, on any topic, in any HTTP answer or in the database."""

    def test_no_secret_anywhere_and_no_leaks(self):
        harness.require_env()
        self.assertTrue(os.path.exists(os.path.join(ASAN_BUILD, "bin", "panel-auth")),
                        f"{ASAN_BUILD} is missing: run the tests through tests/run.py")
        env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23",
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        auth = suite.start_auth(dict(env), build=ASAN_BUILD)
        merger = suite.start_merger(dict(env), build=ASAN_BUILD)
        answers = []
        tenant = harness.new_tenant("leak")
        try:
            hdr = suite.service_header()
            for provider in ("google", "microsoft"):
                sid, sh = signed_in(tenant, "admin@leak.k12.example", provider)
                st, _, body = harness.http(
                    "POST", auth.url + f"/internal/tenants/{tenant}/{provider}/authorize",
                    {"actor": "person:admin@leak.k12.example", "session_hash": sh}, headers=hdr)
                answers.append(repr(body))
                self.assertEqual(st, 200)
                state = consent_params(body["consent_url"])["state"]
                path = "google/callback" if provider == "google" else "microsoft/callback"
                st, h, body = suite.no_redirect_http(
                    "GET", auth.url + f"/oauth/{path}?state={state}&code=c&admin_consent=True"
                    f"&tenant={MS_DIRECTORY}", headers={"Cookie": "panel_session=" + sid})
                answers.append(repr(body) + repr(dict(h)))
            for path, body in ((f"/internal/tenants/{tenant}/connections", None),
                               ("/internal/token", {"tenant_id": tenant, "provider": "google"}),
                               (f"/internal/tenants/{tenant}/sync",
                                {"provider": None, "actor": "person:admin@leak.k12.example"})):
                st, h, reply = harness.http("GET" if body is None else "POST", auth.url + path,
                                            body, headers=suite.fetcher_header("google")
                                            if path == "/internal/token" else hdr)
                answers.append(repr(reply) + repr(h))
                self.assertLess(st, 500, reply)
            run = suite.run_events(tenant, "google", range(300), devices=30, ous=4)
            suite.publish(tenant, run)
            suite.wait_run(tenant, run[0]["run_id"], ("completed",), timeout=300)
            bad = [{"tenant_id": tenant, "source": "SOURCE_GOOGLE", "run_id": "nope",
                    "person_observed": {"person": {"email": "x@y"}}}]
            suite.publish(tenant, bad)  # dead-lettered: the DLQ path runs too
            # before the stop: the DLQ path has run (its counter moved), not merely had time to
            harness.wait_until(lambda: dead_letters_total(merger) >= 1, timeout=60,
                               what="the dead letter counted")
            harness.wait_until(lambda: [e for e in harness.consume("panel.source.events.dlq",
                                                                   timeout_ms=1500)
                                        if e["key"] == tenant],
                               timeout=60, what="the bad event on the dead-letter topic")
        finally:
            codes = {p.name: stop_code(p) for p in (auth, merger)}
        for p in (auth, merger):
            log = p.log_text()
            self.assertEqual(codes[p.name], 0, f"{p.name} exit {codes[p.name]}:\n"
                             + log[-6000:])
            for marker in ("LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
                self.assertNotIn(marker, log, f"{p.name}:\n{log[-8000:]}")
            self.assertEqual(suite.find_secrets(log, secret_values()), [],
                             f"a secret in {p.name}'s log")
        texts = {"answers": "\n".join(answers), "database": pg_dump()}
        for topic in ("panel.auth.events", "panel.sync.requests", "panel.source.events",
                      "panel.people.events", "panel.assets.events", "panel.orgunits.events",
                      "panel.source.events.dlq"):
            texts["topic " + topic] = "\n".join(
                str(e) for e in harness.consume(topic, timeout_ms=2000))
        for log in glob.glob(os.path.join(harness.LOG_DIR, "*.log")):
            with open(log, errors="replace") as f:
                texts[log] = f.read()
        for where, text in texts.items():
            self.assertEqual(suite.find_secrets(text, secret_values()), [],
                             f"a secret in {where}")


def stop_code(p, timeout=30):
    if p.proc.poll() is not None:
        return p.proc.returncode
    p.proc.send_signal(signal.SIGTERM)
    try:
        return p.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return "no exit within 30 s of SIGTERM"


if __name__ == "__main__":
    unittest.main()


class ApiTenantIsolationTest(unittest.TestCase):
    """Tenant b's key gets 404 on every route that takes one of tenant a's ids, and b's
    lists and filters never show a's rows."""

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.merger = suite.start_merger()
        cls.a, cls.b = harness.new_tenant("isoa"), harness.new_tenant("isob")
        cls.runs_a = suite.populate(cls.a, ous=4, merger=cls.merger)
        suite.populate(cls.b, ous=2, merger=cls.merger)  # a has org units b lacks
        cls.api = suite.start_api(merger_url=cls.merger.url)
        cls.key_a, cls.key_b = suite.api_key(cls.a), suite.api_key(cls.b)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.merger.stop()

    def call(self, key, method, path, body=None):
        return harness.http(method, self.api.url + path, body,
                            headers={"Authorization": "Bearer " + key})

    def test_other_tenants_ids_are_not_found(self):
        st, _, people = self.call(self.key_a, "GET", "/v1/people?limit=5")
        self.assertEqual(st, 200, people)
        person = people["items"][0]
        st, _, assets = self.call(self.key_a, "GET", "/v1/assets?limit=5")
        self.assertEqual(st, 200, assets)
        st, _, manual = self.call(self.key_a, "POST", "/v1/assets",
                                  {"asset_tag": "ISO-A-1", "serial_number": "ISOSERIAL1",
                                   "model": "Manual"})
        self.assertEqual(st, 201, manual)
        st, _, co = self.call(self.key_a, "POST", f"/v1/assets/{manual['asset_id']}/checkout",
                              {"person_id": person["person_id"]})
        self.assertEqual(st, 201, co)
        st, _, ous = self.call(self.key_a, "GET", "/v1/org-units")
        self.assertEqual(st, 200, ous)
        ou = next(o for o in ous["items"] if o["org_unit_id"] == "id:ou0003")
        asset = assets["items"][0]
        pid, aid = person["person_id"], asset["asset_id"]
        run = self.runs_a[0]
        q = urllib.parse.quote
        gets = [f"/v1/people/{pid}", f"/v1/people/{pid}/checkouts",
                f"/v1/org-units/{q(ou.get('org_unit_id', ''), safe='')}",
                f"/v1/assets/{aid}", f"/v1/assets/{manual['asset_id']}",
                f"/v1/assets/{manual['asset_id']}/checkouts",
                f"/v1/sync/runs/{run}",
                f"/v1/sync/runs/{run}/outcomes"]
        posts = [(f"/v1/assets/{manual['asset_id']}/checkin", {}),
                 (f"/v1/assets/{aid}/checkout", {"person_id": pid}),
                 (f"/v1/assets/{manual['asset_id']}/retire", {}),
                 (f"/v1/assets/{manual['asset_id']}/audit", {}),
                 (f"/v1/sync/runs/{run}/approve", {}),
                 (f"/v1/sync/runs/{run}/reject", {})]
        for path in gets:
            st, _, body = self.call(self.key_a, "GET", path)
            self.assertEqual(st, 200, f"a's own {path}: {body}")
            st, _, body = self.call(self.key_b, "GET", path)
            self.assertEqual(st, 404, f"b reading a's {path}: {body}")
        # Lookups by serial or tag answer a list: b's is empty.
        for path in ("/v1/assets/by-serial/ISOSERIAL1", "/v1/assets/by-tag/ISO-A-1"):
            st, _, body = self.call(self.key_a, "GET", path)
            self.assertEqual(st, 200, body)
            self.assertIn(manual["asset_id"], json_text(body))
            st, _, body = self.call(self.key_b, "GET", path)
            self.assertIn(st, (200, 404), body)
            self.assertNotIn(manual["asset_id"], json_text(body))
            if st == 200:
                self.assertEqual(body.get("items"), [], body)
        st, _, body = self.call(self.key_b, "PATCH", f"/v1/assets/{manual['asset_id']}",
                                {"notes": "b was here"})
        self.assertEqual(st, 404, body)
        for path, body in posts:
            st, _, reply = self.call(self.key_b, "POST", path, body)
            self.assertEqual(st, 404, f"b posting to a's {path}: {reply}")
        # b's own asset cannot be checked out to a's person either.
        st, _, own = self.call(self.key_b, "POST", "/v1/assets",
                               {"asset_tag": "ISO-B-1", "model": "Manual"})
        self.assertEqual(st, 201, own)
        st, _, reply = self.call(self.key_b, "POST", f"/v1/assets/{own['asset_id']}/checkout",
                                 {"person_id": pid})
        self.assertEqual(st, 404, reply)
        # a's data is as a left it.
        st, _, again = self.call(self.key_a, "GET", f"/v1/assets/{manual['asset_id']}")
        self.assertEqual(st, 200)
        self.assertNotEqual(again.get("notes"), "b was here")
        self.assertNotEqual(again.get("lifecycle"), "retired")

    def test_lists_and_filters_show_only_the_callers_rows(self):
        a_ids = {r[0] for r in harness.psql(
            "SELECT person_id FROM people WHERE tenant_id = :'t' UNION ALL "
            "SELECT asset_id FROM assets WHERE tenant_id = :'t'", t=self.a)}
        a_email = harness.psql("SELECT email_norm FROM people WHERE tenant_id = :'t' LIMIT 1",
                               t=self.a)[0][0]
        seen = []
        for path in ("/v1/people?limit=500", "/v1/assets?limit=500", "/v1/org-units",
                     "/v1/checkouts", "/v1/sync/runs", "/v1/sync/match-cases",
                     f"/v1/people?q={urllib.parse.quote(a_email)}",
                     f"/v1/people?q={urllib.parse.quote(a_email.split('@')[0])}"):
            st, _, body = self.call(self.key_b, "GET", path)
            self.assertEqual(st, 200, f"{path}: {body}")
            text = json_text(body)
            seen += [i for i in a_ids if i in text]
            self.assertNotIn(self.a, text, path)
        self.assertEqual(seen, [], "tenant b's lists show tenant a's rows")


def json_text(v):
    import json
    return json.dumps(v)
