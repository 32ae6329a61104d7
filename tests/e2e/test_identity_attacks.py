"""Identity attacks end to end (issue 17): a consent is started by an admin who really signed
in (auth's /signin against the emulator's OpenID Connect providers) and finished only in that
admin's browser; a Microsoft consent is for the directory of the admin's own verified
Microsoft sign-in, whatever the callback's `tenant` says; one directory belongs to one
district. Every refusal is checked to store nothing: no connected row, no directory, no sync
request. (The api's credential asking auth for an access token: test_auth.CallerPrivileges;
a cookie-authenticated POST without its CSRF token: test_sessions.)"""
import hashlib
import unittest
import urllib.parse

from harness import psql
from test_auth import AuthFixture
from test_signin import ADMIN_URL, Browser, SigninFixture


class ConsentBoundToTheSignedInAdmin(SigninFixture, AuthFixture, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start()

    # ---- helpers ----

    def admin_of(self, tenant, district, local="admin"):
        """A person of the district's Google Workspace and Microsoft directory who is a Panel
        admin of tenant: their email."""
        if local == "admin":
            email = district["admin_email"]
        else:
            email, _, _ = self.person(district, local)
        if not psql("SELECT 1 FROM admin_accounts WHERE tenant_id = :'t' AND email = :'e' "
                    "AND removed_at IS NULL", t=tenant, e=email):
            self.account(tenant, email)
        return email

    def browser_signed_in(self, tenant, provider, email):
        """A browser where email signed in to tenant's admin page with provider."""
        s, loc, body, browser = self.signin(provider, email, tenant)
        self.assertEqual((s, loc), (302, ADMIN_URL), body)
        self.assertIn("panel_session", browser.cookies)
        return browser

    def connect_start(self, tenant, browser, provider, email, expect=200):
        """What the api does when the signed-in admin clicks Connect: the consent URL."""
        session_hash = hashlib.sha256(browser.cookies["panel_session"].encode()).hexdigest()
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/{provider}/authorize",
                                        {"actor": "person:" + email,
                                         "session_hash": session_hash})
        self.assertEqual(status, expect, body)
        return body["consent_url"] if expect == 200 else body

    def land(self, callback, browser):
        """The provider's redirect arrives in browser (None: a browser with no cookie)."""
        return (browser or Browser()).get(callback)

    def page_message(self, loc, provider):
        self.assertTrue(loc and loc.startswith(ADMIN_URL + "#cloud-sync?"), loc)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).fragment.partition("?")[2])
        self.assertEqual((q["provider"], q["result"]), ([provider], ["error"]), q)
        return q["message"][0]

    def assert_nothing_stored(self, tenant, provider):
        c = self.connection(tenant, provider)
        self.assertNotEqual((c or {}).get("status"), "connected", c)
        self.assertFalse((c or {}).get("has_grant"), c)
        self.assertEqual((c or {}).get("provider_tenant", ""), "", c)
        self.assertEqual(self.runs(tenant), [])

    def authorized_by(self, tenant, provider):
        return psql("SELECT authorized_by FROM connections WHERE tenant_id = :'t' AND "
                    "provider = :'p'", t=tenant, p=provider)[0][0]

    # ---- the real flow ----

    def test_signed_in_admin_connects_both_clouds_in_their_browser(self):
        tenant, d = self.new_tenant(), self.district()
        email = self.admin_of(tenant, d)
        ms = self.browser_signed_in(tenant, "microsoft", email)
        url = self.connect_start(tenant, ms, "microsoft", email)
        # the consent is asked of the signed-in admin's own directory
        self.assertTrue(urllib.parse.urlsplit(url).path.startswith(
            f"/{d['azure_tenant_id']}/v2.0/adminconsent"), url)
        s, loc, body = self.land(self.consent(url, d), ms)
        self.assertEqual(s, 302, body)
        self.assertIn("result=connected", loc)
        c = self.connection(tenant, "azure")
        self.assertEqual((c["status"], c["provider_tenant"]), ("connected", d["azure_tenant_id"]))
        self.assertEqual(self.authorized_by(tenant, "azure"), "person:" + email)
        g = self.browser_signed_in(tenant, "google", email)
        s, loc, body = self.land(self.consent(self.connect_start(tenant, g, "google", email), d), g)
        self.assertEqual(s, 302, body)
        self.assertIn("result=connected", loc)
        self.assertEqual(self.connection(tenant, "google")["provider_tenant"],
                         d["google_customer_id"])
        self.assertEqual(self.authorized_by(tenant, "google"), "person:" + email)
        # De-authorizing Microsoft forgets the directory and its delta position: the next
        # consent starts with a full run.
        psql("INSERT INTO azure_delta_state (tenant_id, delta_link, last_full_at, directory_id) "
             "VALUES (:'t', 'https://graph.example/delta?token=x', now(), :'d')",
             t=tenant, d=d["azure_tenant_id"])
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/microsoft/deauthorize",
                                        {"actor": "person:" + email})
        self.assertEqual(status, 200, body)
        self.assertEqual(psql("SELECT count(*) FROM azure_delta_state WHERE tenant_id = :'t'",
                              t=tenant), [["0"]])

    # ---- attacks ----

    def test_consent_completed_in_another_browser_is_refused(self):
        tenant, d = self.new_tenant(), self.district()
        email = self.admin_of(tenant, d)
        other = self.admin_of(tenant, d, "colleague")
        mine = self.browser_signed_in(tenant, "google", email)
        theirs = self.browser_signed_in(tenant, "google", other)
        for provider, browser in (("google", None), ("google", theirs), ("microsoft", None)):
            starter = mine if provider == "google" else \
                self.browser_signed_in(tenant, "microsoft", email)
            callback = self.consent(self.connect_start(tenant, starter, provider, email), d)
            s, _, body = self.land(callback, browser)
            self.assertEqual(s, 400, body)
            self.assertIn(b"invalid_state", body)
            self.assertIn(b"another browser", body)
            self.assert_nothing_stored(tenant, "google" if provider == "google" else "azure")
            # the state was used up by the attempt: the right browser cannot reuse it either
            s, _, _ = self.land(callback, starter)
            self.assertEqual(s, 400)
        # The right browser, but its session ended (signed out) before the callback.
        callback = self.consent(self.connect_start(tenant, mine, "google", email), d)
        psql("UPDATE admin_sessions SET ended_at = now() WHERE id_hash = :'h'",
             h=hashlib.sha256(mine.cookies["panel_session"].encode()).hexdigest())
        s, _, body = self.land(callback, mine)
        self.assertEqual(s, 400, body)
        self.assertIn(b"has ended", body)
        self.assert_nothing_stored(tenant, "google")
        # ... and an ended session cannot start one.
        out = self.connect_start(tenant, mine, "google", email, expect=403)
        self.assertEqual(out["error"]["code"], "session_required")

    def test_microsoft_callback_naming_another_directory_is_refused(self):
        victim, vd = self.new_tenant(), self.district()
        attacker, ad = self.new_tenant(), self.district()
        v = self.admin_of(victim, vd)
        vb = self.browser_signed_in(victim, "microsoft", v)
        s, loc, _ = self.land(self.consent(self.connect_start(victim, vb, "microsoft", v), vd), vb)
        self.assertIn("result=connected", loc)
        # The attacker's admin consents for their own directory, then edits tenant= in the
        # callback to the victim's directory (which did consent to the app).
        a = self.admin_of(attacker, ad)
        ab = self.browser_signed_in(attacker, "microsoft", a)
        callback = self.consent(self.connect_start(attacker, ab, "microsoft", a), ad)
        parts = urllib.parse.urlsplit(callback)
        q = dict(urllib.parse.parse_qsl(parts.query))
        self.assertEqual(q["tenant"], ad["azure_tenant_id"])
        q["tenant"] = vd["azure_tenant_id"]
        s, loc, body = self.land(parts._replace(query=urllib.parse.urlencode(q)).geturl(), ab)
        self.assertEqual(s, 302, body)
        self.assertIn("another Microsoft directory", self.page_message(loc, "azure"))
        self.assert_nothing_stored(attacker, "azure")
        self.assertEqual(self.connection(victim, "azure")["provider_tenant"],
                         vd["azure_tenant_id"])

    def test_second_district_cannot_attach_an_attached_microsoft_directory(self):
        first, second, d = self.new_tenant(), self.new_tenant(), self.district()
        email = self.admin_of(first, d)
        self.admin_of(second, d)  # the same person is a Panel admin of both districts
        b2 = self.browser_signed_in(second, "microsoft", email)
        # Started by the second district before the first connected, finished after.
        late = self.consent(self.connect_start(second, b2, "microsoft", email), d)
        b1 = self.browser_signed_in(first, "microsoft", email)
        s, loc, _ = self.land(self.consent(self.connect_start(first, b1, "microsoft", email), d), b1)
        self.assertIn("result=connected", loc)
        s, loc, body = self.land(late, b2)
        self.assertEqual(s, 302, body)
        self.assertIn("already connected to another district", self.page_message(loc, "azure"))
        self.assert_nothing_stored(second, "azure")
        # Starting one now is refused at once, with the reason.
        out = self.connect_start(second, b2, "microsoft", email, expect=409)
        self.assertEqual(out["error"]["code"], "directory_taken")
        self.assert_nothing_stored(second, "azure")
        self.assertEqual(self.connection(first, "azure")["provider_tenant"], d["azure_tenant_id"])

    def test_microsoft_consent_needs_a_microsoft_signin_and_a_session(self):
        tenant, d = self.new_tenant(), self.district()
        email = self.admin_of(tenant, d)
        g = self.browser_signed_in(tenant, "google", email)
        out = self.connect_start(tenant, g, "microsoft", email, expect=409)
        self.assertEqual(out["error"]["code"], "microsoft_signin_required")
        self.assertIn("sign in with Microsoft", out["error"]["message"])
        # An API key (a machine client) starts no consent; nor does a made-up session.
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/google/authorize",
                                        {"actor": "apikey:k1", "session_hash": "0" * 64})
        self.assertEqual((status, body["error"]["code"]), (403, "session_required"))
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/google/authorize",
                                        {"actor": "person:" + email, "session_hash": "0" * 64})
        self.assertEqual((status, body["error"]["code"]), (403, "session_required"))
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/google/authorize",
                                        {"actor": "person:" + email})
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_argument"))
        # A session of another district does not start this district's consent.
        other = self.new_tenant()
        self.admin_of(other, d)
        ob = self.browser_signed_in(other, "google", email)
        out = self.connect_start(tenant, ob, "google", email, expect=403)
        self.assertEqual(out["error"]["code"], "session_required")
        self.assertEqual(psql("SELECT count(*) FROM oauth_states WHERE tenant_id = :'t'",
                              t=tenant), [["0"]])
        self.assert_nothing_stored(tenant, "azure")

    def new_tenant(self):
        from harness import new_tenant
        return new_tenant("idatk")


if __name__ == "__main__":
    unittest.main()
