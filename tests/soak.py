#!/usr/bin/env python3
"""make soak: the long reliability and security runs, ending with one table.

Starts its own PostgreSQL and Kafka (tests/run.py's start_infra, under .run/soak), then:
  - SIGKILLs the merger at random points of large syncs (SOAK_KILLS, default 21) and
    compares the result with an uninterrupted run (canonical dump, public events, outbox ids);
  - stops and restarts PostgreSQL mid-apply and Kafka mid-run;
  - injects broken runs (failed, unfinished) and a SIGTERM during a batch;
  - runs every fuzz target for FUZZ_SECONDS (default 60);
  - SIGKILLs every service of the suite during syncs on the emulator (SOAK_SERVICE_KILLS);
  - runs the emulator fault scenario from the sanitizer build (test_reliability_suite);
  - runs the hostile-input and security tests (bad inputs, cross-tenant reads).
Each line of the table comes from a check that fails when its promise is broken; the exit
status is non-zero when any did.

  python3 tests/soak.py            SOAK_KILLS=30 SOAK_PEOPLE=8000 FUZZ_SECONDS=120 make soak
"""
import io
import os
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import run as runner  # noqa: E402  (tests/run.py: start_infra / stop_infra)

KILLS = int(os.environ.get("SOAK_KILLS", "21"))
PEOPLE = int(os.environ.get("SOAK_PEOPLE", "5000"))
FUZZ_SECONDS = os.environ.get("FUZZ_SECONDS", "60")


class Table:
    def __init__(self):
        self.rows = []
        self.failed = []

    def add(self, name, value, ok, detail=""):
        self.rows.append((name, str(value), "ok" if ok else "FAILED", detail))
        if not ok:
            self.failed.append(name)
        print(f"soak: {name}: {value} {'ok' if ok else 'FAILED'} {detail}", flush=True)

    def print(self):
        w = max(len(r[0]) for r in self.rows)
        v = max(len(r[1]) for r in self.rows)
        print()
        print(f"{'check':<{w}}  {'value':>{v}}  result")
        print("-" * (w + v + 12))
        for name, value, status, detail in self.rows:
            print(f"{name:<{w}}  {value:>{v}}  {status}" + (f"  ({detail})" if detail else ""))


def run_tests(module, names=None):
    """Run unittest cases of a tests/e2e module; (passed, failures text)."""
    mod = __import__(module)
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(mod) if not names else unittest.TestSuite(
        loader.loadTestsFromName(n, mod) for n in names)
    out = io.StringIO()
    res = unittest.TextTestRunner(stream=out, verbosity=2).run(suite)
    ok = res.wasSuccessful() and res.testsRun > 0
    if not ok:
        print(out.getvalue()[-6000:], flush=True)
    return ok, res.testsRun


def main():
    table = Table()
    t0 = time.time()
    subprocess.run(["make", "-s", "-j2", "all"], cwd=ROOT, check=True)
    subprocess.run(["make", "-s", "-j2", "BUILD=build/asan", "SAN=address,undefined", "all"],
                   cwd=ROOT, check=True)
    runner.RUN_DIR = os.path.join(ROOT, ".run", "soak")
    try:
        env = runner.start_infra()
        os.environ.update(env)
        import faults

        # 1. SIGKILLs during large syncs, in rounds sharing one uninterrupted baseline.
        kills = restarts = lost = dups = 0
        problems = []
        base = None
        seed = 1
        while kills < KILLS:
            r = faults.merger_kills(min(7, KILLS - kills), people=PEOPLE, devices=PEOPLE // 8,
                                    ous=30, seed=seed, base=base)
            base = r["base"]
            seed += 1
            kills += r["kills"]
            restarts += r["restarts"]
            lost += r["rows_lost"]
            dups += r["duplicates"]
            problems += r["problems"] + ([] if r["alive"] else ["merger died"])
            if r["kills"] == 0:
                problems.append("a sync finished before any kill: raise SOAK_PEOPLE")
                break
        table.add("merger SIGKILLs survived", kills, kills >= KILLS and not problems,
                  "; ".join(problems))

        # 1b. SIGKILL of every service of the suite during syncs on the emulator.
        import soak_services
        ok, _ = run_tests("soak_services")
        r = soak_services.RESULT
        lost += r.get("rows_lost", 0)
        dups += r.get("duplicates", 0)
        restarts += r.get("kills", 0)
        table.add("service SIGKILLs survived (suite on the emulator)", r.get("kills", 0), ok,
                  str(r.get("per_service", "")))

        # 2. Infrastructure restarts.
        survived = 0
        for which in ("pg", "kafka"):
            r = faults.infra_restart(which, people=PEOPLE // 2, devices=PEOPLE // 16)
            lost += r["rows_lost"]
            dups += r["duplicates"]
            ok = r["alive"] and not r["problems"]
            survived += ok
            if not ok:
                problems.append(f"{which}: {r['problems']}")
        table.add("restarts survived (merger + PostgreSQL + Kafka)", restarts + survived,
                  survived == 2, "; ".join(problems[-2:]) if survived != 2 else "")

        # 3. Broken runs and SIGTERM.
        faults_n = 0
        r = faults.broken_runs_delete_nothing()
        faults_n += r["faults"]
        table.add("rows deleted by broken runs", r["removed"], r["removed"] == 0)
        r = faults.sigterm_mid_batch(people=PEOPLE)
        faults_n += 1
        lost += r["rows_lost"]
        dups += r["duplicates"]
        table.add("SIGTERM mid-batch: exit code / seconds", f"{r['exit_code']}/{r['seconds']:.1f}",
                  r["exit_code"] == 0 and r["seconds"] < 20 and not r["problems"],
                  "; ".join(r["problems"]))
        import test_reliability_suite
        ok, _ = run_tests("test_reliability_suite")
        faults_n += test_reliability_suite.RESULT.get("faults_injected", 0)
        table.add("faults injected (emulator + broken runs + SIGTERM)", faults_n, ok,
                  "emulator: malformed, truncated, 30% 5xx/429/resets, slow + expired page "
                  "tokens, grant revoked mid-run; ASan, zero leaks")

        # 4. Fuzzing.
        summary = os.path.join(ROOT, "build", "fuzz-soak-summary.txt")
        if os.path.exists(summary):
            os.unlink(summary)
        p = subprocess.run(["sh", "tests/fuzz/run.sh"], cwd=ROOT, text=True,
                           env=dict(os.environ, FUZZ_SECONDS=FUZZ_SECONDS,
                                    FUZZ_SUMMARY=summary))
        for line in open(summary) if os.path.exists(summary) else []:
            target, execs, status = line.split()
            table.add(f"fuzz executions: {target}", execs, status == "ok")
        if p.returncode != 0 and not os.path.exists(summary):
            table.add("fuzz", "build failed", False)

        # 5. Bad input and isolation.
        import test_hostile_input
        ok, n = run_tests("test_hostile_input")
        table.add("bad inputs tried (never 5xx, process alive)",
                  test_hostile_input.TRIED["count"], ok, f"{n} tests")
        ok, n = run_tests("test_security")
        table.add("cross-tenant reads", 0 if ok else "≥1", ok,
                  f"{n} security tests (isolation, secrets, state/PKCE, leaks)")
        table.add("rows lost", lost, lost == 0)
        table.add("duplicates", dups, dups == 0)
    finally:
        runner.stop_infra()
    table.print()
    print(f"\nsoak: {time.time() - t0:.0f} s; " +
          ("all promises held" if not table.failed else "FAILED: " + ", ".join(table.failed)))
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
