"""Structural checks of the deployment artefacts in deploy/ (no Docker daemon, no cluster).

What an operator relies on: the compose stack starts in the right order and fails fast
without its secrets, the image runs as non-root with a health check, and the Helm chart only
references values that exist, never carries secret values, and runs migrations before new
pods start. `helm template` and `docker compose config` are run too when those tools are on
PATH; otherwise only those parts are skipped.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = DEPLOY / "helm" / "offboard"
TEMPLATES = CHART / "templates"

APP_SERVICES = ("migrate", "api", "worker")
EXPECTED_SERVICES = {"postgresql", "temporal", "temporal-ui", *APP_SERVICES}
EXPECTED_TEMPLATES = {
    "_helpers.tpl",
    "api-deployment.yaml",
    "api-service.yaml",
    "api-ingress.yaml",
    "worker-deployment.yaml",
    "worker-hpa.yaml",
    "migrations-job.yaml",
    "configmap-catalog.yaml",
    "servicemonitor.yaml",
}
# Settings every long-running offboard process needs to find its DB, Temporal and catalog.
CORE_ENV = (
    "OFFBOARD_DATABASE_URL",
    "OFFBOARD_TEMPORAL_ADDRESS",
    "OFFBOARD_TEMPORAL_NAMESPACE",
    "OFFBOARD_TASK_QUEUE",
    "OFFBOARD_CATALOG",
    "OFFBOARD_PUBLIC_URL",
)
CREDENTIAL_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@$]+@")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    out = []
    for stmt in logical:
        keyword, _, args = stmt.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in dockerfile_instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def resolve_build_args(text: str) -> str:
    """Substitute ${ARG} with the defaults of ARGs declared before the first FROM."""
    defaults: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            defaults[name.strip()] = value.strip().strip('"')
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), text)


@functools.cache
def values() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(data, dict)
    return data


@functools.cache
def chart_meta() -> dict[str, Any]:
    data = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert isinstance(data, dict)
    return data


def template_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TEMPLATES.iterdir()) if p.is_file()}


def values_refs(text: str) -> set[str]:
    """Every `.Values.a.b.c` path a template uses (also `$.Values...`)."""
    return {m.group(1) for m in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text)}


def lookup(tree: Any, dotted: str) -> tuple[bool, Any]:
    node = tree
    for key in dotted.strip(".").split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def walk(tree: Any, path: str = ""):
    if isinstance(tree, dict):
        for key, val in tree.items():
            yield from walk(val, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, list):
        for i, val in enumerate(tree):
            yield from walk(val, f"{path}[{i}]")
    else:
        yield path, tree


# --------------------------------------------------------------------------------------
# docker compose
# --------------------------------------------------------------------------------------


def test_compose_defines_the_whole_stack() -> None:
    services = set(compose()["services"])
    missing = EXPECTED_SERVICES - services
    assert not missing, f"compose.yaml lacks services: {sorted(missing)}"


def test_api_worker_and_migrate_run_one_image_with_their_command() -> None:
    images = {name: service(name).get("image") for name in APP_SERVICES}
    assert len(set(images.values())) == 1 and None not in images.values(), images
    for name in APP_SERVICES:
        assert service(name).get("build"), f"{name}: no build section, `up --build` cannot work"
        assert service(name)["command"] == [name], f"{name} must run `offboard {name}`"
    build = service("api")["build"]
    assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_app_services_get_the_settings_they_need() -> None:
    for name in ("api", "worker"):
        env = env_of(service(name))
        missing = [var for var in CORE_ENV if var not in env]
        assert not missing, f"{name} lacks {missing}"
    assert "OFFBOARD_DATABASE_URL" in env_of(service("migrate"))
    api_env = env_of(service("api"))
    # Inside a container the API must listen beyond loopback, or nothing can reach it.
    assert api_env.get("OFFBOARD_HOST") == "0.0.0.0"  # noqa: S104
    assert "OFFBOARD_WEBHOOK_SECRETS" in api_env
    # App tokens are named by the catalog, so the worker receives the whole .env file.
    env_file = service("worker").get("env_file")
    env_files = [env_file] if isinstance(env_file, str | dict) else list(env_file or [])
    paths = [f if isinstance(f, str) else f.get("path") for f in env_files]
    assert ".env" in paths, "worker must get the app tokens from .env"


def test_app_database_lives_on_the_same_postgres_as_temporal() -> None:
    db_url = env_of(service("api"))["OFFBOARD_DATABASE_URL"]
    assert db_url.startswith("postgresql+psycopg://"), db_url
    assert "@postgresql:5432/" in db_url, db_url
    temporal = env_of(service("temporal"))
    assert temporal.get("DB") == "postgres12"
    assert temporal.get("POSTGRES_SEEDS") == "postgresql"
    assert env_of(service("worker"))["OFFBOARD_DATABASE_URL"] == db_url


def test_required_secrets_fail_fast_and_none_is_written_down() -> None:
    raw = COMPOSE_FILE.read_text()
    for var in ("POSTGRES_PASSWORD", "OFFBOARD_DB_PASSWORD", "OFFBOARD_WEBHOOK_SECRETS"):
        assert "${" + var + ":?" in raw, f"{var} must be required with ${{{var}:?...}}"
    secretish = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|API_KEY")
    for name, svc in compose()["services"].items():
        for key, val in env_of(svc).items():
            if secretish.search(key):
                assert "${" in val, f"{name}.{key} holds a literal value; read it from .env"
        for key, val in env_of(svc).items():
            assert not CREDENTIAL_IN_URL.search(val) or "${" in val, f"{name}.{key}: literal creds"


def test_every_service_has_a_healthcheck_or_is_one_shot() -> None:
    services = compose()["services"]
    awaited = {
        dep
        for svc in services.values()
        for dep, cond in depends_on(svc).items()
        if cond == "service_completed_successfully"
    }
    for name, svc in services.items():
        check = svc.get("healthcheck") or {}
        if check.get("test") and not check.get("disable"):
            continue
        assert svc.get("restart", "no") == "no", f"{name}: no healthcheck and restarts forever"
        assert name in awaited, f"{name}: one-shot but nobody waits for it to succeed"


def test_start_order_waits_for_migrations_temporal_and_postgres() -> None:
    assert depends_on(service("migrate")).get("postgresql") == "service_healthy"
    assert depends_on(service("temporal")).get("postgresql") == "service_healthy"
    for name in ("api", "worker"):
        deps = depends_on(service(name))
        assert deps.get("migrate") == "service_completed_successfully", name
        assert deps.get("temporal") == "service_healthy", name


def test_api_healthcheck_hits_healthz_without_curl() -> None:
    test = service("api")["healthcheck"]["test"]
    joined = " ".join(test) if isinstance(test, list) else test
    assert "/healthz" in joined and "python" in joined and "curl" not in joined


def test_worker_can_be_scaled() -> None:
    worker = service("worker")
    assert "container_name" not in worker, "container_name prevents --scale worker=N"
    assert not worker.get("ports"), "published ports prevent --scale worker=N"
    assert worker.get("stop_grace_period"), "workers need time to finish activities on stop"


def test_unauthenticated_ports_stay_on_loopback_by_default() -> None:
    for name in ("temporal", "temporal-ui", "api"):
        for port in service(name).get("ports") or []:
            text = port if isinstance(port, str) else str(port.get("host_ip", ""))
            assert re.match(r"(\$\{[A-Z_]+:-)?127\.0\.0\.1", text), f"{name} publishes {port}"


def test_third_party_images_are_pinned() -> None:
    for name in ("postgresql", "temporal", "temporal-ui"):
        image = service(name)["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned {image}"


def test_app_containers_are_hardened() -> None:
    for name in APP_SERVICES:
        svc = service(name)
        assert svc.get("read_only") is True, name
        assert "ALL" in (svc.get("cap_drop") or []), name
        assert svc.get("init") is True, f"{name}: without an init, SIGTERM may not reach offboard"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        out = subprocess.run(
            ["docker-compose", "version"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0 and re.search(r"v?2\.", out.stdout):
            return ["docker-compose"]
    if shutil.which("docker"):
        out = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if out.returncode == 0:
            return ["docker", "compose"]
    return None


def test_compose_config_renders_and_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("docker compose v2 is not installed: `docker compose config` not run")
    workdir = tmp_path / "deploy"
    workdir.mkdir()
    shutil.copy(COMPOSE_FILE, workdir / "compose.yaml")
    (workdir / "apps.yaml").write_text("apps: []\n")
    (workdir / ".env").write_text("")
    cmd = [*cli, "-f", "compose.yaml", "config", "--format", "json"]
    empty = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    # Some packaged compose wrappers exit 0 on errors; an empty render counts as refusal too.
    refused = empty.returncode != 0 or not empty.stdout.strip()
    assert refused, "compose must refuse to start without its secrets"
    assert "PASSWORD" in empty.stderr or "SECRETS" in empty.stderr, empty.stderr
    (workdir / ".env").write_text(
        "POSTGRES_PASSWORD=pg\nOFFBOARD_DB_PASSWORD=app\nOFFBOARD_WEBHOOK_SECRETS=a,b\n"
        "IRONCLAD_SCIM_TOKEN=t\n"
    )
    full = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=False)
    assert full.returncode == 0, full.stderr
    rendered = yaml.safe_load(full.stdout)
    assert EXPECTED_SERVICES <= set(rendered["services"])
    worker_env = rendered["services"]["worker"]["environment"]
    assert worker_env["IRONCLAD_SCIM_TOKEN"] == "t", "app tokens from .env must reach the worker"
    assert "IRONCLAD_SCIM_TOKEN" not in rendered["services"]["api"]["environment"]


# --------------------------------------------------------------------------------------
# Dockerfile and build context
# --------------------------------------------------------------------------------------


def test_image_is_multi_stage_on_python_311_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "builder + runtime stages expected"
    runtime_base = resolve_build_args(stages[-1][0][1]).split()[0]
    assert runtime_base.startswith("python:3.11-slim"), runtime_base
    copies = [args for keyword, args in stages[-1] if keyword == "COPY"]
    assert copies, "runtime stage copies nothing"
    assert all("--from=" in args for args in copies), (
        "runtime stage must take only build outputs, never the source tree (or a stray .env)"
    )


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = [args for keyword, args in dockerfile_stages()[-1] if keyword == "USER"]
    assert users, "runtime stage never drops root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "numeric uid lets Kubernetes verify runAsNonRoot"
    assert int(user) == values()["podSecurityContext"]["runAsUser"], "chart and image disagree"


def test_image_healthcheck_entrypoint_and_port() -> None:
    runtime = dict(dockerfile_stages()[-1])
    assert "HEALTHCHECK" in runtime
    assert "/healthz" in runtime["HEALTHCHECK"] and "python" in runtime["HEALTHCHECK"]
    assert "curl" not in runtime["HEALTHCHECK"], "python:3.11-slim has no curl"
    assert runtime.get("ENTRYPOINT") == '["offboard"]'
    assert runtime.get("CMD") == '["api"]'
    assert "8000" in runtime.get("EXPOSE", "").split()
    env_line = runtime.get("ENV", "")
    assert "OFFBOARD_HOST=0.0.0.0" in env_line, "uvicorn would bind 127.0.0.1 inside the container"


def test_image_does_not_ship_the_temporal_dev_server_by_default() -> None:
    text = DOCKERFILE.read_text()
    assert "rm -f /opt/venv/bin/temporal" in text
    assert not re.search(r"temporal\s+server\s+start-dev", text)


def test_dockerignore_keeps_secrets_and_junk_out_but_build_inputs_in() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (".git", ".offboard", "tests/artifacts", "**/__pycache__", ".venv", ".env"):
        assert required in patterns, f".dockerignore lacks {required}"
    for needed in ("pyproject.toml", "README.md", "alembic.ini", "db/migrations/env.py"):
        hit = [p for p in patterns if fnmatch.fnmatch(needed, p.removeprefix("**/"))]
        assert not hit, f"{needed} is needed by the build but excluded by {hit}"


# --------------------------------------------------------------------------------------
# Helm chart (static)
# --------------------------------------------------------------------------------------


def test_chart_metadata() -> None:
    meta = chart_meta()
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "offboard"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(meta["version"]))
    pyproject = ROOT / "pyproject.toml"
    if pyproject.exists():
        version = tomllib.loads(pyproject.read_text())["project"]["version"]
        assert str(meta["appVersion"]) == version, "default image tag (appVersion) is stale"


def test_chart_has_every_template() -> None:
    present = {p.name for p in TEMPLATES.iterdir()}
    missing = EXPECTED_TEMPLATES - present
    assert not missing, f"missing templates: {sorted(missing)}"


def test_templates_only_reference_values_that_exist() -> None:
    dangling = {
        f"{name}: .Values{ref}"
        for name, text in template_texts().items()
        for ref in values_refs(text)
        if not lookup(values(), ref)[0]
    }
    assert not dangling, "templates read values missing from values.yaml:\n" + "\n".join(
        sorted(dangling)
    )


def test_every_values_section_is_used() -> None:
    used = set().union(*(values_refs(text) for text in template_texts().values()))
    top_used = {ref.strip(".").split(".")[0] for ref in used}
    unused = set(values()) - top_used
    assert not unused, f"values.yaml knobs no template reads: {sorted(unused)}"
    for section in ("api", "worker", "migrations", "temporal", "secrets"):
        second_used = {r.strip(".").split(".")[1] for r in used if r.startswith(f".{section}.")}
        unused = set(values()[section]) - second_used
        assert not unused, f"{section}.* knobs no template reads: {sorted(unused)}"


def test_included_templates_are_defined_and_blocks_balanced() -> None:
    texts = template_texts()
    defined = set(re.findall(r'define\s+"([^"]+)"', "".join(texts.values())))
    for name, text in texts.items():
        used = set(re.findall(r'(?:include|template)\s+"([^"]+)"', text))
        assert used <= defined, f"{name} includes undefined {sorted(used - defined)}"
        assert text.count("{{") == text.count("}}"), f"{name}: unbalanced braces"
        opened = len(re.findall(r"\{\{-?\s*(?:if|range|with|define|block)\b", text))
        closed = len(re.findall(r"\{\{-?\s*end\s*-?\}\}", text))
        assert opened == closed, f"{name}: {opened} blocks opened, {closed} closed"


def test_values_hold_secret_names_never_secret_values() -> None:
    for name, ref in values()["secrets"].items():
        assert set(ref) <= {"existingSecret", "key", "optional"}, f"secrets.{name}: {set(ref)}"
    for path, leaf in walk(values()):
        if isinstance(leaf, str):
            assert not CREDENTIAL_IN_URL.search(leaf), f"{path} embeds credentials"
            assert "PRIVATE KEY" not in leaf, f"{path} embeds a key"
    for name, text in template_texts().items():
        assert not re.search(r"^kind:\s*Secret\s*$", text, re.M), f"{name} renders a Secret"


def test_secrets_go_only_to_the_process_that_needs_them() -> None:
    texts = template_texts()
    assert "secrets.webhook" in texts["api-deployment.yaml"]
    assert "secrets.webhook" not in texts["worker-deployment.yaml"]
    assert "secrets.appTokens" in texts["worker-deployment.yaml"]
    assert "secrets.appTokens" not in texts["api-deployment.yaml"]
    assert "envFrom" in texts["worker-deployment.yaml"], "app tokens arrive as a whole Secret"


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook() -> None:
    job = (TEMPLATES / "migrations-job.yaml").read_text()
    hook = re.search(r'"helm\.sh/hook":\s*"?([\w,-]+)', job)
    assert hook and set(hook.group(1).split(",")) >= {"pre-install", "pre-upgrade"}
    assert "kind: Job" in job and '["migrate"]' in job
    assert "restartPolicy: Never" in job
    # A hook runs before the release's own objects exist: it may not depend on them.
    assert "offboard.serviceAccountName" not in job
    assert "offboard.catalogConfigMap" not in job


def test_api_probes_use_healthz_and_readyz() -> None:
    api = values()["api"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    text = (TEMPLATES / "api-deployment.yaml").read_text()
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert f".Values.api.{probe}" in text


def test_pods_run_non_root_with_resources() -> None:
    pod = values()["podSecurityContext"]
    container = values()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert "ALL" in container["capabilities"]["drop"]
    texts = template_texts()
    for name in ("api-deployment.yaml", "worker-deployment.yaml", "migrations-job.yaml"):
        assert ".Values.securityContext" in texts[name], name
        assert "resources:" in texts[name], name
    for section in ("api", "worker", "migrations"):
        assert values()[section]["resources"]["requests"], f"{section} has no resource requests"
    assert values()["worker"]["resources"]["requests"].get("cpu"), "HPA on CPU needs a request"


def test_optional_objects_are_behind_flags() -> None:
    texts = template_texts()
    assert texts["api-ingress.yaml"].lstrip().startswith("{{- if .Values.api.ingress.enabled")
    assert texts["servicemonitor.yaml"].lstrip().startswith("{{- if .Values.serviceMonitor.enabled")
    assert texts["worker-hpa.yaml"].lstrip().startswith("{{- if .Values.worker.autoscaling.enabled")
    assert values()["api"]["ingress"]["enabled"] is False
    assert values()["serviceMonitor"]["enabled"] is False


# --------------------------------------------------------------------------------------
# Helm chart (rendered, when helm is installed)
# --------------------------------------------------------------------------------------


def helm_or_skip() -> str:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip(
            "helm is not installed: `helm lint`/`helm template` not run (static checks ran)"
        )
    return helm


def render(*set_args: str) -> list[dict[str, Any]]:
    helm = helm_or_skip()
    cmd = [helm, "template", "rel", str(CHART), "--namespace", "offboard"]
    for arg in set_args:
        cmd += ["--set", arg]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"{shlex.join(cmd)}\n{out.stderr}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_helm_lint_passes() -> None:
    helm = helm_or_skip()
    out = subprocess.run(
        [helm, "lint", str(CHART), "--strict"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_helm_renders_default_release() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    expected = ["ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler", "Job"]
    assert kinds == sorted([*expected, "Service", "ServiceAccount"]), kinds
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    api, worker = deployments["rel-offboard-api"], deployments["rel-offboard-worker"]
    job = by_kind(docs, "Job")[0]
    pods = {"api": api, "worker": worker, "migrate": job}
    images = {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in pods.items()}
    assert len(set(images.values())) == 1, images
    for name, obj in pods.items():
        spec = obj["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        (container,) = spec["containers"]
        assert container["args"] == [name], name
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["resources"]["requests"], name
        env = {e["name"]: e for e in container["env"]}
        assert "secretKeyRef" in env["OFFBOARD_DATABASE_URL"]["valueFrom"], name
    api_container = api["spec"]["template"]["spec"]["containers"][0]
    assert api_container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "replicas" not in worker["spec"], "the HPA owns the worker replica count"
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-offboard-worker"
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    (svc,) = by_kind(docs, "Service")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= api_labels.items(), "Service must select API pods"
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert not svc["spec"]["selector"].items() <= worker_labels.items(), "Service hits workers"


def test_helm_renders_ingress_servicemonitor_and_temporal_tls() -> None:
    docs = render(
        "api.ingress.enabled=true",
        "serviceMonitor.enabled=true",
        "temporal.tls.existingSecret=temporal-mtls",
        "temporal.tls.caKey=ca.crt",
        "temporal.apiKey.existingSecret=temporal-api-key",
        "worker.autoscaling.enabled=false",
    )
    (ingress,) = by_kind(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "rel-offboard-api"
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    (svc,) = by_kind(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert not by_kind(docs, "HorizontalPodAutoscaler")
    for dep in by_kind(docs, "Deployment"):
        spec = dep["spec"]["template"]["spec"]
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        for var in ("OFFBOARD_TEMPORAL_TLS_CERT", "OFFBOARD_TEMPORAL_TLS_KEY"):
            assert env[var]["value"].startswith("/etc/offboard/temporal-tls/")
        assert env["OFFBOARD_TEMPORAL_TLS_CA"]["value"].endswith("/ca.crt")
        assert env["OFFBOARD_TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == (
            "temporal-api-key"
        )
        assert "/etc/offboard/temporal-tls" in mounts
    (worker,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("worker")]
    assert worker["spec"]["replicas"] == values()["worker"]["replicas"], "fixed count without HPA"


def test_helm_refuses_a_release_without_its_database_secret() -> None:
    helm = helm_or_skip()
    cmd = [helm, "template", "rel", str(CHART), "--set", "secrets.database.existingSecret="]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "secrets.database.existingSecret" in out.stderr
