"""Helpers for the reliability and security tests: start auth and the merger with consistent
secrets, write synthetic fetcher runs (the Envelopes google-sync and azure-sync publish) and
publish them with panelctl, read a tenant's directory state as a canonical dump, and scan
texts for secrets. The browser-side HTTP (redirects not followed) is scripts/demo.py's."""
import json
import os
import secrets
import subprocess
import sys
import uuid

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "scripts"))
import demo  # noqa: E402  (the suite's wiring: http() with follow=False, env names)

SECRETS = demo.ServiceSecrets()  # one per calling service, as in production
SERVICE_SECRET = SECRETS.values["api"]  # the api's: what admin actions carry
AUTH_KEY_HEX = secrets.token_hex(32)
GOOGLE_CLIENT_SECRET = "gcs-" + secrets.token_hex(12)
MS_CLIENT_SECRET = "mcs-" + secrets.token_hex(12)


def retention_pruned(proc, table):
    """retention_pruned_rows_total{table=...} of a started service, or None before its first
    round."""
    return harness.metric(proc, "retention_pruned_rows_total", f'table="{table}"')


def count(sql, **params):
    """The number a one-value SELECT count(*) ... returns."""
    return int(harness.psql(sql, **params)[0][0])


def no_redirect_http(method, url, body=None, headers=None):
    """(status, headers, body) without following a redirect (demo.http)."""
    return demo.http(method, url, body, headers=headers, follow=False)


def auth_env(extra=None):
    env = {
        "PANEL_AUTH_CALLER_SECRETS": SECRETS.env("auth")["PANEL_AUTH_CALLER_SECRETS"],
        "PANEL_AUTH_KEYS": "k1:" + AUTH_KEY_HEX,
        "PANEL_AUTH_ACTIVE_KEY_ID": "k1",
        "PANEL_GOOGLE_CLIENT_ID": "panel-google-client",
        "PANEL_GOOGLE_CLIENT_SECRET": GOOGLE_CLIENT_SECRET,
        "PANEL_MS_CLIENT_ID": "panel-ms-client",
        "PANEL_MS_CLIENT_SECRET": MS_CLIENT_SECRET,
        # No emulator here: provider calls go to a closed port and fail as "unavailable".
        "PANEL_GOOGLE_AUTH_URL": "http://127.0.0.1:9/o/oauth2/v2/auth",
        "PANEL_GOOGLE_TOKEN_URL": "http://127.0.0.1:9/token",
        "PANEL_GOOGLE_REVOKE_URL": "http://127.0.0.1:9/revoke",
        "PANEL_MS_LOGIN_URL": "http://127.0.0.1:9",
        "PANEL_GOOGLE_ISSUER": "http://127.0.0.1:9",
        "PANEL_AUTH_SCHEDULER": "false",
    }
    env.update(extra or {})
    return env


def start_auth(extra=None, build=None):
    port = harness.free_port()
    env = auth_env(extra)
    env["PANEL_AUTH_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    return start("panel-auth", env, port, build)


def start_merger(extra=None, build=None):
    env = dict(SECRETS.env("merger"), PANEL_MERGER_BATCH_MS="50")
    env.update(extra or {})
    return start("panel-merger", env, None, build)


def start(name, env, port=None, build=None):
    """harness.Process, optionally from another build directory (build/asan)."""
    if build:
        old = harness.BUILD
        harness.BUILD = build
        try:
            return harness.Process(name, env=env, port=port)
        finally:
            harness.BUILD = old
    return harness.Process(name, env=env, port=port)


def service_header():
    """The api's credential (admin actions on auth and the merger)."""
    return SECRETS.header("api")


def fetcher_header(provider):
    """A fetcher's credential (provider access tokens for its own cloud)."""
    return SECRETS.header("google-sync" if provider == "google" else "azure-sync")


# ---------------------------------------------------------------- synthetic runs

def person(i, source, domain):
    sid = f"{source[0]}-{i:06d}"
    p = {"source_id": sid, "email": f"User.{i}@{domain}", "email_normalized": f"user.{i}@{domain}",
         "given_name": f"Given{i}", "family_name": f"Family{i}"}
    if source == "google":
        p["display_name"] = f"Robert {i}"
        p["org_unit_path"] = f"/Students/G{i % 7}"
        p["suspended"] = False
    else:
        p["display_name"] = f"Bob {i}"
        p["job_title"] = "Student"
    return p


def run_events(tenant, source, people, devices=0, ous=0, domain=None, run_id=None,
               complete=True, fail=False):
    """The Envelopes (as JSON dicts) of one full fetcher run, in publish order."""
    run_id = run_id or str(uuid.uuid4())
    domain = domain or f"{tenant}.k12.example"
    src = "SOURCE_GOOGLE" if source == "google" else "SOURCE_AZURE"
    head = {"tenant_id": tenant, "source": src, "run_id": run_id}
    evs = [dict(head, run_started={"kind": "RUN_KIND_FULL", "reason": "manual"})]
    for i in range(ous):
        evs.append(dict(head, org_unit_observed={"org_unit": {
            "org_unit_id": f"id:ou{i:04d}", "path": f"/Students/G{i}", "name": f"G{i}",
            "parent_path": "/Students"}}))
    for i in people:
        evs.append(dict(head, person_observed={"person": person(i, source, domain)}))
    for i in range(devices):
        evs.append(dict(head, device_observed={"device": {
            "device_id": f"dev-{i:05d}", "serial_number": f"SN{i:07d}", "model": "Chromebook 311",
            "status": "ACTIVE", "org_unit_path": f"/Students/G{i % max(ous, 1)}"}}))
    counts = {"people": len(people), "org_units": ous, "devices": devices}
    if fail:
        evs.append(dict(head, run_failed={"reason": "RUN_FAILURE_REASON_PROVIDER_ERROR",
                                          "message": "synthetic failure", "counts": counts}))
    elif complete:
        evs.append(dict(head, run_completed={"kind": "RUN_KIND_FULL", "counts": counts}))
    return evs


def publish(tenant, events, topic="panel.source.events"):
    data = "".join(json.dumps(e) + "\n" for e in events)
    p = subprocess.run([harness.binary("panelctl"), "publish", topic, tenant], input=data,
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"panelctl publish failed: {p.stderr}")


def run_status(tenant, run_id):
    rows = harness.psql("SELECT status FROM sync_runs WHERE tenant_id = :'t' AND run_id = :'r'",
                        t=tenant, r=run_id)
    return rows[0][0] if rows else None


def wait_run(tenant, run_id, statuses=("completed", "held", "failed"), timeout=120):
    return harness.wait_until(lambda: run_status(tenant, run_id) in statuses and
                              run_status(tenant, run_id), timeout=timeout,
                              what=f"run {run_id} of {tenant} to end")


class ServicePerClass:
    """A test class mixin: cls.proc is one service, started by START (e.g.
    staticmethod(start_auth)) once per class and stopped after it."""
    START = None

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.proc = cls.START()

    @classmethod
    def tearDownClass(cls):
        cls.proc.stop()


def wait_applied(tenant, runs, timeout=120):
    """Until every run (a list of run_events() lists) is completed and the outbox rows they
    made are published: what a test then reads is everything they made."""
    for evs in runs:
        wait_run(tenant, evs[0]["run_id"], ("completed",), timeout=timeout)
    harness.wait_outbox_drained(tenant)


def apply_run(tenant, events):
    """Publish one run's events (run_events()) to the running merger and wait_applied."""
    publish(tenant, events)
    wait_applied(tenant, [events])


# ---------------------------------------------------------------- state

CANONICAL_SQL = {
    # Generated ids (person_id, asset_id) and times differ between two runs; the dump keeps
    # what a user sees.
    "people": "SELECT email_norm, display_name, sources, (removed_at IS NULL) "
              "FROM people WHERE tenant_id = :'t' ORDER BY 1",
    "person_sources": "SELECT source, source_id, fields::text, (removed_at IS NULL) "
                      "FROM person_sources WHERE tenant_id = :'t' ORDER BY 1, 2",
    "org_units": "SELECT org_unit_id, path, (removed_at IS NULL) FROM org_units "
                 "WHERE tenant_id = :'t' ORDER BY 1",
    "assets": "SELECT device_id, serial_number, google_status, in_google FROM assets "
              "WHERE tenant_id = :'t' ORDER BY 1",
}


def canonical_dump(tenant):
    return {table: harness.psql(sql, t=tenant) for table, sql in CANONICAL_SQL.items()}


def public_events(tenant):
    """(topic, entity key, change kind, event id) of every public event of tenant."""
    out = []
    for topic in ("panel.people.events", "panel.assets.events", "panel.orgunits.events"):
        for e in harness.consume(topic, timeout_ms=3000, key_prefix=tenant + "/"):
            ev = e["event"]
            kind = next((v.get("kind") for k, v in ev.items()
                         if k.endswith("_changed") and isinstance(v, dict)), None)
            out.append((topic, e["key"], json.dumps(kind, sort_keys=True), ev["event_id"]))
    return out


def find_secrets(text, needles):
    """The needles (secret values) that occur in text."""
    return [n for n in needles if n and n in text]


def json_bytes(obj):
    return json.dumps(obj).encode()


def start_api(auth_url=None, merger_url=None, build=None, extra=None):
    env = {"PANEL_SERVICE_SECRET": SERVICE_SECRET,
           "PANEL_AUTH_URL": auth_url or f"http://127.0.0.1:{harness.free_port()}",
           "PANEL_MERGER_URL": merger_url or f"http://127.0.0.1:{harness.free_port()}"}
    env.update(extra or {})
    return start("panel-api", env, None, build)


def api_key(tenant, role="admin"):
    p = subprocess.run([harness.binary("panelctl"), "apikey-create", tenant, role, "reliability"],
                       capture_output=True, text=True, check=True)
    return next(w for w in p.stdout.split() if w.startswith("pk_"))


def populate(tenant, people=40, devices=10, ous=3, merger=None):
    """Directory data for tenant through the merger (one Google and one Azure run)."""
    runs = [run_events(tenant, "google", range(people), devices=devices, ous=ous),
            run_events(tenant, "azure", range(people // 2, people + 5))]
    own = merger is None
    m = merger or start_merger()
    try:
        for evs in runs:
            publish(tenant, evs)
            wait_run(tenant, evs[0]["run_id"], ("completed",))
    finally:
        if own:
            m.stop()
    return [r[0]["run_id"] for r in runs]
