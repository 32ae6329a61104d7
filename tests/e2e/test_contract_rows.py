"""docs/openapi.yaml's templated GET routes answered for rows that exist (issue 24): the
schemathesis run of test_contracts.py fills path ids at random, so each templated route only
ever answers 404 there, and a wrong 200 body would pass it. Here every templated GET operation
of the document is called with the id of a real row, must answer 200, and its body must match
the operation's documented 200 schema (validated with jsonschema, OpenAPI 3.0's `nullable`
read as JSON Schema's null type)."""
import json
import os
import subprocess
import unittest
import urllib.parse
import uuid

import harness
from harness import ROOT, psql
from test_api import SECRET, Stub, asset, new_key, person
from test_contracts import SPEC, VENV

VALIDATE = r"""
import json, sys, yaml, jsonschema
spec = yaml.safe_load(open(sys.argv[1]))
def fix(node):
    if isinstance(node, list):
        return [fix(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: fix(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "$ref" in node or "allOf" in node or "oneOf" in node or "anyOf" in node:
            node = {"anyOf": [node, {"type": "null"}]}
        else:
            if "type" in node:
                node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = node["enum"] + [None]
    for k in ("example", "examples", "discriminator", "xml", "externalDocs"):
        node.pop(k, None)
    return node
components = fix(spec["components"])
for line in sys.stdin:
    case = json.loads(line)
    op = spec["paths"][case["path"]]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    doc = dict(fix(schema), components=components)
    errs = sorted(jsonschema.Draft202012Validator(doc).iter_errors(case["body"]),
                  key=lambda e: list(e.absolute_path))
    print(json.dumps({"path": case["path"], "errors": [
        "/".join(map(str, e.absolute_path)) + ": " + e.message[:300] for e in errs[:5]]}))
"""


class TemplatedRoutesWithRealRows(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.stub, cls.api = harness.api_with_stub(Stub, SECRET)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.stub.shutdown()

    def rows(self, t):
        """One row of every kind a templated route names; the path parameters' values."""
        psql("INSERT INTO org_units (tenant_id, org_unit_id, path, name, parent_id, parent_path,"
             " content_hash) VALUES (:'t', 'id:root', '/', 'District', NULL, NULL, 'h'),"
             " (:'t', 'id:s', '/Students', 'Students', 'id:root', '/', 'h')", t=t)
        kid = person(t, "Contract Row Kid", ou="/Students")
        dev = asset(t, "SN-ROWS-1", tag="TAG-ROWS-1")
        psql("INSERT INTO checkouts (tenant_id, asset_id, person_id, checked_out_by)"
             " VALUES (:'t', :'a', :'p', 'apikey:test')", t=t, a=dev, p=kid)
        run = str(uuid.uuid4())
        psql("INSERT INTO sync_runs (tenant_id, run_id, source, status, seen, removed,"
             " pending_removals) VALUES (:'t', :'r', 'google', 'held', 10, 0, 3)", t=t, r=run)
        psql("INSERT INTO run_outcomes (tenant_id, run_id, object_kind, source_id, email,"
             " outcome, reason) VALUES (:'t', :'r', 'person', 'g9', 'x@d.example', 'skipped',"
             " 'no email')", t=t, r=run)
        case = str(uuid.uuid4())
        psql("INSERT INTO match_cases (tenant_id, case_id, source, source_id, candidates,"
             " reason, run_id) VALUES (:'t', :'c', 'azure', 'az-1', ARRAY[:'p']::uuid[],"
             " 'two people share the email', :'r')", t=t, c=case, p=kid, r=run)
        account = harness.admin_account(t, "row.admin@d.example")
        return {"person_id": kid, "asset_id": dev, "org_unit_id": "id:s", "run_id": run,
                "case_id": case, "serial": "SN-ROWS-1", "asset_tag": "TAG-ROWS-1",
                "account_id": account, "provider": "google"}

    def test_every_templated_get_answers_200_with_its_documented_body(self):
        t = harness.new_tenant("rows")
        key = new_key(t, "admin")
        values = self.rows(t)
        spec = json.loads(subprocess.run(
            [os.path.join(VENV, "python"), "-c",
             "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
             SPEC], check=True, capture_output=True, text=True).stdout)
        cases = []
        for path, ops in spec["paths"].items():
            if "{" not in path or "get" not in ops:
                continue
            url = path
            for name in [p.split("}")[0] for p in path.split("{")[1:]]:
                self.assertIn(name, values, f"{path}: give the test a row for {{{name}}}")
                url = url.replace("{" + name + "}", urllib.parse.quote(values[name], safe=""))
            status, _, body = harness.http("GET", self.api.url + url,
                                           headers={"Authorization": f"Bearer {key}"})
            self.assertEqual(status, 200, f"GET {url}: {body!r:.300}")
            self.assertIsInstance(body, (dict, list), f"GET {url}: JSON")
            cases.append({"path": path, "body": body})
        self.assertGreaterEqual(len(cases), 10, [c["path"] for c in cases])
        self.assertEqual(self.schema_errors(cases), {})
        # A reply missing a field the document requires fails: the same bodies, each
        # without one field clients rely on (a nullable one among them), are refused.
        dropped = {"/v1/people/{person_id}": "email", "/v1/assets/{asset_id}": "in_google",
                   "/v1/sync/runs/{run_id}": "finished_at",
                   "/v1/sync/match-cases/{case_id}": "candidates"}
        broken = [{"path": c["path"], "body": {k: v for k, v in c["body"].items()
                                               if k != dropped[c["path"]]}}
                  for c in cases if c["path"] in dropped]
        self.assertEqual(len(broken), len(dropped))
        self.assertEqual(self.schema_errors(broken),
                         {path: [f": '{field}' is a required property"]
                          for path, field in dropped.items()})
        # the bodies are of the rows asked for, not any row
        by_path = {c["path"]: c["body"] for c in cases}
        self.assertEqual(by_path["/v1/people/{person_id}"]["person_id"], values["person_id"])
        self.assertEqual(by_path["/v1/assets/{asset_id}"]["asset_id"], values["asset_id"])
        self.assertEqual(by_path["/v1/sync/runs/{run_id}"]["run_id"], values["run_id"])

    def schema_errors(self, cases):
        """{path: errors} of the bodies that do not match their documented 200 schema."""
        p = subprocess.run([os.path.join(VENV, "python"), "-c", VALIDATE, SPEC],
                           input="".join(json.dumps(c) + "\n" for c in cases),
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
        self.assertEqual(p.returncode, 0, p.stderr)
        results = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(len(results), len(cases))
        return {r["path"]: r["errors"] for r in results if r["errors"]}


if __name__ == "__main__":
    unittest.main()
