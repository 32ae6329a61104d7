"""Promises of docs/api.md that had no test (issue 24), on the real api and PostgreSQL:

- 409 `request_in_progress` while the first request with an Idempotency-Key still runs, with
  a request both of whose executions could succeed (a manual Asset: the second would make a
  second Asset), then the first reply replayed and exactly one Asset;
- 503 `unavailable` while the database is down (a TCP proxy in front of PostgreSQL that drops
  every connection), and answers again once it is back;
- /readyz answers 503 while the database's schema is not this build's, 200 again after."""
import concurrent.futures
import os
import socket
import subprocess
import threading
import unittest
import urllib.parse
import uuid

import harness
from harness import http, psql, require_env, wait_until
from test_operations import hold_lock

SECRET = "api-promises-secret"
POOL = 4  # PANEL_API_DB_POOL_SIZE


class PgProxy:
    """A TCP proxy to PostgreSQL; down() drops every connection and refuses new ones."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.lock = threading.Lock()
        self.conns = []
        self.is_up = True
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if not self.is_up:
                    c.close()
                    continue
                try:
                    s = socket.create_connection(self.target, timeout=5)
                    s.settimeout(None)
                except OSError:
                    c.close()
                    continue
                self.conns += [c, s]
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self):
        with self.lock:
            self.is_up = False
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                except OSError:
                    pass
            self.conns = []

    def up(self):
        with self.lock:
            self.is_up = True

    def close(self):
        self.down()
        self.sock.close()


class ApiPromises(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_env()
        u = urllib.parse.urlsplit(os.environ["PANEL_PG_URL"])
        cls.proxy = PgProxy(u.port)
        cls.api = harness.Process("panel-api", env={
            "PANEL_AUTH_URL": "http://127.0.0.1:9", "PANEL_MERGER_URL": "http://127.0.0.1:9",
            "PANEL_SERVICE_SECRET": SECRET, "PANEL_API_DB_POOL_SIZE": str(POOL),
            "PANEL_PG_URL": u._replace(netloc=f"{u.username}@127.0.0.1:{cls.proxy.port}")
            .geturl()})
        cls.tenant = harness.new_tenant("apip")
        cls.key = subprocess.run([harness.binary("panelctl"), "apikey-create", cls.tenant,
                                  "admin", "e2e"], check=True, capture_output=True,
                                 text=True).stdout.strip()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.proxy.close()

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {self.key}"}
        h.update(headers or {})
        return http(method, self.api.url + path, body, headers=h)

    def concurrent_gets(self):
        """Statuses of 3 x POOL requests made POOL at a time: every pooled connection used."""
        with concurrent.futures.ThreadPoolExecutor(POOL) as ex:
            return sorted(ex.map(lambda _: self.call("GET", "/v1/people")[0], range(3 * POOL)))

    def ready(self):
        return http("GET", self.api.url + "/readyz", timeout=5)[0]

    def test_second_request_with_a_running_key_gets_409_request_in_progress(self):
        key = "create-" + uuid.uuid4().hex
        serial = "IDEM-" + uuid.uuid4().hex[:8]
        body = {"serial_number": serial, "model": "Chromebook 314"}
        first = {}
        locker = hold_lock("assets", 20)  # the first request claims its key, then waits
        try:
            t = threading.Thread(target=lambda: first.update(reply=self.call(
                "POST", "/v1/assets", body, {"Idempotency-Key": key})))
            t.start()
            wait_until(lambda: psql("SELECT status FROM idempotency_keys WHERE tenant_id = :'t'"
                                    " AND idem_key = :'k'", t=self.tenant, k=key) == [["0"]],
                       timeout=10, what="the first request to claim its key")
            status, headers, err = self.call("POST", "/v1/assets", body,
                                             {"Idempotency-Key": key})
            self.assertEqual((status, err["error"]["code"]), (409, "request_in_progress"), err)
            self.assertEqual(err["error"]["request_id"], headers.get("X-Request-Id"))
        finally:
            locker.stdin.close()
            locker.wait(30)
        t.join(30)
        status, _, created = first["reply"]
        self.assertEqual(status, 201, created)
        status, headers, again = self.call("POST", "/v1/assets", body, {"Idempotency-Key": key})
        self.assertEqual((status, headers.get("Idempotent-Replayed")), (201, "true"))
        self.assertEqual(again, created)
        self.assertEqual(psql("SELECT count(*) FROM assets WHERE tenant_id = :'t'"
                              " AND serial_number = :'s'", t=self.tenant, s=serial),
                         [["1"]])

    def test_503_unavailable_while_the_database_is_down(self):
        self.assertEqual(self.call("GET", "/v1/people")[0], 200)
        self.assertEqual(self.concurrent_gets(), [200] * (3 * POOL))
        self.proxy.down()
        try:
            status, headers, body = self.call("GET", "/v1/people")
            self.assertEqual((status, body["error"]["code"]), (503, "unavailable"), body)
            self.assertEqual(body["error"]["request_id"], headers.get("X-Request-Id"))
            wait_until(lambda: self.ready() == 503, timeout=20, what="/readyz 503")
            self.assertIsNone(self.api.proc.poll(), "the api stays up")
        finally:
            self.proxy.up()
        wait_until(lambda: self.ready() == 200, timeout=20, what="/readyz 200")
        # back: every request succeeds, on whichever pooled connection it gets (more requests
        # than the pool has connections, each of which PostgreSQL's outage closed)
        self.assertEqual(self.concurrent_gets(), [200] * (3 * POOL))

    def test_readyz_is_503_while_the_schema_is_not_this_builds(self):
        self.assertEqual(self.ready(), 200)
        newer = int(psql("SELECT max(version) FROM schema_migrations")[0][0]) + 1
        psql("INSERT INTO schema_migrations (version, name) VALUES (:'v', 'test_readyz')",
             v=str(newer))
        try:
            wait_until(lambda: self.ready() == 503, timeout=20,
                       what="/readyz 503 on a newer schema")
        finally:
            psql("DELETE FROM schema_migrations WHERE version = :'v'", v=str(newer))
        wait_until(lambda: self.ready() == 200, timeout=20, what="/readyz 200 again")


if __name__ == "__main__":
    unittest.main()
