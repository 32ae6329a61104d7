"""auth end to end: the cloud emulator, the real PostgreSQL and the real Kafka broker.

Covers issue 4's "Done when": the Google authorize -> callback -> stored-encrypted -> first
sync request path; denied consent; tampered/replayed/expired state; missing scope; revocation
at Google detected at the next use; de-authorize with Google up and down; Microsoft consent,
token and consent removal; the scheduler firing once with two replicas; a database dump with
no token plaintext."""
import http.client as httpclient
import json
import os
import secrets
import subprocess
import unittest
import urllib.parse

import harness
import suite
from harness import (Process, consume, free_port, http, new_session, new_tenant, psql,
                     require_env, wait_until)

GOOGLE_SCOPES = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.orgunit.readonly",
    "https://www.googleapis.com/auth/admin.directory.device.chromeos.readonly",
]
DEVICE_SCOPE = GOOGLE_SCOPES[2]
# Each calling service has its own secret; auth knows which caller each one is.
API_SECRET = "api-" + secrets.token_hex(16)
GOOGLE_SYNC_SECRET = "gsync-" + secrets.token_hex(16)
AZURE_SYNC_SECRET = "async-" + secrets.token_hex(16)
SERVICE_SECRETS = [API_SECRET, GOOGLE_SYNC_SECRET, AZURE_SYNC_SECRET]
CALLER_SECRETS = (f"api:{API_SECRET},google-sync:{GOOGLE_SYNC_SECRET},"
                  f"azure-sync:{AZURE_SYNC_SECRET}")
# asked with the Directory scopes, so that the consent's id_token names who gave it
IDENTITY_SCOPES = ["openid", "https://www.googleapis.com/auth/userinfo.email"]
AUTH_KEY = secrets.token_hex(32)
GOOGLE_SECRET = "panel-google-secret"
MS_SECRET = "panel-ms-secret"


def get_no_follow(url, cookie=None):
    """GET without following redirects, with the given panel_session cookie if any:
    (status, Location, body)."""
    u = urllib.parse.urlsplit(url)
    conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=30)
    path = u.path + ("?" + u.query if u.query else "")
    conn.request("GET", path, headers={"Cookie": "panel_session=" + cookie} if cookie else {})
    r = conn.getresponse()
    body = r.read()
    loc = r.getheader("Location")
    conn.close()
    try:
        body = json.loads(body) if body else None
    except ValueError:
        pass
    return r.status, loc, body


def start_emulator(cloud_port=None, admin_port=None):
    """harness.start_emulator as auth's tests use it: no district (tests add theirs) and the
    consent page (tests choose Allow or Deny)."""
    return harness.start_emulator(districts="", consent="page", port=cloud_port,
                                  admin_port=admin_port)


def auth_env(emu_url, scheduler=False, tick_ms=300):
    return {
        "PANEL_AUTH_CALLER_SECRETS": CALLER_SECRETS,
        "PANEL_AUTH_KEYS": "k1:" + AUTH_KEY,
        "PANEL_AUTH_ACTIVE_KEY_ID": "k1",
        "PANEL_ADMIN_URL": "http://admin.test/",
        "PANEL_GOOGLE_AUTH_URL": emu_url + "/o/oauth2/v2/auth",
        "PANEL_GOOGLE_TOKEN_URL": emu_url + "/token",
        "PANEL_GOOGLE_REVOKE_URL": emu_url + "/revoke",
        "PANEL_MS_LOGIN_URL": emu_url,
        "PANEL_GOOGLE_ISSUER": emu_url,
        "PANEL_GOOGLE_API_URL": emu_url,
        "PANEL_GOOGLE_CLIENT_ID": "panel-google-client",
        "PANEL_GOOGLE_CLIENT_SECRET": GOOGLE_SECRET,
        "PANEL_MS_CLIENT_ID": "panel-ms-client",
        "PANEL_MS_CLIENT_SECRET": MS_SECRET,
        "PANEL_AUTH_SCHEDULER": "true" if scheduler else "false",
        "PANEL_AUTH_SCHEDULER_TICK_MS": str(tick_ms),
    }


def start_auth(emu, scheduler=False, tick_ms=300):
    port = free_port()
    env = auth_env(emu.url, scheduler, tick_ms)
    env["PANEL_AUTH_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return Process("panel-auth", port=port, env=env)


HDR = {"Authorization": "Bearer " + API_SECRET}  # the api's: admin actions
FETCHER_HDR = {"google": {"Authorization": "Bearer " + GOOGLE_SYNC_SECRET},
               "azure": {"Authorization": "Bearer " + AZURE_SYNC_SECRET}}


class AuthFixture:
    """Helpers shared by the test classes; self.emu and self.auth are set by setUpClass."""

    def new_district(self, emu=None):
        emu = emu or self.emu
        did = "d" + secrets.token_hex(5)
        status, _, body = http("POST", emu.admin_url + "/control/districts",
                               {"id": did, "people": 3, "azure_people": 2, "shared": 1,
                                "devices": 1, "ous": 3, "seed": 7})
        self.assertEqual(status, 201, body)
        return body

    def internal(self, method, path, body=None, auth=None, headers=HDR):
        auth = auth or self.auth
        return http(method, auth.url + path, body, headers=headers)

    def signed_in(self, tenant, email, provider="google", provider_tenant=None):
        """A live session of tenant for email, as auth's sign-in makes it (the account is
        made on first use): (session id = the browser's panel_session cookie, its hash)."""
        import hashlib
        rows = psql("SELECT account_id FROM admin_accounts WHERE tenant_id = :'t' AND "
                    "email = :'e' AND removed_at IS NULL", t=tenant, e=email.lower())
        sid, _ = new_session(tenant, email, provider=provider, provider_tenant=provider_tenant,
                             account_id=rows[0][0] if rows else None)
        return sid, hashlib.sha256(sid.encode()).hexdigest()

    def start_consent(self, tenant, district, provider="google", auth=None, session=None):
        """Start a consent as the district's admin signed in (with Microsoft, in the
        district's directory, for a Microsoft consent); the browser that started it (its
        session cookie) is remembered for the callback. session: (id, hash) to use."""
        if session is None:
            ms = provider == "microsoft"
            session = self.signed_in(tenant, district["admin_email"],
                                     "microsoft" if ms else "google",
                                     district.get("azure_tenant_id") if ms else None)
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/{provider}/authorize",
                                        {"actor": "person:" + district["admin_email"],
                                         "session_hash": session[1]}, auth=auth)
        self.assertEqual(status, 200, body)
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(body["consent_url"]).query)["state"][0]
        if not hasattr(self, "browsers"):
            self.browsers = {}
        self.browsers[state] = session[0]
        return body["consent_url"]

    def consent(self, consent_url, district, decision="allow", drop_scope=None):
        """What the browser does at the provider: returns the callback URL it is sent to."""
        extra = {"login_hint": district["admin_email"], "emulator_decision": decision}
        if drop_scope:
            extra["emulator_drop_scope"] = drop_scope
        status, location, body = get_no_follow(consent_url + "&" + urllib.parse.urlencode(extra))
        self.assertIn(status, (302, 303), body)
        self.assertTrue(location, "the consent did not redirect")
        return location

    def callback(self, url, cookie=None):
        """The provider's redirect arriving in a browser: by default the one that started the
        consent (its session cookie); cookie="" for a browser without one."""
        if cookie is None:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            cookie = getattr(self, "browsers", {}).get(q.get("state", [""])[0])
        return get_no_follow(url, cookie)

    def connect_google(self, tenant, district, auth=None):
        cb = self.consent(self.start_consent(tenant, district, "google", auth), district)
        status, location, body = self.callback(cb)
        self.assertEqual(status, 302, body)
        self.assertIn("result=connected", location)
        return cb

    def connect_microsoft(self, tenant, district, auth=None):
        cb = self.consent(self.start_consent(tenant, district, "microsoft", auth), district)
        status, location, body = self.callback(cb)
        self.assertEqual(status, 302, body)
        self.assertIn("result=connected", location)
        return cb

    def connection(self, tenant, provider):
        rows = psql("SELECT status, grant_sealed IS NOT NULL, coalesce(grant_key_id, ''), "
                    "array_to_string(granted_scopes, ' '), array_to_string(missing_scopes, ' '), "
                    "coalesce(status_message, ''), revoked_at IS NOT NULL, "
                    "remote_revoke_pending, coalesce(provider_tenant, ''), "
                    "revoke_sealed IS NOT NULL "
                    "FROM connections WHERE tenant_id = :'t' AND provider = :'p'",
                    t=tenant, p=provider)
        if not rows:
            return None
        r = rows[0]
        return {"status": r[0], "has_grant": r[1] == "t", "key_id": r[2], "granted": r[3].split(),
                "missing": r[4].split(), "message": r[5], "revoked_at": r[6] == "t",
                "revoke_pending": r[7] == "t", "provider_tenant": r[8], "kept": r[9] == "t"}

    def runs(self, tenant, reason=None):
        rows = psql("SELECT run_id, source, reason, status, preview FROM sync_runs "
                    "WHERE tenant_id = :'t' ORDER BY requested_at, source", t=tenant)
        out = [{"run_id": r[0], "source": r[1], "reason": r[2], "status": r[3],
                "preview": r[4] == "t"} for r in rows]
        return [r for r in out if reason is None or r["reason"] == reason]

    def events(self, topic, tenant, count=None):
        def got():
            evs = [e["event"] for e in consume(topic, timeout_ms=1500) if e.get("key") == tenant]
            return evs if count is None or len(evs) >= count else None
        if count is None:
            return got()
        return wait_until(got, timeout=30, what=f"{count} event(s) on {topic}")

    def token(self, tenant, provider, auth=None, headers=None):
        """POST /internal/token as the provider's fetcher (or with the given headers)."""
        return self.internal("POST", "/internal/token", {"tenant_id": tenant, "provider": provider},
                             auth=auth, headers=headers or FETCHER_HDR.get(provider, HDR))


class AuthWithRelay(AuthFixture):
    """The emulator, auth and the merger, started once per class: AuthEvents go through the
    outbox, and the merger's relay publishes them."""

    @classmethod
    def setUpClass(cls):
        require_env()
        cls.emu = start_emulator()
        cls.auth = start_auth(cls.emu)
        cls.merger = suite.start_merger()

    @classmethod
    def tearDownClass(cls):
        cls.merger.stop()
        cls.auth.stop()
        cls.emu.stop()


class AuthFlows(AuthWithRelay, unittest.TestCase):
    def test_google_authorize_callback_stores_encrypted_and_requests_first_sync(self):
        tenant, district = new_tenant("auth"), self.new_district()
        url = self.start_consent(tenant, district)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        self.assertEqual(q["response_type"], ["code"])
        self.assertEqual(sorted(q["scope"][0].split()),
                         sorted(GOOGLE_SCOPES + ["openid", "email"]))
        self.assertTrue(q["nonce"][0])
        self.assertEqual(q["access_type"], ["offline"])
        self.assertEqual(q["prompt"], ["consent"])
        self.assertEqual(q["include_granted_scopes"], ["true"])
        self.assertEqual(q["code_challenge_method"], ["S256"])
        self.assertTrue(q["state"][0] and q["code_challenge"][0])
        self.assertNotIn(GOOGLE_SECRET, url)
        # The state is stored only hashed, bound to tenant and admin.
        rows = psql("SELECT state_hash, admin FROM oauth_states WHERE tenant_id = :'t'", t=tenant)
        self.assertEqual(len(rows), 1)
        self.assertNotEqual(rows[0][0], q["state"][0])
        self.assertEqual(rows[0][1], "person:" + district["admin_email"])
        self.assertEqual(q["login_hint"], [district["admin_email"]])

        cb = self.consent(url, district)
        status, location, body = self.callback(cb)
        self.assertEqual(status, 302, body)
        self.assertTrue(location.startswith("http://admin.test/#cloud-sync?provider=google"))
        self.assertIn("result=connected", location)

        c = self.connection(tenant, "google")
        self.assertEqual(c["status"], "connected")
        self.assertTrue(c["has_grant"])
        self.assertEqual(c["key_id"], "k1")
        self.assertEqual(sorted(c["granted"]), sorted(GOOGLE_SCOPES + IDENTITY_SCOPES))
        # bound to the Workspace of the admin who consented
        self.assertEqual(c["provider_tenant"], district["google_customer_id"])
        runs = self.runs(tenant)
        self.assertEqual([(r["source"], r["reason"]) for r in runs], [("google", "authorized")])

        reqs = self.events("panel.sync.requests", tenant, 1)
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["source"], "SOURCE_GOOGLE")
        self.assertEqual(reqs[0]["run_id"], runs[0]["run_id"])
        self.assertEqual(reqs[0]["sync_request"]["reason"], "authorized")
        auth_events = self.events("panel.auth.events", tenant, 1)
        self.assertEqual(auth_events[0]["auth_event"]["kind"], "AUTH_EVENT_KIND_AUTHORIZED")
        self.assertEqual(auth_events[0]["auth_event"]["actor"], "person:" + district["admin_email"])

        status, _, body = self.token(tenant, "google")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertTrue(body["access_token"])
        self.assertGreater(body["expires_in"], 0)

        status, _, body = self.internal("GET", f"/internal/tenants/{tenant}/connections")
        self.assertEqual(status, 200, body)
        g = [x for x in body["connections"] if x["provider"] == "google"][0]
        self.assertEqual(g["status"], "connected")
        self.assertEqual(g["authorized_by"], "person:" + district["admin_email"])
        self.assertEqual(g["missing_scopes"], [])
        self.assertFalse(g["paused"])
        self.assertEqual(g["last_run"]["reason"], "authorized")
        self.assertNotIn("sealed", json.dumps(body))
        self.assertNotIn("ord", g)

        # The same callback again (a replayed state) is refused and changes nothing.
        status, _, body = self.callback(cb)
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "invalid_state")
        self.assertEqual(len(self.runs(tenant)), 1)

    def test_denied_consent(self):
        tenant, district = new_tenant("auth"), self.new_district()
        cb = self.consent(self.start_consent(tenant, district), district, decision="deny")
        status, location, _ = self.callback(cb)
        self.assertEqual(status, 302)
        self.assertIn("result=denied", location)
        c = self.connection(tenant, "google")
        self.assertNotEqual(c["status"], "connected")
        self.assertFalse(c["has_grant"])
        self.assertEqual(self.runs(tenant), [])
        status, _, body = self.token(tenant, "google")
        self.assertEqual(status, 404, body)
        self.assertEqual(body["error"]["code"], "not_connected")

    def _assert_refused(self, url, tenant):
        status, _, body = self.callback(url)
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["code"], "invalid_state")
        c = self.connection(tenant, "google")
        self.assertFalse(c and c["has_grant"])
        self.assertEqual(self.runs(tenant), [])

    def test_google_consent_is_bound_to_its_admin_and_workspace(self):
        a, b, c = new_tenant("auth"), new_tenant("auth"), new_tenant("auth")
        d, e = self.new_district(), self.new_district()
        self.connect_google(a, d)
        self.assertEqual(self.connection(a, "google")["provider_tenant"], d["google_customer_id"])

        def refused(tenant, started_by, consenting, district):
            url = urllib.parse.urlsplit(self.start_consent(tenant, {"admin_email": started_by}))
            # the person who consents picks their own account (auth hinted the starter's)
            q = dict(urllib.parse.parse_qsl(url.query))
            q.pop("login_hint", None)
            url = url._replace(query=urllib.parse.urlencode(q)).geturl()
            status, location, body = self.callback(
                self.consent(url, {"admin_email": consenting}))
            self.assertEqual(status, 302, body)
            self.assertIn("result=error", location)
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(location).fragment.partition("?")[2])
            return q["message"][0]

        # the same Workspace for a second district
        msg = refused(b, d["admin_email"], d["admin_email"], d)
        self.assertIn("already connected to another district", msg)
        self.assertFalse((self.connection(b, "google") or {}).get("has_grant"))
        # district A re-authorized with another Workspace: A keeps its own
        msg = refused(a, e["admin_email"], e["admin_email"], e)
        self.assertIn("another Google Workspace", msg)
        self.assertEqual(self.connection(a, "google")["provider_tenant"], d["google_customer_id"])
        self.assertEqual(self.connection(a, "google")["status"], "connected")
        # consented by someone else than the admin who started it
        other = "other.admin@" + e["domain"]
        status, _, body = http("POST", f"{self.emu.admin_url}/control/districts/{e['id']}/admins",
                               {"email": other})
        self.assertEqual(status, 201, body)
        msg = refused(c, e["admin_email"], other, e)
        self.assertIn(f"the consent was given by {other}", msg)
        self.assertFalse((self.connection(c, "google") or {}).get("has_grant"))
        self.assertEqual(self.runs(b) + self.runs(c), [])
        # the right admin for C: accepted, bound to e's Workspace
        self.connect_google(c, e)
        self.assertEqual(self.connection(c, "google")["provider_tenant"], e["google_customer_id"])

    def test_tampered_replayed_expired_and_foreign_state(self):
        tenant, district = new_tenant("auth"), self.new_district()
        # Tampered: one character of the state changed.
        cb = self.consent(self.start_consent(tenant, district), district)
        parts = urllib.parse.urlsplit(cb)
        q = dict(urllib.parse.parse_qsl(parts.query))
        st = q["state"]
        q["state"] = st[:-1] + ("A" if st[-1] != "A" else "B")
        self._assert_refused(parts._replace(query=urllib.parse.urlencode(q)).geturl(), tenant)
        q["state"] = "not-a-state'; DROP TABLE connections; --"
        self._assert_refused(parts._replace(query=urllib.parse.urlencode(q)).geturl(), tenant)
        status, _, body = self.callback(parts._replace(query="code=x").geturl())
        self.assertEqual(status, 400, body)

        # Expired: the state's lifetime passes before the callback.
        cb = self.consent(self.start_consent(tenant, district), district)
        psql("UPDATE oauth_states SET expires_at = now() - interval '1 second' "
             "WHERE tenant_id = :'t' AND used_at IS NULL", t=tenant)
        self._assert_refused(cb, tenant)

        # A Google state presented at the Microsoft callback (another flow) is refused.
        cb = self.consent(self.start_consent(tenant, district), district)
        ms_cb = cb.replace("/oauth/google/callback", "/oauth/microsoft/callback")
        self._assert_refused(ms_cb, tenant)
        # ... and it was consumed by that attempt: replaying it at Google is refused too.
        self._assert_refused(cb, tenant)

        # Replayed after success: a second use of a state that worked is refused.
        cb = self.connect_google(tenant, district)
        status, _, body = self.callback(cb)
        self.assertEqual(status, 400)
        self.assertEqual(len(self.runs(tenant)), 1)

    def test_tenant_isolation(self):
        a, b, district = new_tenant("auth"), new_tenant("auth"), self.new_district()
        self.connect_google(a, district)
        # Tenant B sees, uses and revokes nothing of A's.
        status, _, body = self.internal("GET", f"/internal/tenants/{b}/connections")
        self.assertEqual(status, 200)
        self.assertEqual({c["provider"]: c["status"] for c in body["connections"]},
                         {"google": "never", "azure": "never"})
        status, _, body = self.token(b, "google")
        self.assertEqual(status, 404)
        status, _, body = self.internal("POST", f"/internal/tenants/{b}/google/deauthorize",
                                        {"actor": "person:admin@other.example"})
        self.assertEqual(status, 404)
        status, _, body = self.internal("POST", f"/internal/tenants/{b}/sync", {"actor": "apikey:k1"})
        self.assertEqual(status, 409)
        self.assertEqual(self.connection(a, "google")["status"], "connected")
        self.assertEqual(len(self.runs(a)), 1)
        # Without the service secret nothing answers; errors are JSON.
        status, _, body = self.internal("GET", f"/internal/tenants/{a}/connections", headers={})
        self.assertEqual(status, 401)
        self.assertEqual(body["error"]["code"], "unauthorized")
        status, _, body = self.internal("GET", f"/internal/tenants/{a}/connections",
                                        headers={"Authorization": "Bearer " + API_SECRET + "x"})
        self.assertEqual(status, 401)
        status, _, body = self.internal("POST", f"/internal/tenants/{a}/google/authorize",
                                        {"actor": 42})
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "invalid_argument")
        # Who acts is the caller the api authenticated: the old "admin" field, a bare email
        # or an unknown kind of actor is refused.
        for bad in ({"admin": "a@b.c"}, {"actor": "a@b.c"}, {"actor": "robot:x"},
                    {"actor": "person:nobody"}, {"actor": "apikey:a b"}):
            for rest in ("google/authorize", "google/deauthorize", "sync"):
                status, _, body = self.internal("POST", f"/internal/tenants/{a}/{rest}", bad)
                self.assertEqual((status, body["error"]["code"]), (400, "invalid_argument"),
                                 f"{rest} {bad}")
            status, _, body = self.internal("PUT", f"/internal/tenants/{a}/settings",
                                            dict(bad, sync_interval_seconds=3600))
            self.assertEqual(status, 400, f"settings {bad}")
        status, _, body = self.internal("POST", "/internal/tenants/bad%20id/google/authorize",
                                        {"actor": "person:a@b.c"})
        self.assertEqual(status, 400)
        status, _, body = self.internal("POST", "/internal/token", "{not json",
                                        headers=FETCHER_HDR["google"])
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["code"], "invalid_json")

    def test_missing_scope(self):
        tenant, district = new_tenant("auth"), self.new_district()
        cb = self.consent(self.start_consent(tenant, district), district, drop_scope=DEVICE_SCOPE)
        status, location, _ = self.callback(cb)
        self.assertEqual(status, 302)
        self.assertIn("result=error", location)
        c = self.connection(tenant, "google")
        self.assertEqual(c["status"], "scope_missing")
        self.assertEqual(c["missing"], [DEVICE_SCOPE])
        self.assertEqual(self.runs(tenant), [], "no sync starts without every scope")
        status, _, body = self.internal("GET", f"/internal/tenants/{tenant}/connections")
        g = [x for x in body["connections"] if x["provider"] == "google"][0]
        self.assertEqual(g["missing_scopes"], [DEVICE_SCOPE])
        status, _, body = self.token(tenant, "google")
        self.assertEqual(status, 409)
        self.assertEqual(body["error"]["code"], "scope_missing")
        evs = self.events("panel.auth.events", tenant, 1)
        self.assertEqual(evs[0]["auth_event"]["kind"], "AUTH_EVENT_KIND_SCOPE_MISSING")
        self.assertEqual(self.events("panel.sync.requests", tenant), [])

    def test_revocation_at_google_detected_at_next_use(self):
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        status, _, _ = self.token(tenant, "google")
        self.assertEqual(status, 200)
        status, _, body = http("POST", self.emu.admin_url +
                               f"/control/districts/{district['id']}/google/revoke", {})
        self.assertIn(status, (200, 204), body)
        status, _, body = self.token(tenant, "google")
        self.assertEqual(status, 409, body)
        self.assertEqual(body["error"]["code"], "revoked")
        c = self.connection(tenant, "google")
        self.assertEqual(c["status"], "revoked")
        self.assertTrue(c["revoked_at"])
        self.assertIn("invalid_grant", c["message"])
        self.assertFalse(c["has_grant"])
        evs = self.events("panel.auth.events", tenant, 2)
        self.assertEqual([e["auth_event"]["kind"] for e in evs],
                         ["AUTH_EVENT_KIND_AUTHORIZED", "AUTH_EVENT_KIND_REVOKED"])
        # No later sync until re-authorization; the token stays refused.
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                        {"provider": "google", "actor": "person:" + district["admin_email"]})
        self.assertEqual(status, 409, body)
        status, _, body = self.token(tenant, "google")
        self.assertEqual(status, 409)
        self.assertEqual(len(self.events("panel.auth.events", tenant)), 2,
                         "the revocation is announced once")
        # The fetcher's run failed on the 409 (the merger records that); re-authorizing
        # resumes, with a first sync again.
        psql("UPDATE sync_runs SET status = 'failed' WHERE tenant_id = :'t'", t=tenant)
        self.connect_google(tenant, district)
        self.assertEqual([r["reason"] for r in self.runs(tenant)], ["authorized", "authorized"])
        status, _, _ = self.token(tenant, "google")
        self.assertEqual(status, 200)

    def test_deauthorize_with_google_up(self):
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/google/deauthorize",
                                        {"actor": "person:" + district["admin_email"]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"status": "deauthorized", "remote_revoke": "done"})
        c = self.connection(tenant, "google")
        self.assertEqual(c["status"], "deauthorized")
        self.assertFalse(c["has_grant"])
        self.assertFalse(c["kept"])
        self.assertFalse(c["revoke_pending"])
        status, _, body = self.token(tenant, "google")
        self.assertEqual(status, 404)
        evs = self.events("panel.auth.events", tenant, 2)
        self.assertEqual(evs[-1]["auth_event"]["kind"], "AUTH_EVENT_KIND_DEAUTHORIZED")
        status, _, _ = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                     {"actor": "person:" + district["admin_email"]})
        self.assertEqual(status, 409)

    def test_microsoft_consent_token_and_removal(self):
        tenant, district = new_tenant("auth"), self.new_district()
        url = self.start_consent(tenant, district, "microsoft")
        parts = urllib.parse.urlsplit(url)
        self.assertTrue(parts.path.endswith("/v2.0/adminconsent"), url)
        q = urllib.parse.parse_qs(parts.query)
        self.assertEqual(q["scope"], ["https://graph.microsoft.com/.default"])
        self.assertNotIn(MS_SECRET, url)
        cb = self.consent(url, district)
        status, location, body = self.callback(cb)
        self.assertEqual(status, 302, body)
        self.assertIn("provider=azure", location)
        self.assertIn("result=connected", location)
        c = self.connection(tenant, "azure")
        self.assertEqual(c["status"], "connected")
        self.assertEqual(c["provider_tenant"], district["azure_tenant_id"])
        runs = self.runs(tenant)
        self.assertEqual([(r["source"], r["reason"]) for r in runs], [("azure", "authorized")])
        reqs = self.events("panel.sync.requests", tenant, 1)
        self.assertEqual(reqs[0]["source"], "SOURCE_AZURE")

        status, _, body = self.token(tenant, "azure")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["provider_tenant"], district["azure_tenant_id"])
        self.assertEqual(body["token_type"], "Bearer")
        self.assertTrue(body["access_token"])

        # A replayed Microsoft callback is refused like Google's.
        status, _, _ = self.callback(cb)
        self.assertEqual(status, 400)

        status, _, body = http("POST", self.emu.admin_url +
                               f"/control/districts/{district['id']}/azure/revoke", {})
        self.assertIn(status, (200, 204), body)
        status, _, body = self.token(tenant, "azure")
        self.assertEqual(status, 409, body)
        self.assertEqual(body["error"]["code"], "revoked")
        c = self.connection(tenant, "azure")
        self.assertEqual(c["status"], "revoked")
        self.assertIn("700016", c["message"])
        evs = self.events("panel.auth.events", tenant, 2)
        self.assertEqual([(e["source"], e["auth_event"]["kind"]) for e in evs],
                         [("SOURCE_AZURE", "AUTH_EVENT_KIND_AUTHORIZED"),
                          ("SOURCE_AZURE", "AUTH_EVENT_KIND_REVOKED")])

        # De-authorize forgets the consent and says how to remove the app in Entra.
        status, _, body = self.internal("POST",
                                        f"/internal/tenants/{tenant}/microsoft/deauthorize",
                                        {"actor": "person:" + district["admin_email"]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "deauthorized")
        self.assertIn("Entra", body["message"])
        c = self.connection(tenant, "azure")
        self.assertEqual(c["status"], "deauthorized")
        self.assertEqual(c["provider_tenant"], "")

    def test_microsoft_denied_consent(self):
        tenant, district = new_tenant("auth"), self.new_district()
        cb = self.consent(self.start_consent(tenant, district, "microsoft"), district, "deny")
        status, location, _ = self.callback(cb)
        self.assertEqual(status, 302)
        self.assertIn("result=denied", location)
        self.assertNotEqual(self.connection(tenant, "azure")["status"], "connected")
        self.assertEqual(self.runs(tenant), [])

    def test_database_dump_and_logs_hold_no_token_plaintext(self):
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        self.connect_microsoft(tenant, district)
        handed_out = []
        for provider in ("google", "azure"):
            status, _, body = self.token(tenant, provider)
            self.assertEqual(status, 200, body)
            handed_out.append(body["access_token"])
        dump = subprocess.run(["pg_dump", "--data-only", os.environ["PANEL_PG_URL"]],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(dump.returncode, 0, dump.stderr)
        text = dump.stdout
        self.assertIn(tenant, text)  # the dump does cover our rows
        for secret in handed_out + [GOOGLE_SECRET, MS_SECRET, AUTH_KEY] + SERVICE_SECRETS:
            self.assertNotIn(secret, text)
        # Google refresh tokens start with "1//"; none may appear, even in bytea escapes.
        self.assertNotIn("1//", text)
        sealed = psql("SELECT encode(grant_sealed, 'escape') FROM connections "
                      "WHERE tenant_id = :'t' AND provider = 'google'", t=tenant)[0][0]
        self.assertNotIn("1//", sealed)
        logs = self.auth.log_text()
        for secret in handed_out + [GOOGLE_SECRET, MS_SECRET, AUTH_KEY, "1//"] + SERVICE_SECRETS:
            self.assertNotIn(secret, logs)


class AuthEventsWhileKafkaIsDown(AuthWithRelay, unittest.TestCase):
    """AuthEvents are written to the outbox in the transaction of the connection's change:
    a revocation detected while Kafka is down is published once Kafka is back, exactly once."""

    def test_revoked_event_published_after_kafka_returns(self):
        import faults
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        self.events("panel.auth.events", tenant, 1)
        status, _, body = http("POST", self.emu.admin_url +
                               f"/control/districts/{district['id']}/google/revoke", {})
        self.assertIn(status, (200, 204), body)
        faults.infra("stop", "kafka")
        try:
            status, _, body = self.token(tenant, "google")
            self.assertEqual(status, 409, body)
            self.assertEqual(body["error"]["code"], "revoked")
            waiting = psql("SELECT event_id FROM outbox WHERE tenant_id = :'t'"
                           " AND topic = 'panel.auth.events' AND sent_at IS NULL", t=tenant)
            self.assertEqual(len(waiting), 1, "the REVOKED event waits in the outbox")
        finally:
            faults.infra("start", "kafka")
        evs = self.events("panel.auth.events", tenant, 2)
        harness.wait_outbox_drained(tenant)
        evs = self.events("panel.auth.events", tenant)
        self.assertEqual([e["auth_event"]["kind"] for e in evs],
                         ["AUTH_EVENT_KIND_AUTHORIZED", "AUTH_EVENT_KIND_REVOKED"])
        self.assertEqual(evs[1]["event_id"], waiting[0][0])
        self.assertEqual(len({e["event_id"] for e in evs}), 2)


class KeyRotation(AuthFixture, unittest.TestCase):
    def test_rekey_moves_grants_to_the_new_key(self):
        require_env()
        self.emu = start_emulator()
        self.auth = start_auth(self.emu)
        new_key = secrets.token_hex(32)
        try:
            tenant, district = new_tenant("auth"), self.new_district()
            self.connect_google(tenant, district)
            self.assertEqual(self.connection(tenant, "google")["key_id"], "k1")
            env = dict(os.environ, **auth_env(self.emu.url))
            env["PANEL_AUTH_KEYS"] = f"k1:{AUTH_KEY},k2:{new_key}"
            env["PANEL_AUTH_ACTIVE_KEY_ID"] = "k2"
            p = subprocess.run([harness.binary("panel-auth"), "rekey", "--tenant", tenant],
                               env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("under key 'k2'", p.stdout)
            self.assertNotIn(new_key, p.stdout + p.stderr)
            self.assertEqual(self.connection(tenant, "google")["key_id"], "k2")
            self.auth.stop()
            # The old key is gone: the grant still opens, with the new key alone.
            port = free_port()
            env = auth_env(self.emu.url)
            env.update({"PANEL_AUTH_KEYS": "k2:" + new_key, "PANEL_AUTH_ACTIVE_KEY_ID": "",
                        "PANEL_AUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"})
            self.auth = Process("panel-auth", port=port, env=env)
            status, _, body = self.token(tenant, "google")
            self.assertEqual(status, 200, body)
        finally:
            self.auth.stop()
            self.emu.stop()


class CallerPrivileges(AuthFixture, unittest.TestCase):
    """Each service's own credential reaches only the routes it needs (docs/security.md): the
    api's cannot obtain provider access tokens, a fetcher's cannot act for an admin and gets
    only its own cloud's tokens, an unknown secret is 401."""

    @classmethod
    def setUpClass(cls):
        require_env()
        cls.emu = start_emulator()
        cls.auth = start_auth(cls.emu)

    @classmethod
    def tearDownClass(cls):
        cls.auth.stop()
        cls.emu.stop()

    def token_requests(self):
        status, _, body = http("GET", self.emu.admin_url + "/control/stats")
        self.assertEqual(status, 200, body)
        return {k: body["requests"].get(k, 0) for k in ("google.token", "ms.token")}

    def tenant_state(self, tenant):
        """Everything auth keeps about a tenant, as text: a refused call changes none of it."""
        return psql("SELECT coalesce((SELECT json_agg(c ORDER BY provider)::text FROM connections c "
                    "WHERE tenant_id = :'t'), ''), "
                    "(SELECT count(*) FROM oauth_states WHERE tenant_id = :'t'), "
                    "coalesce((SELECT json_agg(r ORDER BY run_id)::text FROM sync_runs r "
                    "WHERE tenant_id = :'t'), ''), "
                    "coalesce((SELECT row_to_json(t)::text FROM tenants t WHERE tenant_id = :'t'), "
                    "''), (SELECT count(*) FROM pause_windows WHERE tenant_id = :'t')", t=tenant)

    def assert_forbidden(self, status, body, what):
        self.assertEqual(status, 403, f"{what}: {body}")
        self.assertEqual(body["error"]["code"], "forbidden_caller", what)
        self.assertNotIn("access_token", json.dumps(body), what)

    def connected_tenant(self):
        tenant, district = new_tenant("caller"), self.new_district()
        self.connect_google(tenant, district)
        self.connect_microsoft(tenant, district)
        return tenant, district

    def test_api_credential_cannot_obtain_access_tokens(self):
        tenant, _ = self.connected_tenant()
        before, calls = self.tenant_state(tenant), self.token_requests()
        for provider in ("google", "azure"):
            status, _, body = self.token(tenant, provider, headers=HDR)
            self.assert_forbidden(status, body, f"api asking for a {provider} token")
        # A fetcher gets its own cloud's tokens only.
        status, _, body = self.token(tenant, "azure", headers=FETCHER_HDR["google"])
        self.assert_forbidden(status, body, "google-sync asking for an azure token")
        status, _, body = self.token(tenant, "google", headers=FETCHER_HDR["azure"])
        self.assert_forbidden(status, body, "azure-sync asking for a google token")
        self.assertEqual(self.token_requests(), calls, "a refused call reached the provider")
        self.assertEqual(self.tenant_state(tenant), before)
        # The fetchers' own credentials still work.
        for provider in ("google", "azure"):
            status, _, body = self.token(tenant, provider)
            self.assertEqual(status, 200, body)
            self.assertTrue(body["access_token"])

    def test_fetcher_credentials_cannot_act_for_an_admin(self):
        tenant, district = self.connected_tenant()
        admin = {"actor": "person:" + district["admin_email"]}
        before = self.tenant_state(tenant)
        self.assertEqual(len(self.runs(tenant)), 2)
        routes = [("POST", f"/internal/tenants/{tenant}/google/authorize", admin),
                  ("POST", f"/internal/tenants/{tenant}/microsoft/authorize", admin),
                  ("POST", f"/internal/tenants/{tenant}/google/deauthorize", admin),
                  ("POST", f"/internal/tenants/{tenant}/microsoft/deauthorize", admin),
                  ("POST", f"/internal/tenants/{tenant}/sync", dict(admin, provider=None)),
                  ("POST", f"/internal/tenants/{tenant}/sync",
                   dict(admin, provider="google", preview=True)),
                  ("PUT", f"/internal/tenants/{tenant}/settings",
                   dict(admin, sync_interval_seconds=900,
                        pause_windows=[{"starts_at": "2030-01-01T00:00:00Z",
                                       "ends_at": "2030-01-02T00:00:00Z", "reason": "x"}])),
                  ("GET", f"/internal/tenants/{tenant}/connections", None)]
        for fetcher, hdr in FETCHER_HDR.items():
            for method, path, body in routes:
                status, _, reply = self.internal(method, path, body, headers=hdr)
                self.assert_forbidden(status, reply, f"{fetcher}'s credential: {method} {path}")
        self.assertEqual(self.tenant_state(tenant), before)
        self.assertEqual(self.connection(tenant, "google")["status"], "connected")
        # The api's credential does what the fetchers' could not (the request coalesces into
        # the first sync, which no fetcher runs here).
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                        dict(admin, provider="google"))
        self.assertEqual(status, 202, body)
        self.assertEqual([r["provider"] for r in body["requests"]], ["google"])

    def test_unknown_secret_is_401(self):
        tenant, district = self.connected_tenant()
        before = self.tenant_state(tenant)
        for hdr in ({"Authorization": "Bearer " + secrets.token_hex(20)},
                    {"Authorization": "Bearer " + GOOGLE_SYNC_SECRET[:-1]},
                    {"Authorization": "Bearer " + API_SECRET + API_SECRET}, {}):
            for method, path, body in (
                    ("POST", "/internal/token", {"tenant_id": tenant, "provider": "google"}),
                    ("POST", f"/internal/tenants/{tenant}/google/authorize",
                     {"admin": district["admin_email"]}),
                    ("POST", f"/internal/tenants/{tenant}/sync", {"admin": "a@b.org"}),
                    ("GET", "/internal/no-such-route", None)):
                status, _, reply = self.internal(method, path, body, headers=hdr)
                self.assertEqual(status, 401, f"{method} {path}: {reply}")
                self.assertEqual(reply["error"]["code"], "unauthorized")
        self.assertEqual(self.tenant_state(tenant), before)


class CallerSecretRotation(AuthFixture, unittest.TestCase):
    """An operator rolls a caller to a new secret without downtime: auth accepts the old and
    the new secret at once, then only the new one once the old is removed."""

    def start(self, caller_secrets):
        port = free_port()
        env = auth_env(self.emu.url)
        env.update({"PANEL_AUTH_CALLER_SECRETS": caller_secrets,
                    "PANEL_AUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"})
        return Process("panel-auth", port=port, env=env)

    def test_old_and_new_secret_then_only_the_new(self):
        require_env()
        self.emu = start_emulator()
        self.auth = None
        new_api, new_google = "api-new-" + secrets.token_hex(16), "gs-new-" + secrets.token_hex(16)
        old_api_hdr, new_api_hdr = HDR, {"Authorization": "Bearer " + new_api}
        old_google_hdr = FETCHER_HDR["google"]
        new_google_hdr = {"Authorization": "Bearer " + new_google}
        try:
            tenant, district = new_tenant("rotate"), self.new_district()
            # Step 1: auth lists both secrets of the api and of google-sync (a config change
            # and a rolling restart of auth).
            self.auth = self.start(f"{CALLER_SECRETS},api:{new_api},google-sync:{new_google}")
            self.connect_google(tenant, district)
            for hdr in (old_api_hdr, new_api_hdr):
                status, _, body = self.internal("GET", f"/internal/tenants/{tenant}/connections",
                                                headers=hdr)
                self.assertEqual(status, 200, body)
            for hdr in (old_google_hdr, new_google_hdr):
                status, _, body = self.token(tenant, "google", headers=hdr)
                self.assertEqual(status, 200, body)
            # The new secrets are the same callers: no more privilege than the old ones.
            status, _, body = self.token(tenant, "google", headers=new_api_hdr)
            self.assertEqual(status, 403, body)
            status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                            {"admin": "a@b.org"}, headers=new_google_hdr)
            self.assertEqual(status, 403, body)
            self.auth.stop()
            # Step 3 (after the callers were rolled to their new secrets): the old ones go.
            self.auth = self.start(f"api:{new_api},google-sync:{new_google},"
                                   f"azure-sync:{AZURE_SYNC_SECRET}")
            for hdr, what in ((old_api_hdr, "old api"), (old_google_hdr, "old google-sync")):
                status, _, body = self.internal("GET", f"/internal/tenants/{tenant}/connections",
                                                headers=hdr)
                self.assertEqual(status, 401, f"{what}: {body}")
                status, _, body = self.token(tenant, "google", headers=hdr)
                self.assertEqual(status, 401, f"{what}: {body}")
            status, _, body = self.internal("GET", f"/internal/tenants/{tenant}/connections",
                                            headers=new_api_hdr)
            self.assertEqual(status, 200, body)
            status, _, body = self.token(tenant, "google", headers=new_google_hdr)
            self.assertEqual(status, 200, body)
            log = self.auth.log_text()
            for secret in (new_api, new_google, API_SECRET, GOOGLE_SYNC_SECRET):
                self.assertNotIn(secret, log)
        finally:
            if self.auth:
                self.auth.stop()
            self.emu.stop()


class CallerSecretsConfiguration(unittest.TestCase):
    """A configuration that would weaken the credentials refuses to start (exit 2), with an
    error that names the variable and never prints a secret."""

    def run_service(self, name, extra):
        env = dict(os.environ, PANEL_HTTP_PORT=str(free_port()), **extra)
        return subprocess.run([harness.binary(name)],
                              env=env, capture_output=True, text=True, timeout=30)

    def test_bad_caller_secrets_exit_2(self):
        shared = "the-same-secret-for-two"
        cases = [
            ("panel-auth", {"PANEL_AUTH_CALLER_SECRETS": "api:only-15-chars-x"},
             "PANEL_AUTH_CALLER_SECRETS", "only-15-chars-x"),
            ("panel-auth", {"PANEL_AUTH_CALLER_SECRETS": f"api:{shared},google-sync:{shared}"},
             "PANEL_AUTH_CALLER_SECRETS", shared),
            ("panel-auth", {"PANEL_AUTH_CALLER_SECRETS": f"gogle-sync:{API_SECRET}"},
             "PANEL_AUTH_CALLER_SECRETS", API_SECRET),
            ("panel-auth", {"PANEL_AUTH_CALLER_SECRETS": ""}, "PANEL_AUTH_CALLER_SECRETS", None),
            ("panel-merger", {"PANEL_MERGER_CALLER_SECRETS": f"google-sync:{GOOGLE_SYNC_SECRET}"},
             "PANEL_MERGER_CALLER_SECRETS", GOOGLE_SYNC_SECRET),
            ("panel-merger", {"PANEL_MERGER_CALLER_SECRETS": "api:short"},
             "PANEL_MERGER_CALLER_SECRETS", "short"),
            ("panel-google-sync", {"PANEL_SERVICE_SECRET": "short-secret"},
             "PANEL_SERVICE_SECRET", "short-secret"),
            ("panel-api", {"PANEL_SERVICE_SECRET": "short-secret"}, "PANEL_SERVICE_SECRET",
             "short-secret"),
        ]
        for name, extra, variable, secret in cases:
            with self.subTest(service=name, variable=variable):
                p = self.run_service(name, extra)
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertIn(variable, p.stderr)
                if secret:
                    self.assertNotIn(secret, p.stdout + p.stderr)


class DeauthorizeWhileGoogleIsDown(AuthFixture, unittest.TestCase):
    def test_deauthorize_with_google_down_then_retried(self):
        require_env()
        self.emu = start_emulator()
        self.auth = start_auth(self.emu, scheduler=True, tick_ms=300)
        try:
            tenant, district = new_tenant("auth"), self.new_district()
            self.connect_google(tenant, district)
            cloud_port, admin_port = self.emu.port, self.emu.admin_port
            self.emu.stop()
            status, _, body = self.internal("POST",
                                            f"/internal/tenants/{tenant}/google/deauthorize",
                                            {"actor": "person:" + district["admin_email"]})
            self.assertEqual(status, 200, body)
            self.assertEqual(body, {"status": "deauthorized", "remote_revoke": "pending"})
            c = self.connection(tenant, "google")
            self.assertEqual(c["status"], "deauthorized")
            self.assertFalse(c["has_grant"], "the local grant is deleted at once")
            self.assertTrue(c["revoke_pending"])
            status, _, _ = self.token(tenant, "google")
            self.assertEqual(status, 404)
            # Google comes back: the scheduler loop retries the revoke.
            self.emu = start_emulator(cloud_port, admin_port)
            wait_until(lambda: not self.connection(tenant, "google")["revoke_pending"],
                       timeout=60, what="the pending revoke to be retried")
            self.assertFalse(self.connection(tenant, "google")["kept"])
        finally:
            self.auth.stop()
            self.emu.stop()


class SchedulerWithTwoReplicas(AuthFixture, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_env()
        cls.emu = start_emulator()
        cls.auth = start_auth(cls.emu)  # serves the flows; no scheduler
        cls.replicas = [start_auth(cls.emu, scheduler=True, tick_ms=200) for _ in range(2)]

    @classmethod
    def tearDownClass(cls):
        for r in cls.replicas:
            r.stop()
        cls.auth.stop()
        cls.emu.stop()

    def make_due(self, tenant):
        psql("UPDATE connections SET next_sync_at = now() - interval '1 second' "
             "WHERE tenant_id = :'t'", t=tenant)

    def next_sync_in(self, tenant, provider):
        return float(psql("SELECT extract(epoch FROM next_sync_at - now()) FROM connections "
                          "WHERE tenant_id = :'t' AND provider = :'p'", t=tenant, p=provider)[0][0])

    def counter(self, replica, name):
        return harness.metric_sum(replica, name)

    def more_passes(self, n):
        """Wait until every replica's scheduler made n more passes."""
        passes = [self.counter(r, "auth_scheduler_passes_total") for r in self.replicas]
        wait_until(lambda: all(self.counter(r, "auth_scheduler_passes_total") >= p + n
                               for r, p in zip(self.replicas, passes)),
                   timeout=30, what=f"{n} more passes of each replica")

    def test_due_schedule_fires_once_google_before_azure(self):
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        self.connect_microsoft(tenant, district)
        # The first syncs finished; make both schedules due now.
        psql("UPDATE sync_runs SET status = 'completed' WHERE tenant_id = :'t'", t=tenant)
        self.make_due(tenant)
        wait_until(lambda: len(self.runs(tenant, "scheduled")) >= 2 and
                   self.next_sync_in(tenant, "azure") > 0, timeout=30,
                   what="the scheduled runs")
        # Both replicas then pass over the schedules several more times (observed, not slept):
        # a second firing would have happened by then; exactly one run per schedule below.
        self.more_passes(3)
        sched = self.runs(tenant, "scheduled")
        self.assertEqual(sorted(r["source"] for r in sched), ["azure", "google"])
        # Read until both are there (one read of 1.5 s could end before a publish arrived):
        # a third, second firing, would be among them, published in the passes above.
        def scheduled_requests():
            reqs = [e for e in self.events("panel.sync.requests", tenant)
                    if e["sync_request"]["reason"] == "scheduled"]
            return reqs if len(reqs) >= 2 else None
        reqs = wait_until(scheduled_requests, timeout=30, what="both scheduled requests")
        self.assertEqual([e["source"] for e in reqs], ["SOURCE_GOOGLE", "SOURCE_AZURE"])
        self.assertEqual(sorted(e["run_id"] for e in reqs), sorted(r["run_id"] for r in sched))
        # The next run is one interval (default 4 h) later.
        self.assertGreater(self.next_sync_in(tenant, "google"), 4 * 3600 - 120)
        for r in self.replicas:
            self.assertIsNone(r.proc.poll())
            self.assertEqual(self.counter(r, 'auth_scheduler_passes_total{result="failed"}'), 0)

    def test_request_written_before_a_crash_is_published_once_after_restart(self):
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        psql("UPDATE sync_runs SET status = 'completed' WHERE tenant_id = :'t'", t=tenant)
        # A replica wrote a scheduled request (and advanced the schedule) and died before
        # publishing it: the row is all that is left.
        run_id = psql("INSERT INTO sync_runs (tenant_id, run_id, source, reason, status, "
                      "publish_pending, requested_by) VALUES (:'t', gen_random_uuid(), "
                      "'google', 'scheduled', 'requested', true, 'scheduler') RETURNING run_id",
                      t=tenant)[0][0]
        wait_until(lambda: psql("SELECT NOT publish_pending FROM sync_runs WHERE tenant_id = :'t' "
                                "AND run_id = :'r'", t=tenant, r=run_id)[0][0] == "t",
                   timeout=30, what="the surviving replicas to publish the pending request")
        self.more_passes(2)  # the other replica too had its chance to publish it again
        reqs = [e for e in self.events("panel.sync.requests", tenant) if e["run_id"] == run_id]
        self.assertEqual(len(reqs), 1, "published once, with the run id that was written")
        self.assertEqual(reqs[0]["sync_request"]["reason"], "scheduled")
        self.assertEqual(len(self.runs(tenant, "scheduled")), 1, "no second run was created")

    def test_in_flight_run_coalesces_and_pause_window_skips_scheduled_runs(self):
        tenant, district = new_tenant("auth"), self.new_district()
        self.connect_google(tenant, district)
        first = self.runs(tenant)[0]["run_id"]
        # An immediate request while the first run is in flight is coalesced with it.
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                        {"provider": None, "actor": "person:" + district["admin_email"]})
        self.assertEqual(status, 202, body)
        self.assertEqual(body["requests"], [{"provider": "google", "run_id": first,
                                             "coalesced": True}])
        # A due schedule during the in-flight run is coalesced too: no second run.
        self.make_due(tenant)
        wait_until(lambda: self.next_sync_in(tenant, "google") > 0, timeout=30,
                   what="the schedule to be handled")
        self.assertEqual(len(self.runs(tenant)), 1)

        # A pause window covering now: the scheduled run is skipped and shown as paused.
        psql("UPDATE sync_runs SET status = 'completed' WHERE tenant_id = :'t'", t=tenant)
        status, _, body = self.internal("PUT", f"/internal/tenants/{tenant}/settings",
                                        {"actor": "apikey:k1",
                                         "sync_interval_seconds": 3600, "pause_windows": [
                                            {"starts_at": "2000-01-01T00:00:00Z",
                                             "ends_at": "2999-01-01T00:00:00Z",
                                             "reason": "summer rollover"}]})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["sync_interval_seconds"], 3600)
        self.make_due(tenant)
        wait_until(lambda: self.next_sync_in(tenant, "google") > 0, timeout=30,
                   what="the paused schedule to be skipped")
        self.assertLess(self.next_sync_in(tenant, "google"), 3600 + 5)
        self.assertEqual(self.runs(tenant, "scheduled"), [])
        status, _, body = self.internal("GET", f"/internal/tenants/{tenant}/connections")
        g = [x for x in body["connections"] if x["provider"] == "google"][0]
        self.assertTrue(g["paused"])
        # An admin's immediate request still runs inside the window.
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                        {"provider": "google", "preview": False,
                                         "actor": "person:" + district["admin_email"]})
        self.assertEqual(status, 202, body)
        self.assertFalse(body["requests"][0]["coalesced"])
        self.assertEqual([r["reason"] for r in self.runs(tenant)], ["authorized", "manual"])
        reqs = self.events("panel.sync.requests", tenant, 2)
        self.assertEqual([e["sync_request"]["reason"] for e in reqs], ["authorized", "manual"])
        # Bad settings are refused with a JSON error.
        status, _, body = self.internal("PUT", f"/internal/tenants/{tenant}/settings",
                                        {"sync_interval_seconds": 10,
                                         "actor": "apikey:k1"})
        self.assertEqual(status, 400)
        status, _, body = self.internal("PUT", f"/internal/tenants/{tenant}/settings",
                                        {"pause_windows": [{"starts_at": "soon",
                                                            "ends_at": "later"}],
                                         "actor": "apikey:k1"})
        self.assertEqual(status, 400)


if __name__ == "__main__":
    unittest.main()
