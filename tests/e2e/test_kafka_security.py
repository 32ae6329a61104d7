"""The services on a Kafka that requires SASL_SSL (scripts/kafka.sh with PANEL_KAFKA_SECURE=1:
a self-signed CA, a broker certificate for 127.0.0.1 and users with random passwords, on free
ports): the merger consumes source events published by panelctl and publishes its public
events there, with the PANEL_KAFKA_* settings of docs/operations.md; a client without
credentials, or with a wrong password, is refused and writes nothing. The same flow with
SCRAM-SHA-512 runs against Kafka 3.9 (tests/kafka-3.9/pom.xml): Debian's librdkafka 2.0 cannot
log in with SCRAM to Kafka 4 (fixed in librdkafka 2.6.1), docs/operations.md."""
import json
import os
import shutil
import subprocess
import unittest
import uuid

import harness
from test_merger import SECRET, full_run, person, wait_run

ROOT = harness.ROOT


class SecureBroker:
    """A broker that requires SASL_SSL, a merger on it, and the events-flow test; the
    TestCase classes below choose the broker's jars and the SASL mechanism."""
    POM = None  # deploy/kafka/pom.xml, the product's broker
    MECHANISM = None  # client.env's (PLAIN)

    @classmethod
    def setUpClass(cls):
        harness.require_env()
        cls.run_dir = os.path.join(ROOT, ".run", "test",
                                   f"kafka-secure-{cls.__name__}-{os.getpid()}")
        shutil.rmtree(cls.run_dir, ignore_errors=True)
        cls.script_env = dict(os.environ, PANEL_RUN_DIR=cls.run_dir, PANEL_KAFKA_SECURE="1")
        cls.script_env.pop("PANEL_KAFKA_PORT", None)
        if cls.POM:
            cls.script_env["PANEL_KAFKA_POM"] = os.path.join(ROOT, cls.POM)
        p = subprocess.run(["sh", "scripts/kafka.sh", "start"], cwd=ROOT, env=cls.script_env,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise RuntimeError("secure Kafka did not start:\n" + p.stderr[-4000:])
        cls.brokers = p.stdout.strip().splitlines()[-1]
        cls.secure = {"PANEL_KAFKA_BROKERS": cls.brokers}
        with open(os.path.join(cls.run_dir, "kafka", "client.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    cls.secure[k] = v
        # The settings the services are given: SASL over TLS, the password from a file.
        assert cls.secure["PANEL_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", cls.secure
        assert "PANEL_KAFKA_SASL_PASSWORD_FILE" in cls.secure, cls.secure
        if cls.MECHANISM:
            cls.secure["PANEL_KAFKA_SASL_MECHANISM"] = cls.MECHANISM
        cls.panelctl(cls.secure, "topics", check=True)
        # A group of its own: the merger keeps its offsets in PostgreSQL, and those of the
        # suite's main broker mean nothing on this new one.
        cls.merger = harness.Process("panel-merger", env=dict(
            cls.secure, PANEL_MERGER_CALLER_SECRETS="api:" + SECRET, PANEL_MERGER_BATCH_MS="50",
            PANEL_MERGER_GROUP=f"panel-merger-secure-{uuid.uuid4().hex[:8]}"))

    @classmethod
    def tearDownClass(cls):
        merger = getattr(cls, "merger", None)
        if merger:
            merger.stop()
        subprocess.run(["sh", "scripts/kafka.sh", "stop"], cwd=ROOT, env=cls.script_env,
                       capture_output=True, text=True, timeout=120)
        shutil.rmtree(cls.run_dir, ignore_errors=True)

    @staticmethod
    def panelctl(env, *args, stdin=None, check=False, timeout=120):
        full = dict(os.environ)
        for k in [k for k in full if k.startswith("PANEL_KAFKA_")]:
            del full[k]
        full.update(env)
        p = subprocess.run([harness.binary("panelctl")] + list(args), env=full, input=stdin,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"panelctl {' '.join(args)} failed: {p.stderr[-2000:]}")
        return p

    def publish(self, env, tenant, events, check=False):
        data = "\n".join(json.dumps(e) for e in events) + "\n"
        return self.panelctl(env, "publish", "panel.source.events", tenant, stdin=data,
                             check=check)

    def consume(self, topic):
        p = self.panelctl(self.secure, "consume", topic, "--timeout-ms", "3000", check=True)
        return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]

    def refused_run(self, prefix, email):
        """A new tenant and one full run of one Person, for a publisher to be refused."""
        tenant = harness.new_tenant(prefix)
        _, evs = full_run(tenant, "google", lambda r: [
            person(tenant, "google", r, "g-1", email, display_name=email.split("@")[0])])
        return tenant, evs

    def publish_with_a_wrong_password(self, tenant, evs):
        wrong = dict(self.secure)
        del wrong["PANEL_KAFKA_SASL_PASSWORD_FILE"]
        wrong["PANEL_KAFKA_SASL_PASSWORD"] = "not-the-password"
        p = self.publish(wrong, tenant, evs)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        return p

    def assert_nothing_arrived(self, tenant):
        self.assertEqual(harness.psql("SELECT count(*) FROM sync_runs WHERE tenant_id = :'t'",
                                      t=tenant), [["0"]])

    def test_events_flow_through_a_sasl_ssl_broker(self):
        tenant = harness.new_tenant("ksec")
        email = f"ada.{uuid.uuid4().hex[:6]}@d.example"
        run_id, evs = full_run(tenant, "google", lambda r: [
            person(tenant, "google", r, "g-1", email, display_name="Ada Lovelace")])
        self.publish(self.secure, tenant, evs, check=True)
        wait_run(tenant, run_id)
        rows = harness.psql("SELECT display_name, person_id FROM people WHERE tenant_id = :'t'",
                            t=tenant)
        self.assertEqual([r[0] for r in rows], ["Ada Lovelace"])
        # The outbox relay published the change on the secure broker too.
        key = f"{tenant}/{rows[0][1]}"
        out = harness.wait_until(
            lambda: [m for m in self.consume("panel.people.events") if m["key"] == key],
            timeout=30, what="the person's public event")
        self.assertEqual([m["event"]["person_changed"]["kind"] for m in out],
                         ["CHANGE_KIND_CREATED"])
        self.assertEqual(out[0]["event"]["person_changed"]["person"]["fields"]["display_name"],
                         "Ada Lovelace")



class KafkaSecurity(SecureBroker, unittest.TestCase):
    """Kafka 4 (the product's broker), PLAIN over TLS."""

    def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(self):
        tenant, evs = self.refused_run("ksecx", "eve@d.example")
        p = self.publish({"PANEL_KAFKA_BROKERS": self.brokers}, tenant, evs)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        p = self.publish_with_a_wrong_password(tenant, evs)
        self.assertIn("Invalid username or password", p.stderr)
        self.assert_nothing_arrived(tenant)
        self.assertEqual([m for m in self.consume("panel.source.events")
                          if m["key"] == tenant], [])
        self.assertNotIn("eve@d.example", json.dumps(self.consume("panel.source.events")))

    def test_settings_are_checked_at_start(self):
        cases = [
            ({"PANEL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "PANEL_KAFKA_SASL_MECHANISM"),
            ({"PANEL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "PANEL_KAFKA_SASL_MECHANISM":
              "OAUTHBEARER"}, "OAUTHBEARER is not supported"),
            ({"PANEL_KAFKA_SASL_USERNAME": "panel"}, "has no SASL"),
            ({"PANEL_KAFKA_PROPERTIES": "enable.idempotence=false"}, "enable.idempotence"),
            ({"PANEL_KAFKA_PROPERTIES": "isolation.level=read_uncommitted"}, "isolation.level"),
            ({"PANEL_KAFKA_PROPERTIES": "no-equals-sign"}, "is not key=value"),
            ({"PANEL_KAFKA_PROPERTIES": "no.such.property=1"}, "no.such.property"),
        ]
        for env, expected in cases:
            with self.subTest(env=env):
                p = self.panelctl(env, "topics", timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(expected, p.stderr)
                p = subprocess.run([harness.binary("panel-merger")], env=dict(os.environ, **env),
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(expected, p.stderr)
        # A passthrough property that is allowed reaches librdkafka.
        p = self.panelctl(dict(self.secure, PANEL_KAFKA_PROPERTIES=
                               "socket.keepalive.enable=true, reconnect.backoff.max.ms=5000"),
                          "topics", timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)


class ScramOnKafka39(SecureBroker, unittest.TestCase):
    """SCRAM-SHA-512 over TLS, on Kafka 3.9: the events flow, and a wrong password is refused
    by the SCRAM exchange."""
    POM = "tests/kafka-3.9/pom.xml"
    MECHANISM = "SCRAM-SHA-512"

    def test_the_broker_is_kafka_3_9_and_the_login_is_scram(self):
        self.assertEqual(self.secure["PANEL_KAFKA_SASL_MECHANISM"], "SCRAM-SHA-512")
        p = subprocess.run(["sh", "scripts/kafka.sh", "status"], cwd=ROOT, env=self.script_env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.run_dir, "kafka", "logs", "server.log")) as f:
            self.assertIn("Kafka version: 3.9.1", f.read())

    def test_a_wrong_scram_password_is_refused(self):
        tenant, evs = self.refused_run("kscram", "mallory@d.example")
        p = self.publish_with_a_wrong_password(tenant, evs)
        self.assertIn("invalid credentials", p.stderr)
        self.assert_nothing_arrived(tenant)

if __name__ == "__main__":
    unittest.main()
