#!/usr/bin/env python3
"""Static checks of deploy/ that need no Docker engine and no cluster (neither runs on the
development and CI machines):

* compose.yaml: parsed with PyYAML (anchors and merge keys resolved as Compose does); the
  services, images and builds, dependencies and their conditions, healthchecks, published
  ports, volumes, environment, the object store holding the snapshots (its bucket created
  before the control plane starts, the same settings on every process) and the demo
  definition file it mounts.
* Dockerfile: stages, the build command, the non-root user, ports and entrypoint.
* Every BACKFLOW__SECTION__KEY variable set by compose.yaml or by the rendered Helm manifests
  names a real settings field: the settings structs deny unknown fields, so a typo would stop
  the process at start.

Usage: check_deploy.py REPO_ROOT [RENDERED_MANIFEST...]
"""

import os
import re
import sys

import yaml

FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)
    return condition


def settings_fields(repo):
    """Fields of ControlPlaneSettings and WorkerSettings, read from the binary's source."""
    fields = {}
    src = os.path.join(repo, "services", "backflow", "src")
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            text = open(os.path.join(root, name)).read()
            for struct, section in (("ControlPlaneSettings", "CONTROL_PLANE"), ("WorkerSettings", "WORKER")):
                match = re.search(r"pub struct %s \{(.*?)\n\}" % struct, text, re.S)
                if match:
                    names = re.findall(r"^\s*pub (\w+):", match.group(1), re.M)
                    fields.setdefault(section, set()).update(n.upper() for n in names)
    check("CONTROL_PLANE" in fields and "WORKER" in fields, "settings structs not found under %s" % src)
    return fields


UNKNOWN_SETTINGS = {}


def check_settings_env(where, env, fields):
    for key in env:
        match = re.fullmatch(r"BACKFLOW__([A-Z_]+?)__([A-Z_]+)", key)
        if match and match.group(2) not in fields.get(match.group(1), set()):
            UNKNOWN_SETTINGS.setdefault(key, []).append(where)


def report_unknown_settings(fields):
    for key, wheres in UNKNOWN_SETTINGS.items():
        section = key.split("__")[1]
        check(False, "%s is not a settings field (known %s fields: %s); set by %s%s" % (
            key, section, ", ".join(sorted(fields.get(section, []))), wheres[0],
            " and %d more" % (len(wheres) - 1) if len(wheres) > 1 else ""))


def env_dict(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def check_interpolation(compose):
    # Compose interpolates ${VAR}, ${VAR:-default}, ${VAR?err} in values; `$$` escapes a
    # literal `$` (Backflow's ${env:…} references must be written $${env:…}).
    unescaped = re.sub(r"\$\$", "", "\n".join(strings(compose)))
    for ref in re.findall(r"\$\{([^}]*)\}", unescaped):
        check(
            re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(:?[-?+][^}]*)?", ref),
            "compose.yaml: ${%s} is not a valid Compose interpolation (escape Backflow references as $${…})" % ref,
        )


def check_compose(repo, fields):
    deploy = os.path.join(repo, "deploy")
    path = os.path.join(deploy, "compose.yaml")
    compose = yaml.safe_load(open(path))
    check_interpolation(compose)
    services = compose.get("services", {})
    expected = ["postgres", "jaeger", "minio", "minio-init", "migrate", "control-plane", "worker-1", "worker-2", "demo"]
    missing = [name for name in expected if name not in services]
    if not check(not missing, "compose.yaml: services %s are missing" % ", ".join(missing)):
        return

    declared_volumes = set((compose.get("volumes") or {}).keys())
    published = {}
    for name, service in services.items():
        check("image" in service or "build" in service, "compose.yaml: %s has neither image nor build" % name)
        build = service.get("build")
        if build:
            context = os.path.normpath(os.path.join(deploy, build["context"]))
            dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
            check(os.path.isfile(dockerfile), "compose.yaml: %s builds from missing %s" % (name, dockerfile))
        for dep, spec in (service.get("depends_on") or {}).items():
            check(dep in services, "compose.yaml: %s depends on unknown service %s" % (name, dep))
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                check("healthcheck" in services.get(dep, {}), "compose.yaml: %s waits for %s to be healthy, which has no healthcheck" % (name, dep))
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                check(os.path.exists(os.path.join(deploy, source)), "compose.yaml: %s mounts missing %s" % (name, source))
            else:
                check(source in declared_volumes, "compose.yaml: %s mounts undeclared volume %s" % (name, source))
        for port in service.get("ports") or []:
            host = port.rsplit(":", 1)[0]
            check(host.startswith("127.0.0.1:"), "compose.yaml: %s publishes %s beyond loopback" % (name, port))
            check(host not in published, "compose.yaml: %s and %s both publish %s" % (name, published.get(host), host))
            published[host] = name
        check_settings_env("compose.yaml " + name, env_dict(service), fields)

    # The path of a run: store migrated, then the control plane, then healthy workers.
    cp = services["control-plane"]
    cp_env = env_dict(cp)
    check(cp["command"] == ["control-plane"], "compose.yaml: control-plane must run `backflow control-plane`")
    check(cp.get("depends_on", {}).get("migrate", {}).get("condition") == "service_completed_successfully",
          "compose.yaml: control-plane must wait for migrate to complete")
    check(services["migrate"]["command"][:2] == ["migrate", "--store"], "compose.yaml: migrate must run `backflow migrate --store`")
    check(services["migrate"].get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
          "compose.yaml: migrate must wait for a healthy postgres")
    check("healthcheck" in services["postgres"], "compose.yaml: postgres needs a healthcheck")
    check("healthcheck" in cp and "/readyz" in " ".join(cp["healthcheck"]["test"]), "compose.yaml: control-plane healthcheck must call /readyz")
    check(cp_env.get("BACKFLOW__CONTROL_PLANE__STORE", "").startswith("postgres://"), "compose.yaml: control-plane store must be PostgreSQL")
    check(cp_env.get("BACKFLOW__CONTROL_PLANE__LISTEN", "").startswith("0.0.0.0:"), "compose.yaml: control-plane must listen beyond loopback")
    check("127.0.0.1:9090" in published and "127.0.0.1:7070" in published, "compose.yaml: control-plane gRPC and admin ports must be published")
    check("127.0.0.1:16686" in published, "compose.yaml: the Jaeger UI must be published")
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        env = env_dict(worker)
        check(worker["command"] == ["worker"], "compose.yaml: %s must run `backflow worker`" % name)
        check(worker.get("depends_on", {}).get("control-plane", {}).get("condition") == "service_healthy",
              "compose.yaml: %s must wait for a healthy control plane" % name)
        check(env.get("BACKFLOW__WORKER__SERVER") == "http://control-plane:7070", "compose.yaml: %s must reach the control plane" % name)
        check(env.get("BACKFLOW__WORKER__TOKEN") == cp_env.get("BACKFLOW__CONTROL_PLANE__WORKER_TOKEN"),
              "compose.yaml: %s's worker token must match the control plane's" % name)
        check("healthcheck" in worker and "/readyz" in " ".join(worker["healthcheck"]["test"]), "compose.yaml: %s healthcheck must call /readyz" % name)
    check_object_store(services)
    for name in ("control-plane", "worker-1", "worker-2", "demo"):
        env = env_dict(services[name])
        check(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == "http://jaeger:4317", "compose.yaml: %s must export traces to Jaeger" % name)
        check(env.get("OTEL_SERVICE_NAME", "").startswith("backflow-"), "compose.yaml: %s needs an OTEL_SERVICE_NAME" % name)

    # The demo definition: its secret references must be set where runs execute.
    demo = yaml.safe_load(open(os.path.join(deploy, "compose", "backflow.yaml")))
    refs = set(re.findall(r"\$\{env:(\w+)\}", open(os.path.join(deploy, "compose", "backflow.yaml")).read()))
    for name in ("worker-1", "worker-2", "control-plane"):
        missing = refs - set(env_dict(services[name]))
        check(not missing, "compose.yaml: %s lacks %s referenced by compose/backflow.yaml" % (name, ", ".join(sorted(missing))))
    synced = [s["name"] for s in demo.get("syncs", [])]
    check(any(s in " ".join(services["demo"]["command"]) for s in synced), "compose.yaml: the demo must trigger a sync of compose/backflow.yaml")


OBJECT_STORE_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP")


def check_object_store(services):
    """Snapshots live in the compose S3 server's bucket: every Backflow process reaches it with
    the same settings, the bucket exists before the control plane starts, and no process keeps
    snapshots on a volume of its own."""
    cp_env = env_dict(services["control-plane"])
    url = cp_env.get("BACKFLOW__CONTROL_PLANE__SNAPSHOTS", "")
    match = re.fullmatch(r"s3://([a-z0-9.-]+)(/[^@?#]*)?", url)
    if not check(match, "compose.yaml: control-plane snapshots must be an s3://BUCKET/PREFIX URL without credentials, not %r" % url):
        return
    bucket = match.group(1)
    init = services["minio-init"]
    script = " ".join(init.get("command") or [])
    check("mc mb" in script and "local/%s" % bucket in script, "compose.yaml: minio-init must create bucket %s" % bucket)
    check(services["control-plane"].get("depends_on", {}).get("minio-init", {}).get("condition") == "service_completed_successfully",
          "compose.yaml: control-plane must wait for minio-init to create the bucket")
    check(init.get("depends_on", {}).get("minio", {}).get("condition") == "service_healthy", "compose.yaml: minio-init must wait for a healthy minio")
    check("healthcheck" in services["minio"], "compose.yaml: minio needs a healthcheck")
    minio_env = env_dict(services["minio"])
    check("--console-address" in services["minio"].get("command", []), "compose.yaml: minio must run `server` with its console")
    for name in ("control-plane", "worker-1", "worker-2"):
        env = env_dict(services[name])
        missing = [k for k in OBJECT_STORE_ENV if k not in env]
        check(not missing, "compose.yaml: %s lacks %s" % (name, ", ".join(missing)))
        check(env.get("AWS_ENDPOINT_URL") == "http://minio:9000", "compose.yaml: %s must reach minio" % name)
        check(env.get("AWS_ACCESS_KEY_ID") == minio_env.get("MINIO_ROOT_USER")
              and env.get("AWS_SECRET_ACCESS_KEY") == minio_env.get("MINIO_ROOT_PASSWORD"),
              "compose.yaml: %s's object-store credentials must match minio's" % name)
        check("@" not in env.get("AWS_ENDPOINT_URL", ""), "compose.yaml: %s's endpoint must not hold credentials" % name)
        check(not any("/var/lib/backflow" in v for v in services[name].get("volumes", [])),
              "compose.yaml: %s must not keep snapshots on a volume" % name)


def check_dockerfile(repo):
    path = os.path.join(repo, "deploy", "Dockerfile")
    lines = []
    for raw in re.sub(r"\\\n", " ", open(path).read()).splitlines():
        raw = raw.strip()
        if raw and not raw.startswith("#"):
            lines.append(raw)
    stages = [l for l in lines if l.upper().startswith("FROM ")]
    check(len(stages) >= 2, "Dockerfile: expected a builder and a runtime stage")
    check(any(re.search(r"\bAS builder\b", s, re.I) for s in stages), "Dockerfile: no `AS builder` stage")
    final = lines[lines.index(stages[-1]):]
    build = " ".join(l for l in lines if l.upper().startswith("RUN ") and "cargo build" in l)
    check("--release" in build and "--locked" in build and "-p backflow" in build, "Dockerfile: must `cargo build --release --locked -p backflow`")
    check("type=cache" in build, "Dockerfile: the cargo build must use cache mounts")
    users = [l.split(None, 1)[1] for l in final if l.upper().startswith("USER ")]
    check(users and users[-1].split(":")[0] not in ("root", "0"), "Dockerfile: the runtime stage must run as a non-root user")
    exposed = " ".join(l for l in final if l.upper().startswith("EXPOSE "))
    for port in ("7070", "9090", "9091"):
        check(port in exposed, "Dockerfile: port %s is not exposed" % port)
    check(any(l.startswith("COPY --from=builder") for l in final), "Dockerfile: the runtime stage must copy the binary from the builder")
    check(any(l.startswith("ENTRYPOINT") and "backflow" in l for l in final), "Dockerfile: the entrypoint must be backflow")
    rust = re.search(r"ARG RUST_VERSION=([\d.]+)", open(path).read())
    msrv = re.search(r'^rust-version = "([\d.]+)"', open(os.path.join(repo, "Cargo.toml")).read(), re.M)
    if check(rust and msrv, "Dockerfile: RUST_VERSION or the workspace rust-version not found"):
        as_tuple = lambda v: tuple(int(x) for x in v.split("."))
        check(as_tuple(rust.group(1)) >= as_tuple(msrv.group(1)), "Dockerfile: Rust %s is older than rust-version %s" % (rust.group(1), msrv.group(1)))
    ignore = open(os.path.join(repo, ".dockerignore")).read().split()
    check("target/" in ignore and ".git/" in ignore, ".dockerignore must keep target/ and .git/ out of the context")


def check_manifests(paths, fields):
    for path in paths:
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != "Deployment":
                continue
            pod = doc["spec"]["template"]["spec"]
            for container in pod.get("initContainers", []) + pod["containers"]:
                env = {e["name"]: e for e in container.get("env", [])}
                check_settings_env("%s %s/%s" % (os.path.basename(path), doc["metadata"]["name"], container["name"]), env, fields)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    repo = sys.argv[1]
    fields = settings_fields(repo)
    check_compose(repo, fields)
    check_dockerfile(repo)
    check_manifests(sys.argv[2:], fields)
    report_unknown_settings(fields)
    if FAILURES:
        for failure in FAILURES:
            print("FAIL " + failure)
        sys.exit(1)
    print("deploy checks: compose.yaml, Dockerfile and %d rendered manifest file(s) passed" % len(sys.argv[2:]))


if __name__ == "__main__":
    main()
