#!/usr/bin/env python3
"""make bench: the performance benchmarks of issue 12, on this machine.

Starts its own PostgreSQL + Kafka (scripts/infra.sh, PANEL_RUN_DIR=.run/bench, wiped first;
.run/bench-2, -3 ... when another benchmark holds .run/bench), the cloud emulator with the
benchmark district and the services (the same wiring as `make demo`: scripts/demo.py), all on
free ports, so that it runs beside `make demo` and other benchmarks, then runs:

  1 first_sync     sync request -> all rows applied, per-stage rates (fetch+parse, publish, apply)
  2 no_change      resync with nothing changed: row updates and public events (both must be 0)
  3 small_change   1% of the Google people renamed: exact update and event counts
  4 apply_vs_copy  merger events/s vs a plain COPY of the same rows into the same tables
  5 fetchers       fetchers' objects/s vs a client that downloads the same pages and discards
                   them; peak RSS (VmHWM) of google-sync, azure-sync, merger
  6 api            wrk (64 connections) vs pgbench running the api's SQL (64 clients)
  7 scaling        10,000 -> 200,000 people (times the scale) and 1 vs 2 merger replicas on 4
                   districts and on ONE district (1 merger x 1 worker, 2 mergers x 1 worker,
                   1 merger x the default PANEL_MERGER_WORKERS), with the partitions it used
  8 million        a 1,000,000-person district (500,000 Chromebooks, 10,000 OUs) synced once:
                   time, peak RSS per service, database size, CPU seconds per process and
                   where the time went (only with BENCH_MILLION=1 or BENCH_ONLY=million)

After the first sync and the no-change resync it prints where their time went ("==> where the
time goes (...)", also in the JSON as the section's "profile"), from connecting both clouds
(the first sync) or the sync request (the resync) to the last run done: CPU seconds of every process of the suite with its share and cores busy;
the merger's batches from its /metrics (results, events a batch, batch seconds and their
quantiles, batches applied at once); PostgreSQL's 12 statements of the most execution time
(pg_stat_statements, reset just before: calls, total ms, ms per call, share, the text
shortened), the benchmark's own queries apart (it queries as its own role, `bench`). The
benchmark's PostgreSQL loads pg_stat_statements (shared_preload_libraries through
scripts/pg.sh's PANEL_PG_PRELOAD: that server only); a server without it is "not available".

Then the goals of issue 19, each with its figure, ratio and met / missed (or "not measured",
"not run" when this run did not measure it).

Every figure is printed with its ratio to a baseline measured in the same run. The result goes
to bench/results/latest.json (BENCH_RESULTS overrides the path).

Environment: BENCH_SCALE (district size factor, default below; 1 = 200,000 Google people,
150,000 Azure, 120,000 shared, 100,000 Chromebooks, 3,000 OUs), BENCH_RUN_DIR (default
.run/bench or the first free .run/bench-N; one that another benchmark holds is an error),
BENCH_RESULTS, BENCH_API_SECONDS (wrk/pgbench duration, default 10),
BENCH_ONLY (comma-separated section names to run; the others are reported as skipped; naming
million runs section 8), BENCH_MILLION=1 (also run section 8), BENCH_MILLION_SCALE (size factor
of section 8's district, default 1), BENCH_MILLION_TIMEOUT (seconds section 8 may take after the
district is generated, default 5400; past it the section reports what it measured until then),
BENCH_PG_STATEMENTS=0 (do not load pg_stat_statements: no statements in the profiles nor in
section 8, which otherwise reports its 15 costliest).
The services inherit this environment: PANEL_MERGER_WORKERS (unset by default: the merger's
own default) applies to every merger but the replica benchmarks', which set their own.
"""
import fcntl
import glob
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import zlib
from argparse import Namespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import demo  # noqa: E402  (the suite's wiring: ports, env, consent through the emulator)

BIN = demo.BIN
DEFAULT_SCALE = 1
FULL = {"people": 200000, "azure_people": 150000, "shared": 120000, "devices": 100000,
        "ous": 3000}
SECTIONS = ["first_sync", "no_change", "small_change", "apply_vs_copy", "fetchers", "api",
            "scaling", "million"]
# Issue 19's goals (no-change resync 10 s, merger RSS 512 MiB at a million people; the
# 256 MiB of issue 12 still holds for the benchmark district).
TARGETS = {"first_sync_s": 60.0, "no_change_s": 10.0, "apply_vs_copy_ratio": 0.5,
           "fetcher_rss_mib": 64.0, "merger_rss_mib": 256.0, "replicas_one_district": 1.6,
           "million_merger_rss_mib": 512.0, "bench_default_s": 1200.0}
MILLION = {"people": 1000000, "azure_people": 750000, "shared": 600000, "devices": 500000,
           "ous": 10000}
DIRECTORY_TABLES = ["people", "person_sources", "org_units", "assets"]
PUBLIC_TOPICS = ["panel.people.events", "panel.assets.events", "panel.orgunits.events"]
SOURCE_TOPIC = "panel.source.events"
DONE = ("completed", "held", "approved")
STATS_FLUSH_S = 11  # PostgreSQL flushes an idle backend's table statistics within 10 s


def say(msg):
    demo.say(msg)


def sized(scale, base=FULL):
    d = {k: max(1, int(round(v * scale))) for k, v in base.items()}
    d["shared"] = min(d["shared"], d["people"], d["azure_people"])
    d["ous"] = max(d["ous"], 3)
    return d


def parse_metrics(text):
    """Prometheus text -> {name: summed value over all label sets}."""
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out


def parse_metric_series(text):
    """Prometheus text -> {(name, labels): value}, labels a sorted tuple of (key, value): a
    histogram's buckets and a counter's results stay apart (parse_metrics sums them)."""
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                         m.group(2) or "")))
        out[(m.group(1), labels)] = out.get((m.group(1), labels), 0.0) + v
    return out


def histogram_delta(before, after, name):
    """What histogram `name` observed between two parse_metric_series snapshots: (count, sum,
    [(upper bound, cumulative count)] in increasing order, +Inf last)."""
    d = lambda key: after.get(key, 0.0) - before.get(key, 0.0)  # noqa: E731
    cum = {}
    for key in after:
        if key[0] == name + "_bucket":
            le = dict(key[1]).get("le", "+Inf")
            bound = float("inf") if le == "+Inf" else float(le)
            cum[bound] = cum.get(bound, 0.0) + d(key)
    count = sum(d(k) for k in after if k[0] == name + "_count")
    total = sum(d(k) for k in after if k[0] == name + "_sum")
    return count, total, sorted(cum.items())


def histogram_quantile(q, buckets):
    """The q-quantile of cumulative buckets, interpolated inside its bucket as Prometheus'
    histogram_quantile does (past the last finite bound: that bound). None when empty."""
    if not buckets or not buckets[-1][1]:
        return None
    rank = q * buckets[-1][1]
    lo, lo_n = 0.0, 0.0
    for bound, n in buckets:
        if n >= rank:
            if bound == float("inf"):
                return lo
            return lo + (bound - lo) * ((rank - lo_n) / (n - lo_n) if n > lo_n else 1.0)
        lo, lo_n = bound, n
    return lo


def rate(n, secs):
    return round(n / secs, 1) if secs and secs > 0 else None


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


class Merger:
    """A merger replica the benchmark started: its port, process, log file (and where in it
    this process's lines start) and its PANEL_MERGER_WORKERS setting (see start_merger)."""

    def __init__(self, port, proc, log, log_from, workers):
        self.port, self.proc, self.log, self.log_from, self.workers = \
            port, proc, log, log_from, workers


class Suite(demo.Demo):
    tenant = "bench"
    district = "bench"
    consent = "auto"

    def __init__(self, args):
        super().__init__(args)
        self.mergers = []

    # ------------------------------------------------------------ life cycle
    def fresh(self):
        """Every run starts from empty PostgreSQL and Kafka: results must not depend on the
        previous run's data."""
        self.reap_leftovers()
        subprocess.run(["sh", "scripts/infra.sh", "down"], cwd=ROOT, env=self.env,
                       capture_output=True)
        for sub in ("pg", "kafka"):
            shutil.rmtree(os.path.join(self.run_dir, sub), ignore_errors=True)
        for name in ("api-key", "env"):
            try:
                os.unlink(os.path.join(self.run_dir, name))
            except OSError:
                pass
        os.makedirs(os.path.join(self.run_dir, "logs"), exist_ok=True)
        for f in os.listdir(os.path.join(self.run_dir, "logs")):
            os.unlink(os.path.join(self.run_dir, "logs", f))

    def proc(self, name):
        return [p for n, p in self.procs if n == name and p.poll() is None]

    def start_merger(self, workers=None):
        """One more merger replica. workers: PANEL_MERGER_WORKERS for it (consumer threads in
        the process); "default" unsets it so the merger's own default applies; None passes
        on whatever this process's environment says (as for the other services). The first
        replica takes the port the other services know (PANEL_MERGER_URL), later ones their
        own, and each has its own log file so its partition assignment can be read."""
        first = not self.mergers
        port = self.ports["merger"] if first else demo.pick_port(0)
        deadline = time.time() + 30
        while first and not demo.port_free(port):
            if time.time() > deadline:
                raise RuntimeError(f"the merger's port {port} is still taken")
            time.sleep(0.2)
        name = "merger" if first else f"merger-{len(self.mergers) + 1}"
        log = os.path.join(self.run_dir, "logs", name + ".log")
        log_from = os.path.getsize(log) if os.path.exists(log) else 0
        extra = {} if workers is None else \
            {"PANEL_MERGER_WORKERS": None if workers == "default" else str(workers)}
        try:
            # Demo's own start: start_services() routes self.start's mergers here.
            demo.Demo.start(self, "merger", port, extra, log_name=name)
        except SystemExit as e:  # demo's start ends the demo; here only the section fails
            raise RuntimeError(str(e)) from None
        self.mergers.append(Merger(port, self.procs[-1][1], log, log_from, workers))

    def stop_mergers(self, keep=0):
        """Stop the replicas after the first `keep`, all at once (each takes a while to leave
        the group and close its connections)."""
        gone, self.mergers = self.mergers[keep:], self.mergers[:keep]
        for m in gone:
            m.proc.send_signal(signal.SIGTERM)
        for m in gone:
            try:
                m.proc.wait(30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        self.procs = [(n, q) for n, q in self.procs if all(q is not m.proc for m in gone)]

    def workers_setting(self, workers):
        """What PANEL_MERGER_WORKERS a merger started with `workers` gets ("default" when
        unset)."""
        if workers is None:
            return self.env.get("PANEL_MERGER_WORKERS") or "default"
        return str(workers)

    def set_mergers(self, workers, fresh=False):
        """Run exactly len(workers) merger replicas, replica i with workers[i] (see
        start_merger), started one after the other (a second replica joins the first one's
        group). Unless fresh, the running ones that already match are kept; fresh restarts
        them all, so that no replica carries what an earlier sync left in its process (its
        ANALYZE schedule: table_stats.h). Then waits until the group's assignment has
        settled; returns the seconds that took (0 when nothing changed: the running
        replicas' assignment settled before)."""
        keep = 0
        while not fresh and keep < min(len(self.mergers), len(workers)) and \
                self.workers_setting(self.mergers[keep].workers) == \
                self.workers_setting(workers[keep]):
            keep += 1
        if keep == len(self.mergers) == len(workers):
            return 0.0
        self.stop_mergers(keep)
        for w in workers[keep:]:
            self.start_merger(w)
        # One consumer per replica: every partition owned and every replica owning some is
        # final. A replica of several consumers moves partitions among them as they join.
        single = all(self.workers_setting(m.workers) == "1" for m in self.mergers)
        return self.wait_assignment(quiet=0.5 if single else 1.5)

    def source_partitions(self):
        return int(self.env.get("PANEL_KAFKA_PARTITIONS") or 4)

    @staticmethod
    def assignment(m):
        """The partitions of the source topic merger m owns now, from its log ("assigned" /
        "revoked" lines of its consumers since it started)."""
        owned = set()
        pat = re.compile(r"\b(assigned|revoked) " + re.escape(SOURCE_TOPIC) + r"\[(\d+)\]")
        try:
            with open(m.log, "rb") as f:
                f.seek(m.log_from)
                text = f.read().decode(errors="replace")
        except OSError:
            return owned
        for what, part in pat.findall(text):
            (owned.add if what == "assigned" else owned.discard)(int(part))
        return owned

    def wait_assignment(self, timeout=90, quiet=2.0, silent_after=30):
        """Wait until every partition of the source topic is owned, each replica owns at least
        one, and this has not changed for `quiet` seconds. Seconds waited; None when no
        replica logged any assignment within silent_after seconds (a merger that no longer
        logs them: the figures are then taken without knowing the assignment, and say so)."""
        t0 = time.time()
        want = set(range(self.source_partitions()))
        last, since, seen = None, t0, False
        while True:
            now = [frozenset(self.assignment(m)) for m in self.mergers]
            seen = seen or any(now)
            if not seen and time.time() - t0 > silent_after:
                say(f"    no merger replica logged a partition assignment in {silent_after} s: "
                    "going on without it")
                return None
            if now != last:
                last, since = now, time.time()
            settled = all(now) and set().union(*now) == want and \
                sum(len(x) for x in now) == len(want)
            if settled and time.time() - since >= quiet:
                return round(time.time() - t0, 1)
            if time.time() - t0 > timeout:
                raise RuntimeError(f"the merger replicas' partitions did not settle in "
                                   f"{timeout} s: {[sorted(x) for x in now]}")
            time.sleep(0.2)

    def applied_offsets(self):
        """{partition: next offset} of the source topic as the merger group stored them with
        the data: what each partition has had applied."""
        group = self.env.get("PANEL_MERGER_GROUP") or "panel-merger"
        return {int(p): int(o) for p, o in self.psql(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = "
            f"'{SOURCE_TOPIC}' AND group_id = '{group}'")}

    # ------------------------------------------------------------ observation
    def metrics(self, name):
        """A service's /metrics, summed over the merger's replicas."""
        total = {}
        ports = [m.port for m in self.mergers] if name == "merger" else [self.ports[name]]
        for port in ports:
            for k, v in self.port_metrics(port).items():
                total[k] = total.get(k, 0.0) + v
        return total

    @staticmethod
    def port_metrics_text(port):
        try:
            status, _, body = demo.http("GET", f"http://127.0.0.1:{port}/metrics", timeout=10)
        except OSError:
            return ""
        return body.decode() if isinstance(body, bytes) else str(body or "")

    @classmethod
    def port_metrics(cls, port):
        return parse_metrics(cls.port_metrics_text(port))

    def merger_series(self):
        """The merger replicas' /metrics by series (parse_metric_series), summed over them."""
        total = {}
        for m in self.mergers:
            for k, v in parse_metric_series(self.port_metrics_text(m.port)).items():
                total[k] = total.get(k, 0.0) + v
        return total

    def offsets(self, topics):
        p = subprocess.run([os.path.join(BIN, "panelctl"), "offsets", *topics], env=self.env,
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"panelctl offsets: {p.stderr.strip()}")
        return json.loads(p.stdout)

    def table_stats(self):
        rows = self.psql("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM "
                         "pg_stat_user_tables WHERE relname IN ("
                         + ",".join(f"'{t}'" for t in DIRECTORY_TABLES) + ")")
        return {r[0]: {"ins": int(r[1]), "upd": int(r[2]), "del": int(r[3])} for r in rows}

    def vmhwm_mib(self, name):
        out = []
        for p in self.proc(name):
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("VmHWM:"):
                        out.append(round(int(line.split()[1]) / 1024.0, 1))
            except OSError:
                pass
        return max(out) if out else None

    def cpu_seconds(self):
        """CPU time (user+system) so far of each part of the suite this benchmark started:
        its services, PostgreSQL (postmaster and every backend, with the backends that have
        ended: the postmaster's reaped children) and Kafka."""
        tck = os.sysconf("SC_CLK_TCK")
        procs = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                st = open(f"/proc/{d}/stat").read()
                cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            f = st[st.rindex(")") + 2:].split()
            # utime + stime, and cutime + cstime (children waited for) apart
            procs[int(d)] = (int(f[1]), (int(f[11]) + int(f[12])) / tck,
                             (int(f[13]) + int(f[14])) / tck, cmd)
        try:
            pm = int(open(os.path.join(self.run_dir, "pg", "data", "postmaster.pid")).readline())
        except (OSError, ValueError):
            pm = -1
        out = {}
        own = {p.pid: n for n, p in self.procs}
        for pid, (ppid, secs, reaped, cmd) in procs.items():
            if pid in own:
                name = own[pid]
            elif pid == pm or ppid == pm:
                name = "postgresql"
                # a backend's CPU time stays counted after its connection closed
                secs += reaped if pid == pm else 0.0
            elif os.path.join(self.run_dir, "kafka") in cmd:
                name = "kafka"
            else:
                continue
            out[name] = out.get(name, 0.0) + secs
        return out

    def outbox_pending(self):
        return int(self.psql("SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0])

    def wait_autovacuum(self, timeout=120):
        """Wait until no autovacuum worker runs (the previous syncs' rows get vacuumed and
        analysed a little later: that work would land in whichever sync is timed next).
        Seconds waited; past the timeout the caller goes on (a busy database is then part of
        the figure)."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                             "'autovacuum worker'")[0][0]) == 0:
                break
            time.sleep(0.5)
        return round(time.time() - t0, 1)

    def wait_outbox(self, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.outbox_pending() == 0:
                return time.time()
            time.sleep(0.25)
        raise RuntimeError(f"outbox not drained after {timeout} s")

    # ------------------------------------------------------------ actions
    def internal(self, method, path, body=None, caller="api"):
        """Call auth's internal route with a service's own credential (the api's by default)."""
        hdr = self.service_secrets.header(caller)
        return demo.http(method, self.env["PANEL_AUTH_URL"] + path, body, headers=hdr)

    def request_sync(self, tenant):
        status, _, body = self.internal("POST", f"/internal/tenants/{tenant}/sync",
                                        {"provider": None, "preview": False,
                                         "actor": f"person:admin@{tenant}.k12.example"})
        if status != 202:
            raise RuntimeError(f"sync request refused ({status}): {body}")
        return [r["run_id"] for r in body["requests"]]

    def runs_since(self, tenants, t_epoch):
        tl = ",".join(f"'{t}'" for t in tenants)
        return self.psql(
            "SELECT tenant_id, run_id, source, status, extract(epoch FROM requested_at), "
            "extract(epoch FROM started_at), extract(epoch FROM finished_at), seen, created, "
            "updated, unchanged, removed, kind FROM sync_runs WHERE tenant_id IN (" + tl + ") "
            f"AND requested_at >= to_timestamp({t_epoch - 1})")

    def wait_runs(self, tenants, t_epoch, want, timeout, run_ids=None):
        """Wait until `want` runs of these tenants requested since t_epoch are done."""
        t0 = time.time()
        last = None
        while time.time() - t0 < timeout:
            rows = self.runs_since(tenants, t_epoch)
            if run_ids:
                rows = [r for r in rows if r[1] in run_ids]
            failed = [r for r in rows if r[3] in ("failed", "rejected")]
            if failed:
                raise RuntimeError(f"run failed: {failed}")
            done = [r for r in rows if r[3] in DONE]
            if len(done) >= want:
                return [self.run_dict(r) for r in done]
            state = sorted((r[0], r[2], r[3], r[7]) for r in rows)
            if state != last:
                last = state
            time.sleep(0.25)
        raise RuntimeError(f"runs not done after {timeout} s: {last}")

    @staticmethod
    def run_dict(r):
        f = lambda v: float(v) if v not in ("", None) else None  # noqa: E731
        return {"tenant": r[0], "run_id": r[1], "source": r[2], "status": r[3],
                "requested": f(r[4]), "started": f(r[5]), "finished": f(r[6]),
                "seen": int(r[7]), "created": int(r[8]), "updated": int(r[9]),
                "unchanged": int(r[10]), "removed": int(r[11]), "kind": r[12]}

    def db_now(self):
        return float(self.psql("SELECT extract(epoch FROM clock_timestamp())")[0][0])

    def new_district(self, did, sizes, seed, timeout=600):
        body = dict(sizes, id=did, seed=seed)
        status, _, resp = demo.http("POST", f"{self.emu_admin}/control/districts", body,
                                    timeout=timeout)
        if status != 201:
            raise RuntimeError(f"emulator refused district {did} ({status}): {resp}")
        self.sh([os.path.join(BIN, "panelctl"), "tenant-add", did, did])

    def connect_both(self, tenant):
        admin = f"admin@{tenant}.k12.example"
        self.connect("google", tenant, admin)
        self.connect("microsoft", tenant, admin)


class Periodic(threading.Thread):
    """Calls sample() every `interval` seconds until stop(); a sample that raises is skipped
    (a missed sample only widens a window or coarsens a timeline)."""

    def __init__(self, suite, interval):
        super().__init__(daemon=True)
        self.suite, self.interval = suite, interval
        self.stop_evt = threading.Event()

    def sample(self):
        raise NotImplementedError

    def run(self):
        while not self.stop_evt.is_set():
            try:
                self.sample()
            except Exception:
                pass
            self.stop_evt.wait(self.interval)

    def stop(self):
        self.stop_evt.set()
        self.join(30)


class Sampler(Periodic):
    """Samples the stage counters twice a second while a sync runs."""

    def __init__(self, suite, interval=0.5):
        super().__init__(suite, interval)
        self.samples = []

    def sample(self):
        t = time.time()
        g = self.suite.metrics("google-sync").get("panel_fetch_objects_total", 0.0)
        a = self.suite.metrics("azure-sync").get("panel_fetch_objects_total", 0.0)
        m = self.suite.metrics("merger").get("merger_events_applied_total", 0.0)
        o = self.suite.offsets([SOURCE_TOPIC])[SOURCE_TOPIC]
        self.samples.append({"t": t, "google": g, "azure": a, "applied": m, "source": o})

    def window(self, key):
        """(delta, seconds from the sample before the first change to the last change)."""
        s = self.samples
        if len(s) < 2:
            return 0, None
        v0, v1 = s[0][key], s[-1][key]
        if v1 == v0:
            return 0, None
        first = next(i for i in range(len(s)) if s[i][key] != v0)
        last = next(i for i in range(len(s) - 1, -1, -1) if s[i][key] != v1) + 1
        t_start = s[max(first - 1, 0)]["t"]
        return v1 - v0, max(s[last]["t"] - t_start, self.interval)


class CpuTimeline(Periodic):
    """CPU seconds of every process of the suite, and the stage counters, every `interval`
    seconds: which process works in which phase of a long sync."""

    def __init__(self, suite, interval=10.0):
        super().__init__(suite, interval)
        self.rows = []
        self.t0 = time.time()

    def sample(self):
        row = {"t": round(time.time() - self.t0, 1),
               "cpu": {k: round(v, 1) for k, v in self.suite.cpu_seconds().items()},
               "rss_mib": {n: self.suite.vmhwm_mib(n) for n in ("merger",)}}
        for n, k in (("google-sync", "panel_fetch_objects_total"),
                     ("azure-sync", "panel_fetch_objects_total"),
                     ("merger", "merger_events_applied_total")):
            row[n + "_objects"] = self.suite.metrics(n).get(k, 0.0)
        self.rows.append(row)


class Profile:
    """Where a timed section's time goes, from start() to stop(): CPU seconds of every process
    of the suite (Suite.cpu_seconds), the merger's batches (its /metrics: merger_batches_total
    by result, the merger_batch_seconds histogram, merger_events_applied_total,
    merger_outbox_published_total) and PostgreSQL's statements by execution time
    (pg_stat_statements, reset at start())."""

    def __init__(self, bench, what, span):
        self.bench, self.what, self.span = bench, what, span

    def start(self):
        s = self.bench.suite
        self.statements = self.bench.pg_statements_reset()
        self.m0 = s.merger_series()
        self.cpu0 = s.cpu_seconds()
        self.t0 = time.time()

    def stop(self):
        s = self.bench.suite
        self.seconds = time.time() - self.t0
        self.cpu1 = s.cpu_seconds()
        self.m1 = s.merger_series()
        self.top = self.bench.pg_statements_top() if self.statements else None

    def cpu_delta(self):
        return {k: round(v - self.cpu0.get(k, 0.0), 1) for k, v in sorted(self.cpu1.items())}

    def result(self):
        cpu = self.cpu_delta()
        total = sum(cpu.values())
        return {"what": self.what, "span": self.span, "seconds": round(self.seconds, 2),
                "cpus": os.cpu_count(),
                "cpu_seconds": {k: {"seconds": v, "share": ratio(v, total),
                                    "cores": ratio(v, self.seconds)}
                                for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
                "cpu_seconds_total": round(total, 1),
                "cores_busy": ratio(total, self.seconds),
                "merger": self.merger_batches(),
                "pg_statements": self.top if self.top is not None else self.bench.statements}

    def merger_batches(self):
        a, b = self.m0, self.m1
        if not any(k[0] == "merger_batch_seconds_count" for k in b):
            return "not available (the merger's /metrics has no merger_batch_seconds)"
        results = {}
        for k, v in b.items():
            if k[0] == "merger_batches_total":
                r = dict(k[1]).get("result", "?")
                results[r] = results.get(r, 0) + int(round(v - a.get(k, 0.0)))
        d = lambda name: sum(v - a.get(k, 0.0) for k, v in b.items() if k[0] == name)  # noqa
        count, secs, buckets = histogram_delta(a, b, "merger_batch_seconds")
        events = d("merger_events_applied_total")
        per_bucket, prev = {}, 0.0
        for bound, n in buckets:
            if n - prev:
                per_bucket["+Inf" if bound == float("inf") else f"{bound:g}"] = int(n - prev)
            prev = n
        q = lambda x: None if not count else round(histogram_quantile(x, buckets), 3)  # noqa
        return {"batches": results, "events": int(events),
                "events_per_batch": round(events / count, 1) if count else None,
                "batch_seconds_total": round(secs, 2),
                "batch_seconds_mean": round(secs / count, 3) if count else None,
                "batch_seconds_p50": q(0.5), "batch_seconds_p90": q(0.9),
                "batch_seconds_p99": q(0.99),
                "batch_seconds_buckets": per_bucket,
                # the merger's workers apply batches at the same time: the batch seconds over
                # the wall seconds is how many were being applied at once, on average
                "batches_at_once": ratio(secs, self.seconds),
                "outbox_published": int(d("merger_outbox_published_total"))}


def short(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def profile_lines(p):
    """A profile (Profile.result) as printed lines."""
    yield (f"{p['seconds']} s {p['span']}; "
           f"{p['cpu_seconds_total']} CPU s of the suite's processes on {p['cpus']} cores "
           f"({p['cores_busy']} cores busy on average)")
    yield "CPU seconds by process:"
    yield f"  {'process':<14} {'CPU s':>7} {'share':>6} {'cores':>6}"
    for name, c in p["cpu_seconds"].items():
        share = "" if c["share"] is None else f"{100 * c['share']:.0f}%"
        cores = "" if c["cores"] is None else f"{c['cores']:.2f}"
        yield f"  {name:<14} {c['seconds']:>7.1f} {share:>6} {cores:>6}"
    m = p["merger"]
    if isinstance(m, str):
        yield f"merger batches: {m}"
    else:
        b = dict(m["batches"])
        ok = b.pop("ok", 0)
        other = ", ".join(f"{n} {r}" for r, n in sorted(b.items()) if n) or "no other result"
        yield (f"merger batches: {ok} applied ({other}), {m['events']} events, "
               f"{m['events_per_batch']} a batch; {m['batch_seconds_total']} s of batch time, "
               f"{m['batches_at_once']} batches at once on average; outbox rows published "
               f"{m['outbox_published']}")
        if ok:
            yield (f"  seconds a batch: mean {m['batch_seconds_mean']}, p50 ~"
                   f"{m['batch_seconds_p50']}, p90 ~{m['batch_seconds_p90']}, p99 ~"
                   f"{m['batch_seconds_p99']}; by bucket " + ", ".join(
                       f"<= {k}: {n}" for k, n in m["batch_seconds_buckets"].items()))
    st = p["pg_statements"]
    if isinstance(st, str):
        yield f"PostgreSQL statements: pg_stat_statements {st}"
        return
    yield (f"PostgreSQL statements by execution time (pg_stat_statements): the suite's "
           f"{st['calls']} calls, {st['total_exec_ms'] / 1000:.1f} s (the benchmark's own "
           f"queries: {st['bench_own_calls']} calls, {st['bench_own_exec_ms'] / 1000:.1f} s)")
    yield f"  {'calls':>8} {'total ms':>9} {'ms/call':>8} {'share':>6}  statement"
    for t in st["top"]:
        share = "" if t["share"] is None else f"{100 * t['share']:.1f}%"
        mean = "" if t["mean_ms"] is None else f"{t['mean_ms']:.3f}"
        yield (f"  {t['calls']:>8} {t['total_ms']:>9.0f} {mean:>8} {share:>6}  "
               f"{short(t['query'], 88)}")


# ---------------------------------------------------------------------- benchmarks
def claim_run_dir():
    """The run directory this benchmark may wipe, and its lock (held until the process ends).
    BENCH_RUN_DIR, else .run/bench, else the first of .run/bench-2, -3 ... no other benchmark
    holds: a second benchmark started meanwhile neither wipes the first one's PostgreSQL and
    Kafka nor stops its services."""
    explicit = os.environ.get("BENCH_RUN_DIR")
    base = os.path.abspath(explicit or os.path.join(ROOT, ".run", "bench"))
    for d in [base] if explicit else [base] + [f"{base}-{i}" for i in range(2, 10)]:
        os.makedirs(d, exist_ok=True)
        lock = open(os.path.join(d, "bench.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return d, lock
    raise SystemExit(f"{base} is in use by another benchmark" if explicit else
                     f"{base} and {base}-2 ... -9 are all in use by other benchmarks")


def pg_statements_installed():
    """Whether the PostgreSQL server scripts/pg.sh starts (PANEL_PG_BIN, else the newest
    /usr/lib/postgresql/*/bin, as pg.sh picks it) has pg_stat_statements: preloading a
    library that is not there would keep the server from starting."""
    bindir = os.environ.get("PANEL_PG_BIN")
    if not bindir:
        found = sorted((d for d in glob.glob("/usr/lib/postgresql/*/bin")
                        if os.access(os.path.join(d, "pg_ctl"), os.X_OK)),
                       key=lambda d: [int(x) if x.isdigit() else 0
                                      for x in os.path.basename(os.path.dirname(d)).split(".")])
        bindir = found[-1] if found else None
    if not bindir:
        return False
    libdirs = [os.path.join(os.path.dirname(bindir), "lib")]
    pg_config = os.path.join(bindir, "pg_config")
    if os.access(pg_config, os.X_OK):
        p = subprocess.run([pg_config, "--pkglibdir"], capture_output=True, text=True)
        libdirs.append(p.stdout.strip())
    return any(d and os.path.exists(os.path.join(d, "pg_stat_statements.so")) for d in libdirs)


class Bench:
    def __init__(self, scale):
        self.scale = scale
        self.sizes = sized(scale)
        run_dir, self.run_dir_lock = claim_run_dir()
        # any_port: free ports for the services and the emulator, never the demo's
        args = Namespace(run_dir=run_dir, timeout=1200, any_port=True, **self.sizes)
        self.suite = Suite(args)
        # PostgreSQL and Kafka on free ports too (scripts/pg.sh, kafka.sh), even when this
        # shell has the demo's environment (eval "$(scripts/infra.sh env)").
        for k in ("PANEL_PG_PORT", "PANEL_KAFKA_PORT", "PANEL_PG_URL", "PANEL_KAFKA_BROKERS"):
            self.suite.env.pop(k, None)
        # pg_stat_statements, for the profiles: loaded in this benchmark's own server only.
        self.statements = "not available (BENCH_PG_STATEMENTS=0)"
        if os.environ.get("BENCH_PG_STATEMENTS", "1") != "0":
            if pg_statements_installed():
                pre = [x for x in self.suite.env.get("PANEL_PG_PRELOAD", "").split(",") if x]
                if "pg_stat_statements" not in pre:
                    pre.append("pg_stat_statements")
                self.suite.env["PANEL_PG_PRELOAD"] = ",".join(pre)
                self.statements = "loaded"
            else:
                self.statements = ("not available (the PostgreSQL server has no "
                                   "pg_stat_statements: the postgresql-contrib files)")
        self.results = {s: {"status": "not run"} for s in SECTIONS}
        self.ctx = {}
        only = os.environ.get("BENCH_ONLY", "")
        self.only = set(x.strip() for x in only.split(",") if x.strip())
        self.timeout = max(300, int(1200 * scale))

    def section(self, name, fn):
        if self.only and name not in self.only:
            self.results[name] = {"status": "skipped (BENCH_ONLY)"}
            return
        if name == "million" and os.environ.get("BENCH_MILLION") != "1" and \
                name not in self.only:
            self.results[name] = {"status": "not run (BENCH_MILLION=1 runs it)"}
            return
        say(f"\n==> [{SECTIONS.index(name) + 1}/{len(SECTIONS)}] {name}")
        t0 = time.time()
        try:
            res = fn()
            res.setdefault("status", "ok")
            if res["status"] == "error":
                say(f"    {res.get('error')}")
        except Exception as e:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            res = {"status": "error", "error": f"{type(e).__name__}: {e}"}
        res["bench_seconds"] = round(time.time() - t0, 1)
        self.results[name] = res
        for line in self.describe(name, res):
            say("    " + line)
        if isinstance(res.get("profile"), dict):
            say(f"\n==> where the time goes ({res['profile']['what']})")
            for line in profile_lines(res["profile"]):
                say("    " + line)

    # -------------------------------------------------------- 1 first sync
    def first_sync(self):
        s = self.suite
        before = {n: s.metrics(n) for n in ("google-sync", "azure-sync", "merger")}
        off0 = s.offsets([SOURCE_TOPIC] + PUBLIC_TOPICS)
        profile = Profile(self, "first sync", "from connecting both clouds (each connection "
                          "requests its first sync) to the last run applied")
        sampler = Sampler(s)
        sampler.start()
        profile.start()
        t0 = s.db_now()
        s.connect_both(s.tenant)  # each connection starts its first sync at once
        # The fetchers' figures are taken when their runs end, so they do not depend on the
        # merger (a merger that cannot finish leaves the fetcher benchmark its numbers).
        fetch = self.fetch_figures(before, self.timeout)
        self.ctx["fetch"] = fetch
        runs = s.wait_runs([s.tenant], t0, 2, self.timeout)
        t_applied = time.time()
        profile.stop()
        s.wait_outbox(self.timeout)
        t_published = time.time()
        time.sleep(1.0)
        sampler.stop()
        after = {n: s.metrics(n) for n in ("google-sync", "azure-sync", "merger")}
        off1 = s.offsets([SOURCE_TOPIC] + PUBLIC_TOPICS)
        self.ctx["first_runs"] = runs
        e2e = max(r["finished"] for r in runs) - min(r["requested"] for r in runs)
        d = lambda n, k: after[n].get(k, 0.0) - before[n].get(k, 0.0)  # noqa: E731
        pub_n, pub_s = sampler.window("source")
        app_n, app_s = sampler.window("applied")
        applied = d("merger", "merger_events_applied_total")
        self.ctx["apply"] = {"events": applied, "seconds": app_s}
        counts = s.psql(
            f"SELECT (SELECT count(*) FROM people WHERE tenant_id = '{s.tenant}' AND removed_at "
            f"IS NULL), (SELECT count(*) FROM assets WHERE tenant_id = '{s.tenant}'), "
            f"(SELECT count(*) FROM org_units WHERE tenant_id = '{s.tenant}' AND removed_at "
            f"IS NULL)")[0]
        outcomes = {o: int(n) for o, n in s.psql(
            f"SELECT outcome || '/' || reason, count(*) FROM run_outcomes WHERE tenant_id = "
            f"'{s.tenant}' GROUP BY 1 ORDER BY 2 DESC LIMIT 10")}
        z = self.sizes
        # The generated Azure tenant may hold a few accounts sharing one address: by the
        # merge-by-email rule they are one Person, so they are not missing.
        dup = sum(int(r[0]) for r in s.psql(
            "SELECT count(*) - count(DISTINCT email_norm) FROM person_sources WHERE "
            f"tenant_id = '{s.tenant}' GROUP BY source"))
        expect_people = z["people"] + z["azure_people"] - z["shared"] - dup
        res = {
            "district": z,
            "seconds": round(e2e, 2),
            "target_seconds": TARGETS["first_sync_s"],
            "outbox_drained_after_s": round(t_published - t_applied + e2e, 2),
            "runs": [{k: r[k] for k in ("source", "status", "seen", "created", "updated")}
                     | {"seconds": round(r["finished"] - r["requested"], 2)} for r in runs],
            "people": int(counts[0]), "people_expected": expect_people,
            "same_address_accounts": dup,
            "assets": int(counts[1]), "assets_expected": z["devices"],
            "org_units": int(counts[2]),
            "run_outcomes": outcomes,
            "stages": {
                "fetch_parse": fetch,
                "publish": {"events": int(off1[SOURCE_TOPIC] - off0[SOURCE_TOPIC]),
                            "window_s": round(pub_s or 0, 2), "events_per_s": rate(pub_n, pub_s)},
                "apply": {"events": int(applied), "window_s": round(app_s or 0, 2),
                          "events_per_s": rate(app_n, app_s),
                          "batches": int(d("merger", "merger_batch_seconds_count")),
                          "batch_seconds_total": round(d("merger", "merger_batch_seconds_sum"), 2)},
            },
            "public_events": {t: off1[t] - off0[t] for t in PUBLIC_TOPICS},
            "objects_per_s_end_to_end": rate(sum(f["objects"] for f in fetch.values()), e2e),
        }
        res["cpu_seconds_until_applied"] = profile.cpu_delta()
        res["profile"] = profile.result()
        res["tables_after"] = {r[0]: {"live": int(r[1]), "dead": int(r[2]),
                                      "updates": int(r[3]), "hot_updates": int(r[4])}
                               for r in s.psql(
            "SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd FROM "
            "pg_stat_user_tables WHERE relname IN ("
            + ",".join(f"'{t}'" for t in DIRECTORY_TABLES + ["outbox", "run_seen"]) + ")")}
        res["rss_mib_after_first_sync"] = {n: s.vmhwm_mib(n) for n in
                                           ("google-sync", "azure-sync", "merger")}
        return res

    def fetch_figures(self, before, timeout):
        """Wait for one more run of each fetcher than in `before` (their /metrics), then its
        objects, pages and objects/s (objects / run seconds)."""
        s = self.suite
        names = ("google-sync", "azure-sync")
        deadline = time.time() + timeout
        while True:
            now = {n: s.metrics(n) for n in names}
            if all(now[n].get("panel_fetch_runs_total", 0.0) >
                   before[n].get("panel_fetch_runs_total", 0.0) for n in names):
                break
            if time.time() > deadline:
                raise RuntimeError("the fetchers' runs did not end in time")
            time.sleep(0.5)
        fetch = {}
        for n in names:
            d = lambda k: now[n].get(k, 0.0) - before[n].get(k, 0.0)  # noqa: E731
            objs, secs = d("panel_fetch_objects_total"), d("panel_fetch_run_duration_seconds_sum")
            fetch[n] = {"objects": int(objs), "pages": int(d("panel_fetch_pages_total")),
                        "run_seconds": round(secs, 2), "objects_per_s": rate(objs, secs)}
        return fetch

    # -------------------------------------------------------- 2 and 3 resyncs
    def resync(self, tenant, profile=None):
        """A resync of tenant, timed from the request to its runs done; profile (a Profile)
        covers the same span."""
        s = self.suite
        time.sleep(STATS_FLUSH_S)
        st0 = s.table_stats()
        off0 = s.offsets(PUBLIC_TOPICS)
        if profile:
            profile.start()
        t0 = s.db_now()
        ids = s.request_sync(tenant)
        runs = s.wait_runs([tenant], t0, len(ids), self.timeout, run_ids=set(ids))
        if profile:
            profile.stop()
        s.wait_outbox(self.timeout)
        e2e = max(r["finished"] for r in runs) - min(r["requested"] for r in runs)
        time.sleep(STATS_FLUSH_S)
        st1 = s.table_stats()
        off1 = s.offsets(PUBLIC_TOPICS)
        upd = {t: {k: st1[t][k] - st0[t][k] for k in ("ins", "upd", "del")} for t in st0}
        events = {t: off1[t] - off0[t] for t in PUBLIC_TOPICS}
        return e2e, runs, upd, events

    def no_change(self):
        s = self.suite
        before = s.metrics("google-sync")
        profile = Profile(self, "no-change resync", "from the sync request to both runs done")
        e2e, runs, upd, events = self.resync(self.suite.tenant, profile)
        after = s.metrics("google-sync")
        g = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in
             ("panel_fetch_objects_total", "panel_fetch_run_duration_seconds_sum")}
        total_upd = sum(v["upd"] + v["ins"] + v["del"] for v in upd.values())
        first = self.results["first_sync"].get("seconds")
        self.ctx["no_change_s"] = e2e
        return {"seconds": round(e2e, 2), "target_seconds": TARGETS["no_change_s"],
                "ratio_to_first_sync": ratio(e2e, first),
                "row_changes": total_upd, "row_changes_by_table": upd,
                "public_events": sum(events.values()),
                "runs": [{k: r[k] for k in ("source", "kind", "seen", "updated", "unchanged")}
                         for r in runs],
                "zero_changes": total_upd == 0 and sum(events.values()) == 0,
                # google-sync's full run while the merger has almost nothing to write: the
                # fetcher's own speed, compared with the download-only client in "fetchers"
                "google_sync_objects_per_s": rate(g["panel_fetch_objects_total"],
                                                  g["panel_fetch_run_duration_seconds_sum"]),
                "profile": profile.result()}

    def small_change(self):
        s = self.suite
        n = max(1, int(round(self.sizes["people"] * 0.01)))
        ids = [r[0] for r in s.psql(
            "SELECT ps.source_id FROM person_sources ps JOIN people p ON p.tenant_id = "
            "ps.tenant_id AND p.person_id = ps.person_id WHERE ps.tenant_id = "
            f"'{s.tenant}' AND ps.source = 'google' AND p.sources = '{{google}}' AND "
            f"p.removed_at IS NULL ORDER BY ps.source_id LIMIT {n}")]
        if len(ids) < n:
            raise RuntimeError(f"only {len(ids)} Google-only people to change, wanted {n}")
        u = urllib.parse.urlsplit(s.emu_admin)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        t_patch = time.time()
        for i, uid in enumerate(ids):
            body = json.dumps({"name": {"familyName": f"Benchchanged{i}"}})
            conn.request("PATCH", f"/control/districts/{s.district}/google/users/{uid}", body,
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"emulator PATCH {uid}: HTTP {r.status}")
        conn.close()
        patch_s = time.time() - t_patch
        e2e, runs, upd, events = self.resync(s.tenant)
        google = next(r for r in runs if r["source"] == "google")
        got = {"people_updates": upd["people"]["upd"],
               "person_sources_updates": upd["person_sources"]["upd"],
               "people_events": events["panel.people.events"],
               "run_updated": google["updated"],
               "other_row_changes": sum(v["ins"] + v["del"] for v in upd.values())
               + upd["assets"]["upd"] + upd["org_units"]["upd"],
               "other_events": events["panel.assets.events"] + events["panel.orgunits.events"]}
        exact = (got["people_updates"] == n and got["person_sources_updates"] == n
                 and got["people_events"] == n and got["run_updated"] == n
                 and got["other_row_changes"] == 0 and got["other_events"] == 0)
        return {"changed": n, "seconds": round(e2e, 2), "patch_seconds": round(patch_s, 2),
                "ratio_to_no_change": ratio(e2e, self.ctx.get("no_change_s")),
                "observed": got, "exact": exact}

    # -------------------------------------------------------- 4 apply vs COPY
    def apply_vs_copy(self):
        s = self.suite
        ap = self.ctx.get("apply")
        if not ap or not ap["seconds"]:
            raise RuntimeError("no apply rate from the first sync")
        tmp = tempfile.mkdtemp(prefix="bench-copy-", dir=s.run_dir)
        copy_tenant = "benchcopy"
        s.sh([os.path.join(BIN, "panelctl"), "tenant-add", copy_tenant, copy_tenant])
        tables = DIRECTORY_TABLES + ["outbox"]
        script, rows = ["BEGIN;"], 0
        try:
            for t in tables:
                cols = [r[0] for r in s.psql(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    f"'public' AND table_name = '{t}' AND is_generated = 'NEVER' "
                    "ORDER BY ordinal_position")]
                if t == "outbox":
                    cols.remove("outbox_id")
                sel = ", ".join(f"'{copy_tenant}'::text" if c == "tenant_id" else
                                "gen_random_uuid()" if (t, c) == ("outbox", "event_id") else c
                                for c in cols)
                path = os.path.join(tmp, t + ".copy")
                # The rows the merger wrote for the first sync, as a client would send them.
                with open(path, "w") as f:
                    p = subprocess.run(["psql", s.env["PANEL_PG_URL"], "-X", "-q", "-c",
                                        f"COPY (SELECT {sel} FROM {t} WHERE tenant_id = "
                                        f"'{s.tenant}') TO STDOUT"], stdout=f,
                                       stderr=subprocess.PIPE, text=True)
                if p.returncode:
                    raise RuntimeError(p.stderr)
                rows += sum(1 for _ in open(path))
                script.append(f"\\copy {t} ({', '.join(cols)}) FROM '{path}'")
            script.append("COMMIT;")
            sf = os.path.join(tmp, "copy.sql")
            open(sf, "w").write("\n".join(script) + "\n")
            t0 = time.time()
            p = subprocess.run(["psql", s.env["PANEL_PG_URL"], "-X", "-q", "-v",
                                "ON_ERROR_STOP=1", "-f", sf], capture_output=True, text=True)
            copy_s = time.time() - t0
            if p.returncode:
                raise RuntimeError(p.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        s.psql(f"DELETE FROM outbox WHERE tenant_id = '{copy_tenant}'")
        s.psql(f"DELETE FROM tenants WHERE tenant_id = '{copy_tenant}'")
        apply_rate = ap["events"] / ap["seconds"]
        copy_rate = rows / copy_s
        self.ctx["copy_s"] = copy_s
        return {"merger_events": int(ap["events"]), "merger_seconds": round(ap["seconds"], 2),
                "merger_events_per_s": round(apply_rate, 1),
                "copy_rows": rows, "copy_tables": tables, "copy_seconds": round(copy_s, 2),
                "copy_rows_per_s": round(copy_rate, 1),
                "ratio": ratio(apply_rate, copy_rate),
                "target_ratio": TARGETS["apply_vs_copy_ratio"]}

    # -------------------------------------------------------- 5 fetchers
    def discard(self, provider, tenant=None):
        """Download exactly the pages the fetcher downloads, keep nothing; objects/s."""
        s = self.suite
        # The fetcher's own credential: only google-sync gets Google tokens.
        status, _, tok = s.internal("POST", "/internal/token",
                                    {"tenant_id": tenant or s.tenant, "provider": provider},
                                    caller="google-sync" if provider == "google" else "azure-sync")
        if status != 200:
            raise RuntimeError(f"no {provider} token ({status}): {tok}")
        u = urllib.parse.urlsplit(s.env["PANEL_GOOGLE_API_URL"])
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        hdr = {"Authorization": "Bearer " + tok["access_token"], "Accept-Encoding": "gzip"}
        pages, nbytes = 0, 0

        def get(path, extra=None):
            nonlocal pages, nbytes
            conn.request("GET", path, headers=dict(hdr, **(extra or {})))
            r = conn.getresponse()
            raw = r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path[:80]}: HTTP {r.status}")
            pages += 1
            nbytes += len(raw)
            if r.getheader("Content-Encoding") == "gzip":
                raw = zlib.decompress(raw, 47)
            return raw

        def follow(path, token_re, paged_param=None, extra=None):
            while path:
                raw = get(path, extra)
                m = re.search(token_re, raw)
                if not m:
                    return
                tokv = json.loads(b'"' + m.group(1) + b'"')
                if paged_param:
                    path = first + "&" + paged_param + "=" + urllib.parse.quote(tokv, safe="")
                else:
                    v = urllib.parse.urlsplit(tokv)
                    path = v.path + ("?" + v.query if v.query else "")

        t0 = time.time()
        if provider == "google":
            get("/admin/directory/v1/customer/my_customer/orgunits?type=all")
            users_q = ("customer=my_customer&projection=basic&fields=nextPageToken,users(id,"
                       "primaryEmail,name,orgUnitPath,suspended,suspensionReason,archived,"
                       "isAdmin,externalIds,aliases,creationTime,lastLoginTime,"
                       "thumbnailPhotoUrl)")
            for first in ("/admin/directory/v1/users?" + urllib.parse.quote(users_q, safe="=&,")
                          + "&maxResults=500",
                          "/admin/directory/v1/customer/my_customer/devices/chromeos?"
                          "projection=FULL&maxResults=200"):
                follow(first, rb'"nextPageToken"\s*:\s*"((?:[^"\\]|\\.)*)"', "pageToken")
        else:
            sel = ("id,displayName,givenName,surname,mail,userPrincipalName,otherMails,"
                   "proxyAddresses,accountEnabled,jobTitle,department,employeeId,"
                   "officeLocation,userType,createdDateTime")
            # A full Azure run is one /users/delta round from scratch (services/azure-sync),
            # pages of PANEL_AZURE_PAGE_SIZE.
            size = s.env.get("PANEL_AZURE_PAGE_SIZE", "999")
            follow("/v1.0/users/delta?$select=" + sel,
                   rb'"@odata\.nextLink"\s*:\s*"((?:[^"\\]|\\.)*)"',
                   extra={"Prefer": f"return=minimal, odata.maxpagesize={size}"})
        secs = time.time() - t0
        conn.close()
        return pages, nbytes, secs

    def fetchers(self):
        s = self.suite
        fetch = self.ctx.get("fetch")
        if not fetch:
            # Run alone (BENCH_ONLY=fetchers): the district's first sync, timed at the fetchers.
            before = {n: s.metrics(n) for n in ("google-sync", "azure-sync")}
            s.connect_both(s.tenant)
            fetch = self.fetch_figures(before, self.timeout)
            self.ctx["fetch"] = fetch
        out = {}
        for prov, svc in (("google", "google-sync"), ("azure", "azure-sync")):
            pages, nbytes, secs = self.discard(prov)
            f = fetch[svc]
            d_rate = rate(f["objects"], secs)
            out[svc] = {"objects": f["objects"], "fetcher_pages": f["pages"],
                        "fetcher_seconds": f["run_seconds"],
                        "fetcher_objects_per_s": f["objects_per_s"],
                        "discard_pages": pages, "discard_bytes": nbytes,
                        "discard_seconds": round(secs, 2), "discard_objects_per_s": d_rate,
                        "same_pages": pages == f["pages"],
                        "ratio": ratio(f["objects_per_s"], d_rate)}
            self.ctx.setdefault("discard_s", {})[svc] = secs
        out["google-sync_with_latency"] = self.fetch_with_latency()
        rss = {n: s.vmhwm_mib(n) for n in ("google-sync", "azure-sync", "merger")}
        out["peak_rss_mib"] = rss
        out["rss_targets_mib"] = {"google-sync": TARGETS["fetcher_rss_mib"],
                                  "azure-sync": TARGETS["fetcher_rss_mib"],
                                  "merger": TARGETS["merger_rss_mib"]}
        out["rss_within_targets"] = all(
            rss[n] is not None and rss[n] <= out["rss_targets_mib"][n] for n in rss)
        return out

    def fetch_with_latency(self, delay_ms=100):
        """google-sync against a cloud that takes delay_ms to answer each page (a real
        provider's round trip; the emulator's "slow" fault), against the download-only client
        under the same delay: the prefetch hides the parsing and publishing behind the wait,
        which a shared machine's load cannot hide. A new district of the same size."""
        s = self.suite
        t = "latency"
        s.new_district(t, self.sizes, seed=7)
        try:
            for route in ("google.orgunits", "google.users", "google.devices"):
                demo.http("POST", f"{s.emu_admin}/control/faults",
                          {"route": route, "kind": "slow", "delay_ms": delay_ms, "rate": 1.0})
            before = {n: s.metrics(n) for n in ("google-sync", "azure-sync")}
            s.connect_both(t)
            f = self.fetch_figures(before, self.timeout)["google-sync"]
            pages, _, secs = self.discard("google", tenant=t)
        finally:
            demo.http("DELETE", f"{s.emu_admin}/control/faults")
        d_rate = rate(f["objects"], secs)
        return {"delay_ms_per_page": delay_ms, "objects": f["objects"],
                "fetcher_pages": f["pages"], "fetcher_seconds": f["run_seconds"],
                "fetcher_objects_per_s": f["objects_per_s"], "discard_pages": pages,
                "discard_seconds": round(secs, 2), "discard_objects_per_s": d_rate,
                "ratio": ratio(f["objects_per_s"], d_rate)}

    # -------------------------------------------------------- 6 api
    def api_sql(self):
        """The api's own statements, read from its source so pgbench runs the same SQL."""
        path = os.path.join(ROOT, "services", "api", "people.c")
        # Preprocessed, so that statements built from macros (the org-unit subtree condition)
        # read as the one string the compiler sees.
        cflags = subprocess.run(["pkg-config", "--cflags", "libpq", "jansson", "libprotobuf-c"],
                                capture_output=True, text=True, check=True).stdout.split()
        src = subprocess.run(["gcc", "-E", "-P", "-D_GNU_SOURCE", "-Ilib", "-Iservices/api",
                              "-I" + os.path.join(ROOT, "build", "gen"), *cflags, path], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        stm = {}
        for name in ("people_list", "people_get"):
            m = re.search(r'\{\s*"' + name + r'",\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}', src)
            if not m:
                raise RuntimeError(f"statement {name} not found in services/api/people.c")
            stm[name] = "".join(json.loads(x) for x in re.findall(r'"(?:[^"\\]|\\.)*"',
                                                                   m.group(1)))
        return stm

    def api(self):
        s = self.suite
        api_bin = os.path.join(BIN, "panel-api")
        url = f"http://127.0.0.1:{s.ports['api']}"
        probe = None
        try:
            probe = demo.http("GET", url + "/v1/people", timeout=5)[0]
        except OSError:
            pass
        if not os.access(api_bin, os.X_OK) or probe not in (401, 403):
            return {"status": "api not built",
                    "note": f"panel-api has no /v1/people (HTTP {probe}): no figures"}
        secs = int(os.environ.get("BENCH_API_SECONDS", "10"))
        key = s.api_key()
        stm = self.api_sql()
        ids = [r[0] for r in s.psql(f"SELECT person_id FROM people WHERE tenant_id = "
                                    f"'{s.tenant}' ORDER BY md5(person_id::text) LIMIT 50")]
        st, _, one = demo.http("GET", f"{url}/v1/people/{ids[0]}",
                               headers={"Authorization": "Bearer " + key})
        st2, _, lst = demo.http("GET", f"{url}/v1/people?limit=100",
                                headers={"Authorization": "Bearer " + key})
        if st != 200 or st2 != 200:
            raise RuntimeError(f"api answered {st} / {st2}: {one} {lst}")
        tmp = tempfile.mkdtemp(prefix="bench-api-", dir=s.run_dir)
        try:
            lua = os.path.join(tmp, "lookup.lua")
            open(lua, "w").write(
                "local ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
                "request = function()\n"
                "  return wrk.format('GET', '/v1/people/' .. ids[math.random(#ids)])\n"
                "end\n")
            res = {}
            lookup_files, var_args = [], ["-D", f"tenant={s.tenant}", "-D", "lim=101"]
            for i, pid in enumerate(ids):
                f = os.path.join(tmp, f"get{i}.sql")
                open(f, "w").write(self.sub_params(stm["people_get"],
                                                   {1: ":tenant", 2: f":pid{i}"}) + ";\n")
                lookup_files += ["-f", f]
                var_args += ["-D", f"pid{i}={pid}"]
            list_file = os.path.join(tmp, "list.sql")
            open(list_file, "w").write(self.sub_params(stm["people_list"],
                                                       {1: ":tenant", 9: ":lim"}) + ";\n")
            for name, wrk_args, pg_files in (
                    ("person_lookup", ["-s", lua, url + "/"], lookup_files),
                    ("list_100", [url + "/v1/people?limit=100"], ["-f", list_file])):
                w = self.wrk(key, secs, wrk_args)
                p = self.pgbench(secs, pg_files + var_args, tmp, name)
                res[name] = {"api_rps": w["rps"], "api_p99_ms": w["p99_ms"],
                             "api_non_2xx": w["non_2xx"],
                             "pgbench_tps": p["tps"], "pgbench_p99_ms": p["p99_ms"],
                             "ratio": ratio(w["rps"], p["tps"])}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        res["connections"] = 64
        res["seconds_each"] = secs
        return res

    @staticmethod
    def sub_params(sql, given):
        return re.sub(r"\$(\d+)", lambda m: given.get(int(m.group(1)), "NULL"), sql)

    def wrk(self, key, secs, args):
        p = subprocess.run(["wrk", "-t2", "-c64", f"-d{secs}s", "--latency", "-H",
                            "Authorization: Bearer " + key, *args],
                           capture_output=True, text=True, timeout=secs + 60)
        if p.returncode:
            raise RuntimeError(f"wrk: {p.stderr}")
        m = re.search(r"Requests/sec:\s+([\d.]+)", p.stdout)
        if not m:
            raise RuntimeError(f"wrk printed no Requests/sec: {p.stdout[-2000:]}")
        rps = float(m.group(1))
        m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", p.stdout, re.M)
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else None
        n2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
        return {"rps": round(rps, 1), "p99_ms": round(p99, 2) if p99 else None,
                "non_2xx": int(n2.group(1)) if n2 else 0}

    def pgbench(self, secs, args, tmp, name):
        s = self.suite
        logdir = os.path.join(tmp, "log-" + name)
        os.makedirs(logdir)
        p = subprocess.run(["pgbench", "-n", "-c", "64", "-j", "2", "-T", str(secs),
                            "-M", "prepared", "-l", "--log-prefix",
                            os.path.join(logdir, "pgb"), *args, s.env["PANEL_PG_URL"]],
                           capture_output=True, text=True, timeout=secs + 120, cwd=tmp)
        if p.returncode:
            raise RuntimeError(f"pgbench: {p.stderr[-2000:]}")
        m = re.search(r"tps = ([\d.]+)", p.stdout)
        if not m:
            raise RuntimeError(f"pgbench printed no tps: {p.stdout[-2000:]} {p.stderr[-2000:]}")
        tps = float(m.group(1))
        lat = []
        for f in os.listdir(logdir):
            for line in open(os.path.join(logdir, f)):
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1] / 1000.0 if lat else None
        return {"tps": round(tps, 1), "p99_ms": round(p99, 2) if p99 else None}

    # -------------------------------------------------------- 7 scaling
    def sync_tenants(self, tenants, sizes, cpu=None, timeout=None, seed=100):
        """First sync of new districts; seconds from the first request to the last run
        applied. cpu: a dict that receives the CPU seconds of the merger and PostgreSQL."""
        s = self.suite
        for i, t in enumerate(tenants):
            s.new_district(t, sizes, seed=seed + i)
        cpu0 = s.cpu_seconds()
        t0 = s.db_now()
        for t in tenants:
            s.connect_both(t)
        runs = s.wait_runs(tenants, t0, 2 * len(tenants), timeout or self.timeout)
        if cpu is not None:
            cpu1 = s.cpu_seconds()
            cpu.update({k: cpu1.get(k, 0.0) - cpu0.get(k, 0.0) for k in ("merger", "postgresql")})
        return max(r["finished"] for r in runs) - min(r["requested"] for r in runs)

    def scaling(self):
        s = self.suite
        main_people = self.sizes["people"]
        points = []
        for frac in (0.05, 0.25):
            sz = sized(self.scale * frac)
            t = f"scale{sz['people']}"
            cpu = {}
            secs = self.sync_tenants([t], sz, cpu)
            points.append({"people": sz["people"], "objects": self.objects(sz),
                           "seconds": round(secs, 2),
                           "apply_cpu_s": round(cpu["merger"] + cpu["postgresql"], 2)})
            say(f"    {sz['people']} people: {secs:.1f} s")
        first = self.results["first_sync"]
        if first.get("seconds"):
            c = first.get("cpu_seconds_until_applied", {})
            points.append({"people": main_people, "objects": self.objects(self.sizes),
                           "seconds": first["seconds"], "note": "the first_sync run",
                           "apply_cpu_s": round(c.get("merger", 0) + c.get("postgresql", 0), 2)})
        base = points[0]
        for p in points:
            p["seconds_per_1000_objects"] = round(1000 * p["seconds"] / p["objects"], 3)
            p["vs_smallest_per_object"] = round(
                (p["seconds"] / p["objects"]) / (base["seconds"] / base["objects"]), 2)
            # CPU time of the merger + PostgreSQL per object: what the apply costs, much less
            # sensitive than wall time to what else runs on a shared machine.
            p["apply_cpu_ms_per_object"] = round(1000 * p["apply_cpu_s"] / p["objects"], 3)
            p["cpu_vs_smallest_per_object"] = ratio(p["apply_cpu_ms_per_object"],
                                                    base["apply_cpu_ms_per_object"])
        # Replicas over several districts: 4 districts whose tenant keys land on the 4
        # partitions (with the source topic keyed by tenant a district is one partition, and
        # several districts are what a second replica can share). One consumer per replica
        # (PANEL_MERGER_WORKERS=1): this compares processes, as it always did.
        rs = sized(self.scale * 0.05)
        names = self.spread_tenants(8)
        try:
            wait1 = s.set_mergers([1])
            t1 = self.sync_tenants(names[:4], rs)
            say(f"    4 districts x {rs['people']} people, 1 merger: {t1:.1f} s")
            wait2 = s.set_mergers([1, 1])
            t2 = self.sync_tenants(names[4:], rs)
            say(f"    4 districts x {rs['people']} people, 2 mergers: {t2:.1f} s")
            parts = s.psql("SELECT count(DISTINCT partition) FROM consumer_offsets WHERE "
                           f"topic = '{SOURCE_TOPIC}'")[0][0]
            try:
                one = self.replicas_one_district()
            except Exception as e:  # the 4-district figures stand without it
                traceback.print_exc()
                one = {"status": "error", "error": f"{type(e).__name__}: {e}"}
        finally:
            s.set_mergers([None])  # the suite's own merger, as the other benchmarks run it
        return {"points": points,
                "linearity_largest_vs_smallest_per_object": points[-1]["vs_smallest_per_object"],
                "cpu_linearity_largest_vs_smallest_per_object":
                    points[-1]["cpu_vs_smallest_per_object"],
                "replicas": {"districts": 4, "people_each": rs["people"],
                             "merger_workers_each": 1,
                             "one_merger_s": round(t1, 2), "two_mergers_s": round(t2, 2),
                             "speedup": ratio(t1, t2),
                             "assignment_wait_s": [wait1, wait2],
                             "source_partitions_used": int(parts)},
                "replicas_one_district": one}

    # The three ways one district is applied (issue 19): the baseline, the goal's two
    # replicas, and one replica with the merger's default number of consumer threads.
    ONE_DISTRICT_SETUPS = (("one_merger", [1], "1 merger x 1 worker"),
                           ("two_mergers", [1, 1], "2 mergers x 1 worker"),
                           ("one_merger_default_workers", ["default"],
                            "1 merger x default workers"))
    USED_SHARE = 0.05  # a partition "used" by a district carried >= 5% of its events

    def replicas_one_district(self):
        """ONE district (the scaling section's middle size, 25% of the benchmark district)
        synced from scratch three ways, each under a fresh tenant with the same generated
        content (same seed): 1 merger with PANEL_MERGER_WORKERS=1 (the baseline), 2 mergers
        with 1 each, 1 merger with the merger's default, each time in replicas started
        afresh. Each is timed from the sync request to both runs applied; the growth of the group's stored offsets per partition of the source
        topic says over how many partitions the district's events went, and each replica's
        merger_events_applied_total how the replicas shared them."""
        s = self.suite
        sz = sized(self.scale * 0.25)
        nparts = s.source_partitions()
        cpus = os.cpu_count() or 1
        out = {"people": sz["people"], "district": sz, "objects": self.objects(sz),
               "source_partitions": nparts, "cpus": cpus,
               "partition_used_if_share_at_least": self.USED_SHARE}
        for i, (key, workers, label) in enumerate(self.ONE_DISTRICT_SETUPS):
            wait = s.set_mergers(workers, fresh=True)
            # The previous sync's publishing and vacuuming are not timed here.
            s.wait_outbox(self.timeout)
            vacuum_wait = s.wait_autovacuum()
            load = round(os.getloadavg()[0], 2)
            off0 = s.applied_offsets()
            m0 = [s.port_metrics(m.port).get("merger_events_applied_total", 0.0)
                  for m in s.mergers]
            cpu = {}
            secs = self.sync_tenants([f"onedistrict{i + 1}"], sz, cpu, seed=300)
            off1 = s.applied_offsets()
            m1 = [s.port_metrics(m.port).get("merger_events_applied_total", 0.0)
                  for m in s.mergers]
            growth = {str(p): off1.get(p, 0) - off0.get(p, 0) for p in range(nparts)}
            total = sum(growth.values())
            used = sum(1 for v in growth.values() if total and v >= self.USED_SHARE * total)
            out[key] = {"seconds": round(secs, 2), "mergers": len(workers),
                        "merger_workers_each": s.workers_setting(workers[0]),
                        "events_by_partition": growth, "partitions_used": used,
                        "events_by_merger": [int(b - a) for a, b in zip(m0, m1)],
                        # CPU seconds of the mergers + PostgreSQL: the same work each time,
                        # so a wall time far from the others' with the same CPU is the
                        # machine's load, not the setup
                        "apply_cpu_s": round(cpu["merger"] + cpu["postgresql"], 2),
                        "assignment_wait_s": wait, "autovacuum_wait_s": vacuum_wait,
                        # the shared machine's load when the sync started
                        "load_average_1min": load}
            say(f"    one district x {sz['people']} people, {label}: {secs:.1f} s; events by "
                f"partition {growth}; by replica {out[key]['events_by_merger']}; apply CPU "
                f"{out[key]['apply_cpu_s']} s; load average {load}")
        base = out["one_merger"]["seconds"]
        for key, name in (("two_mergers", "speedup_two_mergers"),
                          ("one_merger_default_workers", "speedup_default_workers")):
            out[name] = ratio(base, out[key]["seconds"])
            out[name + "_per_core"] = ratio(out[name], cpus)
        out["partitions_used"] = out["two_mergers"]["partitions_used"]
        return out

    @staticmethod
    def objects(sz):
        return sz["people"] + sz["azure_people"] + sz["devices"] + sz["ous"]

    @staticmethod
    def spread_tenants(n, partitions=4):
        """Tenant ids whose keys land on distinct partitions in turn (librdkafka's default
        partitioner hashes the key with CRC-32), so both replicas get work."""
        out, i = [], 0
        while len(out) < n:
            name = f"rep{i}"
            if zlib.crc32(name.encode()) % partitions == len(out) % partitions:
                out.append(name)
            i += 1
        return out

    # -------------------------------------------------------- 8 a million people
    def million(self):
        """Issue 19: a 1,000,000-person district synced once end to end, with where its time
        goes: the fetchers' runs, the publish and apply windows, CPU seconds per process
        (sampled every 10 s), the merger's batches and, when pg_stat_statements is there, the
        15 PostgreSQL statements that took the most time."""
        s = self.suite
        sz = sized(float(os.environ.get("BENCH_MILLION_SCALE", "1")), MILLION)
        timeout = int(os.environ.get("BENCH_MILLION_TIMEOUT", "5400"))
        tenant = "million"
        t_gen = time.time()
        s.new_district(tenant, sz, seed=100, timeout=timeout)
        gen_s = time.time() - t_gen
        say(f"    emulator generated the district in {gen_s:.1f} s "
            f"(emulator RSS {s.vmhwm_mib('emulator')} MiB)")
        statements = self.pg_statements_reset()
        before = {n: s.metrics(n) for n in ("google-sync", "azure-sync", "merger")}
        off0 = s.offsets([SOURCE_TOPIC] + PUBLIC_TOPICS)
        sampler = Sampler(s)
        timeline = CpuTimeline(s)
        sampler.start()
        timeline.start()
        cpu0 = s.cpu_seconds()
        t0 = s.db_now()
        deadline = time.time() + timeout
        try:
            s.connect_both(tenant)
            fetch = self.fetch_figures(before, timeout)
            say(f"    fetchers done: {fetch}")
            runs = s.wait_runs([tenant], t0, 2, max(1, deadline - time.time()))
            cpu1 = s.cpu_seconds()
            t_applied = time.time()
            s.wait_outbox(max(1, deadline - time.time()))
            t_published = time.time()
            cpu2 = s.cpu_seconds()
        except Exception as e:
            # What was measured until then (a run that cannot finish still says how far it
            # got, at what cost and where its time went).
            sampler.stop()
            timeline.stop()
            cpu = s.cpu_seconds()
            return {"status": "error", "error": f"{type(e).__name__}: {e}",
                    "district": sz, "generate_seconds": round(gen_s, 1),
                    "seconds_until_stopped": round(s.db_now() - t0, 1),
                    "progress": {r[0]: int(r[1]) for r in s.psql(
                        f"SELECT 'people', count(*) FROM people WHERE tenant_id = '{tenant}' "
                        f"UNION ALL SELECT 'person_sources', count(*) FROM person_sources "
                        f"WHERE tenant_id = '{tenant}' UNION ALL SELECT 'assets', count(*) "
                        f"FROM assets WHERE tenant_id = '{tenant}'")},
                    "peak_rss_mib": {n: s.vmhwm_mib(n) for n in
                                     ("google-sync", "azure-sync", "merger", "emulator")},
                    "cpu_seconds": {k: round(v - cpu0.get(k, 0.0), 1)
                                    for k, v in sorted(cpu.items())},
                    "cpu_timeline": timeline.rows,
                    "pg_statements": self.pg_statements_top(15) if statements else
                    self.statements}
        finally:
            sampler.stop()
            timeline.stop()
        after = {n: s.metrics(n) for n in ("google-sync", "azure-sync", "merger")}
        off1 = s.offsets([SOURCE_TOPIC] + PUBLIC_TOPICS)
        e2e = max(r["finished"] for r in runs) - min(r["requested"] for r in runs)
        d = lambda n, k: after[n].get(k, 0.0) - before[n].get(k, 0.0)  # noqa: E731
        pub_n, pub_s = sampler.window("source")
        app_n, app_s = sampler.window("applied")
        rss = {n: s.vmhwm_mib(n) for n in ("google-sync", "azure-sync", "merger", "emulator")}
        db = s.psql("SELECT pg_database_size(current_database())")[0][0]
        counts = s.psql(
            f"SELECT (SELECT count(*) FROM people WHERE tenant_id = '{tenant}' AND removed_at "
            f"IS NULL), (SELECT count(*) FROM assets WHERE tenant_id = '{tenant}'), "
            f"(SELECT count(*) FROM org_units WHERE tenant_id = '{tenant}' AND removed_at "
            f"IS NULL)")[0]
        dup = sum(int(r[0]) for r in s.psql(
            "SELECT count(*) - count(DISTINCT email_norm) FROM person_sources WHERE "
            f"tenant_id = '{tenant}' GROUP BY source"))
        tables = {r[0]: round(int(r[1]) / 1048576.0, 1) for r in s.psql(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' AND "
            "relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 10")}
        return {"district": sz, "seconds": round(e2e, 2),
                "generate_seconds": round(gen_s, 1),
                "outbox_drained_after_s": round(t_published - t_applied + e2e, 2),
                "runs": [{k: r[k] for k in ("source", "status", "seen", "created", "updated")}
                         | {"seconds": round(r["finished"] - r["requested"], 2)} for r in runs],
                "people": int(counts[0]),
                "people_expected": sz["people"] + sz["azure_people"] - sz["shared"] - dup,
                "assets": int(counts[1]), "assets_expected": sz["devices"],
                "org_units": int(counts[2]),
                "peak_rss_mib": rss,
                "database_mib": round(int(db) / 1048576.0, 1),
                "largest_tables_mib": tables,
                "stages": {
                    "fetch_parse": fetch,
                    "publish": {"events": int(off1[SOURCE_TOPIC] - off0[SOURCE_TOPIC]),
                                "window_s": round(pub_s or 0, 2),
                                "events_per_s": rate(pub_n, pub_s)},
                    "apply": {"events": int(d("merger", "merger_events_applied_total")),
                              "window_s": round(app_s or 0, 2),
                              "events_per_s": rate(app_n, app_s),
                              "batches": int(d("merger", "merger_batches_total")),
                              "batch_seconds_total":
                                  round(d("merger", "merger_batch_seconds_sum"), 2)},
                },
                "public_events": {t: off1[t] - off0[t] for t in PUBLIC_TOPICS},
                "cpu_seconds_until_applied": {k: round(v - cpu0.get(k, 0.0), 1)
                                              for k, v in sorted(cpu1.items())},
                "cpu_seconds_until_published": {k: round(v - cpu0.get(k, 0.0), 1)
                                                for k, v in sorted(cpu2.items())},
                "cpu_timeline": timeline.rows,
                "pg_statements": self.pg_statements_top(15) if statements else
                self.statements}

    # -------------------------------------------------------- profiles
    def statements_setup(self):
        """Once PostgreSQL runs: pg_stat_statements in the benchmark's database, and a role of
        the benchmark's own for its queries (Suite.psql), so that they are told apart from the
        suite's. When the server did not load the library, self.statements says why."""
        if self.statements != "loaded":
            return
        s = self.suite
        try:
            s.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            s.psql("SELECT count(*) FROM pg_stat_statements")  # fails unless preloaded
            s.psql("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench') "
                   "THEN CREATE ROLE bench LOGIN SUPERUSER; END IF; END$$")
        except RuntimeError as e:
            self.statements = f"not available ({str(e).strip().splitlines()[0]})"
            return
        u = urllib.parse.urlsplit(s.env["PANEL_PG_URL"])
        s.psql_url = urllib.parse.urlunsplit(u._replace(netloc="bench@" +
                                                         u.netloc.rpartition("@")[2]))

    def pg_statements_reset(self):
        """True when pg_stat_statements is there; its counters are then reset so that they
        hold the coming timed section's statements only."""
        if self.statements != "loaded":
            return False
        try:
            self.suite.psql("SELECT pg_stat_statements_reset()")
        except RuntimeError as e:
            self.statements = f"not available ({str(e).strip().splitlines()[0]})"
            return False
        return True

    def pg_statements_top(self, n=12):
        """The suite's n statements of the most execution time since the reset, with their
        share of the suite's total; the benchmark's own queries (its role) only as a total."""
        s = self.suite
        totals = {r[0] == "t": (int(r[1]), float(r[2])) for r in s.psql(
            "SELECT r.rolname = 'bench', sum(st.calls), sum(st.total_exec_time) FROM "
            "pg_stat_statements st JOIN pg_roles r ON r.oid = st.userid GROUP BY 1")}
        calls, total = totals.get(False, (0, 0.0))
        own_calls, own = totals.get(True, (0, 0.0))
        rows = s.psql(
            "SELECT st.calls, st.total_exec_time, st.rows, left(regexp_replace(st.query, "
            "'\\s+', ' ', 'g'), 300) FROM pg_stat_statements st JOIN pg_roles r ON r.oid = "
            "st.userid WHERE r.rolname <> 'bench' ORDER BY st.total_exec_time DESC LIMIT "
            + str(n))
        return {"total_exec_ms": round(total, 1), "calls": calls,
                "bench_own_exec_ms": round(own, 1), "bench_own_calls": own_calls,
                "top": [{"calls": int(r[0]), "total_ms": round(float(r[1]), 1),
                         "mean_ms": round(float(r[1]) / int(r[0]), 3) if int(r[0]) else None,
                         "share": ratio(float(r[1]), total), "rows": int(r[2]), "query": r[3]}
                        for r in rows]}

    # -------------------------------------------------------- output
    def describe(self, name, r):
        if r.get("status") not in ("ok",):
            yield f"{r.get('status')}: {r.get('error', r.get('note', ''))}"
            return
        if name == "first_sync":
            st = r["stages"]
            yield (f"{r['seconds']} s end to end (target {r['target_seconds']} s); people "
                   f"{r['people']}/{r['people_expected']}, assets {r['assets']}/"
                   f"{r['assets_expected']}, OUs {r['org_units']}")
            for n, f in st["fetch_parse"].items():
                yield f"fetch+parse {n}: {f['objects']} objects in {f['run_seconds']} s = {f['objects_per_s']}/s"
            yield (f"publish: {st['publish']['events']} events, {st['publish']['events_per_s']}/s; "
                   f"apply: {st['apply']['events']} events, {st['apply']['events_per_s']}/s")
        elif name == "no_change":
            yield (f"{r['seconds']} s (target {r['target_seconds']} s, {r['ratio_to_first_sync']} "
                   f"x first sync); row changes {r['row_changes']}, public events "
                   f"{r['public_events']}")
        elif name == "small_change":
            o = r["observed"]
            yield (f"{r['changed']} changed: {r['seconds']} s; people updates "
                   f"{o['people_updates']}, source updates {o['person_sources_updates']}, "
                   f"events {o['people_events']}, run updated {o['run_updated']}; exact: {r['exact']}")
        elif name == "apply_vs_copy":
            yield (f"merger {r['merger_events_per_s']} events/s vs COPY {r['copy_rows_per_s']} "
                   f"rows/s: ratio {r['ratio']} (target >= {r['target_ratio']})")
        elif name == "fetchers":
            for n in ("google-sync", "azure-sync"):
                f = r[n]
                yield (f"{n}: {f['fetcher_objects_per_s']}/s vs discard {f['discard_objects_per_s']}/s"
                       f": ratio {f['ratio']}")
            w = r.get("google-sync_with_latency")
            if w:
                yield (f"google-sync with {w['delay_ms_per_page']} ms per page: "
                       f"{w['fetcher_seconds']} s vs discard {w['discard_seconds']} s: ratio "
                       f"{w['ratio']}")
            yield f"peak RSS MiB: {r['peak_rss_mib']}"
        elif name == "api":
            for n in ("person_lookup", "list_100"):
                f = r[n]
                yield (f"{n}: api {f['api_rps']} req/s p99 {f['api_p99_ms']} ms vs pgbench "
                       f"{f['pgbench_tps']} tps p99 {f['pgbench_p99_ms']} ms: ratio {f['ratio']}")
        elif name == "million":
            yield (f"{r['district']['people']} people: {r['seconds']} s (outbox drained after "
                   f"{r['outbox_drained_after_s']} s); people {r['people']}/"
                   f"{r['people_expected']}, assets {r['assets']}/{r['assets_expected']}")
            yield f"peak RSS MiB {r['peak_rss_mib']}; database {r['database_mib']} MiB"
            yield f"CPU seconds until published: {r['cpu_seconds_until_published']}"
        elif name == "scaling":
            for p in r["points"]:
                yield (f"{p['people']} people: {p['seconds']} s, {p['seconds_per_1000_objects']} "
                       f"s/1000 objects ({p['vs_smallest_per_object']} x smallest); apply CPU "
                       f"{p['apply_cpu_ms_per_object']} ms/object "
                       f"({p['cpu_vs_smallest_per_object']} x smallest)")
            rp = r["replicas"]
            yield (f"replicas, 4 districts: 1 merger {rp['one_merger_s']} s, 2 mergers "
                   f"{rp['two_mergers_s']} s, speedup {rp['speedup']}")
            one = r.get("replicas_one_district") or {}
            if one.get("status") == "error":
                yield f"replicas, one district: error: {one.get('error')}"
            elif one:
                yield (f"replicas, one district of {one['people']} people: 1 merger x 1 worker "
                       f"{one['one_merger']['seconds']} s, 2 mergers x 1 worker "
                       f"{one['two_mergers']['seconds']} s (speedup "
                       f"{one['speedup_two_mergers']}, {one['speedup_two_mergers_per_core']} "
                       f"per core on {one['cpus']}), 1 merger x "
                       f"{one['one_merger_default_workers']['merger_workers_each']} workers "
                       f"{one['one_merger_default_workers']['seconds']} s (speedup "
                       f"{one['speedup_default_workers']}, "
                       f"{one['speedup_default_workers_per_core']} per core)")
                yield (f"the district used {one['partitions_used']} of "
                       f"{one['source_partitions']} partitions; events by partition "
                       f"{one['two_mergers']['events_by_partition']}, by replica "
                       f"{one['two_mergers']['events_by_merger']}")

    def table(self):
        r = self.results
        rows = []

        def add(bench, figure, baseline, rat, target, met):
            rows.append((bench, figure, baseline, "" if rat is None else str(rat), target,
                         {True: "met", False: "MISSED", None: ""}[met]))

        f = r["first_sync"]
        if f.get("status") == "ok":
            floor = None
            if self.ctx.get("copy_s") and self.ctx.get("discard_s"):
                floor = max(self.ctx["discard_s"].values()) + self.ctx["copy_s"]
            add("1 first sync", f"{f['seconds']} s",
                f"download+COPY floor {round(floor, 1) if floor else '?'} s",
                ratio(f["seconds"], floor), "<= 60 s", f["seconds"] <= 60)
            st = f["stages"]
            add("  fetch+parse", " / ".join(f"{v['objects_per_s']}/s" for v in
                                          st["fetch_parse"].values()), "(google / azure)",
                None, "", None)
            add("  publish", f"{st['publish']['events_per_s']} ev/s", "", None, "", None)
            add("  apply", f"{st['apply']['events_per_s']} ev/s", "", None, "", None)
        else:
            add("1 first sync", f.get("status"), "", None, "<= 60 s", None)
        n = r["no_change"]
        if n.get("status") == "ok":
            lim = TARGETS["no_change_s"]
            add("2 no-change resync", f"{n['seconds']} s, {n['row_changes']} rows, "
                f"{n['public_events']} events", "first sync", n["ratio_to_first_sync"],
                f"<= {lim:g} s, 0, 0", n["seconds"] <= lim and n["zero_changes"])
        else:
            add("2 no-change resync", n.get("status"), "", None,
                f"<= {TARGETS['no_change_s']:g} s", None)
        c = r["small_change"]
        if c.get("status") == "ok":
            o = c["observed"]
            add("3 1% change resync", f"{c['seconds']} s, {o['people_updates']} upd, "
                f"{o['people_events']} ev / {c['changed']}", "no-change resync",
                c["ratio_to_no_change"], "exact counts", c["exact"])
        else:
            add("3 1% change resync", c.get("status"), "", None, "exact counts", None)
        a = r["apply_vs_copy"]
        if a.get("status") == "ok":
            add("4 merger apply", f"{a['merger_events_per_s']} ev/s",
                f"COPY {a['copy_rows_per_s']} rows/s", a["ratio"], ">= 0.5", a["ratio"] >= 0.5)
        else:
            add("4 merger apply", a.get("status"), "", None, ">= 0.5", None)
        fe = r["fetchers"]
        if fe.get("status") == "ok":
            for svc in ("google-sync", "azure-sync"):
                add(f"5 {svc}", f"{fe[svc]['fetcher_objects_per_s']} obj/s",
                    f"discard {fe[svc]['discard_objects_per_s']} obj/s", fe[svc]["ratio"], "",
                    None)
            rss = fe["peak_rss_mib"]
            for svc, tgt in fe["rss_targets_mib"].items():
                add(f"5 RSS {svc}", f"{rss[svc]} MiB", "", None, f"<= {tgt:g} MiB",
                    rss[svc] is not None and rss[svc] <= tgt)
        else:
            add("5 fetchers", fe.get("status"), "", None, "", None)
        ap = r["api"]
        if ap.get("status") == "ok":
            for k in ("person_lookup", "list_100"):
                add(f"6 api {k}", f"{ap[k]['api_rps']} req/s p99 {ap[k]['api_p99_ms']} ms",
                    f"pgbench {ap[k]['pgbench_tps']} tps p99 {ap[k]['pgbench_p99_ms']} ms",
                    ap[k]["ratio"], "", None)
        else:
            add("6 api", ap.get("status"), "", None, "", None)
        sc = r["scaling"]
        if sc.get("status") == "ok":
            pts = sc["points"]
            add("7 scaling", " / ".join(f"{p['people']}: {p['seconds']} s" for p in pts),
                "smallest, per object", sc["linearity_largest_vs_smallest_per_object"],
                "linear (~1.0)", None)
            add("  apply CPU/object", " / ".join(f"{p['apply_cpu_ms_per_object']} ms"
                                                 for p in pts),
                "smallest, per object", sc["cpu_linearity_largest_vs_smallest_per_object"],
                "linear (~1.0)", None)
            rp = sc["replicas"]
            add("7 merger replicas", f"1: {rp['one_merger_s']} s, 2: {rp['two_mergers_s']} s",
                "1 replica (speedup), 4 districts", rp["speedup"], "", None)
            one = sc.get("replicas_one_district") or {}
            tgt = TARGETS["replicas_one_district"]
            if one.get("status") == "error":
                add("7 replicas, one district", "error", "", None, f">= {tgt:g}", None)
            elif one:
                add("7 replicas, one district",
                    f"1: {one['one_merger']['seconds']} s, 2: {one['two_mergers']['seconds']} s "
                    f"({one['partitions_used']}/{one['source_partitions']} partitions used)",
                    "1 replica x 1 worker (speedup)", one["speedup_two_mergers"], f">= {tgt:g}",
                    self.one_district_met(one))
                add("  1 replica, default workers",
                    f"{one['one_merger_default_workers']['merger_workers_each']} workers: "
                    f"{one['one_merger_default_workers']['seconds']} s",
                    "1 replica x 1 worker (speedup)", one["speedup_default_workers"], "", None)
        else:
            add("7 scaling", sc.get("status"), "", None, "", None)
        mi = r["million"]
        if mi.get("status") == "ok":
            rss = mi["peak_rss_mib"]
            cpu = mi["cpu_seconds_until_published"]
            add(f"8 {mi['district']['people']:,} people", f"{mi['seconds']} s, database "
                f"{mi['database_mib']} MiB", "", None, "", None)
            add("  peak RSS", " / ".join(f"{rss[n]}" for n in
                                         ("google-sync", "azure-sync", "merger")) + " MiB",
                "(google / azure / merger)", None, "<= 64 / 64 / 512 MiB",
                self.million_rss_met(rss))
            add("  CPU seconds", ", ".join(f"{n} {cpu.get(n)}" for n in
                                           ("google-sync", "azure-sync", "merger", "postgresql",
                                            "kafka", "emulator")), "", None, "", None)
        elif mi.get("status") == "error":
            add("8 million", "error", "", None, "", None)
        head = ("benchmark", "figure", "baseline (same run)", "ratio", "target", "")
        w = [max(len(str(x[i])) for x in rows + [head]) for i in range(6)]
        lines = ["| " + " | ".join(str(x[i]).ljust(w[i]) for i in range(6)) + " |"
                 for x in [head] + rows]
        lines.insert(1, "|" + "|".join("-" * (w[i] + 2) for i in range(6)) + "|")
        return "\n".join(lines)

    # -------------------------------------------------------- issue 19's goals
    def goals(self, total_s):
        """Every goal of issue 19 with the figure this run measured, its ratio to the goal's
        baseline and met / missed; "not run" / "not measured" when this run has no figure."""
        r, z = self.results, self.sizes
        at = "" if self.scale == 1 else f" (BENCH_SCALE={self.scale:g}: the goal is for 1)"
        out = []

        def goal(name, target, figure=None, rat=None, met=None, note="", detail=None):
            verdict = ("met" if met else "missed") if met is not None else (note or "not run")
            out.append({"goal": name, "target": target, "figure": figure, "ratio": rat,
                        "verdict": verdict, "note": detail})

        f = r["first_sync"]
        if f.get("status") == "ok":
            goal("full district first sync", f"<= {TARGETS['first_sync_s']:g} s",
                 f"{f['seconds']} s{at}", ratio(f["seconds"], TARGETS["first_sync_s"]),
                 f["seconds"] <= TARGETS["first_sync_s"])
        else:
            goal("full district first sync", f"<= {TARGETS['first_sync_s']:g} s",
                 note=f.get("status"))
        n = r["no_change"]
        lim = TARGETS["no_change_s"]
        if n.get("status") == "ok":
            goal("no-change resync", f"<= {lim:g} s, 0 row writes, 0 public events",
                 f"{n['seconds']} s, {n['row_changes']} rows, {n['public_events']} events{at}",
                 ratio(n["seconds"], lim), n["seconds"] <= lim and n["zero_changes"])
        else:
            goal("no-change resync", f"<= {lim:g} s, 0, 0", note=n.get("status"))
        a = r["apply_vs_copy"]
        if a.get("status") == "ok":
            goal("merger apply vs COPY", f">= {TARGETS['apply_vs_copy_ratio']:g} x COPY",
                 f"{a['merger_events_per_s']} ev/s vs {a['copy_rows_per_s']} rows/s",
                 a["ratio"], a["ratio"] >= TARGETS["apply_vs_copy_ratio"])
        else:
            goal("merger apply vs COPY", ">= 0.5 x COPY", note=a.get("status"))
        sc = r["scaling"]
        one = sc.get("replicas_one_district") if sc.get("status") == "ok" else None
        tgt = f">= {TARGETS['replicas_one_district']:g} x one replica (one district)"
        name = "2 merger replicas on one district"
        if one and one.get("status") != "error":
            rp = sc["replicas"]
            used = one["partitions_used"]
            w = one["one_merger_default_workers"]
            goal(name, tgt,
                 f"{one['people']:,} people: 1 merger {one['one_merger']['seconds']} s, 2 mergers "
                 f"{one['two_mergers']['seconds']} s (1 worker each; "
                 f"{one['speedup_two_mergers_per_core']} per core on {one['cpus']} cores); 1 "
                 f"merger x {w['merger_workers_each']} workers {w['seconds']} s (x"
                 f"{one['speedup_default_workers']}); {used} of {one['source_partitions']} "
                 f"partitions used; 4 districts: x{rp['speedup']}",
                 one["speedup_two_mergers"], self.one_district_met(one),
                 detail=f"the district used {used} partition{'' if used == 1 else 's'}"
                 if used <= 1 else None)
        elif one:
            goal(name, tgt, note=f"error: {one.get('error')}")
        else:
            goal(name, tgt, note=sc.get("status"))
        m = r["million"]
        if m.get("status") == "ok":
            rss = m["peak_rss_mib"]
            people = m["district"]["people"]
            size = "" if people == MILLION["people"] else \
                f" (BENCH_MILLION_SCALE: {people:,} people, the goal is for 1,000,000)"
            cpu = m["cpu_seconds_until_published"]
            goal("1,000,000-person district synced once",
                 "fetchers <= 64 MiB, merger <= 512 MiB RSS",
                 f"{m['seconds']} s; RSS google-sync {rss['google-sync']}, azure-sync "
                 f"{rss['azure-sync']}, merger {rss['merger']} MiB; database "
                 f"{m['database_mib']} MiB; CPU s merger {cpu.get('merger')}, postgresql "
                 f"{cpu.get('postgresql')}, kafka {cpu.get('kafka')}{size}", None,
                 self.million_rss_met(rss) if not size else None,
                 "" if not size else "not measured at 1,000,000 (a smaller district ran)")
        else:
            goal("1,000,000-person district synced once",
                 "fetchers <= 64 MiB, merger <= 512 MiB RSS", note=m.get("status"))
        lim = TARGETS["bench_default_s"]
        name = "make bench: the full district by default, in <= 20 min"
        if self.scale == 1 and not self.only:
            goal(name, f"default BENCH_SCALE 1, whole run <= {lim:g} s",
                 f"{total_s:.0f} s at full size; default BENCH_SCALE {DEFAULT_SCALE:g}",
                 ratio(total_s, lim), total_s <= lim and DEFAULT_SCALE == 1)
        else:
            goal(name, f"default BENCH_SCALE 1, whole run <= {lim:g} s",
                 f"default BENCH_SCALE {DEFAULT_SCALE:g}; this run {total_s:.0f} s at "
                 f"{self.scale:g}", None, None, "not measured (needs a whole run at scale 1)")
        fe = r["fetchers"]
        if fe.get("status") == "ok":
            for svc in ("google-sync", "azure-sync"):
                x = fe[svc]
                goal(f"{svc} vs a download-only client (first sync)", "(no target; was 0.195 "
                     "google, 0.054 azure)", f"{x['fetcher_objects_per_s']} vs "
                     f"{x['discard_objects_per_s']} obj/s, {x['fetcher_pages']} pages vs "
                     f"{x['discard_pages']}", x["ratio"], None, "figure only")
            w = fe.get("google-sync_with_latency")
            if w:
                goal(f"google-sync vs a download-only client ({w['delay_ms_per_page']} ms per "
                     "page)", "(no target)", f"{w['fetcher_seconds']} s vs "
                     f"{w['discard_seconds']} s", w["ratio"], None, "figure only")
            if n.get("status") == "ok" and n.get("google_sync_objects_per_s"):
                d = fe["google-sync"]["discard_objects_per_s"]
                goal("google-sync vs a download-only client (no-change resync)",
                     "(no target)", f"{n['google_sync_objects_per_s']} vs {d} obj/s",
                     ratio(n["google_sync_objects_per_s"], d), None, "figure only")
        return out

    @staticmethod
    def one_district_met(one):
        """Two replicas on one district: met at >= 1.6 x one, and only when the district was
        spread at all (on one partition a speed-up is noise: one replica applied it all)."""
        return one["partitions_used"] > 1 and one["speedup_two_mergers"] is not None and \
            one["speedup_two_mergers"] >= TARGETS["replicas_one_district"]

    @staticmethod
    def million_rss_met(rss):
        fetchers = all(rss.get(x) is not None and rss[x] <= TARGETS["fetcher_rss_mib"]
                       for x in ("google-sync", "azure-sync"))
        return fetchers and rss.get("merger") is not None and \
            rss["merger"] <= TARGETS["million_merger_rss_mib"]

    @staticmethod
    def goals_table(goals):
        head = ("goal", "target", "figure", "ratio", "")
        rows = [(g["goal"], g["target"], g["figure"] or "", "" if g["ratio"] is None
                 else str(g["ratio"]), g["verdict"] + (f" ({g['note']})" if g.get("note")
                                                       else "")) for g in goals]
        w = [max(len(str(x[i])) for x in rows + [head]) for i in range(5)]
        lines = ["| " + " | ".join(str(x[i]).ljust(w[i]) for i in range(5)) + " |"
                 for x in [head] + rows]
        lines.insert(1, "|" + "|".join("-" * (w[i] + 2) for i in range(5)) + "|")
        return "\n".join(lines)

    # -------------------------------------------------------- main
    def run(self):
        s = self.suite
        t_start = time.time()
        z = self.sizes
        say(f"==> benchmark district: {z['people']} Google people, {z['azure_people']} Azure, "
            f"{z['shared']} shared, {z['devices']} Chromebooks, {z['ous']} OUs "
            f"(BENCH_SCALE={self.scale:g})")
        s.fresh()
        s.infra()
        self.statements_setup()
        say(f"    PostgreSQL's statement statistics (pg_stat_statements): {self.statements}")
        t_emu = time.time()
        self.start_services()
        say(f"    emulator generated the district and services are ready in "
            f"{time.time() - t_emu:.1f} s")
        # A small district first: every consumer group has joined and every connection pool
        # is warm before anything is timed.
        t_warm = time.time()
        self.sync_tenants(["warmup"], sized(0.0001))
        say(f"    warm-up sync done in {time.time() - t_warm:.1f} s")
        self.section("first_sync", self.first_sync)
        self.section("no_change", self.no_change)
        self.section("small_change", self.small_change)
        self.section("apply_vs_copy", self.apply_vs_copy)
        self.section("fetchers", self.fetchers)
        self.section("api", self.api)
        self.section("scaling", self.scaling)
        self.section("million", self.million)
        total = time.time() - t_start
        out = {"scale": self.scale, "district": z, "total_seconds": round(total, 1),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "python": platform.python_version()},
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               # the merger's consumer threads outside the replica benchmarks (which set
               # their own): PANEL_MERGER_WORKERS as given to bench/run.py, else its default
               "merger_workers": s.workers_setting(None),
               "targets": TARGETS, "results": self.results}
        table = self.table()
        out["table"] = table
        say("\n" + table)
        goals = self.goals(total)
        out["goals"] = goals
        say("\n==> issue 19 goals\n" + self.goals_table(goals))
        say(f"\n==> make bench took {total:.0f} s")
        path = os.environ.get("BENCH_RESULTS",
                              os.path.join(ROOT, "bench", "results", "latest.json"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)
        say(f"    results: {path}")
        return 0

    def start_services(self):
        """demo.py's wiring; the merger is started separately so a second replica can join."""
        s = self.suite
        orig = s.start

        def start(name, port, extra):
            if name == "merger":
                s.ports["merger"] = port
                s.start_merger()
                return
            orig(name, port, extra)
        s.start = start
        try:
            s.services()
        finally:
            s.start = orig


def main():
    for name in ("panelctl", "panel-emulator", "panel-auth", "panel-google-sync",
                 "panel-azure-sync", "panel-merger"):
        if not os.access(os.path.join(BIN, name), os.X_OK):
            raise SystemExit(f"{BIN}/{name} is missing: run `make` first")
    for tool in ("wrk", "pgbench", "psql"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run scripts/deps.sh")
    scale = float(os.environ.get("BENCH_SCALE", DEFAULT_SCALE))
    if not 0 < scale <= 5:
        raise SystemExit("BENCH_SCALE must be in (0, 5]")
    b = Bench(scale)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return b.run()
    except KeyboardInterrupt:
        say("\n==> interrupted")
        return 130
    finally:
        b.suite.stop_all()
        say("==> stopped everything the benchmark started")


if __name__ == "__main__":
    sys.exit(main())
