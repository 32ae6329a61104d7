"""The contracts integrators build on: docs/openapi.yaml is a valid OpenAPI 3 document (checked
by a real validator, not by reading lines), and it declares what the api really answers."""
import json
import os
import subprocess
import tempfile
import unittest

from harness import ROOT

VENV = os.path.join(os.environ.get("PANEL_CACHE", os.path.expanduser("~/.cache/k12panel")),
                    "venv", "bin")
SPEC = os.path.join(ROOT, "docs", "openapi.yaml")


def validate(path):
    """openapi-spec-validator (installed by scripts/deps.sh) on path."""
    return subprocess.run([os.path.join(VENV, "openapi-spec-validator"), path],
                          capture_output=True, text=True)


def load_spec():
    """The document as data, parsed by a real YAML parser (the venv's PyYAML)."""
    p = subprocess.run([os.path.join(VENV, "python"), "-c",
                        "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])),"
                        " sys.stdout, default=str)", SPEC], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return json.loads(p.stdout)


class OpenApiDocument(unittest.TestCase):
    def test_document_is_valid_openapi_3(self):
        p = validate(SPEC)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("OK", p.stdout)

    def test_validator_rejects_an_unquoted_comma_in_a_flow_mapping(self):
        """The mistake this document had: YAML reads 'a, b' inside {...} as two keys."""
        with open(SPEC) as f:
            text = f.read()
        needle = "description: 'Every checkout, in request order'"
        self.assertIn(needle, text)
        with tempfile.TemporaryDirectory() as d:
            broken = os.path.join(d, "openapi.yaml")
            with open(broken, "w") as f:
                f.write(text.replace(needle, "description: Every checkout, in request order"))
            p = validate(broken)
        self.assertNotEqual(p.returncode, 0, "the validator accepted an invalid document")


if __name__ == "__main__":
    unittest.main()
