#!/usr/bin/env python3
"""Runs every test of K12 Panel Cloud Sync and prints one closing line "N passed, N failed".

Steps: build (normal and ASan+UBSan), unit tests (cmocka) in both builds, start a
project-local PostgreSQL and Kafka (scripts/infra.sh, under .run/test), apply migrations and
create topics, run the C integration tests (tests/integration) and the end-to-end tests
(tests/e2e, Python unittest), then stop everything it started.

The end-to-end tests start the programs of SAN_PROGRAMS from the sanitizer build just made
(build/asan); each of those processes writes its ASan/UBSan/LSan report (a leak at exit
included) to .run/test/san/report.<pid>, and a report fails the test during which it appeared.
--no-asan builds no sanitizer build and runs every program from build/ (an older build/asan
is never used).

  python3 tests/run.py                 everything
  python3 tests/run.py --unit-only     builds + unit tests only
  python3 tests/run.py -k merger       only tests whose name contains "merger" (-k repeats)
  python3 tests/run.py --no-asan       no sanitizer build: quicker, checks less
"""
import argparse
import os
import re
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.path.join(ROOT, ".run", "test")
CMOCKA_PASSED = re.compile(r"\[  PASSED  \] (\d+) test")
CMOCKA_FAILED = re.compile(r"\[  FAILED  \] (\d+) test")
CMOCKA_SKIPPED = re.compile(r"\[  SKIPPED \] (\d+) test")
SAN_BUILD = os.path.join(ROOT, "build", "asan")
SAN_REPORTS = os.path.join(RUN_DIR, "san")
# The programs the end-to-end tests run from the sanitizer build (docs/reliability.md says
# why these: the time budget of `make test` on a 2-core machine). PANEL_SAN_PROGRAMS in the
# environment replaces the list (e.g. to add the fetchers and the emulator).
SAN_PROGRAMS = tuple(os.environ.get("PANEL_SAN_PROGRAMS", "").split()) or (
    "panel-auth", "panel-merger", "panel-api")


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def add(self, name, passed, failed, skipped=0):
        self.passed += passed
        self.failed += failed
        self.skipped += skipped
        if failed:
            self.failures.append(name)


def sh(cmd, env=None, check=True, capture=False, timeout=None):
    print("+ " + (cmd if isinstance(cmd, str) else " ".join(cmd)), flush=True)
    return subprocess.run(cmd, shell=isinstance(cmd, str), cwd=ROOT, env=env, check=check,
                          text=True, capture_output=capture, timeout=timeout)


def run_cmocka(path, tally, env, label):
    name = f"{label}:{os.path.relpath(path, ROOT)}"
    t0 = time.time()
    try:
        p = subprocess.run([path], cwd=ROOT, env=env, text=True, capture_output=True,
                           timeout=900)
        out = p.stdout + p.stderr
        rc = p.returncode
    except subprocess.TimeoutExpired as e:
        out = f"timed out after 900 s\n{e.stdout or ''}{e.stderr or ''}"
        rc = -1
    passed = sum(int(m) for m in CMOCKA_PASSED.findall(out))
    failed = sum(int(m) for m in CMOCKA_FAILED.findall(out))
    skipped = sum(int(m) for m in CMOCKA_SKIPPED.findall(out))
    if rc != 0 and failed == 0:
        failed = 1  # crashed, sanitizer report, or no cmocka summary: a failure, never a pass
    if passed == 0 and failed == 0:
        failed = 1
    status = "ok" if failed == 0 else "FAILED"
    print(f"{status:6} {name}: {passed} passed, {failed} failed, {skipped} skipped "
          f"({time.time() - t0:.1f}s)", flush=True)
    if failed:
        print(out[-6000:], flush=True)
    tally.add(name, passed, failed, skipped)


def binaries(build, sub):
    d = os.path.join(ROOT, build, "tests", sub)
    found = []
    for dirpath, _, files in os.walk(d):
        for f in files:
            p = os.path.join(dirpath, f)
            if f.startswith("test_") and "." not in f and os.access(p, os.X_OK):
                found.append(p)
    return sorted(found)


def selected(path, patterns):
    return not patterns or any(p in path for p in patterns)


def infra_env():
    env = dict(os.environ)
    env["PANEL_RUN_DIR"] = RUN_DIR
    return env


def start_infra():
    """Fresh servers for every run, as on CI: a run killed before its teardown leaves its
    servers and their data (an event backlog, a half-applied schema) that would slow or skew
    the next run in this work tree, so stop them and start from empty data directories."""
    import shutil
    env = infra_env()
    sh(["sh", "scripts/infra.sh", "down"], env=env, check=False)
    for d in ("pg/data", "kafka/data"):
        shutil.rmtree(os.path.join(RUN_DIR, d), ignore_errors=True)
    sh(["sh", "scripts/infra.sh", "up"], env=env)
    for line in open(os.path.join(RUN_DIR, "env")):
        m = re.match(r"export (\w+)=(.*)", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    env["PANEL_BUILD"] = os.path.join(ROOT, "build")
    sh(["build/bin/panelctl", "migrate"], env=env)
    sh(["build/bin/panelctl", "topics"], env=env)
    return env


def stop_infra():
    sh(["sh", "scripts/infra.sh", "down"], env=infra_env(), check=False)


class CountingResult(unittest.TextTestResult):
    """A sanitizer report that appears while a test runs fails that test; one that appears
    between tests (a class's teardown stopping its services) fails the next test, named as
    such, so that no report goes unnoticed."""

    def check_reports(self, test, when):
        import harness
        reports = harness.sanitizer_reports()
        if reports:
            msg = f"sanitizer report(s) {when}:\n" + "\n".join(
                f"{path}:\n{text[-8000:]}" for path, text in reports)
            try:
                raise AssertionError(msg)
            except AssertionError:
                self.addFailure(test, sys.exc_info())

    durations = {}  # test id -> seconds since the previous test ended (class set-ups included)
    last_end = time.time()

    def startTest(self, test):
        super().startTest(test)
        self.check_reports(test, "written before this test started (an earlier test's "
                           "class or module teardown)")

    def stopTest(self, test):
        self.check_reports(test, "written during this test")
        now = time.time()
        CountingResult.durations[test.id()] = now - CountingResult.last_end
        CountingResult.last_end = now
        super().stopTest(test)


def run_e2e(tally, env, pattern):
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    os.environ.update(env)
    import harness
    loader = unittest.TestLoader()
    suite = loader.discover(os.path.join(ROOT, "tests", "e2e"), pattern="test_*.py",
                            top_level_dir=os.path.join(ROOT, "tests", "e2e"))

    def flatten(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t
    # A module that fails to import is a _FailedTest whose name matches no pattern: always run
    # it, so that a -k run reports the broken module instead of "0 passed, 0 failed".
    tests = [t for t in flatten(suite)
             if selected(t.id(), pattern) or t.id().startswith("unittest.loader._FailedTest")]
    t0 = CountingResult.last_end = time.time()
    result = unittest.TextTestRunner(verbosity=2, resultclass=CountingResult,
                                     stream=sys.stdout).run(unittest.TestSuite(tests))
    # A test that failed and also left a sanitizer report is one failed test.
    failed = (len({t.id() for t, _ in result.failures + result.errors})
              + len(result.unexpectedSuccesses))
    skipped = len(result.skipped)
    # A class or module fixture's error (setUpClass, tearDownClass: a leak found when the
    # class's services stop) is a failure of no test that ran: it does not lower "passed".
    failed_tests = len({t.id() for t, _ in result.failures + result.errors
                        if isinstance(t, unittest.TestCase)})
    passed = result.testsRun - failed_tests - len(result.unexpectedSuccesses) - skipped
    for tid in dict.fromkeys(t.id() for t, _ in result.failures + result.errors):
        tally.failures.append("e2e:" + tid)
    # The time budget of `make test` (docs/reliability.md) is kept by looking at these.
    slowest = sorted(CountingResult.durations.items(), key=lambda kv: -kv[1])[:15]
    print(f"e2e: {time.time() - t0:.0f} s; slowest (with their class's set-up):")
    for name, secs in slowest:
        print(f"  {secs:7.1f} s  {name}")
    # A process no test stopped would escape LeakSanitizer: stop it now. Being left running
    # is not itself a failure (the run ends anyway); its report is.
    for name, problem, bad in harness.stop_leftovers():
        print(f"{'FAILED' if bad else 'e2e:'} {name}: {problem}")
        if bad:
            tally.failures.append(f"e2e:{name} stopped after the last test")
            failed += 1
    # Reports of processes that ended after the last test (its class's teardown).
    for path, text in harness.sanitizer_reports():
        print(f"FAILED sanitizer report after the last test: {path}\n{text[-8000:]}")
        tally.failures.append("e2e:sanitizer report " + path)
        failed += 1
    tally.passed += passed
    tally.failed += failed
    tally.skipped += skipped


def lock_run_dir():
    """Two runs in one work tree would share .run/test's servers: refuse the second."""
    import fcntl
    os.makedirs(RUN_DIR, exist_ok=True)
    f = open(os.path.join(RUN_DIR, ".lock"), "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit("tests/run.py: another test run is using " + RUN_DIR + " (wait for it to end)")
    return f


def sanitizer_env():
    """What the end-to-end tests need to run SAN_PROGRAMS sanitized: halt on the first error,
    leaks checked at exit, every report in SAN_REPORTS/report.<pid> (not mixed into the
    service's log, and found again by pid)."""
    import shutil
    shutil.rmtree(SAN_REPORTS, ignore_errors=True)
    os.makedirs(SAN_REPORTS)
    log = "log_path=" + os.path.join(SAN_REPORTS, "report")
    return {
        "PANEL_SAN_BUILD": SAN_BUILD,
        "PANEL_SAN_PROGRAMS": " ".join(SAN_PROGRAMS),
        "PANEL_SAN_REPORTS": SAN_REPORTS,
        "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:" + log,
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:" + log,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit-only", action="store_true")
    ap.add_argument("--no-asan", action="store_true", help="skip the sanitizer build")
    ap.add_argument("-k", dest="pattern", action="append", default=[],
                    help="run only tests whose name contains this (repeat for several)")
    args = ap.parse_args()
    lock = lock_run_dir()  # noqa: F841  (held until exit)
    tally = Tally()
    jobs = str(os.cpu_count() or 2)

    sh(["make", "-s", "-j" + jobs, "all"])
    sh(["make", "-s", "lint"])
    sh(["make", "-s", "format-check"])  # .clang-format is the style; the tree stays formatted
    if not args.no_asan:
        sh(["make", "-s", "-j" + jobs, "BUILD=build/asan", "SAN=address,undefined", "all"])

    base_env = dict(os.environ)
    base_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    base_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    for b in binaries("build", "unit"):
        if selected(b, args.pattern):
            run_cmocka(b, tally, base_env, "unit")
    if not args.no_asan:
        for b in binaries("build/asan", "unit"):
            if selected(b, args.pattern):
                run_cmocka(b, tally, base_env, "unit-asan")

    if not args.unit_only:
        try:
            env = start_infra()
            env.setdefault("ASAN_OPTIONS", base_env["ASAN_OPTIONS"])
            if not args.no_asan:
                env.update(sanitizer_env())
            for b in binaries("build", "integration"):
                if selected(b, args.pattern):
                    run_cmocka(b, tally, env, "integration")
            run_e2e(tally, env, args.pattern)
        finally:
            stop_infra()

    print()
    if tally.failures:
        print("Failed:")
        for f in tally.failures:
            print("  " + f)
    summary = f"{tally.passed} passed, {tally.failed} failed"
    if tally.skipped:
        summary += f", {tally.skipped} skipped"
    print(summary)
    return 0 if tally.failed == 0 and tally.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
