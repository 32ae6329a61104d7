"""Bad input against the HTTP surfaces: auth's browser callbacks and internal routes, the
merger's internal routes (and the api's, once it is built). Oversized bodies, headers and
query strings, invalid UTF-8, SQL metacharacters in every path and body value, wrong JSON
types, forged ids. Every answer must be a 4xx (with the JSON error shape where the service
produced it) — never a 5xx — and afterwards the process must be alive and /healthz answer.

The fetchers' side (malformed, truncated pages from the emulator) is in
test_reliability_quick.py; the page parsers themselves are fuzzed (tests/fuzz)."""
import http.client
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

    def common_attacks(self, paths, secret_header):
        """Oversized and malformed requests against each path."""
        port = self.proc.port
        for path in paths:
            for body in (b"{" * 200000, b"x" * (4 << 20), b'{"admin":' + b'"a' * 100000 + b'"}'):
                s, b = raw_request(port, "POST", path, body, secret_header)
                self.assert_refused(s, b, f"POST {path} with a {len(body)}-byte body",
                                    json_error=False)
            for bad in BAD_UTF8:
                s, b = raw_request(port, "POST", path, b'{"admin":"' + bad + b'@x.org"}',
                                   dict(secret_header, **{"Content-Type": "application/json"}))
                self.assert_refused(s, b, f"POST {path} with invalid UTF-8 {bad!r}")
            for body in (b"[]", b"null", b'{"admin":5}', b'{"admin":["a@b"]}', b"\xef\xbb\xbf{}",
                         b'{"admin":"a@b","admin":"c@d"}', b'{"admin":null}'):
                s, b = raw_request(port, "POST", path, body, secret_header)
                self.assert_refused(s, b, f"POST {path} {body!r}")
            s, b = raw_request(port, "GET", path, b"", dict(secret_header,
                                                            **{"X-Big": "h" * 200000}))
            self.assertTrue(s is None or 400 <= s < 500, f"huge header: HTTP {s}")
            self.assert_alive()


class AuthHostileInputTest(HostileBase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.proc = suite.start_auth()

    @classmethod
    def tearDownClass(cls):
        cls.proc.stop()

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
        self.common_attacks(paths, hdr)
        port = self.proc.port
        for v in SQL:
            q = urllib.parse.quote(v, safe="")
            for rest in ("connections", "sync", "google/authorize"):
                method = "GET" if rest == "connections" else "POST"
                s, b = raw_request(port, method, f"/internal/tenants/{q}/{rest}",
                                   b'{"admin":"a@b.org"}', hdr)
                self.assert_refused(s, b, f"{method} tenant {v!r} /{rest}")
            for body in ({"admin": v}, {"admin": "a@b.org", "provider": v},
                         {"tenant_id": v, "provider": "google"},
                         {"tenant_id": tenant, "provider": v}):
                for rest in (f"/internal/tenants/{tenant}/sync", "/internal/token",
                             f"/internal/tenants/{tenant}/google/authorize"):
                    s, b = raw_request(port, "POST", rest, suite.json_bytes(body), hdr)
                    self.assert_refused(s, b, f"POST {rest} {body}")
        for body in ({"sync_interval_seconds": -1}, {"sync_interval_seconds": 10 ** 30},
                     {"sync_interval_seconds": "3600"}, {"pause_windows": "x"},
                     {"pause_windows": [{"starts_at": "' OR 1=1", "ends_at": None}]},
                     {"sync_interval_seconds": 1e308}):
            s, b = raw_request(port, "PUT", f"/internal/tenants/{tenant}/settings",
                               suite.json_bytes(body), hdr)
            self.assert_refused(s, b, f"PUT settings {body}")
        for body in ({"provider": "google", "preview": "yes", "admin": "a@b.org"},
                     {"provider": "both", "admin": "a@b.org"}):
            s, b = raw_request(port, "POST", f"/internal/tenants/{tenant}/sync",
                               suite.json_bytes(body), hdr)
            self.assert_refused(s, b, f"POST sync {body}")
        self.assert_alive()
        # Nothing was requested by all that.
        self.assertEqual(harness.psql("SELECT count(*) FROM sync_runs WHERE tenant_id = :'t'",
                                      t=tenant), [["0"]])


class MergerHostileInputTest(HostileBase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.proc = suite.start_merger()

    @classmethod
    def tearDownClass(cls):
        cls.proc.stop()

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
                self.assert_refused(s, b, f"POST {path}")
        s, b = raw_request(port, "POST", f"/internal/tenants/{tenant}/runs/{run}/approve",
                           b'{"admin":"' + b"a" * 400 + b'"}', hdr)
        self.assert_refused(s, b, "an admin of 400 characters")
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()
