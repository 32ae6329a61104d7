"""Shared helpers for the end-to-end tests: start the project's binaries on free ports, talk
HTTP, query PostgreSQL with psql, read topics with panelctl. Standard library only.

The environment comes from tests/run.py: PANEL_PG_URL, PANEL_KAFKA_BROKERS, PANEL_BUILD, and
for the sanitizer build PANEL_SAN_BUILD (build/asan, just built), PANEL_SAN_PROGRAMS (which
programs run from it) and PANEL_SAN_REPORTS (the directory their ASan/UBSan/LSan reports go
to, one file per process: report.<pid>). A report fails the test (see sanitizer_reports)."""
import glob
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PANEL_BUILD", os.path.join(ROOT, "build"))
LOG_DIR = os.path.join(ROOT, ".run", "test", "logs")
SAN_BUILD = os.environ.get("PANEL_SAN_BUILD", "")
SAN_PROGRAMS = set(os.environ.get("PANEL_SAN_PROGRAMS", "").split())
SAN_REPORTS = os.environ.get("PANEL_SAN_REPORTS", "")
_claimed_reports = set()
_processes = []  # every Process started, so that tests/run.py can stop those left running


def require_env():
    """The e2e tests need the servers tests/run.py starts; fail loudly, never skip."""
    for name in ("PANEL_PG_URL", "PANEL_KAFKA_BROKERS"):
        if not os.environ.get(name):
            raise RuntimeError(f"{name} is not set: run the tests through `make test` "
                               "(tests/run.py starts PostgreSQL and Kafka)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name, plain=False):
    """The program to run: from the sanitizer build when tests/run.py built it and name is one
    of PANEL_SAN_PROGRAMS (unless a test pointed BUILD elsewhere or asks for the plain build:
    a measurement of memory or time the sanitizer distorts), else from BUILD."""
    if (SAN_BUILD and not plain and name in SAN_PROGRAMS
            and BUILD == os.environ.get("PANEL_BUILD", BUILD)):
        return os.path.join(SAN_BUILD, "bin", name)
    return os.path.join(BUILD, "bin", name)


def sanitizer_reports(pid=None):
    """Sanitizer reports (path, text) not yet returned, of one process or of any; each is
    returned once, so that one report fails exactly one test."""
    if not SAN_REPORTS:
        return []
    found = []
    pattern = f"report.{pid}" if pid is not None else "report.*"
    for path in sorted(glob.glob(os.path.join(SAN_REPORTS, pattern))):
        if path in _claimed_reports:
            continue
        _claimed_reports.add(path)
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        if text.strip():
            found.append((path, text))
    return found


def assert_no_sanitizer_report(name, pid):
    reports = sanitizer_reports(pid)
    if reports:
        raise AssertionError(f"{name} (pid {pid}) wrote a sanitizer report:\n" + "\n".join(
            f"{path}:\n{text[-8000:]}" for path, text in reports))


def new_tenant(prefix="t"):
    """A fresh tenant id (created in PostgreSQL), so tests never see each other's data."""
    tenant = f"{prefix}-{uuid.uuid4().hex[:12]}"
    subprocess.run([binary("panelctl"), "tenant-add", tenant], check=True,
                   capture_output=True, text=True)
    return tenant


def admin_account(tenant, email, role="admin", allow_google=True, allow_microsoft=True,
                  created_by="panelctl"):
    """An admin_accounts row (as panelctl admin-add or POST /v1/admins makes it); its id."""
    return psql("INSERT INTO admin_accounts (tenant_id, email, role, allow_google, "
                "allow_microsoft, created_by) VALUES (:'t', :'e', :'r', :'g'::boolean, "
                ":'m'::boolean, :'c') RETURNING account_id",
                t=tenant, e=email.lower(), r=role, g=str(allow_google).lower(),
                m=str(allow_microsoft).lower(), c=created_by)[0][0]


def new_session(tenant, email, role="admin", provider="google", account_id=None,
                expires_in_s=12 * 3600, idle_s=0, provider_tenant=None):
    """A signed-in session made the way auth's sign-in makes one (lib/session): a random
    32-byte id as base64url (the cookie panel_session), stored only as its SHA-256 hex in
    admin_sessions, for an admin_accounts row (created with role unless account_id is given).
    idle_s backdates last_seen_at; expires_in_s may be negative (already expired);
    provider_tenant is the verified Microsoft tid (or Google hd) of the sign-in.
    Returns (session_id, account_id)."""
    import base64
    import hashlib
    if account_id is None:
        account_id = admin_account(tenant, email, role)
    sid = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    id_hash = hashlib.sha256(sid.encode()).hexdigest()
    psql("INSERT INTO admin_sessions (id_hash, tenant_id, account_id, provider, subject, email, "
         "last_seen_at, expires_at, provider_tenant) VALUES (:'h', :'t', :'a', :'p', :'s', :'e', "
         "now() - make_interval(secs => :'idle'::int), "
         "now() + make_interval(secs => :'exp'::int), nullif(:'pt', ''))",
         h=id_hash, t=tenant, a=account_id, p=provider, s="sub-" + id_hash[:16], e=email.lower(),
         idle=str(idle_s), exp=str(expires_in_s), pt=provider_tenant or "")
    return sid, account_id


def session_csrf(session_id):
    """The session's X-CSRF-Token as lib/session derives it: base64url(HMAC-SHA256(id,
    "panel-csrf")) without padding."""
    import base64
    import hashlib
    import hmac
    mac = hmac.new(session_id.encode(), b"panel-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class Process:
    """A project binary running in the background with its stderr in a log file."""

    def __init__(self, name, env=None, args=(), port=None, ready_path="/readyz",
                 ready_timeout=30, plain=False):
        os.makedirs(LOG_DIR, exist_ok=True)
        self.name = name
        self.plain = plain  # the plain build even in a sanitized run (see binary())
        self.port = port or free_port()
        self.env = dict(os.environ)
        self.env["PANEL_HTTP_PORT"] = str(self.port)
        self.env.update(env or {})
        self.log_path = os.path.join(LOG_DIR, f"{name}-{self.port}.log")
        self.args = list(args)
        self.proc = None
        _processes.append(self)
        self.start(ready_path, ready_timeout)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path="/readyz", ready_timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary(self.name, self.plain)] + self.args, env=self.env,
                                     stdout=log, stderr=log, cwd=ROOT)
        log.close()
        if ready_path:
            self.wait_ready(ready_path, ready_timeout)

    def wait_ready(self, path="/readyz", timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                status, _, _ = http("GET", self.url + path, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n" + self.log_tail())

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit code (SIGKILL after timeout). Raises
        AssertionError when the process wrote a sanitizer report (a leak found at exit, or an
        error that ended it earlier)."""
        if not self.proc or self.proc.poll() is not None:
            if self.proc:
                assert_no_sanitizer_report(self.name, self.proc.pid)
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{self.name} did not stop within {timeout}s of SIGTERM")
        assert_no_sanitizer_report(self.name, self.proc.pid)
        return code

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            assert_no_sanitizer_report(self.name, self.proc.pid)


def serve_stub(handler):
    """An HTTP stub (a BaseHTTPRequestHandler class) on a free port, served by a daemon
    thread; the returned ThreadingHTTPServer has .url. Stop it with .shutdown()."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def api_with_stub(handler, secret, env=None):
    """panel-api whose auth and merger are one stub of their internal routes (handler, see
    serve_stub), both reached with the service secret; env adds to the api's environment.
    Returns (stub, api): stop the api, then shut the stub down."""
    stub = serve_stub(handler)
    try:
        api = Process("panel-api", env=dict({"PANEL_AUTH_URL": stub.url,
                                             "PANEL_MERGER_URL": stub.url,
                                             "PANEL_SERVICE_SECRET": secret}, **(env or {})))
    except BaseException:
        stub.shutdown()
        raise
    return stub, api


def stop_leftovers():
    """Stop (SIGTERM) every Process a test left running, so that LeakSanitizer checks it too;
    returns [(name, what, failed)]: failed when it wrote a report or did not stop."""
    problems = []
    for p in _processes:
        if p.proc and p.proc.poll() is None:
            try:
                p.stop()
                problems.append((p.name, "left running by its test (stopped at the end)", False))
            except (AssertionError, RuntimeError) as e:
                problems.append((p.name, str(e), True))
    return problems


def http(method, url, body=None, headers=None, timeout=30):
    """Returns (status, headers, parsed JSON or raw bytes)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status, rh = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, rh = e.read(), e.code, dict(e.headers)
    ctype = rh.get("Content-Type", "")
    if "json" in ctype and raw:
        return status, rh, json.loads(raw)
    return status, rh, raw


def metric_series(proc, name):
    """{labels: value} of every series of the metric name on proc's /metrics (labels: the
    text between the braces, "" for the unlabelled series). Values as Prometheus writes
    them: 3, 1.2e-05, -0.5, +Inf, NaN."""
    _, _, body = http("GET", proc.url + "/metrics", timeout=5)
    text = body.decode() if isinstance(body, bytes) else str(body)
    series = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        if head == name:
            series[""] = float(value)
        elif head.startswith(name + "{") and head.endswith("}"):
            series[head[len(name) + 1:-1]] = float(value)
    return series


def metric(proc, name, labels=""):
    """The value of the series name{labels} (labels "": the unlabelled one) on proc's
    /metrics, or None while it is not shown."""
    return metric_series(proc, name).get(labels)


def metric_sum(proc, name):
    """The sum of every series of a counter (0 while none is shown)."""
    return sum(metric_series(proc, name).values())


def psql(sql, **params):
    """Run SQL through psql (variables as :'name'); returns rows as lists of strings."""
    args = ["psql", os.environ["PANEL_PG_URL"], "-X", "-q", "-A", "-t", "-F", "\x1f",
            "-v", "ON_ERROR_STOP=1"]
    for k, v in params.items():
        args += ["-v", f"{k}={v}"]
    p = subprocess.run(args, input=sql, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"psql failed: {p.stderr}")
    return [line.split("\x1f") for line in p.stdout.splitlines() if line != ""]


def consume(topic, count=None, timeout_ms=5000, key_prefix=None):
    """Every event on topic from the beginning, as dicts with partition, offset, key, event
    (optionally only keys starting with key_prefix). Stops after timeout_ms of silence."""
    args = [binary("panelctl"), "consume", topic, "--timeout-ms", str(timeout_ms)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    out = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    if key_prefix is not None:
        out = [e for e in out if e.get("key", "").startswith(key_prefix)]
    if count is not None and len(out) < count:
        raise AssertionError(f"expected {count} events on {topic}, got {len(out)}")
    return out



def wait_outbox_drained(tenant, timeout=120):
    """Until every outbox row of tenant is published, so that what a test reads from a topic
    is everything the rows it asserts on made (never a read racing the relay)."""
    wait_until(lambda: psql("SELECT count(*) FROM outbox WHERE tenant_id = :'t' AND "
                            "sent_at IS NULL", t=tenant)[0][0] == "0",
               timeout=timeout, what=f"the outbox of {tenant} to be published")


def wait_until(predicate, timeout=30, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def start_emulator(districts="demo:people=50,azure_people=40,shared=30,devices=20,ous=12,seed=1",
                   consent="auto", env=None, port=None, admin_port=None):
    """A panel-emulator (see docs/emulator.md) on port and admin_port, free ones when None (a
    restart reuses the old ones); districts="" starts it with none (tests then add theirs), env
    adds to (and overrides) its settings. The returned Process also has .admin_url and
    .admin_port (the control listener) and .service_env (the PANEL_GOOGLE_*/PANEL_MS_*/
    PANEL_GRAPH_URL base URLs and app credentials a service needs to use it)."""
    admin_port = admin_port or free_port()
    e = {"PANEL_EMULATOR_ADMIN_PORT": str(admin_port), "PANEL_EMULATOR_DISTRICTS": districts,
         "PANEL_EMULATOR_CONSENT": consent}
    e.update(env or {})
    p = Process("panel-emulator", env=e, port=port)
    p.admin_url = f"http://127.0.0.1:{admin_port}"
    p.admin_port = admin_port
    p.service_env = {
        "PANEL_GOOGLE_AUTH_URL": p.url + "/o/oauth2/v2/auth",
        "PANEL_GOOGLE_TOKEN_URL": p.url + "/token",
        "PANEL_GOOGLE_REVOKE_URL": p.url + "/revoke",
        "PANEL_GOOGLE_API_URL": p.url,
        "PANEL_MS_LOGIN_URL": p.url,
        "PANEL_GOOGLE_ISSUER": p.url,
        "PANEL_GRAPH_URL": p.url,
        "PANEL_GOOGLE_CLIENT_ID": e.get("PANEL_EMULATOR_GOOGLE_CLIENT_ID", "panel-google-client"),
        "PANEL_GOOGLE_CLIENT_SECRET": e.get("PANEL_EMULATOR_GOOGLE_CLIENT_SECRET",
                                            "panel-google-secret"),
        "PANEL_MS_CLIENT_ID": e.get("PANEL_EMULATOR_MS_CLIENT_ID", "panel-ms-client"),
        "PANEL_MS_CLIENT_SECRET": e.get("PANEL_EMULATOR_MS_CLIENT_SECRET", "panel-ms-secret"),
    }
    return p
