#!/usr/bin/env python3
"""Benchmark: how fast panel-merger applies a district's source events, compared with a plain
COPY of the same rows into PostgreSQL in the same run.

Needs PostgreSQL and Kafka (e.g. `PANEL_RUN_DIR=$PWD/.run/dev sh scripts/infra.sh up` and
`. .run/dev/env`, migrated, topics created) and a build. Prints one JSON object and writes it
to bench/results/merger_apply.json.

  python3 bench/merger_apply.py [--people 20000] [--devices 2000] [--batch 2000]

Three measurements, each on a fresh tenant:
  import      a first full run: every object is new (source rows, People, Assets, outbox)
  resync      the same run again: every object is unchanged (hash compare, no writes)
  copy        COPY of the same person rows (tenant, source, id, email, fields jsonb) into an
              unlogged table: the floor of what writing the rows costs
The merger's time is taken from PostgreSQL (RunStarted applied -> RunCompleted applied), so
publishing is not counted. After each run the bench also waits until the outbox relay has
published and marked every row of the tenant (`*_outbox_drained_seconds`: from RunCompleted
applied to the last row marked sent). With `--statements` (PostgreSQL started with
pg_stat_statements loaded, e.g. PANEL_PG_PRELOAD=pg_stat_statements) the statistics are reset
first and the costliest statements of the whole bench are added to the JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402


def events(tenant, run_id, n_people, n_devices):
    yield {"tenant_id": tenant, "source": "SOURCE_GOOGLE", "run_id": run_id,
           "run_started": {"kind": "RUN_KIND_FULL", "reason": "bench"}}
    for i in range(n_people):
        yield {"tenant_id": tenant, "source": "SOURCE_GOOGLE", "run_id": run_id,
               "person_observed": {"person": {
                   "source_id": f"g{i}", "email": f"user{i}@bench.k12.example",
                   "given_name": f"Given{i}", "family_name": f"Family{i}",
                   "display_name": f"Given{i} Family{i}", "org_unit_path": f"/School{i % 40}",
                   "suspended": False, "is_admin": False,
                   "created_at": "2020-08-01T10:00:00.000Z"}}}
    for i in range(n_devices):
        yield {"tenant_id": tenant, "source": "SOURCE_GOOGLE", "run_id": run_id,
               "device_observed": {"device": {
                   "device_id": f"d{i}", "serial_number": f"SER{i:08d}",
                   "model": "Chromebook 314", "status": "ACTIVE",
                   "org_unit_path": f"/School{i % 40}", "os_version": "120.0",
                   "last_sync": "2024-05-01T08:00:00.000Z", "auto_update_through": "2029-06-01"}}}
    yield {"tenant_id": tenant, "source": "SOURCE_GOOGLE", "run_id": run_id,
           "run_completed": {"kind": "RUN_KIND_FULL"}}


def publish(tenant, evs):
    data = "".join(json.dumps(e) + "\n" for e in evs)
    subprocess.run([harness.binary("panelctl"), "publish", "panel.source.events", tenant],
                   input=data, text=True, check=True, capture_output=True)


def run_seconds(tenant, run_id, timeout=1800):
    def done():
        rows = harness.psql("SELECT status, extract(epoch FROM finished_at - started_at) "
                            "FROM sync_runs WHERE tenant_id = :'t' AND run_id = :'r'",
                            t=tenant, r=run_id)
        return rows and rows[0][0] == "completed" and float(rows[0][1])
    return harness.wait_until(done, timeout=timeout, interval=0.5, what="run completed")


def outbox_drained_seconds(tenant, run_id, timeout=1800):
    """Seconds from run_id's end to the last outbox row of tenant marked sent."""
    def drained():
        rows = harness.psql("SELECT count(*) FILTER (WHERE sent_at IS NULL), "
                            "extract(epoch FROM max(sent_at) - (SELECT finished_at FROM sync_runs"
                            " WHERE tenant_id = :'t' AND run_id = :'r')) "
                            "FROM outbox WHERE tenant_id = :'t'", t=tenant, r=run_id)
        return rows[0][0] == "0" and [max(0.0, float(rows[0][1] or 0))]
    return harness.wait_until(drained, timeout=timeout, interval=0.2, what="outbox drained")[0]


def statements_reset():
    harness.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; "
                 "SELECT pg_stat_statements_reset()")


def statements_top(n=20):
    """The n statements of the bench with the most execution time."""
    rows = harness.psql("SELECT calls, round(total_exec_time::numeric, 1), rows, "
                        "shared_blks_hit + shared_blks_read, shared_blks_dirtied, wal_bytes, "
                        "regexp_replace(left(query, 160), '\\s+', ' ', 'g') "
                        "FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' "
                        "ORDER BY total_exec_time DESC LIMIT " + str(int(n)))
    return [{"calls": int(r[0]), "ms": float(r[1]), "rows": int(r[2]), "blocks": int(r[3]),
             "dirtied": int(r[4]), "wal_bytes": int(r[5]), "query": r[6]} for r in rows]


def copy_seconds(tenant, n_people):
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        for i in range(n_people):
            fields = json.dumps({"email": f"user{i}@bench.k12.example",
                                 "email_normalized": f"user{i}@bench.k12.example",
                                 "given_name": f"Given{i}", "family_name": f"Family{i}",
                                 "display_name": f"Given{i} Family{i}",
                                 "org_unit_path": f"/School{i % 40}"})
            f.write(f"{tenant}\tgoogle\tg{i}\tuser{i}@bench.k12.example\t"
                    + fields.replace("\\", "\\\\") + "\n")
        path = f.name
    try:
        sql = ("CREATE UNLOGGED TABLE IF NOT EXISTS bench_copy (tenant_id text, source text, "
               "source_id text, email_norm text, fields jsonb);\n"
               "TRUNCATE bench_copy;\n"
               "\\timing on\n"
               f"\\copy bench_copy FROM '{path}'\n"
               "\\timing off\n"
               "DROP TABLE bench_copy;\n")
        p = subprocess.run(["psql", os.environ["PANEL_PG_URL"], "-X", "-q", "-v",
                            "ON_ERROR_STOP=1"], input=sql, text=True, capture_output=True,
                           check=True)
        for line in p.stdout.splitlines():
            if line.startswith("Time:"):
                return float(line.split()[1]) / 1000.0
        raise RuntimeError("no timing from psql: " + p.stdout)
    finally:
        os.unlink(path)


def cpu_seconds(pid):
    """User + system CPU seconds of a running process (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds():
    """CPU seconds of the whole PostgreSQL server so far: the postmaster, its live children
    and its ended ones (their time is added to the postmaster's children's time when it reaps
    them). CPU, not wall time, so a busy machine distorts it far less."""
    # the checkpointer lives as long as the server (a psql backend is gone once psql exits)
    child = int(harness.psql("SELECT pid FROM pg_stat_activity "
                             "WHERE backend_type = 'checkpointer'")[0][0])
    with open(f"/proc/{child}/stat") as f:
        postmaster = int(f.read().rsplit(")", 1)[1].split()[1])
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(pid) == postmaster:
            total += sum(int(x) for x in fields[11:15])
        elif int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=20000)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--statements", action="store_true",
                    help="report pg_stat_statements' costliest statements (must be loaded)")
    args = ap.parse_args()
    harness.require_env()
    tenant = harness.new_tenant("bench")
    harness.psql("UPDATE tenants SET delete_threshold_count = 1000000, "
                 "delete_threshold_percent = 100 WHERE tenant_id = :'t'", t=tenant)
    merger = harness.Process("panel-merger", env={"PANEL_MERGER_BATCH_MAX": str(args.batch),
                                                  "PANEL_LOG_LEVEL": "warn"})
    n = args.people + args.devices
    if args.statements:
        statements_reset()
    try:
        r1 = str(uuid.uuid4())
        cpu0, pg0 = cpu_seconds(merger.proc.pid), postgres_cpu_seconds()
        publish(tenant, events(tenant, r1, args.people, args.devices))
        t_import = run_seconds(tenant, r1)
        cpu_import = cpu_seconds(merger.proc.pid) - cpu0
        t_import_drain = outbox_drained_seconds(tenant, r1)
        pg_import = postgres_cpu_seconds() - pg0
        r2 = str(uuid.uuid4())
        publish(tenant, events(tenant, r2, args.people, args.devices))
        t_resync = run_seconds(tenant, r2)
        t_resync_drain = outbox_drained_seconds(tenant, r2)
    finally:
        merger.stop()
    t_copy = copy_seconds(tenant, args.people)
    copy_rate = args.people / t_copy
    result = {
        "people": args.people, "devices": args.devices, "batch_max": args.batch,
        "import_seconds": round(t_import, 3),
        "import_events_per_second": round(n / t_import),
        "import_merger_cpu_seconds": round(cpu_import, 2),
        "import_outbox_drained_seconds": round(t_import_drain, 3),
        "import_postgres_cpu_seconds": round(pg_import, 2),
        "resync_seconds": round(t_resync, 3),
        "resync_events_per_second": round(n / t_resync),
        "resync_outbox_drained_seconds": round(t_resync_drain, 3),
        "copy_seconds": round(t_copy, 3),
        "copy_rows_per_second": round(copy_rate),
        "import_vs_copy": round((n / t_import) / copy_rate, 3),
        "resync_vs_copy": round((n / t_resync) / copy_rate, 3),
    }
    if args.statements:
        result["statements"] = statements_top()
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "merger_apply.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
