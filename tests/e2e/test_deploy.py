"""docker-compose.yml and the Kubernetes manifests are valid, offline; the manifests' network
policies, Ingress and Secrets give each service only what it needs (docs/security.md)."""
import ipaddress
import os
import re
import subprocess
import tempfile
import unittest

import k8s_yaml
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

    def config(self, *args):
        p = subprocess.run(["docker-compose", "-f", "docker-compose.yml"] + list(args) +
                           ["config"], cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return compose_services(p.stdout)

    def test_kafka_writes_its_topics_to_its_volume(self):
        """Topics survive down/up like PostgreSQL's offsets: the log directory is the volume."""
        kafka = self.config()["kafka"]
        mounts = kafka["volumes"]
        self.assertEqual(kafka["environment"].get("KAFKA_LOG_DIRS"), "/var/lib/kafka/data")
        self.assertIn("/var/lib/kafka/data", mounts)

    def test_emulator_urls_apply_only_with_the_emulator_env_file(self):
        url_vars = ("PANEL_GOOGLE_AUTH_URL", "PANEL_GOOGLE_TOKEN_URL", "PANEL_GOOGLE_REVOKE_URL",
                    "PANEL_GOOGLE_API_URL", "PANEL_MS_LOGIN_URL", "PANEL_GOOGLE_ISSUER",
                    "PANEL_GRAPH_URL")
        plain = self.config()
        compose = open(os.path.join(ROOT, "docker-compose.yml")).read()
        emulator = compose.split("\n  emulator:\n", 1)[1].split("\n\n", 1)[0]
        self.assertIn('profiles: ["emulator"]', emulator, "the emulator starts only on request")
        self.assertIn("COMPOSE_PROFILES=emulator",
                      open(os.path.join(ROOT, "deploy", "compose", "emulator.env")).read())
        for name, svc in plain.items():
            if name == "emulator":
                continue
            for var in url_vars:
                with self.subTest(svc=name, var=var):
                    value = (svc.get("environment") or {}).get(var, "https://")
                    self.assertTrue(value.startswith("https://"), value)
        emu = self.config("--env-file", "deploy/compose/emulator.env")
        self.assertIn("emulator", emu)
        for name in ("auth", "google-sync", "azure-sync", "migrate"):
            env = emu[name]["environment"]
            for var in url_vars:
                with self.subTest(svc=name, var=var):
                    self.assertRegex(env[var], r"^http://(emulator|localhost):8090")


def compose_services(text):
    """{service: {"environment": {name: value}, "volumes": [target]}} from `docker-compose
    config` output (its canonical layout: two-space indentation, long volume syntax)."""
    out, svc, section = {}, None, None
    in_services = False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_services = line == "services:"
            continue
        if not in_services:
            continue
        m = re.match(r"^  (\S+):$", line)
        if m:
            svc = out.setdefault(m.group(1), {"environment": {}, "volumes": []})
            continue
        m = re.match(r"^    (\w+):", line)
        if m:
            section = m.group(1)
            continue
        if section == "environment":
            m = re.match(r"^      (\w+): (.*)$", line)
            if m:
                svc["environment"][m.group(1)] = m.group(2).strip("'\"")
        elif section == "volumes":
            m = re.match(r"^      (?:- )?\s*target: (\S+)$", line.rstrip()) or \
                re.match(r"^    - [^:]+:([^:]+)", line)
            if m:
                svc["volumes"].append(m.group(1))
    return out


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


class PodSecurity(unittest.TestCase):
    """Every pod passes the Pod Security Standard "restricted" (and baseline, which it
    includes), as the admission controller checks it."""

    def test_every_pod_is_restricted(self):
        specs = workloads()
        self.assertIn("panel-migrate", specs)
        for app, spec in specs.items():
            for problem in restricted_violations(spec):
                with self.subTest(app=app):
                    self.fail(problem)

    def test_the_check_can_fail(self):
        bad = {"securityContext": {"runAsNonRoot": True},
               "containers": [{"name": "c", "securityContext": {
                   "allowPrivilegeEscalation": False}}],
               "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}
        problems = "\n".join(restricted_violations(bad))
        for word in ("seccompProfile", "capabilities", "hostPath"):
            self.assertIn(word, problems)


def restricted_violations(spec):
    """The rules of the "restricted" Pod Security Standard a pod spec breaks."""
    out = []
    pod = spec.get("securityContext") or {}
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(f):
            out.append(f"{f} is set")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            out.append(f"volume {v['name']} is {kinds - allowed_volumes} (hostPath and the like "
                       "are not allowed)")
    if pod.get("runAsUser") == 0:
        out.append("the pod runs as user 0")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            out.append(f"{name} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if not sc.get("runAsNonRoot", pod.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            out.append(f"{name} runs as user 0")
        seccomp = (sc.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: only NET_BIND_SERVICE may be added to capabilities")
        if c.get("ports") and any(p.get("hostPort") for p in c["ports"]):
            out.append(f"{name} uses a hostPort")
        if not sc.get("readOnlyRootFilesystem"):
            out.append(f"{name}: readOnlyRootFilesystem (the services write nothing locally)")
    return out


class Observability(unittest.TestCase):
    def test_every_service_has_a_startup_probe_on_healthz(self):
        specs = workloads()
        for app in ("api", "auth", "google-sync", "azure-sync", "merger"):
            with self.subTest(app=app):
                probe = specs[app]["containers"][0]["startupProbe"]
                self.assertEqual(probe["httpGet"]["path"], "/healthz")
                self.assertGreaterEqual(probe["periodSeconds"] * probe["failureThreshold"], 30)

    def test_the_api_scales_on_cpu_with_a_shared_cursor_key(self):
        hpa = manifest("hpa.yaml")[0]
        self.assertEqual(hpa["kind"], "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], "api")
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        self.assertEqual(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu")
        # The autoscaler owns the api's replica count: a fixed `replicas` in the Deployment
        # would put it back to that number on every apply.
        api = [d for d in manifest("api.yaml") if d["kind"] == "Deployment"][0]
        self.assertNotIn("replicas", api["spec"])
        api = workloads()["api"]["containers"][0]
        self.assertIn("cpu", api["resources"]["requests"], "CPU utilisation needs a request")
        env = {e["name"]: e["value"] for e in api["env"]}
        self.assertEqual(env["PANEL_API_REQUIRE_CURSOR_KEY"], "true")
        self.assertEqual(env["PANEL_API_CURSOR_KEY_FILE"], "/etc/panel/secrets/cursor-key")

    def test_a_pod_monitor_scrapes_every_service(self):
        mon_dir = os.path.join(K8S, "monitoring")
        kust = open(os.path.join(mon_dir, "kustomization.yaml")).read()
        self.assertIn("podmonitor.yaml", kust)
        mon = k8s_yaml.load_all(open(os.path.join(mon_dir, "podmonitor.yaml")).read())[0]
        self.assertEqual(mon["kind"], "PodMonitor")
        picked = selected(mon["spec"]["selector"], set(workloads()))
        self.assertEqual(picked, set(SERVICES))
        self.assertEqual(mon["spec"]["podMetricsEndpoints"][0]["path"], "/metrics")
        port = mon["spec"]["podMetricsEndpoints"][0]["port"]
        for app in SERVICES:
            with self.subTest(app=app):
                names = [p["name"] for p in workloads()[app]["containers"][0]["ports"]]
                self.assertIn(port, names)


SERVICES = ("api", "auth", "google-sync", "azure-sync", "merger")
PORTS = {"api": 8080, "auth": 8081, "google-sync": 8082, "azure-sync": 8083, "merger": 8084}


def manifest(name):
    with open(os.path.join(K8S, name)) as f:
        return k8s_yaml.load_all(f.read())


def workloads():
    """{app name: pod spec} of every Deployment and Job."""
    out = {}
    for f in sorted(os.listdir(K8S)):
        if not f.endswith(".yaml") or f == "kustomization.yaml":
            continue
        for doc in manifest(f):
            if doc.get("kind") in ("Deployment", "Job"):
                tpl = doc["spec"]["template"]
                out[tpl["metadata"]["labels"]["app.kubernetes.io/name"]] = tpl["spec"]
    return out


def selected(selector, apps):
    """The apps a podSelector picks (matchLabels or In expressions on app.kubernetes.io/name)."""
    if not selector:
        return set(apps)
    picked = set(apps)
    for k, v in (selector.get("matchLabels") or {}).items():
        if k != "app.kubernetes.io/name":
            raise AssertionError(f"unexpected selector label {k}")
        picked &= {v}
    for e in selector.get("matchExpressions") or []:
        if e["key"] != "app.kubernetes.io/name" or e["operator"] != "In":
            raise AssertionError(f"unexpected selector expression {e}")
        picked &= set(e["values"])
    return picked


def peer_names(peer, apps):
    """A policy peer as names: app names in the namespace, ns/<namespace>[/label=value],
    or "internet" for public addresses."""
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
        if block["cidr"] == "0.0.0.0/0" and all(
                any(ipaddress.ip_network(p).subnet_of(ipaddress.ip_network(e))
                    for e in block.get("except", [])) for p in private):
            return {"internet"}
        return {"cidr:" + block["cidr"]}
    if "namespaceSelector" in peer:
        labels = peer["namespaceSelector"]["matchLabels"]
        name = "ns/" + labels["kubernetes.io/metadata.name"]
        pods = (peer.get("podSelector") or {}).get("matchLabels") or {}
        return {name + "".join(f"/{k}={v}" for k, v in sorted(pods.items()))}
    return selected(peer.get("podSelector"), apps)


def port_names(rule, app):
    out = set()
    for p in rule.get("ports") or [{"port": "any"}]:
        port = PORTS.get(app) if p["port"] == "http" else p["port"]
        out.add(f"{port}/{p.get('protocol', 'TCP')}")
    return out


def policy_flows(policies=None):
    """(ingress flows, egress flows, default-deny policy types) the policies allow."""
    apps = set(workloads())
    ingress, egress, deny = set(), set(), set()
    for pol in policies or manifest("networkpolicy.yaml"):
        spec = pol["spec"]
        pods = selected(spec["podSelector"], apps)
        if spec["podSelector"] == {} and not spec.get("ingress") and not spec.get("egress"):
            deny |= set(spec["policyTypes"])
        for rule in spec.get("ingress") or []:
            for peer in rule["from"]:
                for src in peer_names(peer, apps):
                    for dst in pods:
                        ingress |= {(src, dst, p) for p in port_names(rule, dst)}
        for rule in spec.get("egress") or []:
            for peer in rule["to"]:
                for dst in peer_names(peer, apps):
                    for src in pods:
                        egress |= {(src, dst, p) for p in port_names(rule, dst)}
    return ingress, egress, deny


def ingress_backend(rules, path):
    """The service the Ingress sends a request path to (Kubernetes' matching: Exact equal, or
    Prefix by whole path elements; the longest match wins), or None."""
    best = None
    for r in rules:
        p = r["path"]
        if r["pathType"] == "Exact":
            ok = path == p
        else:
            base = p.rstrip("/")
            ok = p == "/" or path == base or path.startswith(base + "/")
        if ok and (best is None or len(p) > len(best[0]) or
                   (len(p) == len(best[0]) and r["pathType"] == "Exact")):
            best = (p, r["backend"]["service"]["name"])
    return best[1] if best else None


class LeastPrivilege(unittest.TestCase):
    def test_every_manifest_parses(self):
        for f in os.listdir(K8S):
            if f.endswith(".yaml"):
                with self.subTest(f=f):
                    for doc in manifest(f):
                        self.assertIn("kind", doc)

    def test_network_policies_allow_exactly_the_flows(self):
        ingress, egress, deny = policy_flows()
        self.assertEqual(deny, {"Ingress", "Egress"}, "the namespace is not default-deny")
        scrape = {("ns/monitoring", s, f"{PORTS[s]}/TCP") for s in SERVICES}
        self.assertEqual(ingress, {
            ("ns/ingress-nginx", "api", "8080/TCP"), ("ns/ingress-nginx", "auth", "8081/TCP"),
            ("api", "auth", "8081/TCP"), ("google-sync", "auth", "8081/TCP"),
            ("azure-sync", "auth", "8081/TCP"), ("api", "merger", "8084/TCP")} | scrape)
        dns = {(a, "ns/kube-system/k8s-app=kube-dns", p) for a in SERVICES + ("panel-migrate",)
               for p in ("53/UDP", "53/TCP")}
        pg, kafka, web = "ns/db", "ns/kafka", "internet"
        self.assertEqual(egress, dns | {
            ("api", "auth", "8081/TCP"), ("api", "merger", "8084/TCP"), ("api", pg, "5432/TCP"),
            ("auth", pg, "5432/TCP"), ("auth", kafka, "9092/TCP"), ("auth", web, "443/TCP"),
            ("google-sync", "auth", "8081/TCP"), ("google-sync", kafka, "9092/TCP"),
            ("google-sync", web, "443/TCP"),
            ("azure-sync", "auth", "8081/TCP"), ("azure-sync", kafka, "9092/TCP"),
            ("azure-sync", pg, "5432/TCP"), ("azure-sync", web, "443/TCP"),
            ("merger", pg, "5432/TCP"), ("merger", kafka, "9092/TCP"),
            ("panel-migrate", pg, "5432/TCP"), ("panel-migrate", kafka, "9092/TCP")})
        # Inside the namespace a flow needs both ends' consent.
        apps = set(workloads())
        inside = {f for f in egress if f[1] in apps}
        self.assertEqual(inside, {f for f in ingress if f[0] in apps})

    def test_flow_check_can_fail(self):
        """A policy letting google-sync reach the merger is caught."""
        pol = manifest("networkpolicy.yaml")
        extra = {"spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "merger"}},
                          "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {
                              "app.kubernetes.io/name": "google-sync"}}}],
                              "ports": [{"port": 8084}]}]}}
        self.assertNotIn(("google-sync", "merger", "8084/TCP"), policy_flows(pol)[0])
        self.assertIn(("google-sync", "merger", "8084/TCP"), policy_flows(pol + [extra])[0])

    def test_ingress_exposes_only_public_routes(self):
        (ing,) = manifest("ingress.yaml")
        rules = [p for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
        self.assertIsNone(ing["spec"].get("defaultBackend"))
        expect = {"/": "api", "/index.html": "api", "/app.js": "api", "/app.css": "api",
                  "/favicon.svg": "api", "/v1/people": "api", "/v1": "api",
                  "/v1/sync/runs/x/approve": "api",
                  "/oauth/google/callback": "auth", "/oauth/microsoft/callback": "auth",
                  # the admin sign-in, on the page's host (its cookie binds the consents)
                  "/signin/google": "auth", "/signin/microsoft": "auth",
                  "/signin/google/callback": "auth", "/signin/microsoft/callback": "auth"}
        for path, svc in expect.items():
            self.assertEqual(ingress_backend(rules, path), svc, path)
        for path in ("/metrics", "/healthz", "/readyz", "/internal/token",
                     "/internal/tenants/t/google/authorize", "/oauth", "/oauth/other",
                     "/v1x", "/index.html/../metrics", "/www/index.html", "/signin",
                     "/signin/other"):
            self.assertIsNone(ingress_backend(rules, path), path)
        self.assertEqual({r["backend"]["service"]["name"] for r in rules}, {"api", "auth"})
        # The admin page's files are each listed (a new file needs its own line).
        www = set(os.listdir(os.path.join(ROOT, "services", "api", "www")))
        self.assertEqual({r["path"][1:] for r in rules if r["pathType"] == "Exact"
                          and r["backend"]["service"]["name"] == "api"} - {""}, www)

    def test_each_service_holds_only_its_own_secrets(self):
        secrets = {d["metadata"]["name"]: d["stringData"] for d in manifest("secret.yaml")}
        want = {"api": {"pg-url", "service-secret", "cursor-key"},
                "auth": {"pg-url", "caller-secrets", "auth-keys", "google-client-id",
                         "google-client-secret", "ms-client-id", "ms-client-secret"},
                "google-sync": {"service-secret"},
                "azure-sync": {"pg-url", "service-secret"},
                "merger": {"pg-url", "caller-secrets"},
                "panel-migrate": {"pg-url"}}
        specs = workloads()
        self.assertEqual(set(specs), set(want))
        for app, spec in specs.items():
            with self.subTest(app=app):
                name = "panel-migrate-secrets" if app == "panel-migrate" else f"panel-{app}-secrets"
                vols = [v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v]
                self.assertEqual(vols, [name])
                self.assertEqual(set(secrets[name]), want[app])
                used = {e["value"].rsplit("/", 1)[1] for c in spec["containers"]
                        for e in c.get("env", []) if e["name"].endswith("_FILE")}
                self.assertEqual(used, want[app], "every mounted value is read, and no more")
                envs = {e["name"] for c in spec["containers"] for e in c.get("env", [])}
                if "service-secret" in want[app]:
                    self.assertIn("PANEL_SERVICE_SECRET_FILE", envs)
        own = {app: secrets[f"panel-{app}-secrets"]["service-secret"]
               for app in ("api", "google-sync", "azure-sync")}

        def callers(text):
            out = {}
            for entry in re.split(r"[,\s]+", text.strip()):
                caller, secret = entry.split(":", 1)
                out.setdefault(caller, []).append(secret)
            return out
        self.assertEqual(callers(secrets["panel-auth-secrets"]["caller-secrets"]),
                         {k: [v] for k, v in own.items()})
        self.assertEqual(callers(secrets["panel-merger-secrets"]["caller-secrets"]),
                         {"api": [own["api"]]})
        self.assertEqual(len(set(own.values())), 3, "each caller needs its own secret")


if __name__ == "__main__":
    unittest.main()
