"""The request core auth and the merger share with the api (lib/router.h, lib/httpd.h): every
reply carries an X-Request-Id (the client's when it is valid, else a new one), every JSON error
names it, every log line of the request carries it, and one access-log line per request gives
method, route pattern, status, duration and caller. A known path with another method is 405
with Allow; auth counts its token requests in its own metrics."""
import json
import re
import secrets
import time
import unittest

import harness
import suite

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def access_lines(proc, request_id):
    """The JSON log lines carrying request_id, parsed."""
    out = []
    for line in proc.log_text().splitlines():
        if request_id not in line:
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return [rec for rec in out if rec.get("request_id") == request_id]


class RequestCoreCase:
    proc = None

    def wait_access_line(self, request_id, timeout=5):
        """The access-log line of request_id (written right after the reply)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [r for r in access_lines(self.proc, request_id)
                     if r.get("msg", "").startswith("access ")]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(lines), 1, f"{request_id}: {self.proc.log_tail()}")
        return dict(kv.split("=", 1) for kv in lines[0]["msg"].split()[1:])

    def assert_error_names_request(self, status, hdrs, body, want_status, code):
        self.assertEqual(status, want_status, body)
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(hdrs.get("X-Request-Id"))
        self.assertEqual(body["error"]["request_id"], hdrs["X-Request-Id"], body)

    def call(self, method, path, body=None, headers=None):
        return harness.http(method, self.proc.url + path, body, headers=headers)


class AuthRequestCore(suite.ServicePerClass, RequestCoreCase, unittest.TestCase):
    START = staticmethod(suite.start_auth)

    def test_request_id_is_echoed_or_made_and_logged_with_the_access_line(self):
        tenant = harness.new_tenant("rid")
        rid = "gw-" + secrets.token_hex(6) + ":auth"
        status, hdrs, body = self.call("GET", f"/internal/tenants/{tenant}/connections",
                                       headers=dict(suite.service_header(),
                                                    **{"X-Request-Id": rid}))
        self.assertEqual(hdrs.get("X-Request-Id"), rid)
        self.assertIn(status, (200, 404), body)
        access = self.wait_access_line(rid)
        self.assertEqual(access["method"], "GET")
        self.assertEqual(access["route"], "/internal/tenants/{tenant}/connections")
        self.assertEqual(access["status"], str(status))
        self.assertEqual(access["caller"], "api")
        self.assertGreaterEqual(float(access["duration_ms"]), 0.0)
        self.assertNotIn(tenant, json.dumps(access), "the access line names the pattern")
        # Absent, too long or with a quote: auth makes one of 32 hex characters.
        for bad in (None, "x" * 65, 'a"b'):
            hdr = suite.service_header()
            if bad is not None:
                hdr["X-Request-Id"] = bad
            status, hdrs, _ = self.call("GET", f"/internal/tenants/{tenant}/connections",
                                        headers=hdr)
            self.assertRegex(hdrs.get("X-Request-Id", ""), HEX32)
            self.wait_access_line(hdrs["X-Request-Id"])

    def test_errors_carry_the_request_id_and_their_log_lines_too(self):
        tenant = harness.new_tenant("rid")
        # 401: no secret, before anything about the route is told.
        status, hdrs, body = self.call("GET", "/internal/no-such-route",
                                       headers={"X-Request-Id": "rid-401"})
        self.assert_error_names_request(status, hdrs, body, 401, "unauthorized")
        self.assertEqual(hdrs["X-Request-Id"], "rid-401")
        # 404, 405 with Allow, 400 on a bad tenant id, 403 for another service's route.
        status, hdrs, body = self.call("GET", "/internal/no-such-route",
                                       headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 404, "not_found")
        status, hdrs, body = self.call("DELETE", f"/internal/tenants/{tenant}/settings",
                                       headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 405, "method_not_allowed")
        self.assertEqual(hdrs.get("Allow"), "PUT")
        status, hdrs, body = self.call("GET", "/internal/token", headers=suite.fetcher_header(
            "google"))
        self.assert_error_names_request(status, hdrs, body, 405, "method_not_allowed")
        self.assertEqual(hdrs.get("Allow"), "POST")
        status, hdrs, body = self.call("POST", "/internal/token",
                                       {"tenant_id": tenant, "provider": "google"},
                                       headers=dict(suite.service_header(),
                                                    **{"X-Request-Id": "rid-403"}))
        self.assert_error_names_request(status, hdrs, body, 403, "forbidden_caller")
        # The refusal's own warning carries the request id, as its access line does.
        lines = access_lines(self.proc, "rid-403")
        self.assertTrue(any("may not call this route" in r["msg"] for r in lines), lines)
        self.assertEqual(self.wait_access_line("rid-403")["status"], "403")
        status, hdrs, body = self.call("GET", "/internal/tenants/bad%20tenant/connections",
                                       headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 400, "invalid_tenant")
        # A browser route: its refusal too.
        status, hdrs, body = self.call("POST", "/oauth/google/callback?state=x", b"{}")
        self.assert_error_names_request(status, hdrs, body, 405, "method_not_allowed")
        self.assertEqual(hdrs.get("Allow"), "GET")
        status, hdrs, body = self.call("GET", "/oauth/nothing")
        self.assert_error_names_request(status, hdrs, body, 404, "not_found")
        # A body past the route's limit.
        status, hdrs, body = self.call("PUT", f"/internal/tenants/{tenant}/settings",
                                       b'{"actor":"' + b"a" * (20 * 1024) + b'"}',
                                       headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 413, "body_too_large")

    def test_token_requests_are_counted_by_provider_and_result(self):
        tenant = harness.new_tenant("rid")

        def count():
            _, _, text = self.call("GET", "/metrics")
            text = text.decode() if isinstance(text, bytes) else text
            m = re.search(r'^auth_token_requests_total\{provider="google",'
                          r'result="not_connected"\} (\S+)$', text, re.M)
            return text, float(m.group(1)) if m else 0.0

        _, before = count()
        for _ in range(2):
            status, _, body = self.call("POST", "/internal/token",
                                        {"tenant_id": tenant, "provider": "google"},
                                        headers=suite.fetcher_header("google"))
            self.assertEqual(status, 404, body)
            self.assertEqual(body["error"]["code"], "not_connected")
        text, after = count()
        self.assertEqual(after - before, 2)
        # The whole exposition, auth's own families included, passes promtool.
        import test_operations
        test_operations.promtool_check(self, "panel-auth", text)
        # A family is rendered once it has a series (a revocation may never have happened).
        self.assertIn("# TYPE auth_token_requests_total counter", text)
        self.assertIn("# HELP auth_token_requests_total Access-token requests", text)
        for family in ("auth_revocations_total", "auth_scheduled_requests_total"):
            if f"\n{family}" in text:
                self.assertIn(f"# TYPE {family} counter", text)


class MergerRequestCore(suite.ServicePerClass, RequestCoreCase, unittest.TestCase):
    START = staticmethod(suite.start_merger)

    def test_request_id_in_replies_errors_and_logs(self):
        tenant = harness.new_tenant("rid")
        run = "0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"
        path = f"/internal/tenants/{tenant}/runs/{run}/approve"
        status, hdrs, body = self.call("POST", path, {"admin": "a@b.org"},
                                       headers=dict(suite.service_header(),
                                                    **{"X-Request-Id": "rid-merger-1"}))
        self.assert_error_names_request(status, hdrs, body, 404, "not_found")
        self.assertEqual(hdrs["X-Request-Id"], "rid-merger-1")
        access = self.wait_access_line("rid-merger-1")
        self.assertEqual((access["method"], access["route"], access["status"], access["caller"]),
                         ("POST", "/internal/tenants/{tenant}/runs/{run}/approve", "404", "api"))
        # Made when absent; 401 before any 404; 405 with Allow; a bad body.
        status, hdrs, body = self.call("POST", path, {"admin": "a@b.org"})
        self.assert_error_names_request(status, hdrs, body, 401, "unauthorized")
        self.assertRegex(hdrs["X-Request-Id"], HEX32)
        self.assertEqual(self.wait_access_line(hdrs["X-Request-Id"])["status"], "401")
        status, hdrs, body = self.call("GET", path, headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 405, "method_not_allowed")
        self.assertEqual(hdrs.get("Allow"), "POST")
        status, hdrs, body = self.call("POST", path, b"[]", headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 400, "bad_request")
        status, hdrs, body = self.call("POST", f"/internal/tenants/{tenant}/runs/{run}/undo",
                                       {"admin": "a@b.org"}, headers=suite.service_header())
        self.assert_error_names_request(status, hdrs, body, 404, "not_found")
        # /healthz answers with a request id too; its access line is at debug level only.
        status, hdrs, _ = self.call("GET", "/healthz", headers={"X-Request-Id": "rid-probe"})
        self.assertEqual((status, hdrs.get("X-Request-Id")), (200, "rid-probe"))


if __name__ == "__main__":
    unittest.main()
