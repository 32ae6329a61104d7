"""Production operations (docs/operations.md): slow or idle clients do not stop a service from
answering /healthz, a statement past PANEL_PG_STATEMENT_TIMEOUT_MS answers a clean 503, and
every service's /metrics passes `promtool check metrics`."""
import os
import shutil
import socket
import subprocess
import threading
import time
import unittest

import harness
from fetch_helpers import (AuthStub, add_fault, fetcher_env, google_refresh_token,
                           new_district, request_sync, run_events)
from harness import Process, http, psql, require_env, wait_until
from test_auth import API_SECRET, start_auth, start_emulator as start_auth_emulator

IDLE_CONNECTIONS = 64
SLOW_CONNECTIONS = 8
SECRET = API_SECRET  # the api calls auth with its own credential


def open_idle(port, n):
    """n TCP connections that never send a byte."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def drip_partial_requests(port, n, stop, seconds=6.0):
    """n connections that send a request line one byte every 100 ms and never finish it;
    every thread ends by itself after `seconds` (or when stop is set)."""
    def drip():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
                deadline = time.time() + seconds
                for b in line:
                    if stop.is_set() or time.time() > deadline:
                        return
                    s.sendall(bytes([b]))
                    time.sleep(0.1)
        except OSError:
            pass  # the server closed the slow connection: what it should do eventually
    threads = [threading.Thread(target=drip, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


class SlowClients(unittest.TestCase):
    """64 idle connections and 8 that send a partial request slowly do not stop /healthz
    answering within a second (civetweb holds a thread per open connection)."""

    @classmethod
    def setUpClass(cls):
        require_env()
        cls.emu = start_auth_emulator()
        cls.auth = start_auth(cls.emu)
        cls.api = Process("panel-api", env={"PANEL_AUTH_URL": cls.auth.url,
                                            "PANEL_MERGER_URL": cls.auth.url,
                                            "PANEL_SERVICE_SECRET": SECRET})

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.auth.stop()
        cls.emu.stop()

    def check_healthz_under_load(self, svc):
        stop = threading.Event()
        idle = open_idle(svc.port, IDLE_CONNECTIONS)
        slow = drip_partial_requests(svc.port, SLOW_CONNECTIONS, stop)
        try:
            time.sleep(0.5)  # every connection accepted and holding a worker
            t0 = time.monotonic()
            status, _, body = http("GET", svc.url + "/healthz", timeout=5)
            elapsed = time.monotonic() - t0
            self.assertEqual(status, 200, body)
            self.assertLess(elapsed, 1.0, f"{svc.name} /healthz took {elapsed:.2f} s")
        finally:
            stop.set()
            for s in idle:
                s.close()
            for t in slow:
                t.join(10)

    def test_api_answers_healthz_with_idle_and_slow_clients(self):
        self.check_healthz_under_load(self.api)

    def test_auth_answers_healthz_with_idle_and_slow_clients(self):
        self.check_healthz_under_load(self.auth)

    def test_a_client_that_never_finishes_its_request_is_disconnected(self):
        api = Process("panel-api", env={"PANEL_AUTH_URL": self.auth.url,
                                        "PANEL_MERGER_URL": self.auth.url,
                                        "PANEL_SERVICE_SECRET": SECRET,
                                        "PANEL_HTTP_REQUEST_TIMEOUT_MS": "500"})
        try:
            with socket.create_connection(("127.0.0.1", api.port), timeout=5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                t0 = time.monotonic()
                s.settimeout(5)
                data = s.recv(4096)  # b"" (closed) or a 4xx, never a 5 s wait
                self.assertLess(time.monotonic() - t0, 4.0)
                self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        finally:
            api.stop()


class StatementTimeout(unittest.TestCase):
    def test_a_statement_past_the_timeout_answers_503_not_a_hang(self):
        require_env()
        tenant = harness.new_tenant("opst")
        key = subprocess.run([harness.binary("panelctl"), "apikey-create", tenant, "admin", "e2e"],
                             check=True, capture_output=True, text=True).stdout.strip()
        api = Process("panel-api", env={"PANEL_AUTH_URL": "http://127.0.0.1:9",
                                        "PANEL_MERGER_URL": "http://127.0.0.1:9",
                                        "PANEL_SERVICE_SECRET": SECRET,
                                        "PANEL_PG_STATEMENT_TIMEOUT_MS": "300"})
        # Another session holds the people table locked for longer than the api may wait.
        locker = subprocess.Popen(
            ["psql", os.environ["PANEL_PG_URL"], "-X", "-q", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True)
        try:
            locker.stdin.write("BEGIN; LOCK TABLE people IN ACCESS EXCLUSIVE MODE;\n"
                               "SELECT pg_sleep(8); COMMIT;\n")
            locker.stdin.flush()
            wait_until(lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_class c "
                                    "ON c.oid = l.relation WHERE c.relname = 'people' "
                                    "AND l.mode = 'AccessExclusiveLock' AND l.granted")[0][0]
                       == "1", timeout=10, what="the lock on people")
            t0 = time.monotonic()
            status, _, body = http("GET", api.url + "/v1/people",
                                   headers={"Authorization": f"Bearer {key}"}, timeout=10)
            elapsed = time.monotonic() - t0
            self.assertEqual(status, 503, body)
            self.assertEqual(body["error"]["code"], "unavailable", body)
            self.assertLess(elapsed, 3.0)
            # The connection is usable again once the lock is gone.
            locker.stdin.close()
            locker.wait(15)
            status, _, body = http("GET", api.url + "/v1/people",
                                   headers={"Authorization": f"Bearer {key}"})
            self.assertEqual(status, 200, body)
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait()
            api.stop()


class RateLimit(unittest.TestCase):
    """PANEL_API_RATE_LIMIT_PER_MINUTE: a caller past its burst is answered 429 rate_limited
    with Retry-After and its request id, before any work; another caller is not affected; a
    caller whose key fails authentication is not counted."""

    def test_a_caller_past_its_budget_gets_429_with_retry_after(self):
        require_env()
        tenant = harness.new_tenant("oprate")

        def key():
            return subprocess.run([harness.binary("panelctl"), "apikey-create", tenant, "viewer",
                                   "e2e"], check=True, capture_output=True,
                                  text=True).stdout.strip()
        a, b = key(), key()
        api = Process("panel-api", env={"PANEL_AUTH_URL": "http://127.0.0.1:9",
                                        "PANEL_MERGER_URL": "http://127.0.0.1:9",
                                        "PANEL_SERVICE_SECRET": SECRET,
                                        "PANEL_API_RATE_LIMIT_PER_MINUTE": "2",
                                        "PANEL_API_RATE_LIMIT_BURST": "3"})
        try:
            def get(k, rid=None):
                headers = {"Authorization": f"Bearer {k}"}
                if rid:
                    headers["X-Request-Id"] = rid
                return http("GET", api.url + "/v1/people?limit=1", headers=headers)
            for _ in range(3):
                self.assertEqual(get(a)[0], 200)
            status, headers, body = get(a, rid="rate-test-1")
            self.assertEqual(status, 429, body)
            self.assertEqual(body["error"]["code"], "rate_limited")
            self.assertEqual(body["error"]["request_id"], "rate-test-1")
            wait = int({k.lower(): v for k, v in headers.items()}["retry-after"])
            self.assertTrue(1 <= wait <= 30, wait)  # one token every 30 s
            # another key of the same district has its own budget
            self.assertEqual(get(b)[0], 200)
            # a wrong secret is refused as before (401) and not counted against anyone
            for _ in range(5):
                self.assertEqual(get(a.split(".")[0] + ".wrong")[0], 401)
            self.assertEqual(get(b)[0], 200)
        finally:
            api.stop()


def hold_lock(table, seconds):
    """A psql session that holds an ACCESS EXCLUSIVE lock on table for `seconds` (or until
    its stdin is closed); returns once the lock is granted."""
    locker = subprocess.Popen(
        ["psql", os.environ["PANEL_PG_URL"], "-X", "-q", "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    locker.stdin.write(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\n"
                       f"SELECT pg_sleep({seconds}); COMMIT;\n")
    locker.stdin.flush()
    wait_until(lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_class c "
                            "ON c.oid = l.relation WHERE c.relname = :'t' "
                            "AND l.mode = 'AccessExclusiveLock' AND l.granted", t=table)[0][0]
               == "1", timeout=10, what=f"the lock on {table}")
    return locker


class MergerStatementTimeout(unittest.TestCase):
    def test_batches_that_time_out_are_retried_not_dead_lettered(self):
        """A locked table makes every apply run into the statement timeout: that is the
        database's state, not a poisonous event, so the events wait and are applied once the
        lock is gone, and nothing goes to the dead-letter topic."""
        require_env()
        import test_merger
        tenant = harness.new_tenant("opsmt")
        merger = Process("panel-merger", env={"PANEL_MERGER_CALLER_SECRETS": "api:" + test_merger.SECRET,
                                              "PANEL_MERGER_BATCH_MS": "50",
                                              "PANEL_PG_STATEMENT_TIMEOUT_MS": "300"})
        locker = hold_lock("people", 30)
        try:
            run_id, evs = test_merger.full_run(tenant, "google", lambda r: [
                test_merger.person(tenant, "google", r, "g-1", "tim@d.example",
                                   display_name="Tim Out")])
            test_merger.publish(tenant, evs)
            # Long enough for the isolation and dead-letter thresholds (3 and 5 failures).
            wait_until(lambda: merger.log_text().count("due to statement timeout") >= 10,
                       timeout=60, what="ten batches past the statement timeout")
            locker.stdin.close()
            locker.wait(40)
            test_merger.wait_run(tenant, run_id)
            self.assertEqual(psql("SELECT display_name FROM people WHERE tenant_id = :'t'",
                                  t=tenant), [["Tim Out"]])
            dead = [m for m in harness.consume("panel.source.events.dlq", timeout_ms=2000)
                    if m["key"] == tenant]
            self.assertEqual(dead, [])
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait()
            merger.stop()


def promtool_check(testcase, name, text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    testcase.assertEqual(p.returncode, 0,
                         f"{name}: promtool check metrics:\n{p.stdout}{p.stderr}\n---\n{text}")


class Metrics(unittest.TestCase):
    """Every service's /metrics, after it did some work, passes `promtool check metrics`."""

    @classmethod
    def setUpClass(cls):
        require_env()
        if not shutil.which("promtool"):
            raise RuntimeError("promtool not found: run scripts/deps.sh (Debian's prometheus)")

    def metrics_of(self, svc):
        http("GET", svc.url + "/healthz")
        http("GET", svc.url + "/readyz")
        http("GET", svc.url + "/no-such-route")
        status, _, body = http("GET", svc.url + "/metrics")
        self.assertEqual(status, 200)
        return body.decode()

    def test_api_auth_merger_emulator(self):
        emu = start_auth_emulator()
        procs = [emu]
        try:
            auth = start_auth(emu)
            procs.append(auth)
            api = Process("panel-api", env={"PANEL_AUTH_URL": auth.url,
                                            "PANEL_MERGER_URL": auth.url,
                                            "PANEL_SERVICE_SECRET": SECRET})
            procs.append(api)
            # the default group, as every merger of the tests: a group of its own would apply
            # the topic's earlier events a second time
            merger = Process("panel-merger", env={"PANEL_MERGER_CALLER_SECRETS": "api:" + SECRET})
            procs.append(merger)
            text = wait_until(lambda: (lambda t: t if "merger_outbox_unsent" in t else None)(
                self.metrics_of(merger)), timeout=30, what="the merger's outbox gauges")
            promtool_check(self, "panel-merger", text)
            self.assertIn("# TYPE merger_outbox_unsent gauge", text)
            for svc in (api, auth, emu):
                text = self.metrics_of(svc)
                promtool_check(self, svc.name, text)
                self.assertIn("# TYPE http_request_duration_seconds histogram", text)
                self.assertIn('le="0.001"', text)
        finally:
            for p in reversed(procs):
                p.stop()

    def test_fetchers_after_a_run(self):
        emu = harness.start_emulator(districts="", consent="page")
        stub = AuthStub(emu)
        procs = []
        try:
            for name, source in (("panel-google-sync", "google"),
                                 ("panel-azure-sync", "azure")):
                svc = Process(name, env=fetcher_env(stub, PANEL_GOOGLE_API_URL=emu.url,
                                                    PANEL_GRAPH_URL=emu.url,
                                                    PANEL_MS_LOGIN_URL=emu.url))
                procs.append(svc)
                if source == "google":
                    district = new_district(emu, people=5, devices=2, ous=2)
                    tenant = harness.new_tenant("opsm")
                    stub.google[tenant] = google_refresh_token(emu, district)
                    run_events(tenant, request_sync(tenant, "SOURCE_GOOGLE"))
                    text = wait_until(lambda: (lambda t: t if "panel_fetch_runs_total" in t
                                               else None)(self.metrics_of(svc)),
                                      timeout=30, what="the run's metrics")
                    self.assertIn("# TYPE panel_fetch_run_duration_seconds histogram", text)
                    self.assertIn('le="43200"', text)  # runs: seconds .. hours
                else:
                    text = self.metrics_of(svc)
                promtool_check(self, name, text)
        finally:
            for p in reversed(procs):
                p.stop()
            stub.stop()
            emu.stop()


class LongRetryAfter(unittest.TestCase):
    def test_a_retry_after_past_its_cap_fails_the_run_at_once(self):
        """A Retry-After longer than PANEL_FETCH_RETRY_AFTER_MAX_MS is not waited for: the run
        fails as throttled at once instead of parking the worker (for a day, were it 86400)."""
        require_env()
        emu = harness.start_emulator(districts="", consent="page")
        stub = AuthStub(emu)
        svc = None
        try:
            svc = Process("panel-google-sync", env=fetcher_env(
                stub, PANEL_GOOGLE_API_URL=emu.url, PANEL_FETCH_RETRY_AFTER_MAX_MS=1000))
            district = new_district(emu, people=5, devices=0, ous=2)
            tenant = harness.new_tenant("opsra")
            stub.google[tenant] = google_refresh_token(emu, district)
            add_fault(emu, route="google.users", kind="status", status=429, rate=1.0,
                      retry_after="20")
            t0 = time.monotonic()
            events = run_events(tenant, request_sync(tenant, "SOURCE_GOOGLE"))
            elapsed = time.monotonic() - t0
            self.assertIn("run_failed", events[-1], events[-1])
            failed = events[-1]["run_failed"]
            self.assertEqual(failed["reason"], "RUN_FAILURE_REASON_THROTTLED", failed)
            self.assertIn("asked to wait 20 s", failed["message"])
            self.assertLess(elapsed, 15.0)
        finally:
            if svc:
                svc.stop()
            stub.stop()
            emu.stop()


if __name__ == "__main__":
    unittest.main()
