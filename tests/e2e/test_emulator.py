"""End-to-end tests of panel-emulator: every endpoint's normal path and the error paths of
issue 3, with bodies checked field by field against tests/reference/{google,microsoft}/*.json.
The emulator needs neither PostgreSQL nor Kafka; each test class starts its own emulator on
free ports."""
import base64
import hashlib
import html.parser
import http.client
import json
import os
import re
import time
import unittest
import urllib.parse

import harness

REF = os.path.join(harness.ROOT, "tests", "reference")
GCLIENT, GSECRET = "panel-google-client", "panel-google-secret"
MSCLIENT, MSSECRET = "panel-ms-client", "panel-ms-secret"
S_USER = "https://www.googleapis.com/auth/admin.directory.user.readonly"
S_OU = "https://www.googleapis.com/auth/admin.directory.orgunit.readonly"
S_DEV = "https://www.googleapis.com/auth/admin.directory.device.chromeos.readonly"
ALL_SCOPES = " ".join([S_USER, S_OU, S_DEV])
REDIRECT = "http://127.0.0.1:9/callback"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def load_ref(provider, name):
    with open(os.path.join(REF, provider, name + ".json")) as f:
        return json.load(f)


# ---- shape checker (see tests/reference/README.md) ----

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ISODATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _scalar_ok(value, t, defs, path):
    if t.startswith("="):
        return value == t[1:]
    if t == "any":
        return True
    if t == "null":
        return value is None
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "digits":
        return isinstance(value, str) and value.isdigit()
    if t == "int64":
        return isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None
    if t == "email":
        return isinstance(value, str) and "@" in value and " " not in value
    if t == "datetime":
        return isinstance(value, str) and DATETIME.match(value) is not None
    if t == "isodatetime":
        return isinstance(value, str) and ISODATETIME.match(value) is not None
    if t == "date":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d", value) is not None
    if t == "guid":
        return isinstance(value, str) and GUID.match(value) is not None
    if t == "url":
        return isinstance(value, str) and re.match(r"^https?://", value) is not None
    if t.startswith("[") and t.endswith("]"):
        if not isinstance(value, list):
            return False
        for i, v in enumerate(value):
            check_shape(v, t[1:-1], defs, f"{path}[{i}]")
        return True
    if t in defs:
        check_shape(value, defs[t], defs, path)
        return True
    raise AssertionError(f"unknown shape type {t!r} at {path}")


def check_shape(value, shape, defs, path="$"):
    """Raise AssertionError naming the first member that does not match."""
    if isinstance(shape, dict):
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r:.80}"
        keys = {k.rstrip("?") for k in shape}
        for k in value:
            assert k in keys, f"{path}: unexpected member {k!r}"
        for key, sub in shape.items():
            k = key.rstrip("?")
            optional = key.endswith("?") or (isinstance(sub, str) and sub.endswith("?"))
            if k not in value:
                assert optional, f"{path}: member {k!r} is missing"
                continue
            if isinstance(sub, str) and sub.endswith("?"):
                sub = sub[:-1]
            check_shape(value[k], sub, defs, f"{path}.{k}")
        return
    if isinstance(shape, list):
        assert isinstance(value, list), f"{path}: expected an array"
        for i, v in enumerate(value):
            check_shape(v, shape[0], defs, f"{path}[{i}]")
        return
    errors = []
    for alt in _split_union(shape):
        try:
            if _scalar_ok(value, alt, defs, path):
                return
            errors.append(f"not {alt}")
        except AssertionError as e:
            errors.append(str(e))
    raise AssertionError(f"{path}: {value!r:.100} does not match {shape!r} ({'; '.join(errors)})")


def _split_union(t):
    if t.startswith("[") and t.endswith("]") and t.count("[") == 1:
        return [t]
    return t.split("|")


def check_ref(test, body, provider, name, defs_from=()):
    ref = load_ref(provider, name)
    defs = {k: v for k, v in ref.items() if k not in ("_source", "shape", "example")}
    for p, n in defs_from:
        other = load_ref(p, n)
        defs.update({k: v for k, v in other.items() if k not in ("_source", "shape", "example")})
    try:
        check_shape(body, ref["shape"], defs)
    except AssertionError as e:
        test.fail(f"{provider}/{name}: {e}")


# ---- HTTP without following redirects ----

def request(method, url, body=None, headers=None, timeout=30):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    target = u.path + ("?" + u.query if u.query else "")
    hdrs = dict(headers or {})
    data = None
    if isinstance(body, dict):
        data = urllib.parse.urlencode(body).encode()
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(body, (bytes, str)):
        data = body.encode() if isinstance(body, str) else body
    try:
        conn.request(method, target, body=data, headers=hdrs)
        r = conn.getresponse()
        raw = r.read()
        rh = {k.lower(): v for k, v in r.getheaders()}
        parsed = raw
        if "json" in rh.get("content-type", "") and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw  # left raw for the tests of malformed bodies
        return r.status, rh, parsed
    finally:
        conn.close()


def jpost(url, obj, method="POST"):
    return request(method, url, json.dumps(obj), {"Content-Type": "application/json"})


def pkce_pair():
    verifier = base64.urlsafe_b64encode(os.urandom(40)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    return verifier, challenge.rstrip("=")


class FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs, self.buttons, self.forms = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input":
            self.inputs.append(a)
        elif tag == "button":
            self.buttons.append(a)
        elif tag == "form":
            self.forms.append(a)


class Emulator:
    """A panel-emulator with its own ports and districts."""

    def __init__(self, districts, **env):
        self.proc = harness.start_emulator(districts, consent="page",
                                           env={k: str(v) for k, v in env.items()})
        self.url = self.proc.url
        self.admin = self.proc.admin_url

    def stop(self):
        self.proc.stop()

    def district(self, did):
        s, _, b = request("GET", f"{self.admin}/control/districts/{did}")
        assert s == 200, b
        return b

    def dump(self, did, what):
        s, _, b = request("GET", f"{self.admin}/control/districts/{did}/{what}")
        assert s == 200, b
        return b["items"]

    # Google
    def authorize(self, hint, scope=ALL_SCOPES, extra=None, challenge=None, redirect=REDIRECT,
                  decision="allow"):
        q = {"client_id": GCLIENT, "redirect_uri": redirect, "response_type": "code",
             "scope": scope, "state": "st-123", "access_type": "offline",
             "include_granted_scopes": "true", "login_hint": hint}
        if challenge:
            q.update(code_challenge=challenge, code_challenge_method="S256")
        if decision:
            q["emulator_decision"] = decision
        q.update(extra or {})
        return request("GET", f"{self.url}/o/oauth2/v2/auth?" + urllib.parse.urlencode(q))

    def google_code(self, hint, **kw):
        s, h, _ = self.authorize(hint, **kw)
        assert s == 302, s
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
        return q["code"][0], q

    def google_tokens(self, hint, scope=ALL_SCOPES, extra=None):
        verifier, challenge = pkce_pair()
        code, _ = self.google_code(hint, scope=scope, extra=extra, challenge=challenge)
        s, _, b = request("POST", f"{self.url}/token", {
            "grant_type": "authorization_code", "code": code, "client_id": GCLIENT,
            "client_secret": GSECRET, "redirect_uri": REDIRECT, "code_verifier": verifier})
        assert s == 200, b
        return b

    def google_signin(self, hint, nonce="nonce-g-1"):
        """A Google sign-in as auth makes it: openid email profile, online, PKCE, a nonce."""
        verifier, challenge = pkce_pair()
        q = {"client_id": GCLIENT, "redirect_uri": REDIRECT, "response_type": "code",
             "scope": "openid email profile", "state": "s1", "nonce": nonce,
             "code_challenge": challenge, "code_challenge_method": "S256",
             "prompt": "select_account", "login_hint": hint, "emulator_decision": "allow"}
        s, h, _ = request("GET", f"{self.url}/o/oauth2/v2/auth?" + urllib.parse.urlencode(q))
        assert s == 302, s
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)["code"][0]
        s, _, b = request("POST", f"{self.url}/token", {
            "grant_type": "authorization_code", "code": code, "client_id": GCLIENT,
            "client_secret": GSECRET, "redirect_uri": REDIRECT, "code_verifier": verifier})
        assert s == 200, b
        return b

    def gget(self, path, token):
        return request("GET", self.url + path, headers={"Authorization": "Bearer " + token})

    # Microsoft
    def ms_consent(self, did, decision="allow"):
        d = self.district(did)
        q = {"client_id": MSCLIENT, "redirect_uri": REDIRECT, "state": "ms-state",
             "scope": GRAPH_SCOPE, "login_hint": d["admin_email"], "emulator_decision": decision}
        return request("GET", f"{self.url}/organizations/v2.0/adminconsent?"
                       + urllib.parse.urlencode(q))

    def ms_token(self, tenant, secret=MSSECRET, client=MSCLIENT, scope=GRAPH_SCOPE):
        return request("POST", f"{self.url}/{tenant}/oauth2/v2.0/token", {
            "grant_type": "client_credentials", "client_id": client, "client_secret": secret,
            "scope": scope})

    def graph_token(self, did):
        s, _, _ = self.ms_consent(did)
        assert s == 302
        s, _, b = self.ms_token(self.district(did)["azure_tenant_id"])
        assert s == 200, b
        return b["access_token"]


DISTRICTS = ("alpha:people=620,azure_people=450,shared=300,devices=260,ous=45,seed=11;"
             "beta:people=40,azure_people=30,shared=20,devices=15,ous=12,seed=5")


class EmulatorTestCase(unittest.TestCase):
    """A test class on its own emulator (cls.emu: SPEC's districts, ENV's settings), started
    once per class and stopped after it."""
    SPEC = DISTRICTS
    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator(cls.SPEC, **cls.ENV)

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def redirected_back(self, status, headers, _body):
        """A 302 to REDIRECT: the query parameters of its location."""
        self.assertEqual(status, 302)
        loc = urllib.parse.urlsplit(headers["location"])
        self.assertEqual(f"{loc.scheme}://{loc.netloc}{loc.path}", REDIRECT)
        return urllib.parse.parse_qs(loc.query)


class GoogleOAuthTest(EmulatorTestCase):
    def test_authorize_allow_redirects_with_code_scope_state(self):
        q = self.redirected_back(*self.emu.authorize("admin@alpha.k12.example"))
        self.assertEqual(q["state"], ["st-123"])
        self.assertTrue(q["code"][0])
        self.assertEqual(sorted(q["scope"][0].split()), sorted(ALL_SCOPES.split()))

    def test_authorize_deny(self):
        s, h, _ = self.emu.authorize("admin@alpha.k12.example", decision="deny")
        self.assertEqual(s, 302)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
        self.assertEqual(q["error"], ["access_denied"])
        self.assertEqual(q["state"], ["st-123"])
        self.assertNotIn("code", q)

    def test_consent_page_untick_scope(self):
        s, _, page = self.emu.authorize("admin@alpha.k12.example", decision=None,
                                        extra={"include_granted_scopes": "false"})
        self.assertEqual(s, 200)
        p = FormParser()
        p.feed(page.decode())
        ids = {b.get("id") for b in p.buttons}
        self.assertEqual(ids, {"allow", "deny"})
        boxes = [i for i in p.inputs if i.get("type") == "checkbox"]
        self.assertEqual([b["id"] for b in boxes], ["scope-0", "scope-1", "scope-2"])
        self.assertTrue(all("checked" in b for b in boxes))
        form = {i["name"]: i["value"] for i in p.inputs if i.get("type") == "hidden"}
        for b in boxes:
            if b["value"] != S_DEV:  # the user unticks the device scope
                form[b["name"]] = b["value"]
        form["decision"] = "allow"
        s, h, _ = request("POST", self.emu.url + p.forms[0]["action"], form)
        self.assertEqual(s, 302)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
        self.assertEqual(sorted(q["scope"][0].split()), sorted([S_USER, S_OU]))
        # the granted scopes are what the token carries
        s, _, tok = request("POST", f"{self.emu.url}/token", {
            "grant_type": "authorization_code", "code": q["code"][0], "client_id": GCLIENT,
            "client_secret": GSECRET, "redirect_uri": REDIRECT})
        self.assertEqual(s, 200)
        self.assertEqual(sorted(tok["scope"].split()), sorted([S_USER, S_OU]))
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos",
                                tok["access_token"])
        self.assertEqual(s, 403)
        check_ref(self, b, "google", "error")
        self.assertEqual(b["error"]["errors"][0]["reason"], "insufficientPermissions")

    def test_consent_page_deny_button(self):
        s, _, page = self.emu.authorize("admin@alpha.k12.example", decision=None)
        p = FormParser()
        p.feed(page.decode())
        form = {i["name"]: i["value"] for i in p.inputs if i.get("type") == "hidden"}
        form["decision"] = "deny"
        s, h, _ = request("POST", self.emu.url + p.forms[0]["action"], form)
        self.assertEqual(s, 302)
        self.assertIn("error=access_denied", h["location"])

    def test_authorize_errors(self):
        s, _, body = self.emu.authorize("admin@alpha.k12.example", extra={"client_id": "other"})
        self.assertEqual(s, 401)
        self.assertIn(b"invalid_client", body)
        s, _, body = self.emu.authorize("admin@alpha.k12.example", redirect="ftp://x/")
        self.assertEqual(s, 400)
        self.assertIn(b"redirect_uri_mismatch", body)
        s, _, body = self.emu.authorize("admin@alpha.k12.example", scope="https://bogus/scope")
        self.assertEqual(s, 400)
        self.assertIn(b"invalid_scope", body)
        s, _, body = self.emu.authorize("someone@nowhere.example")
        self.assertEqual(s, 400)

    def test_code_exchange_and_refresh(self):
        tok = self.emu.google_tokens("admin@alpha.k12.example")
        check_ref(self, tok, "google", "token_response")
        self.assertIn("refresh_token", tok)
        self.assertEqual(tok["expires_in"], 3599)
        self.assertEqual(sorted(tok["scope"].split()), sorted(ALL_SCOPES.split()))
        s, _, ref = request("POST", f"{self.emu.url}/token", {
            "grant_type": "refresh_token", "refresh_token": tok["refresh_token"],
            "client_id": GCLIENT, "client_secret": GSECRET})
        self.assertEqual(s, 200)
        check_ref(self, ref, "google", "token_response")
        self.assertNotIn("refresh_token", ref)
        self.assertNotEqual(ref["access_token"], tok["access_token"])
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=1",
                                ref["access_token"])
        self.assertEqual(s, 200)

    def refresh(self, rt):
        return request("POST", f"{self.emu.url}/token", {
            "grant_type": "refresh_token", "refresh_token": rt, "client_id": GCLIENT,
            "client_secret": GSECRET})

    def test_a_sign_in_or_a_second_consent_leaves_the_first_refresh_token_whole(self):
        """Google keeps a grant per refresh token: an admin who signs in with Google (openid
        email profile, online, no include_granted_scopes) does not shrink what the sync's
        refresh token may do, and a second consent's refresh token leaves the first valid;
        revoking either removes the app's access, both tokens."""
        hint = "admin@beta.k12.example"
        consent = self.emu.google_tokens(hint, extra={"prompt": "consent"})
        signin = self.emu.google_signin(hint)
        self.assertNotIn("refresh_token", signin)
        self.assertNotIn(S_USER, signin["scope"].split())  # the sign-in's own scopes only
        s, _, ref = self.refresh(consent["refresh_token"])
        self.assertEqual(s, 200, ref)
        self.assertEqual(sorted(ref["scope"].split()), sorted(ALL_SCOPES.split()))
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=1",
                                ref["access_token"])
        self.assertEqual(s, 200, b)
        second = self.emu.google_tokens(hint, scope=S_USER,
                                        extra={"prompt": "consent",
                                               "include_granted_scopes": "false"})
        self.assertNotEqual(second["refresh_token"], consent["refresh_token"])
        self.assertEqual(second["scope"].split(), [S_USER])
        s, _, ref = self.refresh(consent["refresh_token"])
        self.assertEqual(s, 200, ref)
        self.assertEqual(sorted(ref["scope"].split()), sorted(ALL_SCOPES.split()))
        s, _, _ = request("POST", f"{self.emu.url}/revoke", {"token": second["refresh_token"]})
        self.assertEqual(s, 200)
        for rt in (consent["refresh_token"], second["refresh_token"]):
            s, _, b = self.refresh(rt)
            self.assertEqual((s, b["error"]), (400, "invalid_grant"))

    def test_refresh_token_only_on_first_consent(self):
        hint = "admin@beta.k12.example"
        first = self.emu.google_tokens(hint)
        self.assertIn("refresh_token", first)
        again = self.emu.google_tokens(hint)
        self.assertNotIn("refresh_token", again)
        # asking for consent again (prompt=consent) hands out a new one
        forced = self.emu.google_tokens(hint, extra={"prompt": "consent"})
        self.assertIn("refresh_token", forced)
        online = self.emu.google_tokens(hint, extra={"prompt": "consent", "access_type": "online"})
        self.assertNotIn("refresh_token", online)

    def test_token_errors(self):
        verifier, challenge = pkce_pair()
        code, _ = self.emu.google_code("admin@alpha.k12.example", challenge=challenge)
        base = {"grant_type": "authorization_code", "code": code, "client_id": GCLIENT,
                "client_secret": GSECRET, "redirect_uri": REDIRECT, "code_verifier": verifier}
        s, _, b = request("POST", f"{self.emu.url}/token", dict(base, client_secret="wrong"))
        self.assertEqual(s, 401)
        check_ref(self, b, "google", "oauth_error")
        self.assertEqual(b["error"], "invalid_client")
        s, _, b = request("POST", f"{self.emu.url}/token", dict(base, redirect_uri=REDIRECT + "x"))
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "redirect_uri_mismatch")
        # a code is single-use: a failed attempt above consumed it, like a replay would
        s, _, b = request("POST", f"{self.emu.url}/token", base)
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "invalid_grant")

        code, _ = self.emu.google_code("admin@alpha.k12.example", challenge=challenge)
        s, _, b = request("POST", f"{self.emu.url}/token",
                          dict(base, code=code, code_verifier="not-the-verifier-" + "x" * 30))
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "invalid_grant")

        code, _ = self.emu.google_code("admin@alpha.k12.example", challenge=challenge)
        s, _, b = request("POST", f"{self.emu.url}/token", dict(base, code=code))
        self.assertEqual(s, 200)
        s, _, b = request("POST", f"{self.emu.url}/token", dict(base, code=code))
        self.assertEqual(s, 400, "reused code")
        self.assertEqual(b["error"], "invalid_grant")

        s, _, b = request("POST", f"{self.emu.url}/token", dict(base, grant_type="password"))
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "unsupported_grant_type")
        s, _, b = request("POST", f"{self.emu.url}/token", {
            "grant_type": "refresh_token", "refresh_token": "1//made-up", "client_id": GCLIENT,
            "client_secret": GSECRET})
        self.assertEqual(s, 400)
        self.assertEqual(b, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."})

    def test_revoke_endpoint_and_tokeninfo(self):
        tok = self.emu.google_tokens("admin@alpha.k12.example", extra={"prompt": "consent"})
        s, _, info = request("GET", f"{self.emu.url}/tokeninfo?access_token="
                             + urllib.parse.quote(tok["access_token"]))
        self.assertEqual(s, 200)
        check_ref(self, info, "google", "tokeninfo")
        self.assertEqual(info["aud"], GCLIENT)
        self.assertEqual(sorted(info["scope"].split()), sorted(ALL_SCOPES.split()))
        s, _, _ = request("POST", f"{self.emu.url}/revoke", {"token": tok["refresh_token"]})
        self.assertEqual(s, 200)
        s, _, b = request("POST", f"{self.emu.url}/token", {
            "grant_type": "refresh_token", "refresh_token": tok["refresh_token"],
            "client_id": GCLIENT, "client_secret": GSECRET})
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "invalid_grant")
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer",
                                tok["access_token"])
        self.assertEqual(s, 401)
        s, _, b = request("GET", f"{self.emu.url}/tokeninfo?access_token=garbage")
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "invalid_token")
        s, _, b = request("POST", f"{self.emu.url}/revoke", {"token": "garbage"})
        self.assertEqual(s, 400)


class GoogleDirectoryTest(EmulatorTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tok = cls.emu.google_tokens("admin@alpha.k12.example")["access_token"]

    def list_all(self, path, key, token=None):
        items, pages, pt = [], 0, None
        while True:
            sep = "&" if "?" in path else "?"
            s, _, b = self.emu.gget(path + (f"{sep}pageToken={pt}" if pt else ""),
                                    token or self.tok)
            self.assertEqual(s, 200, b)
            pages += 1
            items += b.get(key, [])
            pt = b.get("nextPageToken")
            if not pt:
                return items, pages, b

    def test_users_list_paging_and_shape(self):
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer", self.tok)
        self.assertEqual(s, 200)
        check_ref(self, b, "google", "users_list")
        self.assertEqual(len(b["users"]), 100)  # the default page size
        self.assertIn("nextPageToken", b)
        users, pages, last = self.list_all(
            "/admin/directory/v1/users?customer=my_customer&maxResults=500&projection=full",
            "users")
        self.assertEqual(pages, 2)
        self.assertNotIn("nextPageToken", last)  # absent, not empty, on the last page
        dump = self.emu.dump("alpha", "google/users")
        self.assertEqual(len(users), 620)
        self.assertEqual(users, dump)  # identical wire objects, same order
        self.assertEqual(len({u["id"] for u in users}), 620)
        for u in users:
            self.assertEqual(u["primaryEmail"], u["primaryEmail"].lower())
            for k, v in u.items():
                self.assertIsNotNone(v, f"{k} is null")
        self.assertTrue(any(u["suspended"] for u in users))
        self.assertTrue(any(u["archived"] for u in users))
        self.assertTrue(any(any(ord(c) > 127 for c in u["name"]["fullName"]) for u in users))
        # by domain works too; orderBy email sorts
        s, _, b = self.emu.gget("/admin/directory/v1/users?domain=alpha.k12.example"
                                "&orderBy=email&maxResults=50", self.tok)
        self.assertEqual(s, 200)
        emails = [u["primaryEmail"] for u in b["users"]]
        self.assertEqual(emails, sorted(emails))

    def test_users_list_errors(self):
        for q, reason in (("maxResults=501", "invalid"), ("maxResults=0", "invalid"),
                          ("orderBy=shoeSize", "invalid")):
            s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&" + q,
                                    self.tok)
            self.assertEqual(s, 400, q)
            check_ref(self, b, "google", "error")
            self.assertEqual(b["error"]["errors"][0]["reason"], reason)
        s, _, b = self.emu.gget("/admin/directory/v1/users", self.tok)  # no customer/domain
        self.assertEqual(s, 400)
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&pageToken=bogus",
                                self.tok)
        self.assertEqual(s, 400)
        self.assertEqual(b["error"]["message"], "Invalid Input: bogus")
        s, _, b = self.emu.gget("/admin/directory/v1/users?domain=beta.k12.example", self.tok)
        self.assertEqual(s, 403)
        self.assertEqual(b["error"]["errors"][0]["reason"], "forbidden")

    def test_users_fields_and_show_deleted(self):
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=5"
                                "&fields=nextPageToken,users(id,primaryEmail,name/fullName)",
                                self.tok)
        self.assertEqual(s, 200)
        self.assertEqual(set(b), {"users", "nextPageToken"})
        for u in b["users"]:
            self.assertEqual(set(u), {"id", "primaryEmail", "name"})
            self.assertEqual(set(u["name"]), {"fullName"})
        # without nextPageToken in fields, paging information is gone (as on Google)
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=5"
                                "&fields=users(id)", self.tok)
        self.assertNotIn("nextPageToken", b)
        deleted, _, _ = self.list_all(
            "/admin/directory/v1/users?customer=my_customer&showDeleted=true", "users")
        self.assertEqual(len(deleted), 620 // 200)
        self.assertTrue(all("deletionTime" in u for u in deleted))

    def test_users_fields_member_by_member_equals_the_whole_page_filtered(self):
        # A users page whose fields= splits into distinct members is cut member by member
        # from cached selections; the same expression with a member named twice is filtered
        # as a whole page. Both must give the same members in the same order on every page.
        sync = ("nextPageToken,users(id,primaryEmail,name,orgUnitPath,suspended,"
                "suspensionReason,archived,isAdmin,externalIds,aliases,creationTime,"
                "lastLoginTime,thumbnailPhotoUrl)")
        cases = [("customer=my_customer&projection=basic&maxResults=37", sync, "users(id)"),
                 ("customer=my_customer&orderBy=familyName&sortOrder=DESCENDING&maxResults=37",
                  "users/name/familyName,etag,kind,nextPageToken", "kind"),
                 ("customer=my_customer&showDeleted=true&maxResults=2",
                  "users,nextPageToken,nothing", "users"),
                 ("customer=my_customer&projection=full&maxResults=37",
                  "nextPageToken , users(customSchemas)", "users(customSchemas)"),
                 ("customer=my_customer&maxResults=37", "etag", "etag")]
        for query, expr, again in cases:
            pt, pages = None, 0
            while True:
                base = f"/admin/directory/v1/users?{query}"
                if pt:
                    base += "&pageToken=" + pt
                s1, _, fast = self.emu.gget(base + "&fields=" + urllib.parse.quote(expr), self.tok)
                s2, _, whole = self.emu.gget(
                    base + "&fields=" + urllib.parse.quote(expr + "," + again), self.tok)
                self.assertEqual((s1, s2), (200, 200), (expr, fast, whole))
                pt = fast.get("nextPageToken")
                if pt:  # tokens are made per request
                    self.assertIn("nextPageToken", whole)
                    whole["nextPageToken"] = pt
                self.assertEqual(json.dumps(fast), json.dumps(whole), expr)
                pages += 1
                if not pt:
                    break
            if "nextPageToken" in expr:
                self.assertGreater(pages, 1, expr)

    def test_orgunits(self):
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/orgunits?type=all",
                                self.tok)
        self.assertEqual(s, 200)
        check_ref(self, b, "google", "orgunits_list")
        ous = b["organizationUnits"]
        self.assertEqual(len(ous), 45)
        self.assertEqual(ous, self.emu.dump("alpha", "google/orgunits"))
        self.assertNotIn("/", [o["orgUnitPath"] for o in ous])
        names = "".join(o["name"] for o in ous)
        for ch in "'+#":
            self.assertIn(ch, names)
        by_path = {o["orgUnitPath"]: o for o in ous}
        for o in ous:
            self.assertTrue(o["orgUnitId"].startswith("id:"))
            if o["parentOrgUnitPath"] != "/":
                self.assertEqual(by_path[o["parentOrgUnitPath"]]["orgUnitId"],
                                 o["parentOrgUnitId"])
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/orgunits", self.tok)
        self.assertEqual(sorted(o["orgUnitPath"] for o in b["organizationUnits"]),
                         ["/Devices", "/Staff", "/Students"])
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/orgunits?type=children"
                                "&orgUnitPath=/Nope", self.tok)
        self.assertEqual(s, 404)
        check_ref(self, b, "google", "error")

    def test_devices(self):
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos",
                                self.tok)
        self.assertEqual(s, 200)
        check_ref(self, b, "google", "chromeosdevices_list")
        self.assertEqual(len(b["chromeosdevices"]), 100)
        devices, pages, last = self.list_all(
            "/admin/directory/v1/customer/my_customer/devices/chromeos?maxResults=300"
            "&projection=FULL", "chromeosdevices")
        self.assertEqual(pages, 2)  # 300 is clamped to 200
        self.assertNotIn("nextPageToken", last)
        self.assertEqual(devices, self.emu.dump("alpha", "google/devices"))
        statuses = {d["status"] for d in devices}
        self.assertIn("ACTIVE", statuses)
        self.assertIn("DEPROVISIONED", statuses)
        self.assertTrue(any(d.get("recentUsers") for d in devices))
        self.assertTrue(any("\n" in d.get("notes", "") for d in devices))
        basic, _, _ = self.list_all(
            "/admin/directory/v1/customer/my_customer/devices/chromeos?projection=BASIC",
            "chromeosdevices")
        self.assertEqual(len(basic), 260)
        self.assertFalse(any("recentUsers" in d for d in basic))
        ou = devices[0]["orgUnitPath"]
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos?"
                                + urllib.parse.urlencode({"orgUnitPath": ou, "maxResults": 200}),
                                self.tok)
        self.assertEqual({d["orgUnitPath"] for d in b["chromeosdevices"]}, {ou})
        self.assertEqual(len(b["chromeosdevices"]), sum(d["orgUnitPath"] == ou for d in devices))
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos?"
                                "query=status:DEPROVISIONED&maxResults=200", self.tok)
        self.assertEqual({d["status"] for d in b["chromeosdevices"]}, {"DEPROVISIONED"})

    def test_auth_errors(self):
        s, h, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer", "ya29.bogus")
        self.assertEqual(s, 401)
        check_ref(self, b, "google", "error")
        self.assertEqual(b["error"]["errors"][0]["reason"], "authError")
        # a user who is not an administrator consented: 403 forbidden
        staff = next(u for u in self.emu.dump("alpha", "google/users") if not u["isAdmin"])
        t = self.emu.google_tokens(staff["primaryEmail"])["access_token"]
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer", t)
        self.assertEqual(s, 403)
        self.assertEqual(b["error"]["errors"][0]["reason"], "forbidden")
        # a token without the device scope
        # (without include_granted_scopes, earlier grants are not merged in)
        t = self.emu.google_tokens("admin@alpha.k12.example", scope=S_USER,
                                   extra={"include_granted_scopes": "false"})["access_token"]
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos", t)
        self.assertEqual(s, 403)
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/orgunits", t)
        self.assertEqual(s, 403)
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer", t)
        self.assertEqual(s, 200)
        # another customer's id
        s, _, b = self.emu.gget("/admin/directory/v1/customer/C00000000/orgunits", self.tok)
        self.assertEqual(s, 403)

    def test_revoke_from_google_side(self):
        tok = self.emu.google_tokens("admin@beta.k12.example", extra={"prompt": "consent"})
        s, _, _ = request("POST", f"{self.emu.admin}/control/districts/beta/google/revoke")
        self.assertEqual(s, 200)
        s, _, b = request("POST", f"{self.emu.url}/token", {
            "grant_type": "refresh_token", "refresh_token": tok["refresh_token"],
            "client_id": GCLIENT, "client_secret": GSECRET})
        self.assertEqual(s, 400)
        self.assertEqual(b, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."})
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer",
                                tok["access_token"])
        self.assertEqual(s, 401)
        self.assertEqual(b["error"]["errors"][0]["reason"], "authError")
        # a new consent works again
        t = self.emu.google_tokens("admin@beta.k12.example")
        self.assertIn("refresh_token", t)
        s, _, _ = self.emu.gget("/admin/directory/v1/users?customer=my_customer",
                                t["access_token"])
        self.assertEqual(s, 200)

    def test_page_token_expiry(self):
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=10",
                                self.tok)
        pt = b["nextPageToken"]
        s, _, _ = request("POST", f"{self.emu.admin}/control/expire-page-tokens")
        self.assertEqual(s, 200)
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=10"
                                "&pageToken=" + urllib.parse.quote(pt), self.tok)
        self.assertEqual(s, 400)
        check_ref(self, b, "google", "error")


class ExpiryTest(EmulatorTestCase):
    """Short lifetimes: access tokens and codes expire."""
    SPEC = "gamma:people=20,azure_people=10,shared=5,devices=5,ous=10"
    ENV = {"PANEL_EMULATOR_TOKEN_TTL_SECONDS": 1, "PANEL_EMULATOR_CODE_TTL_SECONDS": 1}

    def test_expired_tokens_and_codes(self):
        tok = self.emu.google_tokens("admin@gamma.k12.example")
        self.assertEqual(tok["expires_in"], 1)
        ms = self.emu.graph_token("gamma")
        code, _ = self.emu.google_code("admin@gamma.k12.example")
        time.sleep(2.5)
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer",
                                tok["access_token"])
        self.assertEqual(s, 401)
        s, _, b = self.emu.gget("/v1.0/users", ms)
        self.assertEqual(s, 401)
        check_ref(self, b, "microsoft", "graph_error")
        self.assertEqual(b["error"]["code"], "InvalidAuthenticationToken")
        s, _, b = request("POST", f"{self.emu.url}/token", {
            "grant_type": "authorization_code", "code": code, "client_id": GCLIENT,
            "client_secret": GSECRET, "redirect_uri": REDIRECT})
        self.assertEqual(s, 400)
        self.assertEqual(b["error"], "invalid_grant")
        # the refresh token still works and brings a fresh access token
        s, _, b = request("POST", f"{self.emu.url}/token", {
            "grant_type": "refresh_token", "refresh_token": tok["refresh_token"],
            "client_id": GCLIENT, "client_secret": GSECRET})
        self.assertEqual(s, 200)


class MicrosoftTest(EmulatorTestCase):
    def test_admin_consent_and_token(self):
        d = self.emu.district("beta")
        s, _, b = self.emu.ms_token(d["azure_tenant_id"])
        self.assertEqual(s, 400)  # no consent yet
        check_ref(self, b, "microsoft", "aad_error")
        self.assertEqual(b["error_codes"], [65001])
        s, h, _ = self.emu.ms_consent("beta", decision="deny")
        self.assertEqual(s, 302)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
        self.assertEqual(q["error"], ["access_denied"])
        self.assertEqual(q["state"], ["ms-state"])
        q = self.redirected_back(*self.emu.ms_consent("beta"))
        self.assertEqual(q["admin_consent"], ["True"])
        self.assertEqual(q["tenant"], [d["azure_tenant_id"]])
        self.assertEqual(q["state"], ["ms-state"])
        for tenant in (d["azure_tenant_id"], d["domain"]):
            s, _, b = self.emu.ms_token(tenant)
            self.assertEqual(s, 200, b)
            check_ref(self, b, "microsoft", "token_response")
            self.assertEqual(b["expires_in"], 3599)
        s, _, page = request("GET", f"{self.emu.url}/{d['azure_tenant_id']}/adminconsent?"
                             + urllib.parse.urlencode({"client_id": MSCLIENT,
                                                       "redirect_uri": REDIRECT}))
        self.assertEqual(s, 200)
        p = FormParser()
        p.feed(page.decode())
        self.assertEqual({b.get("id") for b in p.buttons}, {"allow", "deny"})

    def test_authorization_code_flow(self):
        emu = Emulator("acf:people=12,azure_people=10,shared=5,devices=1,ous=5")
        try:
            d = emu.district("acf")
            verifier, challenge = pkce_pair()
            q = {"client_id": MSCLIENT, "response_type": "code", "redirect_uri": REDIRECT,
                 "scope": "https://graph.microsoft.com/User.Read.All offline_access",
                 "state": "s9", "code_challenge": challenge, "code_challenge_method": "S256",
                 "login_hint": d["admin_email"], "emulator_decision": "allow"}
            url = f"{emu.url}/organizations/oauth2/v2.0/authorize?"
            s, h, _ = request("GET", url + urllib.parse.urlencode(q))
            self.assertEqual(s, 302)
            got = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
            self.assertEqual(got["state"], ["s9"])
            code = got["code"][0]
            form = {"grant_type": "authorization_code", "client_id": MSCLIENT,
                    "client_secret": MSSECRET, "code": code, "redirect_uri": REDIRECT,
                    "code_verifier": verifier}
            tok_url = f"{emu.url}/{d['azure_tenant_id']}/oauth2/v2.0/token"
            s, _, b = request("POST", tok_url, dict(form, code_verifier="wrong" * 10))
            self.assertEqual(s, 400)
            self.assertEqual(b["error_codes"], [501481])
            s, _, b = request("POST", tok_url, dict(form, redirect_uri=REDIRECT + "/other"))
            self.assertEqual(s, 400)
            self.assertEqual(b["error"], "invalid_grant")
            s, _, b = request("POST", tok_url, form)
            self.assertEqual(s, 200, b)
            check_ref(self, b, "microsoft", "token_response")
            self.assertIn("refresh_token", b)
            s, _, _ = emu.gget("/v1.0/users", b["access_token"])
            self.assertEqual(s, 200)
            s, _, again = request("POST", tok_url, form)
            self.assertEqual(s, 400)
            check_ref(self, again, "microsoft", "aad_error")
            self.assertEqual(again["error_codes"], [54005])  # a code is redeemed once
            s, _, r = request("POST", tok_url, {
                "grant_type": "refresh_token", "client_id": MSCLIENT, "client_secret": MSSECRET,
                "refresh_token": b["refresh_token"]})
            self.assertEqual(s, 200, r)
            self.assertIn("refresh_token", r)
            request("POST", f"{emu.admin}/control/districts/acf/azure/revoke")
            s, _, r = request("POST", tok_url, {
                "grant_type": "refresh_token", "client_id": MSCLIENT, "client_secret": MSSECRET,
                "refresh_token": b["refresh_token"]})
            self.assertEqual(s, 400)
            self.assertEqual(r["error"], "invalid_grant")
            self.assertEqual(r["error_codes"], [65001])
            s, h, _ = request("GET", url + urllib.parse.urlencode(dict(q, emulator_decision="deny")))
            self.assertEqual(s, 302)
            self.assertIn("error=access_denied", h["location"])
        finally:
            emu.stop()

    def test_token_errors(self):
        self.emu.ms_consent("alpha")
        tenant = self.emu.district("alpha")["azure_tenant_id"]
        cases = [
            (dict(secret="wrong"), 401, "invalid_client", 7000215),
            (dict(client="someone-else"), 400, "unauthorized_client", 700016),
            (dict(scope="User.Read.All"), 400, "invalid_scope", 1002012),
        ]
        for kw, status, error, code in cases:
            s, _, b = self.emu.ms_token(tenant, **kw)
            self.assertEqual(s, status, kw)
            check_ref(self, b, "microsoft", "aad_error")
            self.assertEqual(b["error"], error)
            self.assertEqual(b["error_codes"], [code])
            self.assertTrue(b["error_description"].startswith(f"AADSTS{code}:"))
        s, _, b = self.emu.ms_token("00000000-0000-4000-8000-000000000000")
        self.assertEqual(s, 400)
        self.assertEqual(b["error_codes"], [90002])

    def test_consent_removed_and_permission_withdrawn(self):
        emu = Emulator("delta1:people=30,azure_people=25,shared=10,devices=2,ous=8")
        try:
            tok = emu.graph_token("delta1")
            tenant = emu.district("delta1")["azure_tenant_id"]
            s, _, _ = request("POST", f"{emu.admin}/control/districts/delta1/azure/permission",
                              json.dumps({"granted": False}))
            self.assertEqual(s, 200)
            s, _, b = emu.ms_token(tenant)
            self.assertEqual(s, 200)  # a token is still issued ...
            s, _, b = emu.gget("/v1.0/users", b["access_token"])
            self.assertEqual(s, 403)  # ... but Graph refuses
            check_ref(self, b, "microsoft", "graph_error")
            self.assertEqual(b["error"]["code"], "Authorization_RequestDenied")
            s, _, _ = request("POST", f"{emu.admin}/control/districts/delta1/azure/revoke")
            self.assertEqual(s, 200)
            s, _, b = emu.ms_token(tenant)
            self.assertEqual(s, 400)
            self.assertEqual(b["error"], "unauthorized_client")
            self.assertEqual(b["error_codes"], [700016])
            s, _, b = emu.gget("/v1.0/users", tok)
            self.assertEqual(s, 401)
        finally:
            emu.stop()

    def test_users_paging_select_and_nulls(self):
        tok = self.emu.graph_token("alpha")
        s, _, b = self.emu.gget("/v1.0/users", tok)
        self.assertEqual(s, 200)
        check_ref(self, b, "microsoft", "users_page")
        self.assertEqual(len(b["value"]), 100)
        self.assertEqual(b["@odata.context"], f"{self.emu.url}/v1.0/$metadata#users")
        self.assertEqual(set(b["value"][0]), {"id", "businessPhones", "displayName", "givenName",
                                              "jobTitle", "mail", "mobilePhone", "officeLocation",
                                              "preferredLanguage", "surname",
                                              "userPrincipalName"})
        sel = "id,displayName,mail,accountEnabled,employeeId,userPrincipalName,userType"
        url = f"/v1.0/users?$select={sel}&$top=200"
        users, pages = [], 0
        while url:
            s, _, b = self.emu.gget(url, tok) if url.startswith("/") else request(
                "GET", url, headers={"Authorization": "Bearer " + tok})
            self.assertEqual(s, 200, b)
            check_ref(self, b, "microsoft", "users_page")
            pages += 1
            for u in b["value"]:
                self.assertEqual(set(u), set(sel.split(",")))
            users += b["value"]
            url = b.get("@odata.nextLink")
            if url:  # built from the request's Host, carrying $select and $top
                self.assertTrue(url.startswith(self.emu.url + "/v1.0/users?"))
                self.assertIn("$top=200", url)
        dump = self.emu.dump("alpha", "azure/users")  # other tests may have changed a few
        self.assertEqual(pages, (len(dump) + 199) // 200)
        self.assertEqual(len(users), len(dump))
        self.assertEqual([u["id"] for u in users], [u["id"] for u in dump])
        self.assertTrue(any(u["mail"] is None for u in users))
        self.assertTrue(any(u["mail"] and u["mail"].lower() != u["userPrincipalName"].lower()
                            for u in users))
        self.assertTrue(any(u["userPrincipalName"] != u["userPrincipalName"].lower()
                            for u in users))
        self.assertTrue(any(u["accountEnabled"] is False for u in users))
        # people in both clouds: same address, sometimes another display name
        gusers = {u["primaryEmail"]: u for u in self.emu.dump("alpha", "google/users")}
        shared = [u for u in dump if u["userPrincipalName"].lower() in gusers]
        self.assertGreaterEqual(len(shared), 295)
        self.assertTrue(any(u["displayName"] != gusers[u["userPrincipalName"].lower()]["name"]
                            ["fullName"] for u in shared))
        self.assertTrue(any(u["jobTitle"] for u in shared))
        # $filter
        s, _, b = self.emu.gget("/v1.0/users?$filter=accountEnabled%20eq%20false&$top=999", tok)
        self.assertEqual(s, 200)
        self.assertEqual(len(b["value"]), sum(1 for u in dump if u["accountEnabled"] is False))

    def test_graph_errors(self):
        tok = self.emu.graph_token("alpha")
        s, _, b = self.emu.gget("/v1.0/users?$top=1000", tok)
        self.assertEqual(s, 400)
        check_ref(self, b, "microsoft", "graph_error")
        s, _, b = self.emu.gget("/v1.0/users?$select=shoeSize", tok)
        self.assertEqual(s, 400)
        check_ref(self, b, "microsoft", "graph_error")
        s, _, b = self.emu.gget("/v1.0/users", "eyJ0.bogus.token")
        self.assertEqual(s, 401)
        check_ref(self, b, "microsoft", "graph_error")
        self.assertEqual(b["error"]["code"], "InvalidAuthenticationToken")
        s, _, b = self.emu.gget("/v1.0/users?$skiptoken=bogus", tok)
        self.assertEqual(s, 400)

    def delta_round(self, url, tok, minimal=False):
        values, pages = [], 0
        headers = {"Authorization": "Bearer " + tok, "Prefer": "odata.maxpagesize=200"}
        if minimal:
            headers["Prefer"] += ", return=minimal"
        while True:
            s, _, b = request("GET", url, headers=headers)
            self.assertEqual(s, 200, b)
            check_ref(self, b, "microsoft", "delta_page", defs_from=[("microsoft", "users_page")])
            pages += 1
            values += b["value"]
            if "@odata.deltaLink" in b:
                self.assertNotIn("@odata.nextLink", b)
                return values, pages, b["@odata.deltaLink"]
            url = b["@odata.nextLink"]
            self.assertTrue(url.startswith(self.emu.url + "/v1.0/users/delta?"))

    def test_delta_rounds(self):
        emu = self.emu
        tok = emu.graph_token("alpha")
        values, pages, link = self.delta_round(
            f"{emu.url}/v1.0/users/delta?$select=id,displayName,jobTitle,mail", tok)
        self.assertEqual(pages, 3)
        self.assertEqual(len(values), 450)
        self.assertTrue(all(set(v) == {"id", "displayName", "jobTitle", "mail"} for v in values))
        # nothing changed: an empty round
        values, _, link = self.delta_round(link, tok, minimal=True)
        self.assertEqual(values, [])
        dump = emu.dump("alpha", "azure/users")
        changed, soft, hard = dump[5]["id"], dump[6]["id"], dump[7]["id"]
        s, _, _ = jpost(f"{emu.admin}/control/districts/alpha/azure/users/{changed}",
                        {"jobTitle": "Head of Science", "officeLocation": "Room 9"}, "PATCH")
        self.assertEqual(s, 200)
        s, _, _ = request("DELETE", f"{emu.admin}/control/districts/alpha/azure/users/{soft}")
        self.assertEqual(s, 204)
        s, _, _ = request("DELETE",
                          f"{emu.admin}/control/districts/alpha/azure/users/{hard}?permanent=true")
        self.assertEqual(s, 204)
        s, _, new = jpost(f"{emu.admin}/control/districts/alpha/azure/users",
                          {"userPrincipalName": "New.Teacher@alpha.k12.example",
                           "displayName": "New Teacher", "mail": "New.Teacher@alpha.k12.example"})
        self.assertEqual(s, 201)
        self.assertTrue(GUID.match(new["id"]))
        values, _, link2 = self.delta_round(link, tok, minimal=True)
        by_id = {v["id"]: v for v in values}
        self.assertEqual(set(by_id), {changed, soft, hard, new["id"]})
        # only the selected property that changed (officeLocation was not selected)
        self.assertEqual(by_id[changed], {"id": changed, "jobTitle": "Head of Science"})
        self.assertEqual(by_id[soft], {"id": soft, "@removed": {"reason": "changed"}})
        self.assertEqual(by_id[hard], {"id": hard, "@removed": {"reason": "deleted"}})
        self.assertEqual(by_id[new["id"]]["displayName"], "New Teacher")
        self.assertEqual(set(by_id[new["id"]]), {"id", "displayName", "jobTitle", "mail"})
        self.assertIsNone(by_id[new["id"]]["jobTitle"])
        # without return=minimal the whole selected object comes
        s, _, _ = jpost(f"{emu.admin}/control/districts/alpha/azure/users/{changed}",
                        {"displayName": "Renamed Person"}, "PATCH")
        values, _, _ = self.delta_round(link2, tok)
        self.assertEqual(len(values), 1)
        self.assertEqual(set(values[0]), {"id", "displayName", "jobTitle", "mail"})
        # soft-deleted users are gone from /users
        s, _, b = emu.gget("/v1.0/users?$top=999&$select=id", tok)
        ids = {u["id"] for u in b["value"]}
        self.assertNotIn(soft, ids)
        self.assertIn(new["id"], ids)

    def test_delta_round_with_nulls_repeats_and_a_restored_user(self):
        emu = Emulator("rep:people=5,azure_people=10,shared=2,devices=1,ous=5")
        try:
            tok = emu.graph_token("rep")
            base = f"{emu.admin}/control/districts/rep/azure"
            dump = emu.dump("rep", "azure/users")
            twice, back = dump[1]["id"], dump[2]["id"]
            jpost(f"{base}/users/{twice}", {"officeLocation": "B-2"}, "PATCH")
            _, _, link = self.delta_round(
                f"{emu.url}/v1.0/users/delta?$select=id,jobTitle,officeLocation,mail", tok)
            s, _, b = jpost(base + "/delta", {"repeat_changes": True})
            self.assertEqual((s, b), (200, {"repeat_changes": True}))
            jpost(f"{base}/users/{twice}", {"jobTitle": "Coach"}, "PATCH")
            jpost(f"{base}/users/{twice}", {"officeLocation": None}, "PATCH")
            request("DELETE", f"{base}/users/{back}")
            s, _, _ = request("POST", f"{base}/users/{back}/restore")
            self.assertEqual(s, 200)
            s, _, _ = request("POST", f"{base}/users/{back}/restore")
            self.assertEqual(s, 404)  # no longer deleted
            values, _, _ = self.delta_round(link, tok, minimal=True)
            # each change is its own entry: the same object twice, an explicit null
            self.assertEqual([v for v in values if v["id"] == twice],
                             [{"id": twice, "jobTitle": "Coach"},
                              {"id": twice, "officeLocation": None}])
            mine = [v for v in values if v["id"] == back]
            self.assertEqual(mine[0], {"id": back, "@removed": {"reason": "changed"}})
            self.assertEqual(set(mine[1]), {"id", "jobTitle", "officeLocation", "mail"})
            s, _, b = emu.gget("/v1.0/users?$top=999&$select=id", tok)
            self.assertIn(back, {u["id"] for u in b["value"]})
        finally:
            emu.stop()

    def test_expired_delta_token(self):
        tok = self.emu.graph_token("beta")
        _, _, link = self.delta_round(f"{self.emu.url}/v1.0/users/delta?$select=id", tok)
        s, _, _ = request("POST", f"{self.emu.admin}/control/expire-page-tokens")
        self.assertEqual(s, 200)
        s, _, b = request("GET", link, headers={"Authorization": "Bearer " + tok})
        self.assertEqual(s, 400)
        check_ref(self, b, "microsoft", "graph_error")
        self.assertEqual(b["error"]["code"], "syncStateNotFound")
        check_ref(self, b, "microsoft", "delta_expired")

    def test_expired_delta_token_gone_style(self):
        emu = Emulator("eps:people=10,azure_people=10,shared=5,devices=1,ous=5",
                       PANEL_EMULATOR_DELTA_EXPIRED="gone")
        try:
            tok = emu.graph_token("eps")
            s, _, b = emu.gget("/v1.0/users/delta?$select=id,displayName", tok)
            link = b["@odata.deltaLink"]
            request("POST", f"{emu.admin}/control/expire-page-tokens")
            s, h, b = request("GET", link, headers={"Authorization": "Bearer " + tok})
            self.assertEqual(s, 410)
            check_ref(self, b, "microsoft", "graph_error")
            self.assertEqual(b["error"]["code"], "resyncRequired")
            check_ref(self, b, "microsoft", "delta_expired")
            self.assertTrue(h["location"].startswith(emu.url + "/v1.0/users/delta?"))
            s, _, b = request("GET", h["location"], headers={"Authorization": "Bearer " + tok})
            self.assertEqual(s, 200)
            self.assertEqual(len(b["value"]), 10)
        finally:
            emu.stop()


class ControlAndFaultsTest(EmulatorTestCase):
    SPEC = "zeta:people=120,azure_people=80,shared=50,devices=60,ous=20"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gtok = cls.emu.google_tokens("admin@zeta.k12.example")["access_token"]
        cls.mtok = cls.emu.graph_token("zeta")

    def tearDown(self):
        request("DELETE", f"{self.emu.admin}/control/faults")

    def fault(self, **rule):
        s, _, b = jpost(f"{self.emu.admin}/control/faults", rule)
        self.assertEqual(s, 201, b)
        self.assertIsInstance(b["id"], int)

    def test_refused_listing_faults_have_the_providers_shapes(self):
        # One listing refused (the admin's role lost the ChromeOS privilege), the others served.
        self.fault(route="google.devices", kind="status", status=403, reason="forbidden",
                   count=1)
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos",
                                self.gtok)
        self.assertEqual(s, 403)
        check_ref(self, b, "google", "forbidden_403")
        self.assertNotIn("status", b["error"])
        s, _, _ = self.emu.gget("/admin/directory/v1/users?customer=my_customer", self.gtok)
        self.assertEqual(s, 200)
        self.fault(route="graph.users", kind="status", status=403, count=1)
        s, _, b = self.emu.gget("/v1.0/users", self.mtok)
        self.assertEqual(s, 403)
        check_ref(self, b, "microsoft", "authorization_denied_403")

    def test_create_district(self):
        body = {"id": "newdist", "people": 25, "azure_people": 20, "shared": 10, "devices": 7,
                "ous": 9, "seed": 3}
        s, _, b = jpost(f"{self.emu.admin}/control/districts", body)
        self.assertEqual(s, 201)
        self.assertEqual(set(b), {"id", "domain", "google_customer_id", "azure_tenant_id",
                                  "admin_email"})
        self.assertEqual(b["domain"], "newdist.k12.example")
        self.assertEqual(b["admin_email"], "admin@newdist.k12.example")
        self.assertRegex(b["google_customer_id"], r"^C[0-9a-f]{8}$")
        self.assertTrue(GUID.match(b["azure_tenant_id"]))
        s, _, _ = jpost(f"{self.emu.admin}/control/districts", body)
        self.assertEqual(s, 409)
        d = self.emu.district("newdist")
        self.assertEqual(d["counts"]["google_users"], 25)
        self.assertEqual(d["counts"]["azure_users"], 20)
        self.assertEqual(d["counts"]["google_devices"], 7)
        self.assertEqual(d["counts"]["google_orgunits"], 9)
        s, _, _ = jpost(f"{self.emu.admin}/control/districts", {"id": "Bad Id"})
        self.assertEqual(s, 400)
        s, _, _ = request("GET", f"{self.emu.admin}/control/districts/nope")
        self.assertEqual(s, 404)
        # control routes are not on the cloud listener
        s, _, _ = request("GET", f"{self.emu.url}/control/districts/zeta")
        self.assertNotEqual(s, 200)

    def test_google_mutations(self):
        a = self.emu.admin + "/control/districts/zeta"
        s, _, u = jpost(a + "/google/users", {"primaryEmail": "Zoë.Added@zeta.k12.example",
                                              "name": {"givenName": "Zoë", "familyName": "Added"},
                                              "orgUnitPath": "/Staff"})
        self.assertEqual(s, 201)
        check_shape(u, load_ref("google", "users_list")["user"], {})
        s, _, r = jpost(a + "/google/users/" + u["id"], {"primaryEmail": "zoe.renamed@zeta.k12.example"},
                        "PATCH")
        self.assertEqual(s, 200)
        self.assertEqual(r["id"], u["id"])
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=500",
                                self.gtok)
        found = [x for x in b["users"] if x["id"] == u["id"]]
        self.assertEqual(found[0]["primaryEmail"], "zoe.renamed@zeta.k12.example")
        s, _, _ = request("DELETE", a + "/google/users/" + u["id"])
        self.assertEqual(s, 204)
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&maxResults=500",
                                self.gtok)
        self.assertNotIn(u["id"], [x["id"] for x in b["users"]])
        s, _, b = self.emu.gget("/admin/directory/v1/users?customer=my_customer&showDeleted=true",
                                self.gtok)
        self.assertIn(u["id"], [x["id"] for x in b["users"]])
        # devices and OUs
        s, _, dv = jpost(a + "/google/devices", {"serialNumber": "5CDTEST0001",
                                                "status": "PRE_PROVISIONED"})
        self.assertEqual(s, 201)
        s, _, dv2 = jpost(a + "/google/devices/" + dv["deviceId"], {"status": "DEPROVISIONED",
                                                                   "notes": "Lost\nReported"},
                          "PATCH")
        self.assertEqual(dv2["status"], "DEPROVISIONED")
        s, _, ou = jpost(a + "/google/orgunits", {"name": "Room #7 O'Hara", "parentOrgUnitPath":
                                                  "/Staff"})
        self.assertEqual(s, 201)
        self.assertEqual(ou["orgUnitPath"], "/Staff/Room #7 O'Hara")
        s, _, ou2 = jpost(a + "/google/orgunits/" + ou["orgUnitId"][3:], {"name": "Room 8"}, "PATCH")
        self.assertEqual(ou2["orgUnitPath"], "/Staff/Room 8")
        s, _, _ = request("DELETE", a + "/google/orgunits/" + ou["orgUnitId"][3:])
        self.assertEqual(s, 204)
        s, _, _ = request("DELETE", a + "/google/users/does-not-exist")
        self.assertEqual(s, 404)
        s, _, _ = jpost(a + "/google/users", {"name": {}})
        self.assertEqual(s, 400)

    def test_users_fields_pages_follow_every_change(self):
        # the selections kept for fields= pages are dropped by any change of the users
        a = self.emu.admin + "/control/districts/zeta"
        path = ("/admin/directory/v1/users?customer=my_customer&maxResults=500"
                "&fields=" + urllib.parse.quote("users(id,name/fullName,suspended)"))

        def listed():
            s, _, b = self.emu.gget(path, self.gtok)
            self.assertEqual(s, 200, b)
            return {u["id"]: u for u in b["users"]}

        before = listed()
        victim = sorted(before)[3]
        s, _, _ = jpost(a + "/google/users/" + victim,
                        {"name": {"givenName": "Cached", "familyName": "Nomore"},
                         "suspended": True}, "PATCH")
        self.assertEqual(s, 200)
        after = listed()
        self.assertEqual(after[victim]["name"], {"fullName": "Cached Nomore"})
        self.assertTrue(after[victim]["suspended"])
        self.assertEqual({k: v for k, v in after.items() if k != victim},
                         {k: v for k, v in before.items() if k != victim})
        s, _, u = jpost(a + "/google/users", {"primaryEmail": "fresh.one@zeta.k12.example",
                                              "name": {"givenName": "Fresh", "familyName": "One"},
                                              "orgUnitPath": "/Staff"})
        self.assertEqual(s, 201)
        self.assertEqual(listed()[u["id"]], {"id": u["id"], "name": {"fullName": "Fresh One"},
                                             "suspended": False})
        s, _, _ = request("DELETE", a + "/google/users/" + u["id"])
        self.assertEqual(s, 204)
        self.assertNotIn(u["id"], listed())

    def test_status_faults(self):
        self.fault(route="google.users", kind="status", status=429, count=1, retry_after="2")
        path = "/admin/directory/v1/users?customer=my_customer"
        s, h, b = self.emu.gget(path, self.gtok)
        self.assertEqual(s, 429)
        check_ref(self, b, "google", "error")
        self.assertEqual(b["error"]["errors"][0]["reason"], "rateLimitExceeded")
        self.assertEqual(h["retry-after"], "2")
        s, _, _ = self.emu.gget(path, self.gtok)
        self.assertEqual(s, 200)  # count=1 is used up
        self.fault(route="google.devices", kind="status", status=403, reason="userRateLimitExceeded",
                   count=1)
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos",
                                self.gtok)
        self.assertEqual(s, 403)
        self.assertEqual(b["error"]["errors"][0]["reason"], "userRateLimitExceeded")
        self.fault(route="google.orgunits", kind="status", status=503, count=1)
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/orgunits", self.gtok)
        self.assertEqual(s, 503)
        self.assertEqual(b["error"]["errors"][0]["reason"], "backendError")
        self.fault(route="graph.users", kind="status", status=429, count=1, retry_after="1.5")
        s, h, b = self.emu.gget("/v1.0/users", self.mtok)
        self.assertEqual(s, 429)
        check_ref(self, b, "microsoft", "graph_error")
        self.assertEqual(b["error"]["code"], "TooManyRequests")
        self.assertEqual(h["retry-after"], "1.5")
        self.fault(route="ms.token", kind="status", status=503, count=1)
        s, _, b = self.emu.ms_token(self.emu.district("zeta")["azure_tenant_id"])
        self.assertEqual(s, 503)
        check_ref(self, b, "microsoft", "aad_error")
        self.fault(route="google.token", kind="status", status=500, count=1)
        s, _, b = request("POST", f"{self.emu.url}/token", {"grant_type": "refresh_token"})
        self.assertEqual(s, 500)
        check_ref(self, b, "google", "oauth_error")
        self.fault(route="*", kind="status", status=500, rate=1.0)
        s, _, _ = self.emu.gget("/v1.0/users/delta", self.mtok)
        self.assertEqual(s, 500)

    def test_invalid_input_fault(self):
        s, _, b = self.emu.gget("/admin/directory/v1/customer/my_customer/devices/chromeos"
                                "?maxResults=10", self.gtok)
        pt = b["nextPageToken"]
        self.fault(route="google.devices", kind="invalid_input", count=1)
        url = ("/admin/directory/v1/customer/my_customer/devices/chromeos?maxResults=10"
               "&pageToken=" + pt)
        s, _, b = self.emu.gget(url, self.gtok)
        self.assertEqual(s, 400)
        check_ref(self, b, "google", "error")
        self.assertEqual(b["error"]["message"], "Invalid Input: " + pt)
        s, _, b = self.emu.gget(url, self.gtok)  # the retry succeeds
        self.assertEqual(s, 200)

    def test_transport_faults(self):
        path = "/admin/directory/v1/users?customer=my_customer"
        self.fault(route="google.users", kind="malformed", count=1)
        s, _, raw = request("GET", self.emu.url + path,
                            headers={"Authorization": "Bearer " + self.gtok,
                                     "Accept": "text/plain"})
        self.assertEqual(s, 200)
        self.assertIsInstance(raw, bytes)
        self.assertRaises(ValueError, json.loads, raw)
        self.fault(route="google.users", kind="truncate", count=1)
        with self.assertRaises((http.client.IncompleteRead, ConnectionError)):
            self.emu.gget(path, self.gtok)
        self.fault(route="graph.users", kind="reset", count=1)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, OSError)):
            self.emu.gget("/v1.0/users", self.mtok)
        self.fault(route="google.users", kind="slow", delay_ms=300, count=1)
        s, _, _ = self.emu.gget(path, self.gtok)
        self.assertEqual(s, 200)
        # and everything is normal afterwards
        s, _, _ = self.emu.gget("/v1.0/users", self.mtok)
        self.assertEqual(s, 200)

    def test_fault_validation(self):
        for rule in ({"route": "nope", "kind": "status", "status": 500, "count": 1},
                     {"route": "google.users", "kind": "explode", "count": 1},
                     {"route": "google.users", "kind": "status", "count": 1},
                     {"route": "google.users", "kind": "status", "status": 500},
                     {"route": "google.users", "kind": "status", "status": 500, "rate": 2}):
            s, _, b = jpost(f"{self.emu.admin}/control/faults", rule)
            self.assertEqual(s, 400, rule)

    def test_stats(self):
        s, _, _ = request("POST", f"{self.emu.admin}/control/reset-stats")
        self.assertEqual(s, 200)
        for _ in range(3):
            self.emu.gget("/admin/directory/v1/users?customer=my_customer", self.gtok)
        self.emu.gget("/v1.0/users", self.mtok)
        self.fault(route="graph.delta", kind="status", status=503, count=1)
        self.emu.gget("/v1.0/users/delta", self.mtok)
        s, _, b = request("GET", f"{self.emu.admin}/control/stats")
        self.assertEqual(s, 200)
        self.assertEqual(b["requests"]["google.users"], 3)
        self.assertEqual(b["requests"]["graph.users"], 1)
        self.assertEqual(b["requests"]["graph.delta"], 1)
        self.assertEqual(b["faults_injected"], 1)


# ---- OpenID Connect (admin sign-in) ----

def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rs256_verify(token, jwks):
    """Check an RS256 id_token against a JWKS with plain RSA arithmetic (no library), so the
    emulator's signatures are checked independently of the C side. Returns (header, claims,
    signature_ok); raises StopIteration when the kid is not in the JWKS."""
    h64, p64, s64 = token.split(".")
    header = json.loads(b64url_decode(h64))
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    n = int.from_bytes(b64url_decode(key["n"]), "big")
    e = int.from_bytes(b64url_decode(key["e"]), "big")
    k = (n.bit_length() + 7) // 8
    em = pow(int.from_bytes(b64url_decode(s64), "big"), e, n).to_bytes(k, "big")
    # EMSA-PKCS1-v1_5 with SHA-256 (RFC 8017 section 9.2)
    info = bytes.fromhex("3031300d060960864801650304020105000420") + \
        hashlib.sha256(f"{h64}.{p64}".encode()).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(info) - 3) + b"\x00" + info
    return header, json.loads(b64url_decode(p64)), em == expected


class SigninTest(EmulatorTestCase):
    """Google and Microsoft as OpenID Connect providers for the admin sign-in."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for did in ("alpha", "beta"):
            s, _, b = jpost(f"{cls.emu.admin}/control/districts/{did}/admins",
                            {"email": f"Jane.Doe@{did}.k12.example"})
            assert s == 201, b

    def tearDown(self):
        s, _, b = jpost(f"{self.emu.admin}/control/oidc/mode", {"mode": "normal"})
        self.assertEqual(s, 200, b)

    def jwks(self, path):
        s, _, b = request("GET", self.emu.url + path)
        self.assertEqual(s, 200, b)
        check_ref(self, b, "google" if "certs" in path else "microsoft", "jwks")
        return b

    def google_signin(self, hint, nonce="nonce-g-1"):
        b = self.emu.google_signin(hint, nonce)
        check_ref(self, b, "google", "token_response")
        return b

    def ms_signin_code(self, hint, tenant="organizations", nonce="nonce-m-1"):
        verifier, challenge = pkce_pair()
        q = {"client_id": MSCLIENT, "redirect_uri": REDIRECT, "response_type": "code",
             "scope": "openid profile email", "state": "s2", "nonce": nonce,
             "code_challenge": challenge, "code_challenge_method": "S256",
             "prompt": "select_account"}
        if hint:
            q["login_hint"] = hint
        s, h, b = request("GET", f"{self.emu.url}/{tenant}/oauth2/v2.0/authorize?"
                          + urllib.parse.urlencode(q))
        if s != 302:
            return s, b, None
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
        self.assertEqual(q["state"], ["s2"])
        return s, q["code"][0], verifier

    def ms_redeem(self, code, verifier, tenant="organizations"):
        return request("POST", f"{self.emu.url}/{tenant}/oauth2/v2.0/token", {
            "grant_type": "authorization_code", "code": code, "client_id": MSCLIENT,
            "client_secret": MSSECRET, "redirect_uri": REDIRECT, "code_verifier": verifier,
            "scope": "openid profile email"})

    def test_google_discovery_and_jwks(self):
        s, _, b = request("GET", self.emu.url + "/.well-known/openid-configuration")
        self.assertEqual(s, 200, b)
        check_ref(self, b, "google", "openid_configuration")
        self.assertEqual(b["issuer"], self.emu.url)
        self.assertEqual(b["authorization_endpoint"], self.emu.url + "/o/oauth2/v2/auth")
        self.assertEqual(b["token_endpoint"], self.emu.url + "/token")
        self.assertEqual(b["jwks_uri"], self.emu.url + "/oauth2/v3/certs")
        self.assertEqual(len(self.jwks("/oauth2/v3/certs")["keys"]), 1)

    def test_google_id_token(self):
        b = self.google_signin("jane.doe@alpha.k12.example")
        header, claims, ok = rs256_verify(b["id_token"], self.jwks("/oauth2/v3/certs"))
        self.assertTrue(ok, "signature does not verify with the published key")
        self.assertEqual(header["alg"], "RS256")
        check_ref(self, claims, "google", "id_token_claims")
        self.assertEqual(claims["iss"], self.emu.url)
        self.assertEqual(claims["aud"], GCLIENT)
        self.assertEqual(claims["azp"], GCLIENT)
        self.assertEqual(claims["email"], "jane.doe@alpha.k12.example")
        self.assertIs(claims["email_verified"], True)
        self.assertEqual(claims["hd"], "alpha.k12.example")
        self.assertEqual(claims["nonce"], "nonce-g-1")
        self.assertLessEqual(abs(claims["iat"] - time.time()), 5)
        self.assertEqual(claims["exp"] - claims["iat"], 3600)
        # the subject is stable per person, and differs between people
        again = rs256_verify(self.google_signin("jane.doe@alpha.k12.example")["id_token"],
                             self.jwks("/oauth2/v3/certs"))[1]
        self.assertEqual(again["sub"], claims["sub"])
        other = rs256_verify(self.google_signin("jane.doe@beta.k12.example")["id_token"],
                             self.jwks("/oauth2/v3/certs"))[1]
        self.assertNotEqual(other["sub"], claims["sub"])
        self.assertEqual(other["hd"], "beta.k12.example")
        # no id_token without openid
        self.assertNotIn("id_token", self.emu.google_tokens("admin@alpha.k12.example"))

    def test_google_account_picker(self):
        q = {"client_id": GCLIENT, "redirect_uri": REDIRECT, "response_type": "code",
             "scope": "openid email", "state": "s", "nonce": "n"}
        s, _, page = request("GET", f"{self.emu.url}/o/oauth2/v2/auth?"
                             + urllib.parse.urlencode(q))
        self.assertEqual(s, 200)
        page = page.decode()
        for email in ("admin@alpha.k12.example", "jane.doe@alpha.k12.example",
                      "admin@beta.k12.example", "jane.doe@beta.k12.example"):
            self.assertIn("login_hint=" + urllib.parse.quote(email, safe=""), page)

    def test_microsoft_discovery_and_jwks(self):
        d = self.emu.district("beta")
        for tenant, issuer in (("organizations", "{tenantid}"),
                               (d["azure_tenant_id"], d["azure_tenant_id"])):
            s, _, b = request("GET", f"{self.emu.url}/{tenant}/v2.0/.well-known/"
                              "openid-configuration")
            self.assertEqual(s, 200, b)
            check_ref(self, b, "microsoft", "openid_configuration")
            self.assertEqual(b["issuer"], f"{self.emu.url}/{issuer}/v2.0")
            self.assertEqual(b["authorization_endpoint"],
                             f"{self.emu.url}/{tenant}/oauth2/v2.0/authorize")
            self.assertEqual(b["token_endpoint"], f"{self.emu.url}/{tenant}/oauth2/v2.0/token")
            self.assertEqual(self.jwks(urllib.parse.urlsplit(b["jwks_uri"]).path),
                             self.jwks("/common/discovery/v2.0/keys"))

    def test_microsoft_signin_id_token(self):
        d = self.emu.district("beta")
        s, code, verifier = self.ms_signin_code("jane.doe@beta.k12.example")
        self.assertEqual(s, 302, code)
        s, _, b = self.ms_redeem(code, verifier)
        self.assertEqual(s, 200, b)
        check_ref(self, b, "microsoft", "token_response")
        header, claims, ok = rs256_verify(b["id_token"],
                                          self.jwks("/common/discovery/v2.0/keys"))
        self.assertTrue(ok)
        check_ref(self, claims, "microsoft", "id_token_claims")
        self.assertEqual(claims["iss"], f"{self.emu.url}/{d['azure_tenant_id']}/v2.0")
        self.assertEqual(claims["tid"], d["azure_tenant_id"])
        self.assertEqual(claims["aud"], MSCLIENT)
        self.assertEqual(claims["preferred_username"], "jane.doe@beta.k12.example")
        self.assertEqual(claims["nonce"], "nonce-m-1")
        self.assertEqual(claims["ver"], "2.0")
        self.assertNotEqual(claims["sub"], claims["oid"])
        # the person's oid is stable and the control API reports it
        s, _, admins = request("GET", f"{self.emu.admin}/control/districts/beta/admins")
        self.assertEqual(admins["admins"][0]["microsoft_oid"], claims["oid"])
        # a sign-in is not a consent: the tenant's Graph access is unchanged
        self.assertFalse(self.emu.district("beta")["azure_consented"])
        # a code is redeemed once
        s, _, b = self.ms_redeem(code, verifier)
        self.assertEqual(s, 400)
        self.assertEqual(b["error_codes"], [54005])

    def test_microsoft_signin_refusals(self):
        s, code, verifier = self.ms_signin_code("jane.doe@beta.k12.example")
        s, _, b = self.ms_redeem(code, verifier + "x")
        self.assertEqual(s, 400)
        self.assertEqual(b["error_codes"], [501481])
        # a person of alpha at beta's tenant endpoint
        beta = self.emu.district("beta")["azure_tenant_id"]
        s, page, _ = self.ms_signin_code("jane.doe@alpha.k12.example", tenant=beta)
        self.assertEqual(s, 400)
        self.assertIn(b"AADSTS50020", page)
        # no hint, several directories: the account picker
        s, page, _ = self.ms_signin_code(None)
        self.assertEqual(s, 200)
        self.assertIn(b"login_hint=jane.doe%40alpha.k12.example", page)

    def test_key_rotation_and_modes(self):
        jwks1 = self.jwks("/oauth2/v3/certs")
        first = self.google_signin("admin@alpha.k12.example")["id_token"]
        kid1 = rs256_verify(first, jwks1)[0]["kid"]
        s, _, b = request("POST", f"{self.emu.admin}/control/oidc/rotate")
        self.assertEqual(s, 200, b)
        jwks2 = self.jwks("/oauth2/v3/certs")
        self.assertIn(kid1, [k["kid"] for k in jwks2["keys"]])  # the old key stays published
        self.assertEqual(len(jwks2["keys"]), 2)
        header, _, ok = rs256_verify(self.google_signin("admin@alpha.k12.example")["id_token"],
                                     jwks2)
        self.assertNotEqual(header["kid"], kid1)
        self.assertTrue(ok)
        # a token signed by a key no JWKS publishes
        jpost(f"{self.emu.admin}/control/oidc/mode", {"mode": "unknown_key"})
        tok = self.google_signin("admin@alpha.k12.example")["id_token"]
        with self.assertRaises(StopIteration):
            rs256_verify(tok, self.jwks("/oauth2/v3/certs"))
        jpost(f"{self.emu.admin}/control/oidc/mode", {"mode": "expired"})
        _, claims, ok = rs256_verify(self.google_signin("admin@alpha.k12.example")["id_token"],
                                     jwks2)
        self.assertTrue(ok)
        self.assertLess(claims["exp"], time.time() - 3000)
        jpost(f"{self.emu.admin}/control/oidc/mode", {"mode": "other_audience"})
        _, claims, ok = rs256_verify(self.google_signin("admin@alpha.k12.example")["id_token"],
                                     jwks2)
        self.assertTrue(ok)
        self.assertNotEqual(claims["aud"], GCLIENT)
        s, _, b = jpost(f"{self.emu.admin}/control/oidc/mode", {"mode": "bogus"})
        self.assertEqual(s, 400, b)

    def test_directory_users_get_carries_customer_id(self):
        alpha = self.emu.district("alpha")
        tok = self.emu.google_tokens("jane.doe@alpha.k12.example",
                                     scope="openid email " + S_USER)["access_token"]
        for key in ("jane.doe@alpha.k12.example", "Jane.Doe%40alpha.k12.example",
                    "admin@alpha.k12.example"):
            s, _, b = self.emu.gget("/admin/directory/v1/users/" + key, tok)
            self.assertEqual(s, 200, b)
            check_ref(self, b, "google", "users_get", defs_from=[("google", "users_list")])
            self.assertEqual(b["customerId"], alpha["google_customer_id"])
            self.assertTrue(b["isAdmin"])
        someone = self.emu.dump("alpha", "google/users")[0]
        for key in (someone["primaryEmail"], someone["id"]):
            s, _, b = self.emu.gget("/admin/directory/v1/users/" + key, tok)
            self.assertEqual(s, 200, b)
            self.assertEqual(b["id"], someone["id"])
            self.assertEqual(b["customerId"], alpha["google_customer_id"])
        # another customer's admin, an unknown user, and no token
        for key in ("jane.doe@beta.k12.example", "nobody@alpha.k12.example"):
            s, _, b = self.emu.gget("/admin/directory/v1/users/" + key, tok)
            self.assertEqual(s, 404, b)
            check_ref(self, b, "google", "error")
        s, _, _ = self.emu.gget("/admin/directory/v1/users/admin@alpha.k12.example", "bogus")
        self.assertEqual(s, 401)

    def test_control_admins_validation(self):
        s, _, b = jpost(f"{self.emu.admin}/control/districts/alpha/admins",
                        {"email": "x@beta.k12.example"})
        self.assertEqual(s, 400, b)
        s, _, b = jpost(f"{self.emu.admin}/control/districts/alpha/admins", {"email": 5})
        self.assertEqual(s, 400, b)
        s, _, b = jpost(f"{self.emu.admin}/control/districts/alpha/admins",
                        {"email": "g.only@alpha.k12.example", "microsoft": False})
        self.assertEqual(s, 201, b)
        row = [a for a in b["admins"] if a["email"] == "g.only@alpha.k12.example"][0]
        self.assertEqual((row["google"], row["microsoft"]), (True, False))


if __name__ == "__main__":
    unittest.main()
