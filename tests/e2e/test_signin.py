"""Admin sign-in end to end (issue 17): auth's /signin routes against the cloud emulator's
OpenID Connect providers and the real PostgreSQL. A small cookie-keeping client follows the
browser's redirects by hand. Every refusal is checked to store nothing: no session row and
no provider id bound to the account."""
import hashlib
import http.client as httpclient
import secrets
import unittest
import urllib.parse

from harness import Process, free_port, http, new_tenant, psql, require_env
from test_auth import auth_env

ADMIN_URL = "http://admin.test/"


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


class Browser:
    """Keeps the cookies one host sets (auth's) and sends them back to it."""

    def __init__(self):
        self.cookies = {}
        self.set_cookie_lines = []

    def get(self, url, send_cookies=True):
        u = urllib.parse.urlsplit(url)
        conn = httpclient.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {}
        if send_cookies and self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
        r = conn.getresponse()
        body = r.read()
        self.set_cookie_lines = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        for line in self.set_cookie_lines:
            name, _, rest = line.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in line:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        loc = r.getheader("Location")
        conn.close()
        return r.status, loc, body

    def cookie_line(self, name):
        return next((c for c in self.set_cookie_lines if c.startswith(name + "=")), None)


class SigninFixture:
    @classmethod
    def start(cls):
        require_env()
        admin_port = free_port()
        cls.emu = Process("panel-emulator", env={
            "PANEL_EMULATOR_ADMIN_PORT": str(admin_port), "PANEL_EMULATOR_CONSENT": "auto",
            "PANEL_EMULATOR_DISTRICTS": ""})
        cls.emu.admin_url = f"http://127.0.0.1:{admin_port}"
        port = free_port()
        env = auth_env(cls.emu.url)
        env.update({"PANEL_AUTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
                    "PANEL_ADMIN_URL": ADMIN_URL, "PANEL_GOOGLE_ISSUER": cls.emu.url})
        cls.auth = Process("panel-auth", port=port, env=env)

    @classmethod
    def tearDownClass(cls):
        cls.auth.stop()
        cls.emu.stop()

    def tearDown(self):
        self.mode("normal")

    # ---- setup helpers ----

    def mode(self, mode):
        s, _, b = http("POST", self.emu.admin_url + "/control/oidc/mode", {"mode": mode})
        self.assertEqual(s, 200, b)

    def district(self):
        """A new emulated district (one Google customer, one Microsoft directory)."""
        did = "s" + secrets.token_hex(5)
        s, _, b = http("POST", self.emu.admin_url + "/control/districts",
                       {"id": did, "people": 2, "azure_people": 2, "shared": 1, "devices": 1,
                        "ous": 2, "seed": 3})
        self.assertEqual(s, 201, b)
        return b

    def person(self, district, local="jane"):
        """A person who can sign in at the emulated providers: (email, google_sub, oid)."""
        email = f"{local}@{district['domain']}"
        s, _, b = http("POST", f"{self.emu.admin_url}/control/districts/{district['id']}/admins",
                       {"email": email})
        self.assertEqual(s, 201, b)
        row = [a for a in b["admins"] if a["email"] == email][0]
        return email, row["google_sub"], row["microsoft_oid"]

    def account(self, tenant, email, role="admin"):
        rows = psql("INSERT INTO admin_accounts (tenant_id, email, role, created_by) "
                    "VALUES (:'t', :'e', :'r', 'test') RETURNING account_id",
                    t=tenant, e=email, r=role)
        return rows[0][0]

    def account_row(self, account_id):
        r = psql("SELECT coalesce(google_sub, ''), coalesce(microsoft_tid, ''), "
                 "coalesce(microsoft_oid, ''), last_signin_at IS NOT NULL "
                 "FROM admin_accounts WHERE account_id = :'a'", a=account_id)[0]
        return {"google_sub": r[0], "microsoft_tid": r[1], "microsoft_oid": r[2],
                "signed_in": r[3] == "t"}

    def sessions(self, account_id):
        return psql("SELECT id_hash, tenant_id, provider, subject, email, "
                    "coalesce(provider_tenant, ''), "
                    "round(extract(epoch FROM expires_at - now()) / 3600) "
                    "FROM admin_sessions WHERE account_id = :'a'", a=account_id)

    def assert_nothing_stored(self, account_id):
        self.assertEqual(self.sessions(account_id), [])
        row = self.account_row(account_id)
        self.assertEqual((row["google_sub"], row["microsoft_oid"], row["signed_in"]),
                         ("", "", False))

    # ---- the browser's path ----

    def start_signin(self, browser, provider, tenant=None):
        url = f"{self.auth.url}/signin/{provider}"
        if tenant:
            url += "?tenant=" + urllib.parse.quote(tenant)
        s, loc, body = browser.get(url)
        self.assertEqual(s, 302, body)
        return loc

    def at_provider(self, authorize_url, email):
        """The person picks their account at the provider: the redirect back to auth."""
        s, loc, body = Browser().get(
            authorize_url + "&" + urllib.parse.urlencode({"login_hint": email}))
        self.assertEqual(s, 302, body)
        self.assertTrue(loc.startswith(self.auth.url + "/signin/"), loc)
        return loc

    def signin(self, provider, email, tenant=None, browser=None):
        """The whole flow; returns (status, location, body, browser)."""
        browser = browser or Browser()
        callback = self.at_provider(self.start_signin(browser, provider, tenant), email)
        s, loc, body = browser.get(callback)
        return s, loc, body, browser

    def refused(self, loc, code):
        self.assertTrue(loc and loc.startswith(ADMIN_URL + "#signin?"), loc)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).fragment.partition("?")[2])
        self.assertEqual(q["error"], [code], q)
        self.assertTrue(q["message"][0])
        return q["message"][0]


class SigninFlows(SigninFixture, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start()

    def test_google_signin_creates_a_session(self):
        tenant, d = new_tenant("si"), self.district()
        email, sub, _ = self.person(d)
        account = self.account(tenant, email)
        b = Browser()
        authorize = self.start_signin(b, "google")
        # the start: a sign-in cookie bound to a stored state, and the provider's request
        line = b.cookie_line("panel_signin")
        self.assertIn("HttpOnly", line)
        self.assertIn("SameSite=Lax", line)
        self.assertIn("Secure", line)
        self.assertIn("Max-Age=600", line)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
        self.assertTrue(authorize.startswith(self.emu.url + "/o/oauth2/v2/auth?"))
        self.assertEqual(q["response_type"], ["code"])
        self.assertEqual(q["scope"], ["openid email profile"])
        self.assertEqual(q["prompt"], ["select_account"])
        self.assertEqual(q["code_challenge_method"], ["S256"])
        self.assertEqual(q["redirect_uri"], [self.auth.url + "/signin/google/callback"])
        state, nonce = q["state"][0], q["nonce"][0]
        rows = psql("SELECT provider, browser_hash, nonce, used_at IS NULL FROM signin_states "
                    "WHERE state_hash = :'h'", h=sha256_hex(state))
        self.assertEqual(rows, [["google", sha256_hex(b.cookies["panel_signin"]), nonce, "t"]])
        # the provider sends the browser back; auth signs the person in
        s, loc, body = b.get(self.at_provider(authorize, email))
        self.assertEqual(s, 302, body)
        self.assertEqual(loc, ADMIN_URL)
        sid = b.cookies.get("panel_session")
        self.assertRegex(sid, r"^[A-Za-z0-9_-]{43}$")
        line = b.cookie_line("panel_session")
        self.assertIn("HttpOnly", line)
        self.assertNotIn("Max-Age", line)  # a browser-session cookie
        self.assertNotIn("panel_signin", b.cookies)  # deleted
        sessions = self.sessions(account)
        self.assertEqual(sessions, [[sha256_hex(sid), tenant, "google", sub, email, d["domain"],
                                     "12"]])
        self.assertEqual(psql("SELECT count(*) FROM admin_sessions WHERE id_hash = :'s'",
                              s=sid), [["0"]])  # the id itself is never stored
        row = self.account_row(account)
        self.assertEqual(row["google_sub"], sub)
        self.assertTrue(row["signed_in"])
        self.assertEqual(psql("SELECT used_at IS NOT NULL FROM signin_states "
                              "WHERE state_hash = :'h'", h=sha256_hex(state)), [["t"]])

    def test_google_signin_matches_the_bound_subject_first(self):
        tenant, d = new_tenant("si"), self.district()
        email, sub, _ = self.person(d)
        account = self.account(tenant, email)
        s, loc, _, _ = self.signin("google", email)
        self.assertEqual((s, loc), (302, ADMIN_URL))
        # the account's address changes; the bound Google id still signs in to it
        psql("UPDATE admin_accounts SET email = 'renamed@example.org' WHERE account_id = :'a'",
             a=account)
        s, loc, _, _ = self.signin("google", email)
        self.assertEqual((s, loc), (302, ADMIN_URL))
        self.assertEqual(len(self.sessions(account)), 2)
        # another account with that address but a different bound id is never taken over
        other_tenant = new_tenant("si")
        other = self.account(other_tenant, email)
        psql("UPDATE admin_accounts SET google_sub = '999' WHERE account_id = :'a'", a=other)
        s, loc, _, _ = self.signin("google", email)
        self.assertEqual((s, loc), (302, ADMIN_URL))
        self.assertEqual(self.sessions(other), [])

    def test_microsoft_signin_binds_tid_and_oid(self):
        tenant, d = new_tenant("si"), self.district()
        email, _, oid = self.person(d, "ms.admin")
        account = self.account(tenant, email)
        b = Browser()
        authorize = self.start_signin(b, "microsoft")
        self.assertTrue(authorize.startswith(
            self.emu.url + "/organizations/oauth2/v2.0/authorize?"), authorize)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
        self.assertEqual(q["scope"], ["openid profile email"])
        s, loc, body = b.get(self.at_provider(authorize, email.upper()))
        self.assertEqual((s, loc), (302, ADMIN_URL), body)
        row = self.account_row(account)
        self.assertEqual((row["microsoft_tid"], row["microsoft_oid"]), (d["azure_tenant_id"], oid))
        self.assertEqual(row["google_sub"], "")
        sessions = self.sessions(account)
        self.assertEqual(sessions, [[sha256_hex(b.cookies["panel_session"]), tenant, "microsoft",
                                     oid, email, d["azure_tenant_id"], "12"]])

    def test_forged_expired_and_replayed_states_are_refused(self):
        tenant, d = new_tenant("si"), self.district()
        email, _, _ = self.person(d)
        account = self.account(tenant, email)
        b = Browser()
        callback = self.at_provider(self.start_signin(b, "google"), email)
        # forged: a state auth never issued, or not a state at all
        cb = urllib.parse.urlsplit(callback)
        for state in (secrets.token_urlsafe(32), "x' OR 1=1 --", ""):
            forged = urllib.parse.urlunsplit(cb._replace(query=urllib.parse.urlencode(
                {"code": "c", "state": state})))
            s, _, body = b.get(forged)
            self.assertEqual(s, 400, body)
            self.assertIn(b'"invalid_state"', body)
        # the state of the other provider's callback
        wrong = callback.replace("/signin/google/callback", "/signin/microsoft/callback")
        s, _, body = b.get(wrong)
        self.assertEqual(s, 400)
        self.assertIn(b"another provider", body)
        # (that consumed it) an expired one
        callback = self.at_provider(self.start_signin(b, "google"), email)
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["state"][0]
        psql("UPDATE signin_states SET expires_at = now() - interval '1 second' "
             "WHERE state_hash = :'h'", h=sha256_hex(state))
        s, _, body = b.get(callback)
        self.assertEqual(s, 400)
        self.assertIn(b"too long", body)
        self.assert_nothing_stored(account)
        # replayed: a completed sign-in's callback used again, with the same cookies
        callback = self.at_provider(self.start_signin(b, "google"), email)
        saved = dict(b.cookies)
        s, loc, _ = b.get(callback)
        self.assertEqual((s, loc), (302, ADMIN_URL))
        b.cookies = saved
        s, _, body = b.get(callback)
        self.assertEqual(s, 400)
        self.assertIn(b"already used", body)
        self.assertEqual(len(self.sessions(account)), 1)

    def test_callback_in_another_browser_is_refused(self):
        tenant, d = new_tenant("si"), self.district()
        email, _, _ = self.person(d)
        account = self.account(tenant, email)
        victim, attacker = Browser(), Browser()
        self.start_signin(victim, "google")  # the victim has a sign-in cookie of their own
        callback = self.at_provider(self.start_signin(attacker, "google"), email)
        s, _, body = victim.get(callback)
        self.assertEqual(s, 400, body)
        self.assertIn(b"another browser", body)
        callback = self.at_provider(self.start_signin(attacker, "google"), email)
        s, _, body = Browser().get(callback)  # no cookie at all
        self.assertEqual(s, 400, body)
        self.assertIn(b"another browser", body)
        self.assertNotIn("panel_session", victim.cookies)
        self.assert_nothing_stored(account)

    def test_bad_id_tokens_are_refused(self):
        tenant, d = new_tenant("si"), self.district()
        email, _, _ = self.person(d)
        account = self.account(tenant, email)
        for mode, reason in (("unknown_key", "unknown_key"), ("expired", "expired"),
                             ("other_audience", "bad_audience")):
            for provider in ("google", "microsoft"):
                self.mode(mode)
                s, loc, body, b = self.signin(provider, email)
                self.assertEqual(s, 302, body)
                msg = self.refused(loc, "invalid_token")
                self.assertIn(reason, msg, (mode, provider))
                self.assertNotIn("panel_session", b.cookies)
                self.assertNotIn("panel_signin", b.cookies)
        self.assert_nothing_stored(account)

    def test_not_an_admin_is_refused(self):
        tenant, d = new_tenant("si"), self.district()
        email, _, _ = self.person(d)
        viewer_email, _, _ = self.person(d, "removed")
        removed = self.account(tenant, viewer_email)
        psql("UPDATE admin_accounts SET removed_at = now(), removed_by = 'test' "
             "WHERE account_id = :'a'", a=removed)
        for who in (email, viewer_email):
            for provider in ("google", "microsoft"):
                s, loc, body, b = self.signin(provider, who)
                self.assertEqual(s, 302, body)
                msg = self.refused(loc, "not_admin")
                self.assertIn(who, msg)
                self.assertIn("not a Panel admin of any district", msg)
                self.assertNotIn("panel_session", b.cookies)
        self.assert_nothing_stored(removed)
        # an account that may not use this provider
        only_ms = self.account(tenant, email)
        psql("UPDATE admin_accounts SET allow_google = false WHERE account_id = :'a'", a=only_ms)
        s, loc, _, _ = self.signin("google", email)
        self.refused(loc, "not_admin")
        self.assert_nothing_stored(only_ms)

    def test_tenant_choice(self):
        tenant_a, tenant_b, d = new_tenant("si"), new_tenant("si"), self.district()
        email, _, _ = self.person(d)
        account_a = self.account(tenant_a, email)
        # an admin of A asking for B
        s, loc, _, _ = self.signin("google", email, tenant=tenant_b)
        msg = self.refused(loc, "not_admin")
        self.assertIn(tenant_b, msg)
        s, loc, _, _ = self.signin("microsoft", email, tenant=tenant_b)
        self.refused(loc, "not_admin")
        self.assert_nothing_stored(account_a)
        # an admin of both: told to choose, then signed in to the chosen one
        account_b = self.account(tenant_b, email, role="viewer")
        s, loc, _, _ = self.signin("google", email)
        msg = self.refused(loc, "choose_district")
        self.assertIn(tenant_a, msg)
        self.assertIn(tenant_b, msg)
        self.assert_nothing_stored(account_a)
        self.assert_nothing_stored(account_b)
        s, loc, _, _ = self.signin("google", email, tenant=tenant_b)
        self.assertEqual((s, loc), (302, ADMIN_URL))
        self.assertEqual([r[1] for r in self.sessions(account_b)], [tenant_b])
        self.assert_nothing_stored(account_a)
        s, _, body = Browser().get(f"{self.auth.url}/signin/google?tenant=bad%20tenant")
        self.assertEqual(s, 400, body)


class SigninKeyRotation(SigninFixture, unittest.TestCase):
    """Its own auth, so that the JWKS cache starts empty: a rotation at the provider is
    followed at the first token signed by the new key; made-up keys are not."""

    @classmethod
    def setUpClass(cls):
        cls.start()

    def test_rotation_is_followed(self):
        tenant, d = new_tenant("si"), self.district()
        email, _, _ = self.person(d)
        account = self.account(tenant, email)
        s, loc, _, _ = self.signin("google", email)
        self.assertEqual((s, loc), (302, ADMIN_URL))
        s, _, b = http("POST", self.emu.admin_url + "/control/oidc/rotate", {})
        self.assertEqual(s, 200, b)
        for provider in ("google", "microsoft"):
            s, loc, _, _ = self.signin(provider, email)
            self.assertEqual((s, loc), (302, ADMIN_URL), provider)
        self.assertEqual(len(self.sessions(account)), 3)
        # a key no JWKS holds: refused (the refresh budget of the minute is spent)
        self.mode("unknown_key")
        s, loc, _, _ = self.signin("google", email)
        self.assertIn("unknown_key", self.refused(loc, "invalid_token"))
        self.assertEqual(len(self.sessions(account)), 3)


if __name__ == "__main__":
    unittest.main()
