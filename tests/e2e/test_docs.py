"""The documentation a newcomer reads matches the code."""
import os
import subprocess
import unittest

from harness import ROOT, binary

SERVICES = ["api", "auth", "google-sync", "azure-sync", "merger", "emulator"]


class ReadmeMatchesCode(unittest.TestCase):
    def test_config_table_is_generated_from_the_binaries(self):
        p = subprocess.run(["python3", "scripts/update-readme-config.py", "--check"], cwd=ROOT)
        self.assertEqual(p.returncode, 0,
                         "README.md's configuration table differs from the binaries' tables: "
                         "run `make docs` and commit README.md")

    def test_readme_names_the_two_commands(self):
        text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
        self.assertIn("make demo", text)
        self.assertIn("make test", text)

    def test_docs_linked_from_readme_exist(self):
        import re
        text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
        missing = [link for link in re.findall(r"\]\(([^)#:]+)\)", text)
                   if not os.path.exists(os.path.join(ROOT, link))]
        self.assertEqual(missing, [], "README links to files that do not exist")


class EveryBinaryExplainsItself(unittest.TestCase):
    def test_help_prints_the_configuration_table(self):
        for svc in SERVICES:
            with self.subTest(svc=svc):
                p = subprocess.run([binary("panel-" + svc), "--help"], capture_output=True,
                                   text=True, timeout=10)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("PANEL_HTTP_PORT", p.stdout)
                self.assertIn("PANEL_LOG_LEVEL", p.stdout)

    def test_bad_configuration_exits_2_naming_the_variable(self):
        for svc in SERVICES:
            with self.subTest(svc=svc):
                # Everything else valid, so the error is about the variable we broke.
                env = dict(os.environ, PANEL_LOG_LEVEL="loud",
                           PANEL_SERVICE_SECRET="a-valid-service-secret-for-the-test",
                           PANEL_AUTH_CALLER_SECRETS="api:a-valid-service-secret-for-the-test",
                           PANEL_MERGER_CALLER_SECRETS="api:a-valid-service-secret-for-the-test")
                p = subprocess.run([binary("panel-" + svc)], capture_output=True, text=True,
                                   env=env, timeout=10)
                self.assertEqual(p.returncode, 2)
                self.assertIn("PANEL_LOG_LEVEL", p.stderr)

    def test_unknown_argument_exits_2(self):
        p = subprocess.run([binary("panel-merger"), "--frobnicate"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 2)

    def test_panelctl_help(self):
        p = subprocess.run([binary("panelctl"), "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for cmd in ("migrate", "topics", "decode", "consume", "publish"):
            self.assertIn(cmd, p.stdout)


class EventsDecodeWithKcat(unittest.TestCase):
    """kcat shows what was produced and panelctl decode prints it (issue 2's 'done when')."""

    def test_kcat_and_decode(self):
        from harness import new_tenant, require_env
        require_env()
        tenant = new_tenant("kcat")
        env = dict(os.environ)
        p = subprocess.run([binary("panelctl"), "produce-test", tenant, "3"], env=env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        # Read the whole topic with kcat (key + payload), find ours and decode one.
        p = subprocess.run(["kcat", "-C", "-b", env["PANEL_KAFKA_BROKERS"], "-t",
                            "panel.source.events", "-e", "-q", "-f", "%k\n"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split().count(tenant), 3)
        raw = subprocess.run(["kcat", "-C", "-b", env["PANEL_KAFKA_BROKERS"], "-t",
                              "panel.source.events", "-e", "-q", "-f", "%k\t%o\t%p\n"],
                             capture_output=True, text=True, timeout=60).stdout
        part, off = next((line.split("\t")[2], line.split("\t")[1])
                         for line in raw.splitlines() if line.startswith(tenant + "\t"))
        one = subprocess.run(["kcat", "-C", "-b", env["PANEL_KAFKA_BROKERS"], "-t",
                              "panel.source.events", "-p", part, "-o", off, "-c", "1", "-e",
                              "-q", "-f", "%s"], capture_output=True, timeout=60).stdout
        dec = subprocess.run([binary("panelctl"), "decode"], input=one, capture_output=True,
                             timeout=10)
        self.assertEqual(dec.returncode, 0, dec.stderr)
        import json
        ev = json.loads(dec.stdout)
        self.assertEqual(ev["tenant_id"], tenant)
        self.assertEqual(ev["run_started"]["kind"], "RUN_KIND_FULL")


if __name__ == "__main__":
    unittest.main()
