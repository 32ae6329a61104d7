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


# YAML keeps the last of two equal keys silently (and so does the validator): refuse them.
STRICT_LOAD = """
import json, sys, yaml
class Strict(yaml.SafeLoader):
    pass
def mapping(loader, node):
    keys = [loader.construct_object(k) for k, _ in node.value]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise SystemExit(f"duplicate keys {sorted(map(str, dup))} at line {node.start_mark.line + 1}")
    return loader.construct_mapping(node)
Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
json.dump(yaml.load(open(sys.argv[1]), Strict), sys.stdout, default=str)
"""


def load_spec():
    """The document as data, parsed by a real YAML parser (the venv's PyYAML)."""
    p = subprocess.run([os.path.join(VENV, "python"), "-c", STRICT_LOAD, SPEC],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr + p.stdout)
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

    def test_every_operation_is_named_and_declares_what_it_can_answer(self):
        spec = load_spec()
        comp = spec["components"]

        def resolve(obj):
            while "$ref" in obj:
                name = obj["$ref"].split("/")
                obj = spec
                for part in name[1:]:
                    obj = obj[part]
            return obj
        ids = []
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if method == "parameters":
                    continue
                with self.subTest(route=f"{method.upper()} {path}"):
                    ids.append(op.get("operationId"))
                    self.assertRegex(op.get("operationId", ""), "^[a-z][A-Za-z]+$")
                    codes = set(op["responses"])
                    want = {"400", "401", "503"}
                    if method != "get":
                        want |= {"403"}
                    if method in ("post", "put", "patch"):
                        want |= {"413", "422"}
                    if "{" in path:
                        want |= {"404"}
                    self.assertLessEqual(want, codes)
                    params = [resolve(x) for x in op.get("parameters", [])]
                    if any(x["name"] == "Idempotency-Key" for x in params):
                        self.assertIn("409", codes)
                    if any(x["name"] == "If-Match" for x in params):
                        self.assertIn("412", codes)
                    for code, resp in op["responses"].items():
                        resp = resolve(resp)
                        self.assertIn("X-Request-Id", resp.get("headers", {}), code)
                        if code.startswith("2") and any(x["name"] == "Idempotency-Key"
                                                        for x in params):
                            self.assertIn("Idempotent-Replayed", resp["headers"], code)
                        if int(code) >= 400:
                            schema = resolve(resp["content"]["application/json"]["schema"])
                            self.assertIn("error", str(schema).lower())
        self.assertEqual(len(ids), len(set(ids)), "operationIds repeat")
        for name in ("getPerson", "getAsset", "getAssetByTag", "updateAsset"):
            op = next(o for ops in spec["paths"].values() for o in ops.values()
                      if isinstance(o, dict) and o.get("operationId") == name)
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            self.assertIn("ETag", ok["headers"], name)
        self.assertIn("request_id", comp["schemas"]["Error"]["properties"]["error"]["required"])
        self.assertIn("Allow", comp["responses"]["MethodNotAllowed"]["headers"])
        self.assertEqual(comp["securitySchemes"]["session"],
                         dict(comp["securitySchemes"]["session"], type="apiKey", **{"in": "cookie"}))


if __name__ == "__main__":
    unittest.main()
