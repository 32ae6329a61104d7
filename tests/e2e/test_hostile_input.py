"""Bad input against the HTTP surfaces: auth's browser callbacks and internal routes, the
merger's internal routes (and the api's, once it is built). Oversized bodies, headers and
query strings, invalid UTF-8, SQL metacharacters in every path and body value, wrong JSON
types, forged ids. Every answer must be a 4xx (with the JSON error shape where the service
produced it) — never a 5xx — and afterwards the process must be alive and /healthz answer.

The fetchers' side (malformed, truncated pages from the emulator) is in
test_reliability_quick.py; the page parsers themselves are fuzzed (tests/fuzz)."""
import json
import socket
import unittest
import urllib.parse

import harness
import suite

SQL = ["' OR '1'='1", "x'; DROP TABLE people; --", "\\'; SELECT pg_sleep(5); --",
       "%' UNION SELECT secret FROM api_keys --", "$1", "\"", "a/../../etc/passwd"]
BAD_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x00b"]
TRIED = {"count": 0}


def raw_request(port, method, path, body=b"", headers=None, timeout=10):
    """Send bytes as they are (urllib would encode or refuse them). Returns (status, body)
    or (None, b"") when the server closed the connection without an answer."""
    hdrs = {"Host": "127.0.0.1", "Connection": "close", "Content-Length": str(len(body))}
    hdrs.update(headers or {})
    head = f"{method} ".encode() + (path if isinstance(path, bytes) else path.encode()) + \
        b" HTTP/1.1\r\n"
    for k, v in hdrs.items():
        head += k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
    TRIED["count"] += 1
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(head + b"\r\n" + body)
        except OSError:
            pass
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    if not data.startswith(b"HTTP/1."):
        return None, b""
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


class HostileBase(unittest.TestCase):
    proc = None

    def assert_refused(self, status, body, what, json_error=True):
        self.assertIsNotNone(status, f"{what}: connection dropped without an answer")
        self.assertTrue(400 <= status < 500, f"{what}: HTTP {status} {body[:300]!r}")
        if json_error and status not in (413, 414, 431) and body:
            self.assertIn(b'"error"', body, f"{what}: not the JSON error shape: {body[:300]!r}")

    def assert_alive(self):
        self.assertIsNone(self.proc.proc.poll(), f"{self.proc.name} died:\n"
                          + self.proc.log_tail())
        status, _, _ = harness.http("GET", self.proc.url + "/healthz", timeout=10)
        self.assertEqual(status, 200)

    def common_attacks(self, paths, secret_header, field=b"admin", prefix=b""):
        """Oversized and malformed requests against each path; field names who acts (auth:
        "actor" with values "person:<email>", the merger: "admin")."""
        port = self.proc.port
        f = b'"' + field + b'":'
        for path in paths:
            for body in (b"{" * 200000, b"x" * (4 << 20), b"{" + f + b'"a' * 100000 + b'"}'):
                s, b = raw_request(port, "POST", path, body, secret_header)
                self.assert_refused(s, b, f"POST {path} with a {len(body)}-byte body",
                                    json_error=False)
            for bad in BAD_UTF8:
                s, b = raw_request(port, "POST", path, b"{" + f + b'"' + prefix + bad + b'@x.org"}',
                                   dict(secret_header, **{"Content-Type": "application/json"}))
                self.assert_refused(s, b, f"POST {path} with invalid UTF-8 {bad!r}")
            for body in (b"[]", b"null", b"{" + f + b"5}", b"{" + f + b'["a@b"]}',
                         b"\xef\xbb\xbf{}", b"{" + f + b'"a@b",' + f + b'"c@d"}',
                         b"{" + f + b"null}"):
                s, b = raw_request(port, "POST", path, body, secret_header)
                self.assert_refused(s, b, f"POST {path} {body!r}")
            s, b = raw_request(port, "GET", path, b"", dict(secret_header,
                                                            **{"X-Big": "h" * 200000}))
            self.assertTrue(s is None or 400 <= s < 500, f"huge header: HTTP {s}")
            self.assert_alive()


class AuthHostileInputTest(suite.ServicePerClass, HostileBase):
    START = staticmethod(suite.start_auth)

    def test_callbacks_refuse_bad_parameters(self):
        port = self.proc.port
        queries = [
            "", "state=", "state=" + "A" * 100000, "code=x", "state=%zz%",
            "state=" + "A" * 43 + "&code=" + "c" * 5000,
            "state=" + urllib.parse.quote("A" * 42 + "'") + "&code=x",
            "error=" + "e" * 1000 + "&state=" + "A" * 43,
            "admin_consent=True&tenant=" + urllib.parse.quote("../../x") + "&state=" + "B" * 43,
            "state=" + "A" * 43 + "&state=" + "B" * 43,
        ] + ["state=" + urllib.parse.quote(v) + "&code=x&tenant=" + urllib.parse.quote(v)
             for v in SQL]
        for cb in ("/oauth/google/callback", "/oauth/microsoft/callback"):
            for q in queries:
                s, b = raw_request(port, "GET", cb + "?" + q)
                self.assert_refused(s, b, f"GET {cb}?{q[:80]}", json_error=False)
            for bad in BAD_UTF8:
                s, b = raw_request(port, "GET", cb.encode() + b"?state=" + bad + b"&code=" + bad)
                self.assert_refused(s, b, f"GET {cb} invalid UTF-8", json_error=False)
            s, b = raw_request(port, "POST", cb + "?state=" + "A" * 43, b"{}")
            self.assert_refused(s, b, f"POST {cb}", json_error=False)
        self.assert_alive()

    def test_internal_routes_refuse_bad_input(self):
        hdr = suite.service_header()
        tenant = harness.new_tenant("hostile")
        paths = [f"/internal/tenants/{tenant}/google/authorize",
                 f"/internal/tenants/{tenant}/microsoft/authorize",
                 f"/internal/tenants/{tenant}/google/deauthorize",
                 f"/internal/tenants/{tenant}/sync"]
        self.common_attacks(paths, hdr, b"actor", b"person:")
        port = self.proc.port
        for v in SQL:
            q = urllib.parse.quote(v, safe="")
            for rest in ("connections", "sync", "google/authorize"):
                method = "GET" if rest == "connections" else "POST"
                s, b = raw_request(port, method, f"/internal/tenants/{q}/{rest}",
                                   b'{"actor":"person:a@b.org"}', hdr)
                self.assert_refused(s, b, f"{method} tenant {v!r} /{rest}")
            for rest, body in ((f"/internal/tenants/{tenant}/google/authorize", {"actor": v}),
                               (f"/internal/tenants/{tenant}/sync", {"actor": v}),
                               (f"/internal/tenants/{tenant}/sync",
                                {"actor": "person:" + v}),
                               (f"/internal/tenants/{tenant}/sync",
                                {"actor": "person:a@b.org", "provider": v}),
                               ("/internal/token", {"tenant_id": v, "provider": "google"}),
                               ("/internal/token", {"tenant_id": tenant, "provider": v})):
                # The token route is the fetchers': their credential reaches its parser.
                s, b = raw_request(port, "POST", rest, suite.json_bytes(body),
                                   suite.fetcher_header("google") if rest == "/internal/token"
                                   else hdr)
                self.assert_refused(s, b, f"POST {rest} {body}")
        for body in ({"sync_interval_seconds": -1}, {"sync_interval_seconds": 10 ** 30},
                     {"sync_interval_seconds": "3600"}, {"pause_windows": "x"},
                     {"pause_windows": [{"starts_at": "' OR 1=1", "ends_at": None}]},
                     {"sync_interval_seconds": 1e308}):
            s, b = raw_request(port, "PUT", f"/internal/tenants/{tenant}/settings",
                               suite.json_bytes(dict(body, actor="person:a@b.org")), hdr)
            self.assert_refused(s, b, f"PUT settings {body}")
        for body in ({"provider": "google", "preview": "yes", "actor": "person:a@b.org"},
                     {"provider": "both", "actor": "person:a@b.org"},
                     {"provider": "google", "admin": "a@b.org"},
                     {"provider": "google", "actor": "a@b.org"}):
            s, b = raw_request(port, "POST", f"/internal/tenants/{tenant}/sync",
                               suite.json_bytes(body), hdr)
            self.assert_refused(s, b, f"POST sync {body}")
        self.assert_alive()
        # Nothing was requested by all that.
        self.assertEqual(harness.psql("SELECT count(*) FROM sync_runs WHERE tenant_id = :'t'",
                                      t=tenant), [["0"]])


class MergerHostileInputTest(suite.ServicePerClass, HostileBase):
    START = staticmethod(suite.start_merger)

    def test_decision_routes_refuse_bad_input(self):
        hdr = suite.service_header()
        tenant = harness.new_tenant("hostile")
        run = "0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"
        paths = [f"/internal/tenants/{tenant}/runs/{run}/approve",
                 f"/internal/tenants/{tenant}/runs/{run}/reject"]
        self.common_attacks(paths, hdr)
        port = self.proc.port
        body = b'{"admin":"a@b.org"}'
        for v in SQL + ["not-a-uuid", "0" * 36, "", "%00"]:
            q = urllib.parse.quote(v, safe="%")
            for path in (f"/internal/tenants/{tenant}/runs/{q}/approve",
                         f"/internal/tenants/{q}/runs/{run}/approve"):
                s, b = raw_request(port, "POST", path, body, hdr)
                # An encoded "/" is decoded by civetweb before routing: its own plain 404.
                self.assert_refused(s, b, f"POST {path}", json_error="%2F" not in path)
        s, b = raw_request(port, "POST", f"/internal/tenants/{tenant}/runs/{run}/approve",
                           b'{"admin":"' + b"a" * 400 + b'"}', hdr)
        self.assert_refused(s, b, "an admin of 400 characters")
        self.assert_alive()


class ApiHostileInputTest(HostileBase):
    """The public REST API: every filter of every list with SQL metacharacters and invalid
    UTF-8, negative, zero and huge limits, forged and edited cursors, bad ids, oversized
    and malformed bodies, bad keys."""

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.tenant = harness.new_tenant("hostile")
        suite.populate(cls.tenant, people=30, devices=5)
        cls.proc = suite.start_api()
        cls.key = suite.api_key(cls.tenant)
        cls.hdr = {"Authorization": "Bearer " + cls.key}

    @classmethod
    def tearDownClass(cls):
        cls.proc.stop()

    FILTERS = {
        "/v1/people": ["q", "email", "source", "status", "org_unit", "updated_since",
                       "include_removed", "limit", "cursor"],
        "/v1/assets": ["serial", "asset_tag", "model", "status", "org_unit", "checked_out",
                       "in_google", "manual", "aue_before", "audit_due_before", "q", "limit",
                       "cursor"],
        "/v1/org-units": ["q", "parent", "limit", "cursor"],
        "/v1/checkouts": ["person_id", "asset_id", "open", "overdue", "limit", "cursor"],
        "/v1/sync/runs": ["provider", "status", "limit", "cursor"],
        "/v1/sync/match-cases": ["status", "limit", "cursor"],
    }

    def test_filters_limits_and_cursors(self):
        port = self.proc.port
        values = SQL + ["-1", "0", "99999999999999999999", "1e3", "0x10", " 5", "", "%00",
                        "2026-02-30", "true'--"]
        for path, names in self.FILTERS.items():
            for name in names + ["unknown_param"]:
                for v in values:
                    q = urllib.parse.urlencode({name: v})
                    s, b = raw_request(port, "GET", f"{path}?{q}", b"", self.hdr)
                    self.assertIsNotNone(s, f"{path}?{q}: no answer")
                    self.assertLess(s, 500, f"{path}?{q}: HTTP {s} {b[:300]!r}")
                    if s >= 400:
                        self.assert_refused(s, b, f"{path}?{q}")
                    elif v in SQL and name not in ("limit", "cursor", "unknown_param"):
                        # accepted as a value: it matches no row (no value holds these
                        # characters), so a widened WHERE would show here
                        self.assertEqual((s, json.loads(b)["items"]), (200, []),
                                         f"{path}?{q}")
                for bad in BAD_UTF8:
                    s, b = raw_request(port, "GET", path.encode() + b"?" + name.encode() + b"="
                                       + urllib.parse.quote_from_bytes(bad).encode(), b"",
                                       self.hdr)
                    self.assert_refused(s, b, f"{path}?{name}=<invalid UTF-8 {bad!r}>")
            for limit in ("-1", "0", "1000000", "9" * 40, "abc"):
                s, b = raw_request(port, "GET", f"{path}?limit={limit}", b"", self.hdr)
                self.assert_refused(s, b, f"{path}?limit={limit}")
            s, b = raw_request(port, "GET", f"{path}?limit=1&limit=2", b"", self.hdr)
            self.assert_refused(s, b, f"{path} with limit twice")
        # Cursors: a real one works; edited, truncated, forged or another route's do not.
        st, _, page = harness.http("GET", self.proc.url + "/v1/people?limit=2",
                                   headers=self.hdr)
        self.assertEqual(st, 200, page)
        cursor = page.get("next_cursor")
        self.assertTrue(cursor, page)
        st, _, _ = harness.http("GET", self.proc.url + "/v1/people?limit=2&cursor="
                                + urllib.parse.quote(cursor), headers=self.hdr)
        self.assertEqual(st, 200)
        flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
        for bad in (cursor[:-1], cursor + "A", flipped, "A" * 40, "eyJhIjoxfQ", "." * 10,
                    cursor.replace(".", ""), "x" * 5000):
            for path in ("/v1/people", "/v1/assets"):
                s, b = raw_request(port, "GET", f"{path}?cursor={urllib.parse.quote(bad)}",
                                   b"", self.hdr)
                self.assert_refused(s, b, f"{path} cursor {bad[:40]!r}")
        s, b = raw_request(port, "GET", f"/v1/assets?cursor={urllib.parse.quote(cursor)}",
                           b"", self.hdr)
        self.assert_refused(s, b, "a people cursor on /v1/assets")
        self.assert_alive()

    def test_ids_bodies_and_keys(self):
        port = self.proc.port
        for v in SQL + ["not-a-uuid", "0" * 36, "%00", "%ff", "a" * 5000]:
            q = urllib.parse.quote(v, safe="%")
            for path in (f"/v1/people/{q}", f"/v1/assets/{q}", f"/v1/org-units/{q}",
                         f"/v1/sync/runs/{q}", f"/v1/sync/match-cases/{q}"):
                s, b = raw_request(port, "GET", path, b"", self.hdr)
                self.assert_refused(s, b, f"GET {path[:80]}", json_error="%2F" not in path)
            for path in (f"/v1/assets/by-serial/{q}", f"/v1/assets/by-tag/{q}"):
                # Lookups answer a (here empty) list, or refuse the value.
                s, b = raw_request(port, "GET", path, b"", self.hdr)
                self.assertIsNotNone(s, path)
                self.assertLess(s, 500, f"GET {path[:80]}: {s} {b[:200]!r}")
                if s == 200:
                    self.assertIn(b'"items":[]', b.replace(b" ", b""), path)
        paths = ["/v1/assets", "/v1/checkouts/bulk",
                 "/v1/assets/0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01/checkout"]
        self.common_attacks(paths, self.hdr)
        for body in ({"asset_tag": "x" * 65}, {"serial_number": 5}, {"lifecycle": "' OR 1"},
                     {"next_audit_due": "2026-13-01"}, {"unknown": 1},
                     {"asset_tag": "ok", "notes": "n" * 2001}):
            s, b = raw_request(port, "POST", "/v1/assets", suite.json_bytes(body), self.hdr)
            self.assert_refused(s, b, f"POST /v1/assets {body!r}"[:120])
        for key in ("", "pk_", "pk_x.y", "pk_" + "a" * 5000, self.key + "x", self.key[:-1],
                    "Basic " + self.key, self.key.replace("pk_", "pk_' OR '1'='1")):
            s, b = raw_request(port, "GET", "/v1/people", b"",
                               {"Authorization": "Bearer " + key})
            self.assertEqual(s, 401, f"key {key[:40]!r}: {s} {b[:200]!r}")
        self.assert_alive()

    def test_session_cookies_csrf_and_admin_bodies(self):
        port = self.proc.port
        sid, account = harness.new_session(self.tenant, "hostile.admin@hostile.example")
        good = "A" * 43
        cookies = [b"panel_session=", b"panel_session=" + b"A" * 42, b"panel_session=" + b"A" * 44,
                   b"panel_session=" + b"A" * 100000, b"panel_session=" + good.encode() + b"%00",
                   b"panel_session=" + b"' OR '1'='1" + b"A" * 32, b"panel_session=\xff" + b"A" * 42,
                   b"panel_session=" + b"A" * 42 + b"=", b";;;;" * 1000, b"=" * 5000,
                   b"panel_session=" + good.encode(),  # well-formed, never issued
                   b"panel_session=" + sid[:-1].encode() + (b"B" if sid[-1] != "B" else b"C")]
        for c in cookies:
            for path in ("/v1/people", "/v1/session"):
                s, b = raw_request(port, "GET", path, b"", {"Cookie": c})
                # civetweb may drop a connection whose headers exceed its limit.
                self.assertTrue(s in (400, 401, 431) or (s is None and len(c) > 10000),
                                f"cookie {c[:40]!r}: {s} {b[:200]!r}")
        # The real session works; its changes need the exact CSRF token.
        ck = {"Cookie": "panel_session=" + sid}
        s, b = raw_request(port, "GET", "/v1/people", b"", ck)
        self.assertEqual(s, 200, b[:200])
        csrf = harness.session_csrf(sid)
        for token in ("", "x", csrf[:-1], csrf + "A", csrf.upper(), "A" * 5000, "' OR 1=1 --"):
            s, b = raw_request(port, "POST", "/v1/assets", b'{"asset_tag":"csrf"}',
                               dict(ck, **{"X-CSRF-Token": token}))
            self.assertEqual(s, 403, f"csrf {token[:30]!r}: {s} {b[:200]!r}")
        hdr = dict(ck, **{"X-CSRF-Token": csrf})
        self.common_attacks(["/v1/admins"], hdr)
        for body in ({"email": v, "role": "admin"} for v in SQL + ["a@b" * 200, "", " ", "a@"]):
            s, b = raw_request(port, "POST", "/v1/admins", suite.json_bytes(body), hdr)
            self.assertIsNotNone(s)
            self.assertLess(s, 500, f"POST /v1/admins {body!r}: {s} {b[:200]!r}"[:200])
        for body in ({"role": "root"}, {"role": 1}, {"role": None}, {"allow_google": "yes"},
                     {"x": 1}):
            s, b = raw_request(port, "PATCH", f"/v1/admins/{account}", suite.json_bytes(body),
                               hdr)
            self.assert_refused(s, b, f"PATCH /v1/admins {body!r}")
        for v in SQL + ["not-a-uuid", "0" * 36]:
            q = urllib.parse.quote(v, safe="")
            s, b = raw_request(port, "DELETE", f"/v1/admins/{q}", b"", hdr)
            self.assert_refused(s, b, f"DELETE /v1/admins/{q}")
        self.assertEqual(harness.psql("SELECT role, removed_at IS NULL FROM admin_accounts "
                                      "WHERE account_id = :'a'", a=account), [["admin", "t"]])
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()
