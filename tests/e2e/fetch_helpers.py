"""Shared by test_google_sync.py and test_azure_sync.py: the cloud emulator, a stand-in for
auth's POST /internal/token (docs/contracts.md section 2) that obtains real tokens from the
emulator, sync requests through `panelctl publish`, reading a run back from
panel.source.events, and the field mapping of docs/sources.md written out in Python so that
the events can be compared with the emulator's own objects."""
import base64
import hashlib
import http.client as httpc
import json
import secrets
import subprocess
import threading
import urllib.parse
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Process, binary, consume, http, require_env, start_emulator, wait_until

SERVICE_SECRET = "fetch-test-secret"
GOOGLE_CLIENT = ("panel-google-client", "panel-google-secret")
MS_CLIENT = ("panel-ms-client", "panel-ms-secret")
GOOGLE_SCOPES = " ".join("https://www.googleapis.com/auth/admin.directory." + s for s in
                         ("user.readonly", "orgunit.readonly", "device.chromeos.readonly"))


def control(emu, method, path, body=None):
    status, _, reply = http(method, emu.admin_url + path, body)
    if status >= 300:
        raise AssertionError(f"{method} {path} -> {status}: {reply!r}")
    return reply


def new_district(emu, **counts):
    did = "d" + uuid.uuid4().hex[:10]
    body = {"id": did, "seed": 7, "people": 0, "azure_people": 0, "shared": 0, "devices": 0,
            "ous": 3}
    body.update(counts)
    return control(emu, "POST", "/control/districts", body)


def add_fault(emu, **rule):
    return control(emu, "POST", "/control/faults", rule)


def clear_faults(emu):
    control(emu, "DELETE", "/control/faults")


def _form_post(url, fields):
    u = urllib.parse.urlparse(url)
    conn = httpc.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", u.path, urllib.parse.urlencode(fields),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, {"raw": raw.decode("utf-8", "replace")}


def google_refresh_token(emu, district):
    """The consent a district admin gives (emulator-only decision parameters), exchanged for
    a refresh token as auth does it."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()
    redirect = "http://127.0.0.1:9/oauth/google/callback"
    q = urllib.parse.urlencode({
        "response_type": "code", "client_id": GOOGLE_CLIENT[0], "redirect_uri": redirect,
        "scope": GOOGLE_SCOPES, "state": "s1", "access_type": "offline", "prompt": "consent",
        "code_challenge": challenge, "code_challenge_method": "S256",
        "login_hint": district["admin_email"], "emulator_decision": "allow"})
    conn = httpc.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    conn.request("GET", "/o/oauth2/v2/auth?" + q)
    r = conn.getresponse()
    r.read()
    loc = r.getheader("Location") or ""
    conn.close()
    code = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query).get("code", [None])[0]
    if not code:
        raise AssertionError(f"no code from the emulator's consent: {r.status} {loc}")
    status, tok = _form_post(emu.url + "/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
        "client_id": GOOGLE_CLIENT[0], "client_secret": GOOGLE_CLIENT[1],
        "code_verifier": verifier})
    if status != 200 or "refresh_token" not in tok:
        raise AssertionError(f"code exchange failed: {status} {tok}")
    return tok["refresh_token"]


def azure_admin_consent(emu, district):
    """The admin consent a district's Azure admin gives (emulator-only decision parameter)."""
    q = urllib.parse.urlencode({
        "client_id": MS_CLIENT[0], "redirect_uri": "http://127.0.0.1:9/oauth/microsoft/callback",
        "state": "s1", "scope": "https://graph.microsoft.com/.default",
        "login_hint": district["admin_email"], "emulator_decision": "allow"})
    conn = httpc.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    conn.request("GET", f"/{district['azure_tenant_id']}/v2.0/adminconsent?" + q)
    r = conn.getresponse()
    r.read()
    loc = r.getheader("Location") or ""
    conn.close()
    if "admin_consent=True" not in loc:
        raise AssertionError(f"admin consent failed: {r.status} {loc}")


class AuthStub:
    """auth's POST /internal/token, answering from real emulator tokens:
    google: refresh at the emulator's /token; azure: client credentials for the tenant."""

    def __init__(self, emu):
        self.emu = emu
        self.google = {}  # tenant -> refresh token
        self.azure = {}   # tenant -> Azure tenant id
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, obj):
                raw = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if self.headers.get("Authorization") != "Bearer " + SERVICE_SECRET:
                    return self.reply(401, {"error": {"code": "unauthorized"}})
                if self.path != "/internal/token":
                    return self.reply(404, {"error": {"code": "not_found"}})
                body = json.loads(raw)
                stub.requests.append(body)
                status, reply = stub.token(body.get("tenant_id"), body.get("provider"))
                self.reply(status, reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, tenant, provider):
        if provider == "google" and tenant in self.google:
            status, tok = _form_post(self.emu.url + "/token", {
                "grant_type": "refresh_token", "refresh_token": self.google[tenant],
                "client_id": GOOGLE_CLIENT[0], "client_secret": GOOGLE_CLIENT[1]})
            if status == 400 and tok.get("error") == "invalid_grant":
                return 409, {"error": {"code": "revoked", "message": "grant revoked"}}
            if status != 200:
                return 502, {"error": {"code": "provider_unavailable"}}
            return 200, {"access_token": tok["access_token"], "expires_in": tok["expires_in"],
                         "token_type": "Bearer", "provider_tenant": ""}
        if provider == "azure" and tenant in self.azure:
            aad = self.azure[tenant]
            status, tok = _form_post(f"{self.emu.url}/{aad}/oauth2/v2.0/token", {
                "grant_type": "client_credentials", "client_id": MS_CLIENT[0],
                "client_secret": MS_CLIENT[1], "scope": "https://graph.microsoft.com/.default"})
            if status != 200:
                codes = tok.get("error_codes") or []
                if 700016 in codes or 65001 in codes:
                    return 409, {"error": {"code": "revoked", "message": "consent removed"}}
                return 502, {"error": {"code": "provider_unavailable"}}
            return 200, {"access_token": tok["access_token"], "expires_in": tok["expires_in"],
                         "token_type": "Bearer", "provider_tenant": aad}
        return 404, {"error": {"code": "not_connected"}}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def fetcher_env(auth, **extra):
    env = {"PANEL_SERVICE_SECRET": SERVICE_SECRET, "PANEL_AUTH_URL": auth.url,
           "PANEL_FETCH_BACKOFF_BASE_MS": "50", "PANEL_FETCH_BACKOFF_MAX_MS": "400",
           "PANEL_FETCH_MAX_ATTEMPTS": "30", "PANEL_FETCH_HTTP_TIMEOUT_MS": "10000",
           "PANEL_FETCH_RUN_BUDGET_S": "60"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


class FetcherTestCase(unittest.TestCase):
    """One fetcher (FETCHER, a binary name) against the emulator (with EMULATOR_ENV), with
    auth's token endpoint stubbed (AuthStub), started once per class; fetcher_settings(emu)
    gives its own environment. WITH_MERGER also starts the merger (test_merger's settings)
    as cls.merger, for tests that follow the fetcher's events into the database. Every test
    starts without emulator faults."""
    FETCHER = None
    EMULATOR_ENV = {}
    WITH_MERGER = False

    @classmethod
    def fetcher_settings(cls, emu):
        return {}

    @classmethod
    def setUpClass(cls):
        require_env()
        cls.emu = start_emulator(districts="", consent="page", env=cls.EMULATOR_ENV)
        cls.auth = cls.svc = cls.merger = None
        try:
            cls.auth = AuthStub(cls.emu)
            cls.svc = Process(cls.FETCHER,
                              env=fetcher_env(cls.auth, **cls.fetcher_settings(cls.emu)))
            if cls.WITH_MERGER:
                import test_merger
                cls.merger = test_merger.start_merger()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in (cls.merger, cls.svc, cls.auth, cls.emu):
            if p:
                p.stop()

    def tearDown(self):
        clear_faults(self.emu)

    def assert_spread(self, tenant, messages, partitions=4, starts=1):
        """One run's layout on panel.source.events (docs/events.md, issue 19): RunStarted
        (starts times) and one RunCompleted / RunFailed with partition_count on every
        partition, keyed by the tenant, the first and last of the run there; each person's
        and device's observations on its object's partition keyed "<tenant>/<source id>",
        the org unit tree's on the tenant's partition; every copy with its own event id.
        Returns {(kind, source id): partition} of the people and devices."""
        ids = [m["event"]["event_id"] for m in messages]
        self.assertEqual(len(ids), len(set(ids)), "every event, every copy, has its own id")
        by_part = {}
        for m in messages:
            by_part.setdefault(m["partition"], []).append(m)
        self.assertEqual(sorted(by_part), list(range(partitions)))
        placed = {}
        for p, ms in sorted(by_part.items()):
            evs = [m["event"] for m in ms]
            self.assertEqual(sum("run_started" in e for e in evs), starts, (p, evs))
            self.assertEqual(sum(_end(e) is not None for e in evs), 1, (p, evs))
            self.assertIn("run_started", evs[0], f"partition {p} starts with RunStarted")
            self.assertIsNotNone(_end(evs[-1]), f"partition {p} ends with the run's end")
            self.assertEqual(_end(evs[-1]).get("partition_count"), partitions, evs[-1])
            for m in ms:
                e = m["event"]
                if any(k in e for k in CONTROL):
                    self.assertEqual(m["key"], tenant, e)
                    continue
                if "person_observed" in e:
                    obj = ("person", e["person_observed"]["person"]["source_id"])
                elif "device_observed" in e:
                    obj = ("device", e["device_observed"]["device"]["device_id"])
                elif "object_removed" in e and e["object_removed"]["kind"] != "OBJECT_KIND_ORG_UNIT":
                    kind = e["object_removed"]["kind"].split("_")[-1].lower()
                    obj = (kind, e["object_removed"]["source_id"])
                else:  # the org unit tree
                    self.assertTrue("org_unit_observed" in e or "object_removed" in e, e)
                    self.assertEqual(m["key"], tenant, e)
                    self.assertEqual(p, partition_of(tenant, None, partitions), e)
                    continue
                self.assertEqual(m["key"], f"{tenant}/{obj[1]}", e)
                self.assertEqual(p, partition_of(tenant, obj[1], partitions), e)
                self.assertEqual(placed.setdefault(obj, p), p, f"{obj} on one partition")
        used = {m["partition"] for m in messages if not any(k in m["event"] for k in CONTROL)}
        self.assertGreaterEqual(len(used), 2, "the observations are spread")
        return placed


def request_sync(tenant, source, force_full=False, run_id=None):
    """Publish a SyncRequest as auth would (a new run id unless one is given: auth publishes
    a run id again after a crash between publishing and clearing its flag); returns it."""
    run_id = run_id or str(uuid.uuid4())
    req = {"tenant_id": tenant, "source": source, "run_id": run_id,
           "sync_request": {"reason": "manual", "force_full": force_full}}
    p = subprocess.run([binary("panelctl"), "publish", "panel.sync.requests", tenant],
                       input=json.dumps(req) + "\n", capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("panelctl publish failed: " + p.stderr)
    return run_id


CONTROL = ("run_started", "run_completed", "run_failed")
END = ("run_completed", "run_failed")


def partition_of(tenant, source_id, partitions):
    """docs/events.md's partition of an object's observations (source_id None: the tenant's,
    the org unit tree's): FNV-1a 64 over tenant, a 0 byte and source_id, then splitmix64's
    finaliser, modulo the partition count. The same function as lib/fetch_run.c's."""
    mask = (1 << 64) - 1
    h = 14695981039346656037
    data = tenant.encode() + (b"\0" + source_id.encode() if source_id is not None else b"")
    for c in data:
        h = ((h ^ c) * 1099511628211) & mask
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & mask
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & mask
    h ^= h >> 31
    return h % partitions if partitions > 1 else 0


def run_messages(tenant, run_id):
    """The run's messages on panel.source.events (control events keyed by the tenant, a
    person's or device's observations by "<tenant>/<source id>"), as consume() gives them,
    sorted by partition and offset."""
    ms = [m for m in consume("panel.source.events", timeout_ms=1500)
          if (m["key"] == tenant or m["key"].startswith(tenant + "/"))
          and m["event"].get("run_id") == run_id]
    return sorted(ms, key=lambda m: (m["partition"], m["offset"]))


def _end(ev):
    return next((ev[k] for k in END if k in ev), None)


def run_view(messages):
    """The run as one sequence once every copy of its end arrived (else None): its control
    events as each partition holds them (the same on every partition, checked), and between
    two of them the observations that every partition holds between its copies of them
    (partition by partition, each in its order). Only the order within a partition is kept
    by Kafka, so this is the order the merger may apply the run in."""
    by_part = {}
    for m in messages:
        by_part.setdefault(m["partition"], []).append(m["event"])
    ends = [e for evs in by_part.values() for e in evs if _end(e) is not None]
    if not ends:
        return None
    n = _end(ends[0]).get("partition_count", 1)
    if len(ends) < n:
        return None
    def signature(evs):
        return [(k, e[k].get("kind")) for e in evs for k in CONTROL if k in e]
    skeleton = [e for e in by_part[min(by_part)] if any(k in e for k in CONTROL)]
    for p, evs in by_part.items():
        if signature(evs) != signature(skeleton):
            raise AssertionError(f"partition {p} holds other run control events: "
                                 f"{signature(evs)} != {signature(skeleton)}")
    segments = [[] for _ in skeleton]
    for p in sorted(by_part):
        seen = 0
        for e in by_part[p]:
            if any(k in e for k in CONTROL):
                seen += 1
            elif seen == 0:
                raise AssertionError(f"partition {p}: an observation before RunStarted: {e}")
            else:
                segments[seen - 1].append(e)
    out = []
    for control_event, observations in zip(skeleton, segments):
        out.append(control_event)
        out.extend(observations)
    return out


def run_events(tenant, run_id, timeout=90):
    """Every event of the run (run_view: one copy of each control event), once every copy of
    its RunCompleted or RunFailed arrived."""
    return wait_until(lambda: run_view(run_messages(tenant, run_id)), timeout=timeout,
                      interval=0.5, what=f"the end of run {run_id}")


def payloads(events, name, inner=None):
    out = [e[name] for e in events if name in e]
    return [p[inner] for p in out] if inner else out


# ---------------------------------------------------------------- docs/sources.md in Python

def norm_email(s):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s.strip(" \t\r\n"))


def _strings(v):
    return {"values": list(v)} if v else {}


def google_person(u):
    p = {"source_id": u["id"], "email": u["primaryEmail"],
         "email_normalized": norm_email(u["primaryEmail"])}
    name = u.get("name") or {}
    for src, dst in (("givenName", "given_name"), ("familyName", "family_name"),
                     ("fullName", "display_name")):
        if src in name:
            p[dst] = name[src]
    for src, dst in (("orgUnitPath", "org_unit_path"), ("suspended", "suspended"),
                     ("suspensionReason", "suspension_reason"), ("archived", "archived"),
                     ("isAdmin", "is_admin"), ("creationTime", "created_at"),
                     ("thumbnailPhotoUrl", "photo_url")):
        if src in u:
            p[dst] = u[src]
    if u.get("lastLoginTime") and not u["lastLoginTime"].startswith("1970-01-01T00:00:00"):
        p["last_login_at"] = u["lastLoginTime"]
    for x in u.get("externalIds") or []:
        if x.get("type") == "organization" and "value" in x:
            p["employee_id"] = x["value"]
            break
    if "aliases" in u:
        p["aliases"] = _strings(u["aliases"])
    return p


def google_orgunit(o):
    out = {"org_unit_id": o["orgUnitId"]}
    for src, dst in (("orgUnitPath", "path"), ("name", "name"), ("description", "description"),
                     ("parentOrgUnitId", "parent_id"), ("parentOrgUnitPath", "parent_path")):
        if src in o:
            out[dst] = o[src]
    return out


DEVICE_FIELDS = (
    ("serialNumber", "serial_number"), ("model", "model"), ("status", "status"),
    ("orgUnitPath", "org_unit_path"), ("orgUnitId", "org_unit_id"),
    ("annotatedAssetId", "annotated_asset_id"), ("annotatedUser", "annotated_user"),
    ("annotatedLocation", "annotated_location"), ("notes", "notes"),
    ("macAddress", "mac_address"), ("ethernetMacAddress", "ethernet_mac_address"),
    ("osVersion", "os_version"), ("platformVersion", "platform_version"),
    ("firmwareVersion", "firmware_version"), ("bootMode", "boot_mode"),
    ("lastSync", "last_sync"), ("lastEnrollmentTime", "last_enrollment_time"),
    ("autoUpdateThrough", "auto_update_through"), ("deviceLicenseType", "device_license_type"),
    ("chromeOsType", "chrome_os_type"))


def google_device(d):
    out = {"device_id": d["deviceId"]}
    for src, dst in DEVICE_FIELDS:
        if src in d:
            out[dst] = d[src]
    if "autoUpdateExpiration" in d:
        out["auto_update_expiration_ms"] = int(d["autoUpdateExpiration"])
    if "recentUsers" in d:
        out["recent_users_present"] = True
        if d["recentUsers"]:
            out["recent_users"] = [{k: r[k] for k in ("type", "email") if k in r}
                                   for r in d["recentUsers"]]
    return out


AZURE_FIELDS = (
    ("displayName", "display_name"), ("givenName", "given_name"), ("surname", "family_name"),
    ("mail", "mail"), ("userPrincipalName", "user_principal_name"),
    ("jobTitle", "job_title"), ("department", "department"), ("employeeId", "employee_id"),
    ("officeLocation", "office_location"), ("userType", "user_type"),
    ("createdDateTime", "created_at"))


def azure_person(u, partial=False):
    """The Person for a Graph user; partial = a delta object carrying only what was sent."""
    p = {"source_id": u["id"]}
    cleared = []
    for src, dst in AZURE_FIELDS + (("otherMails", "other_mails"),
                                    ("proxyAddresses", "proxy_addresses"),
                                    ("accountEnabled", "suspended")):
        if src not in u:
            continue
        v = u[src]
        if v is None:
            cleared.append(dst)
        elif src in ("otherMails", "proxyAddresses"):
            p[dst] = _strings(v)
        elif src == "accountEnabled":
            p[dst] = not v
        else:
            p[dst] = v
    email = None
    for src in ("mail", "userPrincipalName"):
        if src not in u and partial:
            break
        if u.get(src):
            email = u[src]
            break
    if email:
        p["email"] = email
        p["email_normalized"] = norm_email(email)
    order = ["display_name", "given_name", "family_name", "mail", "user_principal_name",
             "other_mails", "proxy_addresses", "suspended", "job_title", "department",
             "employee_id", "office_location", "user_type", "created_at"]
    if cleared:
        p["cleared_fields"] = sorted(cleared, key=order.index)
    return p
