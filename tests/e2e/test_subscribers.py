"""The subscriber examples (examples/: C, Python, Java) against the real merger, api, Kafka and
PostgreSQL: a district's sync is applied by a merger that is SIGKILLed in the middle and
restarted, a second cloud's run changes People, an admin checks an Asset out through the api;
then each example, in a new consumer group, reads panel.people.events and panel.assets.events
from the beginning and must end with the api's current state: every Person and Asset of the
district, each at the api's version with the api's values (docs/events.md: at least once,
dedupe on event_id, newest version per key)."""
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
import uuid

import harness
import suite

LINE = re.compile(r'^(person|asset) (\S+) (\S+) v(\d+) tenant=(\S+) (.*) changed=(\S+)$')
HOSTILE_NAME = 'Line one\nLine "two"\\ \tend'
# What the examples print for it: between quotes, backslash and quote escaped, \n \r \t and
# \u00XX for control characters (docs/events.md).
HOSTILE_PRINTED = '"Line one\\nLine \\"two\\"\\\\ \\tend"'


def quoted(text):
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


DEBIAN_PYTHON = "/usr/bin/python3"  # python3-confluent-kafka and python3-protobuf live there


def api_items(api, key, path):
    """Every item of a paginated list of the api."""
    items, cursor = [], None
    while True:
        url = f"{api.url}{path}{'&' if '?' in path else '?'}limit=500"
        if cursor:
            url += "&cursor=" + cursor
        st, _, page = harness.http("GET", url, headers={"Authorization": f"Bearer {key}"})
        assert st == 200, page
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


class Reader:
    """Collects an example's output lines of one tenant in a thread."""

    def __init__(self, proc, tenant):
        self.proc, self.tenant = proc, tenant
        self.lines, self.bad = [], []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for line in self.proc.stdout:
            m = LINE.match(line.rstrip("\n"))
            with self.lock:
                # Other tenants' events share the topics (other tests' names may hold raw
                # newlines, which split their lines): only this tenant's lines are judged.
                if not m:
                    if "tenant=" + self.tenant in line:
                        self.bad.append(line)
                elif m.group(5) == self.tenant:
                    self.lines.append(m)

    def state(self):
        """entity -> (version, rest of the line) of the newest version printed."""
        out = {}
        with self.lock:
            for m in self.lines:
                key, version = (m.group(1), m.group(2)), int(m.group(4))
                if version > out.get(key, (0, ""))[0]:
                    out[key] = (version, m.group(6))
        return out


class Subscribers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.tenant = harness.new_tenant("subs")
        cls.api = suite.start_api()
        cls.key = suite.api_key(cls.tenant)
        # Small batches, so that the sync takes many transactions and the kill lands inside it.
        small = {"PANEL_MERGER_BATCH_MAX": "100"}
        merger = suite.start_merger(small)
        try:
            google = suite.run_events(cls.tenant, "google", range(1500), devices=300, ous=4)
            suite.publish(cls.tenant, google)
            # Kill the merger in the middle of the sync: some People are applied, not all.
            harness.wait_until(lambda: int(harness.psql(
                "SELECT count(*) FROM people WHERE tenant_id = :'t'", t=cls.tenant)[0][0]) > 0,
                timeout=120, what="the merger to start applying")
            merger.kill()
            cls.applied_at_kill = int(harness.psql(
                "SELECT count(*) FROM people WHERE tenant_id = :'t'", t=cls.tenant)[0][0])
            merger = suite.start_merger(small)
            suite.wait_run(cls.tenant, google[0]["run_id"], ("completed",), timeout=240)
            # Azure changes half of them (their values win): UPDATED, version 2.
            azure = suite.run_events(cls.tenant, "azure", range(750, 1600))
            # One name with a line break, a quote, a backslash and a tab: each example must
            # still print that Person on one line, escaped as docs/events.md says.
            for e in azure:
                if "person_observed" in e and e["person_observed"]["person"]["source_id"] \
                        .endswith("1599"):
                    e["person_observed"]["person"]["display_name"] = HOSTILE_NAME
            suite.publish(cls.tenant, azure)
            suite.wait_run(cls.tenant, azure[0]["run_id"], ("completed",), timeout=240)
            # An admin action through the api: CHECKED_OUT, the Asset's next version.
            people = api_items(cls.api, cls.key, "/v1/people")
            assets = api_items(cls.api, cls.key, "/v1/assets")
            st, _, out = harness.http(
                "POST", f"{cls.api.url}/v1/assets/{assets[0]['asset_id']}/checkout",
                body={"person_id": people[0]["person_id"]},
                headers={"Authorization": f"Bearer {cls.key}"})
            assert st == 201, out
            harness.wait_until(lambda: harness.psql(
                "SELECT count(*) FROM outbox WHERE tenant_id = :'t' AND sent_at IS NULL",
                t=cls.tenant) == [["0"]], timeout=120, what="the outbox to be published")
        finally:
            merger.stop()
        cls.expected = cls.api_state()

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    @classmethod
    def api_state(cls):
        """What the api says now, in the examples' line format (without the change list)."""
        state = {}
        for p in api_items(cls.api, cls.key, "/v1/people?status=all"):
            state[("person", p["person_id"])] = (
                p["version"], f'email={p["email"]} name={quoted(p["display_name"])}')
        for a in api_items(cls.api, cls.key, "/v1/assets"):
            state[("asset", a["asset_id"])] = (
                a["version"], f'serial={a["serial_number"] or ""} model={quoted(a["model"] or "")} '
                              f'in_google={"true" if a["in_google"] else "false"}')
        return state

    def test_fixture_is_a_sync_with_a_killed_merger(self):
        self.assertGreater(self.applied_at_kill, 0)
        self.assertLess(self.applied_at_kill, 1500)
        self.assertEqual(sum(1 for k in self.expected if k[0] == "person"), 1600)
        self.assertEqual(sum(1 for k in self.expected if k[0] == "asset"), 300)
        self.assertTrue(any(v[0] >= 2 for k, v in self.expected.items() if k[0] == "person"))
        self.assertTrue(any(v[0] >= 2 for k, v in self.expected.items() if k[0] == "asset"))
        self.assertEqual(quoted(HOSTILE_NAME), HOSTILE_PRINTED)
        self.assertEqual(sum(1 for v in self.expected.values()
                             if v[1].endswith("name=" + HOSTILE_PRINTED)), 1)

    def run_example(self, argv, env=None, cwd=None):
        """Run an example in a new group until it has printed the api's state (or time out)."""
        e = dict(os.environ, PANEL_SUBSCRIBER_GROUP="example-" + uuid.uuid4().hex[:8])
        e.update(env or {})
        proc = subprocess.Popen(argv, env=e, cwd=cwd or harness.ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        reader = Reader(proc, self.tenant)
        try:
            harness.wait_until(lambda: proc.poll() is not None or
                               reader.state() == self.expected, timeout=180,
                               what=f"{argv[0]} to reach the api's state")
        except AssertionError:
            pass  # compared below, with the difference shown
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.thread.join(10)
            errors = proc.stderr.read()[-2000:]
            proc.stdout.close()
            proc.stderr.close()
        got = reader.state()
        missing = [k for k in self.expected if got.get(k) != self.expected[k]][:5]
        self.assertEqual(reader.bad, [], "lines not in the documented format")
        self.assertEqual(len(got), len(self.expected),
                         f"{argv[0]}: stderr {errors}")
        self.assertEqual(missing, [], [(k, got.get(k), self.expected[k]) for k in missing])
        return reader

    def test_c_example(self):
        self.run_example([harness.binary("panel-subscriber")])

    def test_python_example(self):
        with tempfile.TemporaryDirectory() as gen:
            subprocess.run(["protoc", "--python_out=" + gen, "-I" + os.path.join(
                harness.ROOT, "proto"), os.path.join(harness.ROOT, "proto", "panel", "v1",
                                                     "events.proto")], check=True)
            reader = self.run_example(
                [DEBIAN_PYTHON, os.path.join(harness.ROOT, "examples", "subscriber-python",
                                             "subscriber.py")], env={"PYTHONPATH": gen})
        # It applies each version once: no line repeats an entity's version.
        with reader.lock:
            seen = [(m.group(2), m.group(4)) for m in reader.lines]
        self.assertEqual(len(seen), len(set(seen)))

    def test_java_example(self):
        out = os.path.join(harness.ROOT, ".run", "test", "subscriber-java")
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.run(["sh", os.path.join(harness.ROOT, "examples", "subscriber-java",
                                               "build.sh"), out],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        reader = self.run_example(["java", "-cp", os.path.join(out, "classes") + os.pathsep +
                                   os.path.join(out, "lib", "*"), "k12panel.examples.Subscriber"])
        with reader.lock:
            seen = [(m.group(2), m.group(4)) for m in reader.lines]
        self.assertEqual(len(seen), len(set(seen)))


if __name__ == "__main__":
    unittest.main()
