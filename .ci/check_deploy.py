#!/usr/bin/env python3
"""Checks deploy/ without a cluster or a Docker engine (run by .ci/run).

- every YAML file in the repository parses, every JSON file under deploy/ too;
- promtool: the alert rules (`check rules`), their unit tests (`test rules`),
  the compose stack's Prometheus config (`check config`);
- the Kubernetes manifests pass kubernetes-validate's schemas (strict: an
  unknown field fails) for the oldest and newest Kubernetes versions we
  support; the ServiceMonitor (a CRD it has no schema for) and the Helm
  values are checked by the cross-references below instead;
- the manifests agree with each other: probe and Service ports name a
  container port, the Service, PodDisruptionBudgets and ServiceMonitor
  select pods that exist, the HPA scales a Deployment, terminationGrace
  exceeds the shutdown grace;
- the compose stack's mounts exist, Prometheus scrapes its services on the
  port they listen on and loads the mounted rules, Grafana's data source and
  dashboards are where compose puts them;
- `docker compose config` on the compose files, where a Docker engine runs.

That the probe paths answer and that every metric the alerts and the
dashboard query exists is checked against running processes by
`cargo test --test it deploy::`.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

# The oldest Kubernetes release still commonly run, and the newest the
# installed kubernetes-validate knows.
KUBERNETES_OLDEST = "1.30.0"

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEPLOY = os.path.join(ROOT, "deploy")
KUBE = os.path.join(DEPLOY, "kubernetes")
# Files in deploy/kubernetes that are not Kubernetes resources.
NOT_RESOURCES = {"kustomization.yaml", "prometheus-adapter-values.yaml"}

failures = []


def fail(message):
    failures.append(message)
    print(f"FAIL {message}", file=sys.stderr)


def rel(path):
    return os.path.relpath(path, ROOT)


def run(args, cwd=ROOT):
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{' '.join(args)}:\n{out.stdout}{out.stderr}")
    return out.returncode == 0


def check_parse():
    skip = {".git", "target"}
    count = 0
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                if name.endswith((".yaml", ".yml")):
                    with open(path) as f:
                        list(yaml.safe_load_all(f))
                    count += 1
                elif name.endswith(".json") and path.startswith(DEPLOY):
                    with open(path) as f:
                        json.load(f)
                    count += 1
            except (yaml.YAMLError, json.JSONDecodeError) as e:
                fail(f"{rel(path)} does not parse: {e}")
    print(f"ok: {count} YAML and JSON files parse")


def check_prometheus():
    prom = os.path.join(DEPLOY, "prometheus")
    ok = run(["promtool", "check", "rules", "alerts.yaml"], cwd=prom)
    ok &= run(["promtool", "test", "rules", "alerts.test.yaml"], cwd=prom)
    ok &= run(["promtool", "check", "config", "prometheus.yaml"], cwd=prom)
    if ok:
        print("ok: promtool check rules, test rules, check config")


def resources():
    """(file name, resource) of every Kubernetes resource in deploy/kubernetes."""
    found = []
    for path in sorted(glob.glob(os.path.join(KUBE, "*.yaml"))):
        name = os.path.basename(path)
        if name in NOT_RESOURCES:
            continue
        with open(path) as f:
            found += [(name, doc) for doc in yaml.safe_load_all(f) if doc]
    return found


def check_schemas(found):
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    versions = [KUBERNETES_OLDEST, latest_version()]
    for name, doc in found:
        if doc.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked in check_references
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, True)
            except kubernetes_validate.ValidationError as e:
                fail(f"{name} {doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                     f"{'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                fail(f"{name}: no schema for {doc.get('kind')} {doc.get('apiVersion')}: {e}")
    print(f"ok: {len(found)} Kubernetes resources checked against the schemas of {', '.join(versions)}")

    with open(os.path.join(KUBE, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = set(kustomization["resources"])
    on_disk = {n for n in os.listdir(KUBE) if n.endswith(".yaml")} - NOT_RESOURCES
    if listed != on_disk:
        fail(f"kustomization.yaml lists {sorted(listed)}, deploy/kubernetes holds {sorted(on_disk)}")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def seconds(duration):
    assert duration.endswith("s"), duration
    return int(duration[:-1])


def check_references(found):
    by_kind = {}
    for _, doc in found:
        by_kind.setdefault(doc["kind"], []).append(doc)
    config = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}
    deployments = by_kind.get("Deployment", [])
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
    pods += [j["spec"]["template"]["metadata"]["labels"] for j in by_kind.get("Job", [])]

    for d in deployments:
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        if not selects(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]):
            fail(f"{name}: its selector does not select its own pods")
        for c in spec["containers"]:
            ports = {p.get("name") for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                get = c.get(probe, {}).get("httpGet")
                if get is None:
                    fail(f"{name}: no HTTP {probe}")
                elif get["port"] not in ports:
                    fail(f"{name}: {probe} port {get['port']!r} is none of {sorted(ports)}")
            env = {}
            for source in c.get("envFrom", []):
                env.update(config.get(source.get("configMapRef", {}).get("name"), {}))
            env.update({e["name"]: e.get("value") for e in c.get("env", [])})
            grace = seconds(env.get("PRICEKEEPER_SHUTDOWN_GRACE", "20s"))
            # The worker exits at grace + 5s final writes + 2s; the daemon earlier.
            if spec.get("terminationGracePeriodSeconds", 30) <= grace + 7:
                fail(f"{name}: terminationGracePeriodSeconds is not above the shutdown grace {grace}s + 7s")
            res = c.get("resources", {})
            for which in ("requests", "limits"):
                memory = str(res.get(which, {}).get("memory", ""))
                if not re.fullmatch(r"[0-9]+(Mi|Gi)", memory):
                    fail(f"{name}: memory {which} {memory!r} is not a quantity like 128Mi")

    for kind in ("PodDisruptionBudget", "Service"):
        for r in by_kind.get(kind, []):
            selector = r["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            if not any(selects(selector, labels) for labels in pods):
                fail(f"{kind} {r['metadata']['name']} selects no pod")
    services = by_kind.get("Service", [])
    for s in services:
        chosen = [d for d in deployments if selects(s["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        for port in s["spec"]["ports"]:
            for d in chosen:
                names = {p.get("name") for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
                if port["targetPort"] not in names:
                    fail(f"Service {s['metadata']['name']}: targetPort {port['targetPort']!r} not a port of {d['metadata']['name']}")
    for m in by_kind.get("ServiceMonitor", []):
        if m["apiVersion"] != "monitoring.coreos.com/v1":
            fail(f"ServiceMonitor {m['metadata']['name']}: apiVersion {m['apiVersion']}")
        matched = [s for s in services if selects(m["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        if not matched:
            fail(f"ServiceMonitor {m['metadata']['name']} selects no Service")
        for e in m["spec"]["endpoints"]:
            if not any(e["port"] in {p["name"] for p in s["spec"]["ports"]} for s in matched):
                fail(f"ServiceMonitor {m['metadata']['name']}: port {e['port']!r} is not a Service port name")
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        target = h["spec"]["scaleTargetRef"]
        if not any(d["metadata"]["name"] == target["name"] for d in deployments):
            fail(f"HPA {h['metadata']['name']} scales {target['name']}, not a Deployment here")
    print("ok: probes, ports, selectors, the HPA's target and the grace periods agree")


def check_compose_references():
    """What `docker compose config` cannot see: the files the compose stack
    mounts exist, and Prometheus and Grafana point at what compose runs."""
    with open(os.path.join(DEPLOY, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    mounts = {}  # container path -> source on disk, per service
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                path = os.path.normpath(os.path.join(DEPLOY, source))
                if not os.path.exists(path):
                    fail(f"compose.yaml: {name} mounts {source}, which does not exist")
                mounts.setdefault(name, {})[target] = path
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yaml")) as f:
        prometheus = yaml.safe_load(f)
    config_dir = os.path.dirname(
        next(a for a in services["prometheus"]["command"] if a.startswith("--config.file=")).split("=", 1)[1]
    )
    for rule_file in prometheus.get("rule_files", []):
        if os.path.join(config_dir, rule_file) not in mounts.get("prometheus", {}):
            fail(f"prometheus.yaml loads {rule_file}, which compose does not mount into {config_dir}")
    for job in prometheus["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for target in sd["names"]:
                env = services.get(target, {}).get("environment", {})
                if target not in services:
                    fail(f"prometheus.yaml scrapes {target}, not a compose service")
                elif not str(env.get("PRICEKEEPER_HTTP_ADDR", "")).endswith(f":{sd['port']}"):
                    fail(f"prometheus.yaml scrapes {target}:{sd['port']}, it listens on {env.get('PRICEKEEPER_HTTP_ADDR')}")
    with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yaml")) as f:
        for source in yaml.safe_load(f)["datasources"]:
            host = source["url"].split("//", 1)[1].split(":")[0]
            if host not in services:
                fail(f"Grafana's data source {source['url']} is not a compose service")
    with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "pricekeeper.yaml")) as f:
        for provider in yaml.safe_load(f)["providers"]:
            if provider["options"]["path"] not in mounts.get("grafana", {}):
                fail(f"Grafana loads dashboards from {provider['options']['path']}, which compose does not mount")
    print("ok: compose mounts exist; Prometheus and Grafana point at compose's services")


def check_compose():
    docker = shutil.which("docker")
    engine = docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0
    if not engine:
        print("skipped: docker compose config (no Docker engine here)")
        return
    base = ["docker", "compose", "-f", "deploy/compose.yaml"]
    if run(base + ["config", "--quiet"]) and run(
        base + ["-f", "deploy/compose.real-providers.yaml", "config", "--quiet"]
    ):
        print("ok: docker compose config")


def main():
    check_parse()
    check_prometheus()
    found = resources()
    check_schemas(found)
    check_references(found)
    check_compose_references()
    check_compose()
    if failures:
        print(f"check_deploy: {len(failures)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print("check_deploy: ok")


if __name__ == "__main__":
    main()
