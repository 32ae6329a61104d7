"""The contracts integrators build on: docs/openapi.yaml is a valid OpenAPI 3 document (checked
by a real validator, not by reading lines), and it declares what the api really answers."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
from harness import ROOT
from test_api import SECRET, Stub, asset, new_key, person

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
                    # 429: a caller past PANEL_API_RATE_LIMIT_PER_MINUTE, on every operation
                    want = {"400", "401", "405", "429", "503"}
                    if method != "get":
                        want |= {"403"}
                    if method in ("post", "put", "patch"):
                        want |= {"413", "422"}
                    if "{" in path:
                        want |= {"404"}
                    self.assertLessEqual(want, codes)
                    params = [resolve(x) for x in op.get("parameters", [])]
                    if method != "get":  # a change made with the session cookie needs it
                        self.assertIn("X-CSRF-Token", [x["name"] for x in params])
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

    def test_every_reply_object_requires_the_fields_the_api_always_sends(self):
        """A reply schema that lists properties without `required` lets a contract test pass
        when a field clients rely on is missing (issue 24). Every object a 2xx or error reply
        can contain names its fields in `required` (nullable ones stay required); a field
        left out says in its description when it is sent ("session only", "format=tree
        only", "run_failed only")."""
        spec = load_spec()
        seen, problems = set(), []

        def walk(node, where):
            if isinstance(node, list):
                for i, x in enumerate(node):
                    walk(x, f"{where}[{i}]")
                return
            if not isinstance(node, dict):
                return
            if "$ref" in node:
                name = node["$ref"]
                if name not in seen:
                    seen.add(name)
                    target = spec
                    for part in name.split("/")[1:]:
                        target = target[part]
                    walk(target, name)
                return
            props = node.get("properties")
            if isinstance(props, dict) and props:
                required = node.get("required", [])
                self.assertLessEqual(set(required), set(props), where)
                for name, prop in props.items():
                    if name not in required and " only" not in prop.get("description", ""):
                        problems.append(f"{where}.{name}")
            for key in ("properties", "items", "allOf", "oneOf", "anyOf",
                        "additionalProperties"):
                sub = node.get(key)
                if isinstance(sub, dict) and key == "properties":
                    for name, x in sub.items():
                        walk(x, f"{where}.{name}")
                elif sub is not None:
                    walk(sub, where)
        replies = 0
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if method == "parameters":
                    continue
                for code, resp in op["responses"].items():
                    resp = resp if "$ref" not in resp else \
                        spec["components"]["responses"][resp["$ref"].split("/")[-1]]
                    schema = resp.get("content", {}).get("application/json", {}).get("schema")
                    if schema is not None:
                        replies += 1
                        walk(schema, f"{method.upper()} {path} {code}")
        self.assertGreater(replies, 100)
        self.assertEqual(problems, [], "reply fields neither required nor saying when sent")
        # the rule bites: the schemas clients read most carry their fields
        comp = spec["components"]["schemas"]
        self.assertIn("in_google", comp["Asset"]["required"])
        self.assertIn("email", comp["Person"]["required"])
        self.assertIn("next_cursor", comp["PersonPage"]["required"])


BUF = os.path.join(ROOT, "tests", "proto", "node_modules", ".bin", "buf")
PROTO = os.path.join(ROOT, "proto")


class EventSchema(unittest.TestCase):
    """proto/panel/v1/events.proto: buf lint (STANDARD rules, proto/buf.yaml) is clean, and
    every language's generated code lands in its own package, not in panel.v1.Events."""

    def test_buf_lint_is_clean(self):
        p = subprocess.run([BUF, "lint", PROTO], capture_output=True, text=True, cwd=ROOT)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_buf_lint_refuses_a_bad_addition(self):
        """The lint bites: an enum without an UNSPECIFIED zero and unprefixed values."""
        with tempfile.TemporaryDirectory() as d:
            copy = os.path.join(d, "proto")
            shutil.copytree(PROTO, copy)
            with open(os.path.join(copy, "panel", "v1", "events.proto"), "a") as f:
                f.write("\nenum Color {\n  RED = 0;\n}\n")
            p = subprocess.run([BUF, "lint", copy], capture_output=True, text=True, cwd=d)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('"RED" should be suffixed with "_UNSPECIFIED"', p.stdout)
        self.assertIn('"RED" should be prefixed with "COLOR_"', p.stdout)

    def test_generated_code_lands_in_each_languages_package(self):
        with open(os.path.join(PROTO, "panel", "v1", "events.proto")) as f:
            text = f.read()
        for option in ('java_package = "k12panel.panel.v1"', "java_multiple_files = true",
                       'go_package = "k12panel/gen/go/panel/v1;panelv1"',
                       'csharp_namespace = "K12Panel.Panel.V1"',
                       'ruby_package = "K12Panel::Panel::V1"'):
            self.assertIn(f"option {option};", text)
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["protoc", "-I" + PROTO, "--java_out=" + d, "--python_out=" + d,
                            os.path.join(PROTO, "panel", "v1", "events.proto")], check=True)
            java = os.path.join(d, "k12panel", "panel", "v1")
            # One file per message (java_multiple_files), in the declared package.
            for cls in ("Envelope", "PersonChanged", "AssetChanged", "EventsProto"):
                self.assertTrue(os.path.exists(os.path.join(java, cls + ".java")), cls)
            with open(os.path.join(java, "Envelope.java")) as f:
                self.assertIn("package k12panel.panel.v1;", f.read())
            self.assertTrue(os.path.exists(os.path.join(d, "panel", "v1", "events_pb2.py")))


class ApiConformance(unittest.TestCase):
    """Schemathesis drives the running api from docs/openapi.yaml, once with an admin key and
    once with a viewer key: every reply's status is documented for its operation, its body
    and headers conform, a method a path does not serve is 405 with Allow, requests without
    the key are refused, generated bad input is a 4xx, and nothing is ever a 5xx.

    Bounded: ST_MAX_EXAMPLES cases per operation and phase, so the run takes minutes."""
    ST_MAX_EXAMPLES = 40

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.stub, cls.api = harness.api_with_stub(Stub, SECRET)
        cls.tenant = harness.new_tenant("contract")
        cls.admin = new_key(cls.tenant, "admin")
        cls.viewer = new_key(cls.tenant, "viewer")
        # Some rows, so that lists and filters have something to show.
        for i in range(3):
            person(cls.tenant, f"Contract Kid {i}")
            asset(cls.tenant, f"SN-CONTRACT-{i}", tag=f"TAG-C{i}")

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.stub.shutdown()

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="schemathesis-")
        self.addCleanup(shutil.rmtree, self.workdir, True)

    def schemathesis(self, key, name, spec=SPEC, extra=(), expect_ok=True):
        report = os.path.join(harness.LOG_DIR, f"schemathesis-{name}.xml")
        t0 = time.monotonic()
        p = subprocess.run(
            [os.path.join(VENV, "st"), "--config-file",
             os.path.join(ROOT, "tests", "e2e", "schemathesis.toml"), "run", spec, "--url", self.api.url,
             "-H", f"Authorization: Bearer {key}", "--checks", "all",
             # object_level_authorization needs two principals of different tenants and
             # stateful links: test_api checks tenant isolation on every route instead.
             # positive_data_acceptance expects a 2xx for any schema-valid request, but an
             # opaque signed cursor, a reused Idempotency-Key or an id of no row are schema-valid
             # and rightly refused (400, 422, 404).
             "--exclude-checks", "object_level_authorization,positive_data_acceptance",
             "--phases", "examples,coverage,fuzzing", "--max-examples",
             str(self.ST_MAX_EXAMPLES), "--seed", "22", "--workers", "2",
             "--request-timeout", "20", "--suppress-health-check", "all",
             "--report", "junit", "--report-junit-path", report, "--no-color", *extra],
            # Its own cache (earlier failures it replays first) goes into a fresh directory:
            # each run starts from the same seed and nothing lands in the work tree.
            capture_output=True, text=True, timeout=1800, cwd=self.workdir,
            env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1"))
        with open(os.path.join(harness.LOG_DIR, f"schemathesis-{name}.log"), "w") as f:
            f.write(p.stdout + p.stderr)
        out = p.stdout[-12000:] + p.stderr[-3000:]
        if expect_ok:
            self.assertEqual(p.returncode, 0, out)
            self.assertRegex(out, r"\d+ generated, \d+ passed")
        else:
            self.assertNotEqual(p.returncode, 0, out)
        return time.monotonic() - t0, out

    def test_admin_key_conforms(self):
        self.schemathesis(self.admin, "admin")

    def test_viewer_key_conforms(self):
        self.schemathesis(self.viewer, "viewer")

    def run_on_broken_spec(self, name, operation_id, after, line, replacement):
        """The admin key's run of one operation against a copy of the document in which the
        first `line` after `after` reads `replacement`; the run must fail: its output."""
        with open(SPEC) as f:
            text = f.read()
        at = text.index(line, text.index(after))
        with tempfile.TemporaryDirectory() as d:
            broken = os.path.join(d, "openapi.yaml")
            with open(broken, "w") as f:
                f.write(text[:at] + replacement + text[at + len(line):])
            _, out = self.schemathesis(self.admin, name, spec=broken,
                                       extra=("--include-operation-id", operation_id),
                                       expect_ok=False)
        return out

    def test_the_run_fails_on_an_undocumented_status(self):
        """The run is evidence only if it can fail: without GET /v1/assets/{asset_id}'s 404 in
        the document, the 404 the api gives for an unknown id is reported."""
        out = self.run_on_broken_spec(
            "undocumented", "getAsset", "      operationId: getAsset\n",
            "        '404': {$ref: '#/components/responses/NotFound'}\n", "")
        self.assertIn("Undocumented status code", out)
        self.assertRegex(out, r"Received: 404\s+Documented: 200, 400, 401, 405, 429, 503")

    def test_the_run_fails_on_a_reply_missing_a_required_field(self):
        """`required` is checked, not decoration: with time_zone (which the api sends to a
        signed-in person only) required of every GET /v1/session reply, the API key's reply
        is reported as missing it."""
        line = "      required: [kind, tenant_id, role, actor]\n"
        out = self.run_on_broken_spec("missing-field", "getSession", "    Session:\n", line,
                                      line.replace("actor]", "actor, time_zone]"))
        self.assertIn("Response violates schema", out)
        self.assertIn('"time_zone" is a required property', out)


if __name__ == "__main__":
    unittest.main()
