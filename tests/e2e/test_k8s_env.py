"""The Kubernetes manifests run as written, not only parse: the migration Job's exact command
with exactly its environment (the image's ENV, the ConfigMap, the Job's env, the Secret's keys
as files at the mounted paths) against a fresh PostgreSQL database, and two api replicas with
the Deployment's environment behind one address, paging a list across both."""
import os
import re
import shlex
import socket
import subprocess
import tempfile
import threading
import unittest
import uuid

import harness
import k8s_yaml
from harness import ROOT, psql

K8S = os.path.join(ROOT, "deploy", "k8s")
IMAGE_SHARE = "/usr/share/k12panel/"  # where the Dockerfile copies the repo's data files


def manifest(name):
    with open(os.path.join(K8S, name)) as f:
        return k8s_yaml.load_all(f.read())


def image_env():
    """The Dockerfile's ENV of the runtime image, its /usr/share/k12panel paths mapped to the
    repository's own files (the ones the image copies)."""
    text = open(os.path.join(ROOT, "deploy", "docker", "Dockerfile")).read()
    out = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", text, re.M):
        for word in shlex.split(block.replace("\\\n", " ")):
            k, v = word.split("=", 1)
            out[k] = v
    copies = dict(reversed(m) for m in re.findall(r"^COPY (\S+) (/usr/share/\S+)$", text, re.M))
    for k, v in out.items():
        for dst, src in copies.items():
            if v == dst:
                out[k] = os.path.join(ROOT, src)
    return out


def pod_env(kind, app, secret_values, tmp):
    """(command, environment) of the app's container as Kubernetes would start it: the image's
    ENV, then envFrom's ConfigMap, then env; each mounted Secret written as files under tmp at
    the mount path (its placeholder values replaced by secret_values), and every value naming a
    file under a mount path pointed at the copy. Only PATH is taken from this process."""
    docs = [d for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml"
            for d in manifest(f)]
    config = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    spec = next(d["spec"]["template"]["spec"] for d in docs if d["kind"] == kind and
                d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == app)
    container = spec["containers"][0]
    env = {"PATH": os.path.join(harness.BUILD, "bin") + ":" + os.environ["PATH"]}
    env.update(image_env())
    for src in container.get("envFrom", []):
        env.update(config[src["configMapRef"]["name"]])
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {}
    for m in container.get("volumeMounts", []):
        secret = volumes[m["name"]]["secret"]["secretName"]
        local = os.path.join(tmp, m["name"])
        os.makedirs(local, exist_ok=True)
        for key, value in secrets[secret].items():
            with open(os.path.join(local, key), "w") as f:
                f.write(secret_values.get(key, value) + "\n")
        mounts[m["mountPath"].rstrip("/") + "/"] = local + "/"
    for k, v in env.items():
        for path, local in mounts.items():
            if v.startswith(path):
                env[k] = local + v[len(path):]
    command = container.get("command", [])
    return command, env


def local_services(env):
    """The manifest's cluster addresses replaced by the test's own servers (loopback)."""
    env["PANEL_KAFKA_BROKERS"] = os.environ["PANEL_KAFKA_BROKERS"]
    env["PANEL_HTTP_ADDR"] = "127.0.0.1"
    for k in list(os.environ):
        if k.startswith("PANEL_KAFKA_") and k not in env:
            env[k] = os.environ[k]
    return env


def database_url(url, name):
    """url with its database name replaced."""
    base, _, rest = url.partition("://")
    hostpart, _, tail = rest.partition("/")
    query = ("?" + tail.split("?", 1)[1]) if "?" in tail else ""
    return f"{base}://{hostpart}/{name}{query}"


class MigrationJob(unittest.TestCase):
    def setUp(self):
        harness.require_env()
        self.db = "k8s_" + uuid.uuid4().hex[:12]
        psql(f"CREATE DATABASE {self.db}")
        self.addCleanup(psql, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        self.url = database_url(os.environ["PANEL_PG_URL"], self.db)

    def test_the_jobs_command_migrates_the_database_its_secret_names(self):
        with tempfile.TemporaryDirectory() as tmp:
            command, env = pod_env("Job", "panel-migrate", {"pg-url": self.url}, tmp)
            local_services(env)
            self.assertEqual(env.get("PANEL_PG_URL_FILE", "").split("/")[-1], "pg-url")
            self.assertNotIn("PANEL_PG_URL", env, "the Job gets its URL only from the Secret")
            p = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True,
                               timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        version = max(int(f.split("_")[0]) for f in os.listdir(os.path.join(ROOT, "db",
                                                                             "migrations"))
                      if f.endswith(".sql"))
        self.assertIn(f"schema at version {version}", p.stdout)
        rows = subprocess.run(["psql", self.url, "-X", "-A", "-t", "-c",
                               "SELECT max(version) FROM schema_migrations"],
                              capture_output=True, text=True)
        self.assertEqual(rows.stdout.strip(), str(version), rows.stderr)


class RoundRobin:
    """A loopback TCP proxy handing each new connection to the next backend in turn."""

    def __init__(self, ports):
        self.ports = ports
        self.served = [0] * len(ports)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.next = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            i = self.next
            self.next = (self.next + 1) % len(self.ports)
            self.served[i] += 1
            upstream = socket.create_connection(("127.0.0.1", self.ports[i]))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class ApiReplicas(unittest.TestCase):
    def setUp(self):
        harness.require_env()

    def start_api(self, env):
        # The harness's Process adds this process's environment: blank what the pod does
        # not have so that only the manifest's values apply (an empty variable is unset).
        clean = {k: "" for k in os.environ if k.startswith("PANEL_") and k not in env}
        clean.update(env)
        clean.pop("PANEL_HTTP_PORT", None)
        api = harness.Process("panel-api", env=clean)
        self.addCleanup(api.stop)
        return api

    def test_pages_cross_replicas_with_the_secrets_cursor_key(self):
        secret = {d["metadata"]["name"]: d["stringData"] for d in manifest("secret.yaml")}
        key = secret["panel-api-secrets"]["cursor-key"]
        if not re.fullmatch(r"[0-9a-fA-F]{64}", key):  # the shipped placeholder
            key = os.urandom(32).hex()
        with tempfile.TemporaryDirectory() as tmp:
            apis = []
            for i in range(2):
                _, env = pod_env("Deployment", "api",
                                 {"pg-url": os.environ["PANEL_PG_URL"], "cursor-key": key},
                                 os.path.join(tmp, str(i)))
                self.assertEqual(env.get("PANEL_API_REQUIRE_CURSOR_KEY"), "true")
                self.assertTrue(env.get("PANEL_API_CURSOR_KEY_FILE", "").endswith("/cursor-key"))
                apis.append(self.start_api(local_services(env)))
        proxy = RoundRobin([a.port for a in apis])
        self.addCleanup(proxy.close)
        tenant = harness.new_tenant("k8spage")
        psql("INSERT INTO people (tenant_id, email_norm, display_name, org_unit_path) "
             "SELECT :'t', 'p' || i || '@d.example', 'Person ' || lpad(i::text, 3, '0'), "
             "'/Students' FROM generate_series(1, 30) i", t=tenant)
        api_key = subprocess.run([harness.binary("panelctl"), "apikey-create", tenant, "viewer",
                                  "k8s"], capture_output=True, text=True, check=True).stdout.strip()
        names, cursor = [], None
        while True:
            q = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
            status, _, out = harness.http("GET", f"http://127.0.0.1:{proxy.port}/v1/people" + q,
                                          headers={"Authorization": f"Bearer {api_key}"})
            self.assertEqual(status, 200, out)
            names += [p["display_name"] for p in out["items"]]
            cursor = out.get("next_cursor")
            if not cursor:
                break
        self.assertEqual(names, [f"Person {i:03d}" for i in range(1, 31)])
        self.assertGreaterEqual(min(proxy.served), 4, "both replicas served pages")

    def test_a_replica_without_the_shared_key_refuses_to_start(self):
        env = {"PANEL_API_REQUIRE_CURSOR_KEY": "true", "PANEL_API_CURSOR_KEY": "",
               "PANEL_API_CURSOR_KEY_FILE": "", "PANEL_SERVICE_SECRET": "x" * 32,
               "PANEL_HTTP_PORT": str(harness.free_port())}
        p = subprocess.run([harness.binary("panel-api")], env={**os.environ, **env},
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("PANEL_API_CURSOR_KEY", p.stderr)
        self.assertIn("shared cursor key", p.stderr)


if __name__ == "__main__":
    unittest.main()
