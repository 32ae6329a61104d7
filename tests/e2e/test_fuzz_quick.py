"""Quick fuzzing run for `make test`: every libFuzzer target (tests/fuzz) for a few seconds on
its seed corpus, with ASan, UBSan and LeakSanitizer. Fails on a crash, a leak, a sanitizer
report or a hang (tests/fuzz/run.sh exits non-zero and marks the target FAILED)."""
import os
import re
import subprocess
import unittest

from harness import ROOT

SECONDS = os.environ.get("PANEL_FUZZ_QUICK_SECONDS", "4")
LINE = re.compile(r"^fuzz (\S+): (\d+) executions .* (ok|FAILED)$", re.M)


class FuzzQuickTest(unittest.TestCase):
    def test_every_target_runs_clean(self):
        env = dict(os.environ, FUZZ_SECONDS=SECONDS, FUZZ_TIMEOUT="5")
        p = subprocess.run(["sh", "tests/fuzz/run.sh"], cwd=ROOT, env=env, text=True,
                           capture_output=True, timeout=900)
        out = p.stdout + p.stderr
        results = {m.group(1): (int(m.group(2)), m.group(3)) for m in LINE.finditer(out)}
        expected = subprocess.run(["make", "-s", "-f", "tests/fuzz/fuzz.mk", "targets"],
                                  cwd=ROOT, text=True, capture_output=True).stdout.split()
        for t in ("google_page", "graph_page", "envelope", "merge", "auth_callback",
                  "api_request", "events_json", "jsonb_text"):
            self.assertIn(t, expected)
        self.assertEqual(sorted(results), sorted(expected), out[-4000:])
        for target, (execs, status) in results.items():
            self.assertEqual(status, "ok", f"{target}:\n{out[-6000:]}")
            self.assertGreater(execs, 100, f"{target} barely ran:\n{out[-4000:]}")
        self.assertEqual(p.returncode, 0, out[-6000:])


if __name__ == "__main__":
    unittest.main()
