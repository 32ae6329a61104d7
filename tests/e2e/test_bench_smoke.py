"""make bench at a tiny scale: every benchmark runs to the end and the JSON has every section.

The full benchmarks are long (`make bench`); this tiny run inside `make test` keeps their code
from rotting. It
starts its own PostgreSQL + Kafka under .run/bench-smoke (bench/run.py wipes that directory)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECTIONS = ["first_sync", "no_change", "small_change", "apply_vs_copy", "fetchers", "api",
            "scaling"]
GOALS = 6  # issue 19: first sync, no-change resync, apply vs COPY, replicas, a million, default


class BenchSmoke(unittest.TestCase):
    def test_tiny_bench_completes_with_every_section(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "bench.json")
            env = dict(os.environ, BENCH_SCALE="0.005", BENCH_API_SECONDS="1",
                       BENCH_RESULTS=out,
                       BENCH_RUN_DIR=os.path.join(ROOT, ".run", "bench-smoke"))
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py")],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
            self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
            with open(out) as f:
                res = json.load(f)
        self.assertEqual(sorted(res["results"]), sorted(SECTIONS + ["million"]))
        self.assertTrue(res["results"]["million"]["status"].startswith("not run"))
        for name in SECTIONS:
            status = res["results"][name]["status"]
            self.assertEqual(status, "ok", f"{name}: {res['results'][name]}")
        r = res["results"]
        # The figures the benchmarks exist for are there and plausible.
        self.assertEqual(r["first_sync"]["people"], r["first_sync"]["people_expected"])
        self.assertEqual(r["first_sync"]["assets"], r["first_sync"]["assets_expected"])
        self.assertGreater(r["first_sync"]["stages"]["apply"]["events"], 0)
        self.assertTrue(r["no_change"]["zero_changes"], r["no_change"])
        # Where the time goes: CPU seconds by process, the merger's batches and PostgreSQL's
        # statements, for the first sync and the no-change resync, printed and in the JSON.
        for name, heading in (("first_sync", "first sync"), ("no_change", "no-change resync")):
            prof = r[name]["profile"]
            self.assertIn(f"==> where the time goes ({heading})", p.stdout)
            for part in ("postgresql", "merger", "kafka"):
                self.assertIn(part, prof["cpu_seconds"], prof)
            self.assertGreater(prof["merger"]["batches"].get("ok", 0), 0, prof)
            self.assertGreater(prof["merger"]["events"], 0, prof)
            # the bench's PostgreSQL loads pg_stat_statements (the machine has it: deps.sh)
            self.assertTrue(prof["pg_statements"]["top"], prof)
        first = r["first_sync"]["profile"]
        self.assertLessEqual(first["merger"]["events"],
                             r["first_sync"]["stages"]["apply"]["events"])
        self.assertTrue(any(q["query"].startswith("INSERT INTO person_sources")
                            for q in first["pg_statements"]["top"]), first["pg_statements"])
        self.assertGreater(first["cpu_seconds"]["postgresql"]["seconds"], 0, first)
        self.assertTrue(r["small_change"]["exact"], r["small_change"])
        self.assertGreater(r["apply_vs_copy"]["ratio"], 0)
        for svc in ("google-sync", "azure-sync", "merger"):
            self.assertGreater(r["fetchers"]["peak_rss_mib"][svc], 0)
        for svc in ("google-sync", "azure-sync"):
            # The discard baseline must download the very pages the fetcher downloads.
            self.assertTrue(r["fetchers"][svc]["same_pages"], r["fetchers"][svc])
        if r["api"]["status"] == "ok":
            self.assertGreater(r["api"]["person_lookup"]["api_rps"], 0)
            self.assertGreater(r["api"]["list_100"]["pgbench_tps"], 0)
        self.assertEqual(len(r["scaling"]["points"]), 3)
        # Issue 19: two replicas on ONE district, measured three ways from the same content.
        one = r["scaling"]["replicas_one_district"]
        self.assertEqual(one["people"], 250, one)  # 25% of the benchmark district
        for key, mergers in (("one_merger", 1), ("two_mergers", 2),
                             ("one_merger_default_workers", 1)):
            x = one[key]
            self.assertGreater(x["seconds"], 0, one)
            self.assertEqual(x["mergers"], mergers, one)
            self.assertEqual(len(x["events_by_merger"]), mergers, one)
            self.assertEqual(len(x["events_by_partition"]), one["source_partitions"], one)
            # the replicas' applied events are within what the partitions' stored offsets
            # grew by (offsets also count the producers' transaction markers)
            self.assertGreater(sum(x["events_by_merger"]), 0, one)
            self.assertLessEqual(sum(x["events_by_merger"]),
                                 sum(x["events_by_partition"].values()), one)
            self.assertGreaterEqual(x["partitions_used"], 1, one)
            self.assertGreater(x["apply_cpu_s"], 0, one)
            for wait in ("assignment_wait_s", "autovacuum_wait_s", "load_average_1min"):
                self.assertGreaterEqual(x[wait], 0, one)
        self.assertEqual(one["one_merger"]["merger_workers_each"], "1")
        self.assertEqual(one["two_mergers"]["merger_workers_each"], "1")
        self.assertEqual(one["one_merger_default_workers"]["merger_workers_each"], "default")
        self.assertEqual(one["cpus"], os.cpu_count())
        self.assertEqual(one["speedup_two_mergers"], round(
            one["one_merger"]["seconds"] / one["two_mergers"]["seconds"], 3))
        self.assertGreater(one["speedup_two_mergers_per_core"], 0)
        self.assertGreater(one["speedup_default_workers"], 0)
        self.assertEqual(one["partitions_used"], one["two_mergers"]["partitions_used"])
        self.assertEqual(r["scaling"]["replicas"]["merger_workers_each"], 1)
        self.assertIn("| 7 replicas, one district", res["table"])
        self.assertIn("| benchmark", res["table"])
        # Every goal of issue 19 is printed with a verdict; what this run measured has a figure.
        goals = res["goals"]
        verdicts = [g["verdict"] for g in goals[:GOALS]]
        self.assertEqual(len(verdicts), GOALS, goals)
        for g in goals[:3]:
            self.assertIn(g["verdict"], ("met", "missed"), g)
            self.assertTrue(g["figure"], g)
        # replicas on one district: always measured; a district on one partition is missed
        self.assertIn(verdicts[3], ("met", "missed"), goals[3])
        self.assertTrue(goals[3]["figure"], goals[3])
        self.assertEqual(goals[3]["ratio"], one["speedup_two_mergers"])
        if one["partitions_used"] == 1:
            self.assertEqual(verdicts[3], "missed", goals[3])
            self.assertEqual(goals[3]["note"], "the district used 1 partition", goals[3])
        self.assertTrue(verdicts[4].startswith("not run"), goals[4])
        self.assertTrue(verdicts[5].startswith("not measured"), goals[5])
        self.assertTrue(any(g["goal"].startswith("google-sync vs a download-only client")
                            and g["ratio"] for g in goals), goals)

    def test_million_section_alone_at_a_tiny_scale(self):
        """BENCH_ONLY=million runs benchmark 8 alone (the 1,000,000-person district; here
        BENCH_MILLION_SCALE shrinks it): the district is synced once, complete, with the
        figures issue 19 asks for and where the time went."""
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "bench.json")
            env = dict(os.environ, BENCH_SCALE="0.005", BENCH_ONLY="million",
                       BENCH_MILLION_SCALE="0.002", BENCH_PG_STATEMENTS="1", BENCH_RESULTS=out,
                       BENCH_RUN_DIR=os.path.join(ROOT, ".run", "bench-smoke"))
            env.pop("BENCH_MILLION", None)
            p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py")],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
            with open(out) as f:
                res = json.load(f)
        r = res["results"]
        for name in SECTIONS:
            self.assertEqual(r[name]["status"], "skipped (BENCH_ONLY)", name)
        m = r["million"]
        self.assertEqual(m["status"], "ok", m)
        self.assertEqual(m["district"]["people"], 2000)
        self.assertEqual(m["people"], m["people_expected"])
        self.assertEqual(m["assets"], m["assets_expected"])
        self.assertEqual([x["status"] for x in m["runs"]], ["completed", "completed"])
        for svc in ("google-sync", "azure-sync", "merger"):
            self.assertGreater(m["peak_rss_mib"][svc], 0)
        for part in ("merger", "postgresql", "kafka"):
            self.assertIn(part, m["cpu_seconds_until_published"])
        self.assertGreater(m["database_mib"], 0)
        self.assertGreater(m["stages"]["apply"]["events"], 0)
        self.assertTrue(m["cpu_timeline"], m)
        self.assertTrue(any(q["query"].startswith("INSERT INTO person_sources")
                            for q in m["pg_statements"]["top"]), m["pg_statements"])
        goal = next(g for g in res["goals"] if g["goal"].startswith("1,000,000-person"))
        self.assertIn("2,000 people", goal["figure"])
        self.assertTrue(goal["verdict"].startswith("not measured at 1,000,000"), goal)
        self.assertIn("8 2,000 people", res["table"])


if __name__ == "__main__":
    unittest.main()
