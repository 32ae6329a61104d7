#!/usr/bin/env python3
"""Benchmark of panel-api: wrk against a Person lookup and a 100-row People list at 64
connections, and pgbench running the equivalent SQL at the same concurrency in the same run.

Needs PostgreSQL with the schema (e.g. `PANEL_RUN_DIR=$PWD/.run/dev sh scripts/infra.sh up`,
then `. .run/dev/env && build/bin/panelctl migrate`), wrk and pgbench.

  python3 bench/api_bench.py [--people 100000] [--seconds 10] [--connections 64]

Prints one JSON object: requests/s and p99 (ms) per case, for the API and for pgbench, and
the API/pgbench throughput ratio."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import harness  # noqa: E402


def wrk(url, key, seconds, conns):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {key}", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_s": rps, "p99_ms": round(p99, 2),
            "errors": int(non2xx.group(1)) if non2xx else 0}


def pgbench(sql, seconds, conns):
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(sql)
        path = f.name
    try:
        out = subprocess.run(["pgbench", "-n", "-M", "prepared", f"-c{conns}", "-j2",
                              f"-T{seconds}", "--log", "--log-prefix",
                              path + ".log", "-f", path, os.environ["PANEL_PG_URL"]],
                             capture_output=True, text=True, check=True,
                             cwd=os.path.dirname(path)).stdout
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        lat = []
        for name in os.listdir(os.path.dirname(path)):
            if name.startswith(os.path.basename(path) + ".log"):
                full = os.path.join(os.path.dirname(path), name)
                with open(full) as lf:
                    lat += [int(line.split()[2]) for line in lf if line.strip()]
                os.unlink(full)
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1] / 1000 if lat else None
        return {"requests_per_s": tps, "p99_ms": round(p99, 2) if p99 else None}
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=100000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    tenant = harness.new_tenant("bench")
    harness.psql("INSERT INTO people (tenant_id, email_norm, display_name, org_unit_path, "
                 "sources) SELECT :'t', 'p' || i || '@bench.example', 'Person ' || i, "
                 "'/OU' || (i % 100), '{google}' FROM generate_series(1, :n) i",
                 t=tenant, n=args.people)
    harness.psql("ANALYZE people")
    pid = harness.psql("SELECT person_id FROM people WHERE tenant_id = :'t' "
                       "ORDER BY person_id OFFSET :o LIMIT 1", t=tenant, o=args.people // 2)[0][0]
    key = subprocess.run([harness.binary("panelctl"), "apikey-create", tenant, "viewer", "bench"],
                         capture_output=True, text=True, check=True).stdout.strip()
    api = harness.Process("panel-api", env={"PANEL_SERVICE_SECRET": uuid.uuid4().hex,
                                            "PANEL_LOG_LEVEL": "warn"})
    try:
        lookup_sql = ("SELECT tenant_id, role, secret_hash FROM api_keys WHERE key_id = 'x';\n"
                      f"SELECT api_person_json(p)::text FROM people p WHERE p.tenant_id = "
                      f"'{tenant}' AND p.person_id = '{pid}';\n")
        list_sql = ("SELECT tenant_id, role, secret_hash FROM api_keys WHERE key_id = 'x';\n"
                    f"SELECT api_person_json(p)::text, lower(p.display_name), p.person_id "
                    f"FROM people p WHERE p.tenant_id = '{tenant}' AND p.removed_at IS NULL "
                    "ORDER BY lower(p.display_name), p.person_id LIMIT 101;\n")
        res = {"people": args.people, "connections": args.connections, "seconds": args.seconds}
        res["person_lookup"] = {
            "api": wrk(f"{api.url}/v1/people/{pid}", key, args.seconds, args.connections),
            "pgbench": pgbench(lookup_sql, args.seconds, args.connections)}
        res["list_100"] = {
            "api": wrk(f"{api.url}/v1/people?limit=100", key, args.seconds, args.connections),
            "pgbench": pgbench(list_sql, args.seconds, args.connections)}
        for case in ("person_lookup", "list_100"):
            c = res[case]
            c["api_to_pgbench_ratio"] = round(c["api"]["requests_per_s"] /
                                              c["pgbench"]["requests_per_s"], 3)
        print(json.dumps(res, indent=2))
    finally:
        api.stop()


if __name__ == "__main__":
    main()
