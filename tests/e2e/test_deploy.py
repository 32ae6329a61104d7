"""docker-compose.yml and the Kubernetes manifests are valid, offline."""
import os
import re
import subprocess
import tempfile
import unittest

from harness import ROOT

VALIDATOR = os.path.join(os.environ.get("PANEL_CACHE", os.path.expanduser("~/.cache/k12panel")),
                         "venv", "bin", "kubernetes-validate")
K8S = os.path.join(ROOT, "deploy", "k8s")


def validate(paths):
    return subprocess.run([VALIDATOR, "-k", "1.30.0", "--strict", "--quiet"] + paths,
                          capture_output=True, text=True)


class Compose(unittest.TestCase):
    def test_compose_config_is_valid(self):
        p = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"],
                           cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_compose_orders_startup_with_health_checks(self):
        p = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "--profile",
                            "emulator", "config"], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout
        for svc in ("api", "auth", "google-sync", "azure-sync", "merger", "emulator",
                    "postgres", "kafka"):
            self.assertRegex(text, rf"\n  {re.escape(svc)}:\n")
        self.assertIn("service_completed_successfully", text)
        self.assertIn("service_healthy", text)
        self.assertGreaterEqual(text.count("healthcheck:"), 8)


class Kubernetes(unittest.TestCase):
    def resources(self):
        text = open(os.path.join(K8S, "kustomization.yaml")).read()
        block = text.split("resources:")[1].split("\n\n")[0].split("images:")[0]
        return [line.strip()[2:] for line in block.splitlines() if line.strip().startswith("- ")]

    def test_every_manifest_passes_schema_validation(self):
        files = [os.path.join(K8S, f) for f in self.resources()]
        self.assertGreaterEqual(len(files), 10)
        p = validate(files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_kustomization_lists_every_manifest(self):
        on_disk = {f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml"}
        self.assertEqual(on_disk, set(self.resources()))

    def test_validator_rejects_a_broken_manifest(self):
        """The check can fail: a Deployment with a wrong field type is refused."""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
                    "spec:\n  replicas: many\n  selector: {matchLabels: {a: b}}\n"
                    "  template:\n    metadata: {labels: {a: b}}\n"
                    "    spec: {containers: [{name: c, image: i}]}\n")
        try:
            self.assertNotEqual(validate([f.name]).returncode, 0)
        finally:
            os.unlink(f.name)

    def test_services_have_probes_limits_and_graceful_shutdown(self):
        for name in ("auth", "google-sync", "azure-sync", "merger", "api"):
            text = open(os.path.join(K8S, name + ".yaml")).read()
            with self.subTest(name=name):
                self.assertIn("path: /healthz", text)
                self.assertIn("path: /readyz", text)
                self.assertIn("limits:", text)
                self.assertIn("terminationGracePeriodSeconds", text)
                self.assertIn("runAsNonRoot: true", text)
        merger = open(os.path.join(K8S, "merger.yaml")).read()
        self.assertRegex(merger, r"replicas: [2-9]")


if __name__ == "__main__":
    unittest.main()
