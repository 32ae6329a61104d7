#!/usr/bin/env python3
"""make demo: the whole suite on the cloud emulator, on this machine.

Starts a project-local PostgreSQL and Kafka (scripts/infra.sh), applies migrations, creates
topics, starts the emulator with a generated district and the five services, creates an admin
API key, connects Google and Microsoft through the emulator's consent, waits for the first
sync and prints what it imported. Ctrl-C stops everything it started.

  python3 scripts/demo.py                 (what `make demo` runs)
  DEMO_PEOPLE=20000 DEMO_DEVICES=3000 make demo
  python3 scripts/demo.py --exit-after-sync   print the summary, stop everything, exit

The services inherit this environment, so any of their settings can be given on the command
line, e.g. PANEL_MERGER_WORKERS=4 make demo (unset: the service's own default applies).
"""
import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
PLAIN_BIN = BIN
TENANT = "demo"
DISTRICT = "demo"
ADMIN = f"admin@{DISTRICT}.k12.example"


def service_binary(name):
    """panel-<name>: from the sanitizer build when the tests ask for it (tests/run.py sets
    PANEL_SAN_BUILD and PANEL_SAN_PROGRAMS) and no caller chose another BIN, else from BIN."""
    prog = "panel-" + name
    san = os.environ.get("PANEL_SAN_BUILD")
    if BIN == PLAIN_BIN and san and prog in os.environ.get("PANEL_SAN_PROGRAMS", "").split():
        return os.path.join(san, "bin", prog)
    return os.path.join(BIN, prog)


def say(msg):
    print(msg, flush=True)


def port_free(port):
    """Nobody listens on it (connections left in TIME_WAIT do not count, as for the
    services, which bind with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_port(preferred):
    if preferred and port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceSecrets:
    """One secret per calling service (docs/security.md): each caller gets its own as
    PANEL_SERVICE_SECRET; auth and the merger get the list of the callers they accept."""
    CALLERS = ("api", "google-sync", "azure-sync")

    def __init__(self, make=None):
        make = make or (lambda caller: secrets.token_hex(24))
        self.values = {caller: make(caller) for caller in self.CALLERS}

    def header(self, caller):
        return {"Authorization": "Bearer " + self.values[caller]}

    def env(self, service):
        """The variables service needs: its own secret and/or its callers' secrets."""
        out = {}
        if service in self.values:
            out["PANEL_SERVICE_SECRET"] = self.values[service]
        if service == "auth":
            out["PANEL_AUTH_CALLER_SECRETS"] = ",".join(
                f"{c}:{self.values[c]}" for c in self.CALLERS)
        if service == "merger":
            out["PANEL_MERGER_CALLER_SECRETS"] = "api:" + self.values["api"]
        return out


def http(method, url, body=None, headers=None, timeout=30, follow=True):
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r:
            raw, status, rh = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, rh = e.read(), e.code, e.headers
    try:
        return status, rh, json.loads(raw) if raw else None
    except ValueError:
        return status, rh, raw


def browser_get(url, jar):
    """One GET as a browser makes it: the cookies in jar are sent and the ones the reply sets
    are kept (every service of the demo is on 127.0.0.1, and cookies are scoped to the host,
    not the port). (status, Location)."""
    req = urllib.request.Request(url, headers={"Cookie": "; ".join(
        f"{k}={v}" for k, v in jar.items())} if jar else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
            status, rh = r.status, r.headers
    except urllib.error.HTTPError as e:
        status, rh = e.code, e.headers
    for line in rh.get_all("Set-Cookie") or []:
        name, _, rest = line.partition("=")
        if "Max-Age=0" in line:
            jar.pop(name, None)
        else:
            jar[name] = rest.split(";")[0]
    return status, rh.get("Location")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Demo:
    """The suite on this machine. bench/run.py subclasses it (other tenant, district and
    consent); the defaults are the demo's."""
    tenant = TENANT
    district = DISTRICT
    consent = "page"

    def __init__(self, args):
        self.args = args
        self.run_dir = args.run_dir
        self.procs = []
        self.service_secrets = None  # set by services()
        self.env = dict(os.environ)
        self.env["PANEL_RUN_DIR"] = self.run_dir
        os.makedirs(os.path.join(self.run_dir, "logs"), exist_ok=True)

    # ------------------------------------------------------------ helpers
    def persistent_secret(self, name, make):
        """Secrets survive a second `make demo`, so stored grants still decrypt."""
        path = os.path.join(self.run_dir, name)
        if os.path.exists(path):
            return open(path).read().strip()
        value = make()
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(value)
        return value

    def sh(self, args, **kw):
        return subprocess.run(args, cwd=ROOT, env=self.env, check=True, text=True,
                              capture_output=True, **kw)

    def start(self, name, port, extra, log_name=None):
        """Start panel-<name> and wait for its /readyz. extra: variables to set, a None value
        removes one this process's environment would pass on (the service's default then
        applies). log_name: the log file's stem (default name; a second replica needs its own
        to tell its lines apart)."""
        env = dict(self.env)
        env["PANEL_HTTP_PORT"] = str(port)
        if self.service_secrets:
            env.update(self.service_secrets.env(name))
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        log_path = os.path.join(self.run_dir, "logs", f"{log_name or name}.log")
        log = open(log_path, "ab")
        p = subprocess.Popen([service_binary(name)], cwd=ROOT, env=env,
                             stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs.append((name, p))
        with open(os.path.join(self.run_dir, "pids"), "a") as f:
            f.write(f"{p.pid} {name}\n")
        deadline = time.time() + 60
        while time.time() < deadline:
            if p.poll() is not None:
                raise SystemExit(f"panel-{name} exited ({p.returncode}); see {log_path}")
            try:
                if http("GET", f"http://127.0.0.1:{port}/readyz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"panel-{name} not ready after 60 s; see {log_path}")

    def stop_all(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in reversed(self.procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        try:
            os.unlink(os.path.join(self.run_dir, "pids"))
        except OSError:
            pass
        if getattr(self.args, "reuse_infra", False):
            return
        subprocess.run(["sh", "scripts/infra.sh", "down"], cwd=ROOT, env=self.env,
                       capture_output=True)

    def reap_leftovers(self):
        """A previous demo killed hard may have left services running: stop them."""
        path = os.path.join(self.run_dir, "pids")
        if not os.path.exists(path):
            return
        for line in open(path):
            pid = int(line.split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        time.sleep(1)
        os.unlink(path)

    def psql(self, sql):
        # psql_url: another role's connection to the same database (bench/run.py's own role,
        # so that its queries can be told apart from the suite's in pg_stat_statements).
        url = getattr(self, "psql_url", None) or self.env["PANEL_PG_URL"]
        p = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-F",
                            "\t", "-c", sql], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(p.stderr)
        return [line.split("\t") for line in p.stdout.splitlines() if line]

    # ------------------------------------------------------------ steps
    def infra(self):
        if getattr(self.args, "reuse_infra", False):
            # The tests: PostgreSQL and Kafka are already up (PANEL_PG_URL, PANEL_KAFKA_BROKERS).
            if not (self.env.get("PANEL_PG_URL") and self.env.get("PANEL_KAFKA_BROKERS")):
                raise SystemExit("--reuse-infra needs PANEL_PG_URL and PANEL_KAFKA_BROKERS")
        else:
            say("==> starting PostgreSQL and Kafka (scripts/infra.sh) ...")
            self.sh(["sh", "scripts/infra.sh", "up"])
            for line in open(os.path.join(self.run_dir, "env")):
                line = line.strip()
                if line.startswith("export "):
                    k, v = line[7:].split("=", 1)
                    self.env[k] = v.strip("'\"")
        self.sh([os.path.join(BIN, "panelctl"), "migrate"])
        self.sh([os.path.join(BIN, "panelctl"), "topics"])
        self.sh([os.path.join(BIN, "panelctl"), "tenant-add", self.tenant,
                 "Demo Unified School District"])

    def services(self):
        a = self.args
        # The tests and the benchmark (args.any_port) take any free ports, so they never meet
        # a running demo, nor each other.
        any_port = getattr(self.args, "reuse_infra", False) or getattr(self.args, "any_port",
                                                                        False)
        self.ports = {name: pick_port(0 if any_port else default) for name, default in
                      (("api", 8080), ("auth", 8081), ("google-sync", 8082),
                       ("azure-sync", 8083), ("merger", 8084), ("emulator", 8090),
                       ("emulator-admin", 8091))}
        emu = f"http://127.0.0.1:{self.ports['emulator']}"
        self.emu_admin = f"http://127.0.0.1:{self.ports['emulator-admin']}"
        self.service_secrets = ServiceSecrets(lambda caller: self.persistent_secret(
            "service-secret-" + caller, lambda: secrets.token_hex(24)))
        auth_key = self.persistent_secret("auth-key", lambda: "k1:" + secrets.token_hex(32))
        self.env.update({
            "PANEL_AUTH_URL": f"http://127.0.0.1:{self.ports['auth']}",
            "PANEL_MERGER_URL": f"http://127.0.0.1:{self.ports['merger']}",
            "PANEL_GOOGLE_AUTH_URL": emu + "/o/oauth2/v2/auth",
            "PANEL_GOOGLE_TOKEN_URL": emu + "/token",
            "PANEL_GOOGLE_REVOKE_URL": emu + "/revoke",
            "PANEL_GOOGLE_API_URL": emu,
            "PANEL_MS_LOGIN_URL": emu,
            "PANEL_GOOGLE_ISSUER": emu,
            "PANEL_GRAPH_URL": emu,
            "PANEL_GOOGLE_CLIENT_ID": "panel-google-client",
            "PANEL_GOOGLE_CLIENT_SECRET": "panel-google-secret",
            "PANEL_MS_CLIENT_ID": "panel-ms-client",
            "PANEL_MS_CLIENT_SECRET": "panel-ms-secret",
            # The demo serves plain http on 127.0.0.1: session cookies cannot be Secure there.
            "PANEL_COOKIE_SECURE": "false",
            "PANEL_AUTH_PUBLIC_URL": f"http://127.0.0.1:{self.ports['auth']}",
        })
        district = (f"{self.district}:people={a.people},azure_people={a.azure_people},"
                    f"shared={a.shared},devices={a.devices},ous={a.ous},seed=7")
        say(f"==> starting the cloud emulator with district '{self.district}' ({a.people} Google "
            f"people, {a.azure_people} Azure people, {a.shared} in both, {a.devices} "
            "Chromebooks) ...")
        self.start("emulator", self.ports["emulator"], {
            "PANEL_EMULATOR_ADMIN_PORT": str(self.ports["emulator-admin"]),
            "PANEL_EMULATOR_DISTRICTS": district,
            "PANEL_EMULATOR_CONSENT": self.consent})
        say("==> starting auth, google-sync, azure-sync, merger, api ...")
        api_url = f"http://127.0.0.1:{self.ports['api']}/"
        self.start("auth", self.ports["auth"], {
            "PANEL_AUTH_KEYS": auth_key, "PANEL_AUTH_ACTIVE_KEY_ID": "k1",
            "PANEL_ADMIN_URL": api_url})
        self.start("merger", self.ports["merger"], {})
        self.start("google-sync", self.ports["google-sync"], {})
        self.start("azure-sync", self.ports["azure-sync"], {})
        self.start("api", self.ports["api"], {})
        self.api_url = api_url

    def api_key(self):
        path = os.path.join(self.run_dir, "api-key")
        if os.path.exists(path):
            return open(path).read().strip()
        out = self.sh([os.path.join(BIN, "panelctl"), "apikey-create", self.tenant, "admin",
                       "make demo"]).stdout
        key = next(w for w in out.split() if w.startswith("pk_"))
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(key)
        return key

    def first_admin(self, tenant=None, email=None):
        """The district admin may sign in to the admin page (panelctl admin-add, once).
        Defaults: this suite's tenant and its district's admin."""
        tenant = tenant or self.tenant
        email = email or f"admin@{self.district}.k12.example"
        p = subprocess.run([os.path.join(BIN, "panelctl"), "admin-add", tenant, email,
                            "admin"], cwd=ROOT, env=self.env, text=True, capture_output=True)
        if p.returncode != 0 and "already" not in p.stderr:
            raise SystemExit(f"panelctl admin-add failed: {p.stderr}")
        return email

    def signin(self, provider, tenant, admin):
        """Sign in to the admin page as the admin does: "Sign in with Google/Microsoft" goes
        to auth's /signin, the emulator's sign-in page picks the admin's account, auth's
        callback sets the session cookie. Returns the browser's cookie jar."""
        jar = {}
        url = (f"{self.env['PANEL_AUTH_PUBLIC_URL']}/signin/{provider}?"
               + urllib.parse.urlencode({"tenant": tenant}))
        status, at_provider = browser_get(url, jar)
        if status != 302 or not at_provider:
            raise SystemExit(f"auth did not start the {provider} sign-in (HTTP {status})")
        status, callback = browser_get(at_provider + "&" + urllib.parse.urlencode(
            {"login_hint": admin, "emulator_decision": "allow"}), jar)
        if status not in (302, 303) or not callback:
            raise SystemExit(f"the emulator's {provider} sign-in did not redirect (HTTP {status})")
        status, landed = browser_get(callback, jar)
        if status != 302 or "panel_session" not in jar:
            raise SystemExit(f"the {provider} sign-in of {admin} failed: {landed}")
        return jar

    def connect(self, provider, tenant=None, admin=None):
        """Do what an admin does in the browser: sign in (with Microsoft to connect Microsoft:
        its directory is the one of the admin's own account), Authorize on the admin page,
        then Allow on the consent page. Defaults: this suite's tenant and its district's
        admin."""
        tenant = tenant or self.tenant
        admin = admin or f"admin@{self.district}.k12.example"
        auth = self.env["PANEL_AUTH_URL"]
        hdr = self.service_secrets.header("api")  # what the api does for an admin
        status, _, conns = http("GET", f"{auth}/internal/tenants/{tenant}/connections",
                                headers=hdr)
        want = "google" if provider == "google" else "azure"
        if status == 200 and any(c.get("provider") == want and c.get("status") == "connected"
                                 for c in conns.get("connections", [])):
            say(f"    {provider}: already connected")
            return
        self.first_admin(tenant, admin)
        jar = self.signin(provider, tenant, admin)
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        status, _, session = http("GET", self.api_url + "v1/session", headers=cookie)
        if status != 200:
            raise SystemExit(f"the api does not know the new session (HTTP {status}): {session}")
        status, _, body = http("POST", self.api_url + f"v1/connections/{provider}/authorize", {},
                               headers=dict(cookie, **{"X-CSRF-Token": session["csrf_token"]}))
        if status != 200:
            raise SystemExit(f"the api refused to start the {provider} authorization: {body}")
        consent = body["consent_url"]
        consent += ("&" if "?" in consent else "?") + urllib.parse.urlencode(
            {"login_hint": admin, "emulator_decision": "allow"})
        status, callback = browser_get(consent, jar)
        if status not in (302, 303) or not callback:
            raise SystemExit(f"the emulator's consent did not redirect (HTTP {status})")
        status, landed = browser_get(callback, jar)
        if status not in (302, 303) or "result=connected" not in (landed or ""):
            raise SystemExit(f"the {provider} callback failed (HTTP {status}): {landed}")
        say(f"    {provider}: connected by {admin} (read-only scopes), first sync requested")

    def wait_first_sync(self):
        say("==> waiting for the first sync (Google, then Microsoft) ...")
        deadline = time.time() + self.args.timeout
        last = ""
        while time.time() < deadline:
            runs = {r[0]: r[1] for r in self.psql(
                "SELECT DISTINCT ON (source) source, status FROM sync_runs "
                f"WHERE tenant_id = '{self.tenant}' ORDER BY source, requested_at DESC")}
            people = self.psql(f"SELECT count(*) FROM people WHERE tenant_id = '{self.tenant}' "
                               "AND removed_at IS NULL")[0][0]
            assets = self.psql(f"SELECT count(*) FROM assets WHERE tenant_id = '{self.tenant}'")[0][0]
            line = (f"    google: {runs.get('google', 'waiting')}, azure: "
                    f"{runs.get('azure', 'waiting')}; people {people}, assets {assets}")
            if line != last:
                say(line)
                last = line
            if runs.get("google") in ("failed",) or runs.get("azure") in ("failed",):
                raise SystemExit("a run failed; see sync_runs and the logs in "
                                 f"{self.run_dir}/logs")
            done = {"completed", "held", "approved"}
            if runs.get("google") in done and runs.get("azure") in done:
                # The outbox may still be publishing; the data is in.
                return
            time.sleep(1)
        raise SystemExit(f"the first sync did not finish within {self.args.timeout} s")

    def summary(self, key, admin):
        q = self.psql
        people = q(f"SELECT count(*), count(*) FILTER (WHERE sources @> '{{google,azure}}'), "
                   f"count(*) FILTER (WHERE sources = '{{google}}'), "
                   f"count(*) FILTER (WHERE sources = '{{azure}}') FROM people "
                   f"WHERE tenant_id = '{self.tenant}' AND removed_at IS NULL")[0]
        ous = q(f"SELECT count(*) FROM org_units WHERE tenant_id = '{self.tenant}' "
                "AND removed_at IS NULL")[0][0]
        assets = q(f"SELECT count(*), count(*) FILTER (WHERE google_status = 'ACTIVE') "
                   f"FROM assets WHERE tenant_id = '{self.tenant}'")[0]
        example = q(
            "SELECT p.email_norm, g.fields->>'display_name', a.fields->>'display_name', "
            "p.display_name FROM people p "
            "JOIN person_sources g ON g.tenant_id = p.tenant_id AND g.person_id = p.person_id "
            "  AND g.source = 'google' "
            "JOIN person_sources a ON a.tenant_id = p.tenant_id AND a.person_id = p.person_id "
            "  AND a.source = 'azure' "
            f"WHERE p.tenant_id = '{self.tenant}' AND g.fields->>'display_name' <> "
            "a.fields->>'display_name' LIMIT 1")
        say("")
        say("K12 Panel Cloud Sync is running on the cloud emulator.")
        say(f"  People:  {people[0]} ({people[1]} in both clouds, {people[2]} Google only, "
            f"{people[3]} Azure only)")
        say(f"  OUs:     {ous}")
        say(f"  Assets:  {assets[0]} Chromebooks ({assets[1]} active)")
        if example:
            e = example[0]
            say(f"  Merge:   {e[0]} is \"{e[1]}\" in Google and \"{e[2]}\" in Azure -> "
                f"shown as \"{e[3]}\" (Azure's value wins)")
        say(f"  Admin page: {self.api_url}")
        say(f"    sign in with Google or Microsoft as {admin} (the emulator's sign-in page)")
        say(f"  API key:    {key}   (for scripts: Authorization: Bearer <key>)")
        say(f"  Emulator:   http://127.0.0.1:{self.ports['emulator']} (control: {self.emu_admin})")
        say(f"  Logs:       {self.run_dir}/logs/")
        say("")

    def run(self):
        self.reap_leftovers()
        self.infra()
        self.services()
        key = self.api_key()
        admin = self.first_admin()
        say("==> connecting the clouds as the district admin would ...")
        self.connect("google")
        self.connect("microsoft")
        self.wait_first_sync()
        self.summary(key, admin)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    ap.add_argument("--run-dir", default=env("DEMO_RUN_DIR", os.path.join(ROOT, ".run", "demo")))
    ap.add_argument("--people", type=int, default=int(env("DEMO_PEOPLE", "3000")))
    ap.add_argument("--azure-people", type=int, default=int(env("DEMO_AZURE_PEOPLE", "2000")))
    ap.add_argument("--shared", type=int, default=int(env("DEMO_SHARED", "1500")))
    ap.add_argument("--devices", type=int, default=int(env("DEMO_DEVICES", "400")))
    ap.add_argument("--ous", type=int, default=int(env("DEMO_OUS", "60")))
    ap.add_argument("--timeout", type=int, default=int(env("DEMO_TIMEOUT", "300")))
    ap.add_argument("--exit-after-sync", action="store_true")
    ap.add_argument("--reuse-infra", action="store_true",
                    help="use the PostgreSQL and Kafka named by PANEL_PG_URL and "
                         "PANEL_KAFKA_BROKERS instead of starting them")
    args = ap.parse_args()
    for name in ("panelctl", "panel-emulator", "panel-auth", "panel-api"):
        if not os.access(os.path.join(BIN, name), os.X_OK):
            raise SystemExit(f"{BIN}/{name} is missing: run `make` first")
    demo = Demo(args)
    stopping = {"now": False}

    def on_signal(signum, frame):
        stopping["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    # Explicitly: a demo started from a non-interactive shell with '&' inherits SIGINT ignored,
    # and Python then leaves it ignored, so Ctrl-C (or kill -INT) would do nothing.
    signal.signal(signal.SIGINT, on_signal)
    try:
        demo.run()
        if args.exit_after_sync:
            return 0
        say("Press Ctrl-C to stop everything.")
        while True:
            for name, p in demo.procs:
                if p.poll() is not None:
                    say(f"panel-{name} exited ({p.returncode}); stopping the demo. See "
                        f"{demo.run_dir}/logs/{name}.log")
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        say("\n==> stopping ...")
        return 0
    finally:
        demo.stop_all()
        say("==> stopped; nothing left running.")


if __name__ == "__main__":
    sys.exit(main())
