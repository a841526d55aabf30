"""deploy/: the Dockerfile, compose.yaml, systemd units and Kubernetes manifests agree with the code."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.engine import make_url

from bot import __version__
from bot.cli import cli
from bot.cli._context import SENDING
from bot.config import Settings, parse_settings
from bot.subscriptions import cron_trigger, parse_subscriber
from bot.web.limits import loopback, trusted_proxies

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = f"digestbot:{__version__}"


def code_env_names() -> set[str]:
    """Every environment variable name the package's code mentions (bot/config.py's `_ENV` is not
    the whole list: DIGESTBOT_CONFIG, DIGESTBOT_OUTBOX, SLACK_SIGNING_SECRET ... are read elsewhere)."""
    names: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        names |= set(
            re.findall(r"\"((?:DIGESTBOT|SLACK)_[A-Z0-9_]+)\"", path.read_text(encoding="utf-8"))
        )
    return names


ENV_NAMES = code_env_names()


def parse_command(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """(command, its parameters) of a digestbot command line, parsed by the CLI's own click tree
    without running it; every unknown command or option and every bad option value fails."""
    assert argv[0] == "digestbot" or argv[0].endswith("/digestbot"), argv
    try:
        ctx = cli.make_context("digestbot", list(argv[1:]))
        # click >= 8.2 keeps the command name apart from its arguments (`protected_args` is deprecated)
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        assert rest, f"{shlex.join(argv)} names no digestbot command"
        name, command, args = cli.resolve_command(ctx, rest)
        assert name is not None and command is not None
        sub = command.make_context(name, args, parent=ctx)
    except click.ClickException as e:
        raise AssertionError(f"{shlex.join(argv)}: {e.format_message()}") from e
    return name, sub.params


def assert_digestbot_command(argv: list[str]) -> None:
    """`argv` is a digestbot command line this CLI accepts: command, options and their values."""
    parse_command(argv)
    result = CliRunner().invoke(cli, [*argv[1:], "--help"], prog_name="digestbot")
    assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"


def assert_known_env(names: set[str] | list[str], where: str) -> None:
    unknown = set(names) - ENV_NAMES
    assert not unknown, f"{where} sets {sorted(unknown)}, which digestbot does not read"


def test_the_env_scan_finds_the_documented_names() -> None:
    assert {
        "DIGESTBOT_DATABASE_URL",
        "DIGESTBOT_SMTP_URL",
        "DIGESTBOT_SMTP_PASSWORD",
        "DIGESTBOT_CONFIG",
        "DIGESTBOT_OUTBOX",
        "SLACK_BOT_TOKEN",
        "DIGESTBOT_BASE_URL",
        "DIGESTBOT_SECRET_KEY",
    } <= ENV_NAMES
    with pytest.raises(AssertionError):
        assert_known_env({"DIGESTBOT_NO_SUCH_THING"}, "a test")


@pytest.mark.parametrize(
    "argv",
    [
        ["digestbot", "nosuch"],
        ["digestbot", "serve", "--hots", "0.0.0.0"],
        ["digestbot", "run", "--workers", "bogus"],
        ["digestbot", "serve", "--port", "0"],
        ["digestbot", "--log-format", "xml", "run"],
        ["digestbot", "-q"],
    ],
)
def test_the_command_check_refuses_what_the_cli_refuses(argv: list[str]) -> None:
    with pytest.raises(AssertionError):
        assert_digestbot_command(argv)


def test_the_command_check_reads_options() -> None:
    assert parse_command(
        ["digestbot", "--log-format", "json", "serve", "--host", "0.0.0.0", "--port", "8000"]
    ) == ("serve", {"host": "0.0.0.0", "port": 8000})
    assert parse_command(["digestbot", "run", "--workers", "celery"])[1]["workers"] == "celery"


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_slim_base_non_root_wheel_healthcheck_and_run() -> None:
    steps = dockerfile()
    final = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    stage = steps[final:]
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", stage[0][1])
    assert dict(s for s in steps if s[0] == "ARG")["ARG"].startswith("PYTHON_VERSION=3.1")
    user = [a for op, a in stage if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert any(
        op == "RUN"
        and re.search(
            r"pip install -c \S+ \"\$\(ls /wheels/digestbot-\*\.whl\)\[postgres,pool\]\"", a
        )
        for op, a in stage
    ), "the runtime stage installs the wheel built in the first stage, with the pool"
    assert any(op == "RUN" and "pip wheel" in a for op, a in steps[:final])
    health = next(a for op, a in stage if op == "HEALTHCHECK")
    assert_digestbot_command(yaml.safe_load(health.split("CMD", 1)[1]))
    cmd = yaml.safe_load(next(a for op, a in stage if op == "CMD"))
    assert cmd == ["digestbot", "run"]
    assert_digestbot_command(cmd)
    env = {}
    for op, a in stage:
        if op == "ENV":
            env.update(dict(kv.split("=", 1) for kv in shlex.split(a)))
    assert_known_env([k for k in env if k.startswith(("DIGESTBOT_", "SLACK_"))], "the Dockerfile")
    for op, a in steps:
        if op == "COPY" and not a.startswith("--from"):
            for src in a.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: no such file in the repository"


def test_the_bare_image_layout_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's steps on this machine: `digestbot init /etc/digestbot`, its ENV, WORKDIR, HEALTHCHECK
    and `run --once` (paths moved under tmp_path)."""
    steps = dockerfile()
    etc, var = tmp_path / "etc", tmp_path / "var"
    var.mkdir()

    def moved(text: str) -> str:
        return text.replace("/etc/digestbot", str(etc)).replace("/var/lib/digestbot", str(var))

    env: dict[str, str] = {}
    for op, a in steps:
        if op == "ENV":
            env.update((k, moved(v)) for k, v in (kv.split("=", 1) for kv in shlex.split(a)))
        if op == "WORKDIR":
            workdir = moved(a)
    assert workdir == str(var)
    init = re.search(
        r"digestbot (init \S+(?: --\S+)*)",
        next(a for op, a in steps if op == "RUN" and "digestbot init" in a),
    )
    assert init
    for var_name in list(os.environ):
        if var_name.startswith(("DIGESTBOT_", "SLACK_")):
            monkeypatch.delenv(var_name)
    monkeypatch.chdir(workdir)
    runner = CliRunner()
    assert runner.invoke(cli, moved(init[1]).split()).exit_code == 0
    health = yaml.safe_load(next(a for op, a in steps if op == "HEALTHCHECK").split("CMD", 1)[1])
    done = runner.invoke(cli, health[1:], env=env)
    assert (done.exit_code, done.output) == (0, "")
    done = runner.invoke(cli, ["run", "--once"], env=env)
    assert done.exit_code == 0, done.output
    assert list((var / "outbox" / "example").glob("example.*.eml"))
    assert (var / "digestbot.db").is_file()


# --- compose.yaml -------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_has_digestbot_web_postgres_and_mailpit() -> None:
    services = compose()["services"]
    assert set(services) == {"digestbot", "web", "postgres", "mailpit"}
    for name, svc in services.items():
        assert svc.get("image"), f"service {name} names no image"
    for name in ("digestbot", "web"):
        bot = services[name]
        assert bot["image"] == IMAGE
        assert (
            DEPLOY / bot["build"]["context"] / bot["build"]["dockerfile"]
        ).resolve() == DEPLOY / "Dockerfile"
        assert_digestbot_command(bot["command"])
        assert_known_env(list(bot["environment"]), "compose.yaml")
        for volume in bot["volumes"]:
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (DEPLOY / host).exists(), f"compose mounts {host}, which does not exist"
    assert parse_command(services["digestbot"]["command"])[0] == "run"
    assert parse_command(services["web"]["command"])[0] == "serve"


def test_compose_urls_point_at_its_services() -> None:
    services = compose()["services"]
    env = services["digestbot"]["environment"]
    db = urlsplit(env["DIGESTBOT_DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert db.scheme == "postgresql+psycopg" and db.hostname == "postgres"
    assert (db.username, db.password, db.path.lstrip("/")) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    smtp = urlsplit(env["DIGESTBOT_SMTP_URL"])
    assert smtp.hostname == "mailpit"
    # Plain SMTP: the email channel uses STARTTLS on any port but 25 towards a non-loopback host,
    # and Mailpit here has no certificate; so Mailpit listens on 25.
    assert (
        smtp.port
        == 25
        == int(services["mailpit"]["environment"]["MP_SMTP_BIND_ADDR"].rsplit(":", 1)[1])
    )
    assert "8025" in services["mailpit"]["ports"][0]
    assert services["digestbot"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_config_mounts_parse_as_the_container_reads_them() -> None:
    """The repository's digestbot.toml, mounted at /etc/digestbot, names files the mounts provide."""
    raw = tomllib.loads((ROOT / "digestbot.toml").read_text())
    settings, problems = parse_settings(
        raw, "digestbot.toml", compose()["services"]["digestbot"]["environment"]
    )
    assert problems == []
    mounted = {v.split(":")[1] for v in compose()["services"]["digestbot"]["volumes"]}
    for spec in settings.sources:
        if spec.type == "file":
            assert str(Path("/etc/digestbot") / spec.options["path"]).startswith(tuple(mounted))
    assert f"/etc/digestbot/{settings.subscriptions_dir}" in mounted


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    probe = subprocess.run(
        ["docker", "compose", "version"], check=False, capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    done = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


# --- Kubernetes -----------------------------------------------------------------------------------


def manifests(names: Sequence[str] = ()) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object in deploy/k8s/*.yaml (or in the files `names`) by (kind, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    paths = [DEPLOY / "k8s" / n for n in names] or sorted((DEPLOY / "k8s").glob("*.yaml"))
    for path in paths:
        if not names and path.name in (
            "kustomization.yaml",
            "workers.yaml",
        ):  # the pool: test_workers_deploy.py
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} defined twice"
            out[key] = doc
    return out


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    m = manifests()
    return [
        ("Deployment", m["Deployment", "digestbot"]["spec"]["template"]["spec"]),
        ("CronJob", m["CronJob", "digestbot"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        ("Web", m["Deployment", "digestbot-web"]["spec"]["template"]["spec"]),
    ]


def test_k8s_kinds_and_single_scheduler() -> None:
    m = manifests()
    assert set(m) == {
        ("Secret", "digestbot"),
        ("ConfigMap", "digestbot-config"),
        ("ConfigMap", "digestbot-subscriptions"),
        ("Deployment", "digestbot"),
        ("CronJob", "digestbot"),
        ("Deployment", "digestbot-web"),
        ("Service", "digestbot-web"),
    }
    deployment = m["Deployment", "digestbot"]
    assert deployment["apiVersion"] == "apps/v1"
    assert (
        deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    cron = m["CronJob", "digestbot"]
    assert cron["apiVersion"] == "batch/v1" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    cron_trigger(cron["spec"]["schedule"], "UTC")  # a valid five-field cron line


@pytest.mark.parametrize("kind", ["Deployment", "CronJob", "Web"])
def test_k8s_pods_run_existing_commands_with_known_env_and_real_volumes(kind: str) -> None:
    m = manifests()
    spec = dict(pod_specs())[kind]
    assert (
        spec["securityContext"]["runAsNonRoot"] is True
        and spec["securityContext"]["runAsUser"] != 0
    )
    (container,) = spec["containers"]
    assert container["image"] == IMAGE
    assert_digestbot_command(container["args"])
    assert ("--once" in container["args"]) == (kind == "CronJob")
    assert_known_env([e["name"] for e in container.get("env", [])], f"the {kind}")
    for source in container["envFrom"]:
        secret = m["Secret", source["secretRef"]["name"]]
        assert_known_env(list(secret["stringData"]), "the Secret")
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, f"{kind} mounts an undefined volume {mount['name']}"
        cm = volumes[mount["name"]].get("configMap")
        if cm:
            data = m["ConfigMap", cm["name"]]["data"]
            assert mount.get("subPath", next(iter(data))) in data
    for probe in (container.get("readinessProbe"), container.get("livenessProbe")):
        if probe and "exec" in probe:
            assert_digestbot_command(probe["exec"]["command"])


def test_k8s_config_and_subscribers_are_valid() -> None:
    m = manifests()
    env = dict(m["Secret", "digestbot"]["stringData"])
    raw = tomllib.loads(m["ConfigMap", "digestbot-config"]["data"]["digestbot.toml"])
    settings, problems = parse_settings(raw, "configmap digestbot.toml", env)
    assert problems == [] and settings.sources
    # The subscriptions ConfigMap is mounted where the config's subscriptions_dir points.
    (container,) = dict(pod_specs())["Deployment"]["containers"]
    mounts = {v["name"]: v["mountPath"] for v in container["volumeMounts"]}
    config_dir = Path(mounts["config"]).parent
    assert Path(mounts["subscriptions"]) == config_dir / settings.subscriptions_dir
    for key, text in m["ConfigMap", "digestbot-subscriptions"]["data"].items():
        assert key.endswith(".toml")
        sub, found = parse_subscriber(key.removesuffix(".toml"), tomllib.loads(text), key)
        assert found == [] and sub is not None


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_manifests() -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "k8s")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(done.stdout))
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "Secret", "Service"]


# --- systemd ------------------------------------------------------------------------------------

UNITS = (
    "digestbot.service",
    "digestbot-once.service",
    "digestbot-once.timer",
    "digestbot-web.service",
)


def unit_values(name: str, key: str) -> list[str]:
    return [
        line.split("=", 1)[1]
        for line in (DEPLOY / "systemd" / name).read_text().splitlines()
        if line.startswith(f"{key}=")
    ]


def test_systemd_units_run_existing_commands() -> None:
    for name in ("digestbot.service", "digestbot-once.service", "digestbot-web.service"):
        for cmd in unit_values(name, "ExecStart") + unit_values(name, "ExecStartPre"):
            assert_digestbot_command(shlex.split(cmd))
        envs = [v.split("=", 1)[0] for v in unit_values(name, "Environment")]
        assert_known_env(envs, name)
        assert unit_values(name, "User") == ["digestbot"]
    assert unit_values("digestbot-once.service", "ExecStart") == [
        "/opt/digestbot/bin/digestbot run --once"
    ]
    assert unit_values("digestbot-once.timer", "Unit") == ["digestbot-once.service"]


def verify(folder: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=folder,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def installed_copies(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this environment's digestbot (verify checks it exists)."""
    exe = Path(sys.executable).parent / "digestbot"
    if not exe.exists():
        pytest.skip(f"no digestbot script next to {sys.executable}; install the package first")
    for name in UNITS:
        text = (
            (DEPLOY / "systemd" / name)
            .read_text()
            .replace("/opt/digestbot/bin/digestbot", str(exe))
        )
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed here")
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    done = verify(installed_copies(tmp_path), list(UNITS))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed here")
def test_systemd_analyze_verify_would_catch_a_typo(tmp_path: Path) -> None:
    folder = installed_copies(tmp_path)
    unit = folder / "digestbot.service"
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    done = verify(folder, ["digestbot.service"])
    assert "Failed to parse service restart specifier" in done.stdout + done.stderr


# --- every recipe against the code: what it runs, where its config is, where it writes -------------
#
# Each recipe (the bare image, compose.yaml, compose.workers.yaml, the systemd units, the Kubernetes
# sets) is read into the digestbot processes it starts, each as that process sees the world: its
# command line, its environment (the image's ENV, then the recipe's), the files and folders
# mounted for it, the folders it may write and how long it gets to stop. The checks below then ask
# the code: bot.cli parses the command, bot.config reads the config with that environment, and
# every path the code writes (the outbox, a SQLite file) lies in a writable folder. Relative paths
# are resolved against the config file's folder, as README promises.


@dataclass
class Runner:
    """One digestbot process a recipe starts."""

    where: str
    argv: list[str]
    env: dict[str, str]
    secret_env: set[str] = field(
        default_factory=set
    )  # names the recipe takes from its Secret / env file
    files: dict[str, str] = field(
        default_factory=dict
    )  # readable files (path → text) the recipe provides
    dirs: set[str] = field(default_factory=set)  # readable folders the recipe provides
    writable: set[str] = field(default_factory=set)
    grace: int | None = (
        None  # seconds from SIGTERM to SIGKILL; None: a one-shot (a Job, a timer, a check)
    )

    @property
    def command(self) -> str:
        return parse_command(self.argv)[0]


def image() -> tuple[dict[str, str], list[str]]:
    """The runtime stage's ENV and VOLUMEs."""
    steps = dockerfile()
    stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    env: dict[str, str] = {}
    volumes: list[str] = []
    for op, a in stage:
        if op == "ENV":
            env.update(kv.split("=", 1) for kv in shlex.split(a))
        if op == "VOLUME":
            volumes += yaml.safe_load(a)
    return env, volumes


@functools.cache
def init_files() -> dict[str, str]:
    """What `digestbot init` writes (relative path → text): the image's /etc/digestbot, and what
    deploy/README has a systemd user write there."""
    with tempfile.TemporaryDirectory() as folder:
        done = CliRunner().invoke(cli, ["init", folder])
        assert done.exit_code == 0, done.output
        return {
            str(p.relative_to(folder)): p.read_text(encoding="utf-8", errors="replace")
            for p in Path(folder).rglob("*")
            if p.is_file()
        }


def under(path: str, folders: set[str]) -> bool:
    return any(Path(path).is_relative_to(f) for f in folders)


def _interpolate(value: Any) -> str:
    """A compose value with ${VAR:-default} as its default and ${VAR:?...} / ${VAR} as deploy/.env
    made from deploy/env.example gives it (else a placeholder)."""
    text = str(value)
    text = re.sub(r"\$\{(\w+):?-([^}]*)\}", r"\2", text)
    dot_env = env_file(DEPLOY / "env.example")
    return re.sub(r"\$\{(\w+)[^}]*\}", lambda m: dot_env.get(m[1], f"<{m[1]}>"), text)


def _seconds(text: str) -> int:
    value = re.fullmatch(r"(\d+)(s|m)?", str(text))
    assert value, f"cannot read the duration {text!r}"
    return int(value[1]) * (60 if value[2] == "m" else 1)


def compose_runners(name: str) -> list[Runner]:
    doc = yaml.safe_load((DEPLOY / name).read_text())
    img_env, _ = image()
    out = []
    for service, svc in doc["services"].items():
        command = svc.get("command") or []
        if not command or command[0] != "digestbot":
            continue
        env = dict(img_env)
        env.update((k, _interpolate(v)) for k, v in svc.get("environment", {}).items())
        run = Runner(
            f"{name}: {service}", command, env, grace=_seconds(svc.get("stop_grace_period", "10s"))
        )
        # Required from deploy/.env or the shell: ${VAR:?message}.
        run.secret_env = {
            k
            for k, v in svc.get("environment", {}).items()
            if re.fullmatch(rf"\$\{{{k}:\?[^}}]+\}}", str(v))
        }
        for volume in svc.get("volumes", []):
            source, target, *mode = volume.split(":")
            if source.startswith("."):
                host = (DEPLOY / source).resolve()
                if host.is_file():
                    run.files[target] = host.read_text(encoding="utf-8")
                else:
                    run.dirs.add(target)
            else:
                assert source in doc.get("volumes", {}), (
                    f"{name}: {service} mounts an undeclared volume {source}"
                )
                run.dirs.add(target)
            if "ro" not in mode:
                run.writable.add(target)
        out.append(run)
    return out


def k8s_runners(names: Sequence[str]) -> list[Runner]:
    """The digestbot containers of the Kubernetes files `names` (applied together)."""
    m = manifests(names)
    img_env, _ = image()
    out = []
    for (kind, name), doc in m.items():
        if kind == "Deployment":
            spec, oneshot = doc["spec"]["template"]["spec"], False
        elif kind == "CronJob":
            spec, oneshot = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"], True
        else:
            continue
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        inits = spec.get("initContainers", [])
        for c in [*inits, *spec["containers"]]:
            if c.get("args", [""])[0] != "digestbot":
                continue
            run = Runner(f"{kind} {name}/{c['name']}", c["args"], dict(img_env))
            run.grace = (
                None if oneshot or c in inits else spec.get("terminationGracePeriodSeconds", 30)
            )
            for source in c.get("envFrom", []):
                secret = m["Secret", source["secretRef"]["name"]]["stringData"]
                run.env.update(secret)
                run.secret_env |= set(secret)
            for e in c.get("env", []):  # env wins over envFrom
                run.env[e["name"]] = e["value"]
                run.secret_env.discard(e["name"])
            for mount in c.get("volumeMounts", []):
                volume, path = volumes[mount["name"]], mount["mountPath"]
                if "configMap" in volume:
                    data = m["ConfigMap", volume["configMap"]["name"]]["data"]
                    if "subPath" in mount:
                        run.files[path] = data[mount["subPath"]]
                    else:
                        run.dirs.add(path)
                        run.files.update((f"{path}/{k}", v) for k, v in data.items())
                    continue
                run.dirs.add(path)
                if not mount.get("readOnly"):
                    run.writable.add(path)
            if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
                run.writable.add("/")
            out.append(run)
    return out


def env_file(path: Path) -> dict[str, str]:
    """The VAR=value lines of an environment file (deploy/env.example)."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))


def systemd_runners(name: str) -> list[Runner]:
    """A unit's ExecStartPre and ExecStart, on a machine set up as deploy/README says: `digestbot
    init` in /etc/digestbot, the environment file made from deploy/env.example."""
    env = dict(v.split("=", 1) for v in unit_values(name, "Environment"))
    secret: dict[str, str] = {}
    for path in unit_values(name, "EnvironmentFile"):
        if (
            path == "/etc/digestbot/env"
        ):  # not "-/etc/digestbot/env": a file that may be missing sets nothing sure
            secret = env_file(DEPLOY / "env.example")
    env.update(secret)  # EnvironmentFile= wins over Environment=
    files = {f"/etc/digestbot/{k}": v for k, v in init_files().items()}
    writable = {"/tmp"} | {f"/var/lib/{d}" for d in unit_values(name, "StateDirectory")}
    writable |= {p for v in unit_values(name, "ReadWritePaths") for p in v.split()}
    if unit_values(name, "ProtectSystem") != ["strict"]:
        writable.add("/")
    oneshot = unit_values(name, "Type") == ["oneshot"]
    stop = unit_values(name, "TimeoutStopSec")
    out = []
    for key in ("ExecStartPre", "ExecStart"):
        for line in unit_values(name, key):
            grace = (
                None if oneshot or key == "ExecStartPre" else _seconds(stop[0] if stop else "90s")
            )
            out.append(
                Runner(
                    f"{name}: {key}",
                    shlex.split(line),
                    dict(env),
                    set(secret),
                    files,
                    {"/etc/digestbot"},
                    writable,
                    grace,
                )
            )
    return out


def image_runners() -> list[Runner]:
    """The bare image: `digestbot init /etc/digestbot` baked in, its HEALTHCHECK and CMD."""
    steps = dockerfile()
    env, volumes = image()
    init = re.search(
        r"digestbot init (\S+)", next(a for op, a in steps if op == "RUN" and "digestbot init" in a)
    )
    assert init
    files = {f"{init[1]}/{k}": v for k, v in init_files().items()}
    health = yaml.safe_load(next(a for op, a in steps if op == "HEALTHCHECK").split("CMD", 1)[1])
    cmd = yaml.safe_load(next(a for op, a in steps if op == "CMD"))
    return [
        Runner(f"Dockerfile {k}", argv, dict(env), set(), files, {init[1]}, set(volumes), g)
        for k, argv, g in (("HEALTHCHECK", health, None), ("CMD", cmd, 10))
    ]


def kustomized(swap: tuple[str, str] = ("", "")) -> list[str]:
    """The files kustomization.yaml applies (with one swapped for another: the CronJob variant)."""
    names = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"]
    return [swap[1] if n == swap[0] else n for n in names]


SYSTEMD = ("digestbot.service", "digestbot-once.service", "digestbot-web.service")
# What one applies together; each runs the scheduler and the web front.
DEPLOYMENTS: dict[str, Callable[[], list[Runner]]] = {
    "compose.yaml": lambda: compose_runners("compose.yaml"),
    "compose.workers.yaml": lambda: compose_runners("compose.workers.yaml"),
    "systemd digestbot.service": lambda: (
        systemd_runners("digestbot.service") + systemd_runners("digestbot-web.service")
    ),
    "systemd digestbot-once.timer": lambda: (
        systemd_runners("digestbot-once.service") + systemd_runners("digestbot-web.service")
    ),
    "k8s kustomization": lambda: k8s_runners(kustomized()),
    "k8s CronJob": lambda: k8s_runners(kustomized(("deployment.yaml", "cronjob.yaml"))),
    "k8s workers.yaml": lambda: k8s_runners(workers_apply_line()),
}
RECIPES: dict[str, Callable[[], list[Runner]]] = {
    "Dockerfile": image_runners,
    "compose.yaml": DEPLOYMENTS["compose.yaml"],
    "compose.workers.yaml": DEPLOYMENTS["compose.workers.yaml"],
    **{f"systemd {unit}": functools.partial(systemd_runners, unit) for unit in SYSTEMD},
    **{name: DEPLOYMENTS[name] for name in DEPLOYMENTS if name.startswith("k8s")},
}


def workers_apply_line() -> list[str]:
    """The files workers.yaml's header tells to `kubectl apply` together."""
    line = next(
        ln
        for ln in (DEPLOY / "k8s" / "workers.yaml").read_text().splitlines()
        if "kubectl apply" in ln
    )
    return [Path(a).name for a in re.findall(r"-f (\S+)", line)]


def settings_of(run: Runner) -> tuple[Settings, Path]:
    """The settings this process reads (its config file, its environment) and the config's folder."""
    config = run.env.get("DIGESTBOT_CONFIG")
    assert config, f"{run.where}: DIGESTBOT_CONFIG is not set"
    assert config in run.files, (
        f"{run.where}: DIGESTBOT_CONFIG={config}, but the recipe puts no config "
        f"there (it provides {sorted(run.files)[:4]} ...)"
    )
    settings, problems = parse_settings(
        tomllib.loads(run.files[config]), f"{run.where}: {config}", run.env
    )
    assert problems == [], f"{run.where}: {problems}"
    return settings, Path(config).parent


def resolve(path: Path | str, base: Path) -> Path:
    return base / path if not Path(path).is_absolute() else Path(path)


def sqlite_file(url: str, base: Path) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    assert database and database != ":memory:", url
    return resolve(database, base)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipes_run_real_commands_with_known_env(recipe: str) -> None:
    runners = RECIPES[recipe]()
    assert runners, f"{recipe} runs no digestbot command"
    for run in runners:
        assert_digestbot_command(run.argv)
        assert_known_env([k for k in run.env if k.startswith(("DIGESTBOT_", "SLACK_"))], run.where)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipes_read_the_config_they_mount(recipe: str) -> None:
    """DIGESTBOT_CONFIG names the file the recipe provides; its subscriptions folder and file
    sources are there too (a worker reads no subscriber files)."""
    for run in RECIPES[recipe]():
        settings, base = settings_of(run)
        if run.command != "worker":
            folder = str(resolve(settings.subscriptions_dir, base))
            assert folder in run.dirs or under(folder, run.dirs), (
                f"{run.where}: no subscriptions at {folder}"
            )
        for spec in settings.sources:
            if spec.type == "file":
                path = str(resolve(spec.options["path"], base))
                assert path in run.files or under(path, run.dirs), (
                    f"{run.where}: source {spec.name}: no {path}"
                )


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipes_may_send_the_mail_they_configure(recipe: str) -> None:
    """A command that sends mail starts only if the mail may go out (bot.cli._context): an SMTP
    server on loopback, or signed links that point where recipients reach them (a mail catcher's
    trial says DIGESTBOT_LOCAL_LINKS=1)."""
    for run in RECIPES[recipe]():
        settings, _ = settings_of(run)
        if run.command in SENDING:
            assert settings.sending_problem() is None, f"{run.where}: {settings.sending_problem()}"


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipes_write_only_where_they_may(recipe: str) -> None:
    """The outbox and a SQLite database lie in a folder the process may write: a volume, an
    emptyDir, the unit's StateDirectory (under a read-only root, nothing else is)."""
    for run in RECIPES[recipe]():
        if run.command == "check":
            continue  # reads only
        settings, base = settings_of(run)
        written = {"outbox": resolve(settings.outbox_dir, base)}
        db = sqlite_file(settings.database_url, base)
        if db is not None:
            written["the SQLite database's folder"] = db.parent
        for what, folder in written.items():
            assert under(str(folder), run.writable), (
                f"{run.where}: {what} is {folder}, but it may write only in {sorted(run.writable)}"
            )


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipes_give_a_digest_in_flight_120_s(recipe: str) -> None:
    for run in RECIPES[recipe]():
        if run.grace is not None and recipe != "Dockerfile":  # docker stop -t is the caller's
            assert run.grace >= 120, (
                f"{run.where}: {run.grace} s from SIGTERM to SIGKILL; give it 120 s"
            )


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_deployments_run_the_web_front_beside_the_scheduler(deployment: str) -> None:
    """Digests carry unsubscribe, manage and 👍/👎 links: every deployment serves them, and the
    scheduler and the web front take DIGESTBOT_BASE_URL and DIGESTBOT_SECRET_KEY from the
    deployment's secret store (env file, Secret), never from a literal in the recipe."""
    runners = DEPLOYMENTS[deployment]()
    commands = {run.command for run in runners}
    assert {"run", "serve"} <= commands, (
        f"{deployment} runs {sorted(commands)}: no web front beside the scheduler"
    )
    for run in runners:
        if run.command not in ("run", "serve"):
            continue
        settings, _ = settings_of(run)
        assert "DIGESTBOT_BASE_URL" in run.env or settings.base_url != Settings().base_url, (
            f"{run.where}: base_url is unset; the links in digests would point at {Settings().base_url}"
        )
        assert "DIGESTBOT_SECRET_KEY" in run.secret_env, (
            f"{run.where}: DIGESTBOT_SECRET_KEY does not come from the Secret / environment file"
        )
        if run.command == "serve":
            link = urlsplit(settings.base_url)
            if link.hostname in (
                "localhost",
                "127.0.0.1",
            ):  # compose.yaml: the port published on this machine
                assert link.port == parse_command(run.argv)[1]["port"], (
                    f"{run.where}: links go to {settings.base_url}"
                )


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_web_fronts_behind_a_proxy_believe_it(deployment: str) -> None:
    """A web front whose links point at a public address sits behind a TLS proxy: without
    DIGESTBOT_TRUSTED_PROXIES every request comes from the proxy and all subscribers share one
    rate limit. The setting parses as the app reads it, and covers the address the web front
    listens on when that is loopback (only a proxy on the same machine can reach it)."""
    for run in DEPLOYMENTS[deployment]():
        if run.command != "serve":
            continue
        settings, _ = settings_of(run)
        if loopback(urlsplit(settings.base_url).hostname or ""):
            continue  # compose.yaml's trial: people open the published port themselves
        networks = [
            ipaddress.ip_network(p, strict=False)
            for p in trusted_proxies(settings.trusted_proxies)
            if p != "*"
        ]
        assert networks, f"{run.where}: DIGESTBOT_TRUSTED_PROXIES is unset behind a proxy"
        host = parse_command(run.argv)[1]["host"]
        if loopback(host):
            assert any(ipaddress.ip_address(host) in n for n in networks), (
                f"{run.where}: listens on {host}, but trusts only {settings.trusted_proxies}"
            )


def test_the_recipe_readers_see_todays_mistakes() -> None:
    """The readers above catch what issue 15 found in the recipes (here rebuilt in memory)."""
    pool = compose_runners("compose.workers.yaml")[0]
    moved = Runner(
        pool.where, pool.argv, pool.env, files={"/srv/digestbot/digestbot.toml": "x = 1"}
    )
    with pytest.raises(AssertionError, match="DIGESTBOT_CONFIG=/etc/digestbot/digestbot.toml"):
        settings_of(moved)
    unit = systemd_runners("digestbot.service")[-1]
    unit.env["DIGESTBOT_DATABASE_URL"] = (
        "sqlite:///digestbot.db"  # relative: /etc/digestbot/digestbot.db
    )
    settings, base = settings_of(unit)
    db = sqlite_file(settings.database_url, base)
    assert db is not None and not under(str(db.parent), unit.writable)


@pytest.mark.parametrize("deployment", ["k8s kustomization", "k8s workers.yaml"])
def test_k8s_readiness_probes_belong_to_a_service(deployment: str) -> None:
    """A readiness probe only steers a Service's traffic: each pod with one is selected by a
    Service whose target port the container serves (and `serve` listens on)."""
    m = manifests(kustomized() if deployment == "k8s kustomization" else workers_apply_line())
    services = [d for (kind, _), d in m.items() if kind == "Service"]
    probed = 0
    for (kind, name), doc in m.items():
        if kind != "Deployment":
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        for c in doc["spec"]["template"]["spec"]["containers"]:
            if "readinessProbe" not in c:
                continue
            probed += 1
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            mine = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
            assert mine, f"{name}/{c['name']} has a readiness probe but no Service selects it"
            targets = {
                ports.get(p["targetPort"], p["targetPort"])
                for s in mine
                for p in s["spec"]["ports"]
            }
            assert targets <= set(ports.values()), (
                f"{name}: Service targets {targets}, container serves {ports}"
            )
            http = c["readinessProbe"].get("httpGet")
            if http:
                assert ports.get(http["port"], http["port"]) in ports.values()
            if c["args"][0] == "digestbot":
                assert {parse_command(c["args"])[1]["port"]} == targets
    assert probed


# --- installing: from the repository or a wheel, at pinned versions ------------------------------------


def runtime_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies and the extras the image installs (postgres, pool)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [
        Requirement(r) for r in [*project["dependencies"], *extras["postgres"], *extras["pool"]]
    ]


def constraints() -> dict[str, str]:
    lines = [
        ln.split("#")[0].strip() for ln in (DEPLOY / "constraints.txt").read_text().splitlines()
    ]
    pins = dict(ln.split("==", 1) for ln in lines if ln)
    return {canonicalize_name(name): version for name, version in pins.items()}


def test_constraints_pin_every_runtime_dependency_within_pyproject() -> None:
    pins = constraints()
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, (
            f"deploy/constraints.txt does not pin {req.name} (python deploy/freeze_constraints.py)"
        )
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"deploy/constraints.txt pins {name}=={pins[name]}, outside pyproject's {req}"
        )


def test_the_image_installs_with_the_constraints_of_its_python() -> None:
    steps = dockerfile()
    stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    copied = [a.split() for op, a in stage if op == "COPY" and "deploy/constraints.txt" in a]
    assert copied, "the runtime stage does not COPY deploy/constraints.txt"
    (install,) = [a for op, a in stage if op == "RUN" and "pip install" in a]
    assert f"-c {copied[0][-1]} " in install, f"pip install does not use the constraints: {install}"
    frozen = re.search(r"frozen with Python (3\.\d+)", (DEPLOY / "constraints.txt").read_text())
    assert (
        frozen and dict(s for s in steps if s[0] == "ARG")["ARG"] == f"PYTHON_VERSION={frozen[1]}"
    ), "the image's Python is not the one the constraints were frozen with"


def test_the_installed_versions_satisfy_pyproject() -> None:
    for req in runtime_requirements():
        installed = md.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), (
            f"{req.name} {installed} is installed; pyproject wants {req}"
        )


def test_web_dependencies_are_past_their_advisories() -> None:
    """starlette < 1.3.1 (CVE-2026-54283 form limits, and 1.3.0, 1.0.1, 0.49.1, 0.47.2, 0.40.0 before
    it) and python-multipart < 0.0.31 (CVE-2026-53540, and 0.0.30, 0.0.27, 0.0.26, 0.0.22, 0.0.18)."""
    floors = {canonicalize_name(r.name): r.specifier for r in runtime_requirements()}
    for name, fixed, vulnerable in (
        ("starlette", "1.3.1", "1.3.0"),
        ("python-multipart", "0.0.31", "0.0.30"),
    ):
        assert floors[name].contains(fixed) and not floors[name].contains(vulnerable), (
            f"{name} {floors[name]}"
        )


def test_every_third_party_import_of_bot_is_declared() -> None:
    """numpy, scipy, redis ... : each top-level import in bot/ comes from a declared distribution."""
    declared = {canonicalize_name(r.name) for r in runtime_requirements()}
    owners = md.packages_distributions()
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top == "bot":
                    continue
                dists = {canonicalize_name(d) for d in owners.get(top, [top])}
                assert dists & declared, (
                    f"{path.relative_to(ROOT)} imports {top}, which pyproject.toml does not declare"
                )


def test_the_license_the_metadata_names_is_there() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "LICENSE").read_text()
    assert project["license"] == "MIT" and text.startswith("MIT License")
    assert "Copyright (c) 2026 the digestbot authors" in text


def install_lines() -> list[str]:
    """The `pip install` commands of deploy/README.md."""
    text = (DEPLOY / "README.md").read_text()
    return [
        ln
        for block in re.findall(r"```console\n(.*?)```", text, re.DOTALL)
        for ln in block.splitlines()
        if "pip install" in ln
    ]


def test_deploy_readme_installs_from_the_repository_or_a_wheel() -> None:
    """There is no published package: every `pip install` names a folder or a wheel file, with
    the constraints, never a bare `digestbot[...]` from an index."""
    lines = install_lines()
    assert lines
    for line in lines:
        args = shlex.split(line[line.index("pip install") + len("pip install") :].split("&&")[0])
        assert "-c" in args, f"{line}: install with -c deploy/constraints.txt"
        at = args.index("-c")
        assert args[at + 1].endswith("deploy/constraints.txt"), line
        targets = [a for a in args[:at] + args[at + 2 :] if not a.startswith("-")]
        assert targets, line
        for target in targets:
            assert target.startswith((".", "/")) or ".whl" in target, (
                f"{line}: {target} is not a path or a wheel"
            )
    assert not re.search(
        r"pypi\.org/project/digestbot",
        "".join(p.read_text() for p in DEPLOY.rglob("*") if p.is_file()),
    )


def test_env_example_names_what_digestbot_reads() -> None:
    names = env_file(DEPLOY / "env.example")
    assert {"DIGESTBOT_BASE_URL", "DIGESTBOT_SECRET_KEY"} <= set(names)
    assert_known_env(list(names), "deploy/env.example")
    commented = re.findall(
        r"^# ((?:DIGESTBOT|SLACK)_[A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.MULTILINE
    )
    assert_known_env(commented, "deploy/env.example (commented)")


# --- the wheel the Dockerfile installs ------------------------------------------------------------


@pytest.mark.slow
def test_wheel_ships_templates_and_example_feed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "bot/data/papers.xml",
        "bot/templates/email.html.j2",
        "bot/templates/email.txt.j2",
        "bot/templates/slack_item.md.j2",
        "bot/_console.py",
        "bot/scaffold.py",
    } <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), (
        "the wheel ships no LICENSE"
    )
    root = Path(__file__).resolve().parent.parent
    modules = {p.relative_to(root).as_posix() for p in (root / "bot").rglob("*.py")}
    missing = sorted(m for m in modules if m not in names and "__pycache__" not in m)
    assert not missing, f"not in the wheel (list their packages in pyproject.toml): {missing}"


@pytest.mark.slow
def test_init_from_the_installed_wheel_works(wheel: Path, tmp_path: Path) -> None:
    """As in the image: the wheel installed (not the source tree), `digestbot init --outbox` (the
    image's setup: without it, check names the unset DIGESTBOT_SMTP_URL) then `check`."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp_path / "work"
    work.mkdir()
    # -S: no site hooks, so the checkout's editable install cannot lend a module the wheel lacks;
    # the dependencies come from this environment's site-packages on the path, after the wheel.
    deps = sysconfig.get_paths()["purelib"]
    env = {
        "PYTHONPATH": os.pathsep.join([str(target), deps]),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    code = "import sys, bot; assert bot.__file__.startswith(sys.argv[1]), bot.__file__; from bot.cli import main; main(sys.argv[2:])"
    for args in (["init", "--outbox"], ["check"], ["run", "--once"]):
        done = subprocess.run(
            [sys.executable, "-S", "-c", code, str(target), *args],
            cwd=work,
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        if args == ["check"]:
            assert done.stdout == "No problems: 1 source, 1 subscriber.\n"
    assert list((work / "outbox").rglob("*.eml")), "run --once from the wheel wrote no digest"


# --- the Slack app manifest (issue 18) -------------------------------------------------------------


def test_the_slack_app_manifest_matches_the_routes_commands_events_and_scopes() -> None:
    from starlette.routing import Route

    from bot.config import Settings
    from bot.slack.installs import SCOPES
    from bot.slack.manifest import PLACEHOLDER
    from bot.slack.manifest import manifest as made
    from bot.slack.routes import COMMAND, EVENTS
    from bot.store import Store
    from bot.web import create_app

    manifest = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text(encoding="utf-8"))
    base = PLACEHOLDER  # the base URL the file names
    assert manifest == made(base), "deploy/slack-app-manifest.yaml is not what the code makes"
    store = Store("sqlite://")
    try:
        app = create_app(Settings(secret_key="k", base_url=base), store)
        routes = {
            (r.path, m) for r in app.routes if isinstance(r, Route) for m in (r.methods or ())
        }
    finally:
        store.close()

    def path(url: str, method: str = "POST") -> str:
        assert url.startswith(base + "/"), url
        assert (url.removeprefix(base), method) in routes, f"{url}: no such route"
        return url.removeprefix(base)

    features, settings = manifest["features"], manifest["settings"]
    (command,) = features["slash_commands"]
    assert command["command"] == COMMAND and path(command["url"]) == "/slack/commands"
    assert features["app_home"]["home_tab_enabled"] and features["app_home"]["messages_tab_enabled"]
    events = settings["event_subscriptions"]
    assert path(events["request_url"]) == "/slack/events"
    assert tuple(events["bot_events"]) == EVENTS
    assert path(settings["interactivity"]["request_url"]) == "/slack/actions"
    (redirect,) = manifest["oauth_config"]["redirect_urls"]
    assert path(redirect, "GET") == "/slack/oauth_redirect"
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == SCOPES


def test_slack_manifest_prints_the_manifest_for_base_url(tmp_path: Path) -> None:
    from bot.slack.manifest import manifest as made

    env = {"DIGESTBOT_BASE_URL": "https://papers.lab.example/"}
    done = CliRunner().invoke(cli, ["slack-manifest"], env=env)
    assert done.exit_code == 0, done.output
    printed = json.loads(done.output)
    assert printed == made("https://papers.lab.example")
    assert printed["settings"]["interactivity"]["request_url"] == (
        "https://papers.lab.example/slack/actions"
    )
    for argv, env, says in (
        (["slack-manifest"], {"DIGESTBOT_BASE_URL": ""}, "base_url is not set"),
        (["slack-manifest", "--base-url", "http://papers.lab.example"], {}, "only to https"),
    ):
        done = CliRunner().invoke(cli, argv, env=env)
        assert done.exit_code == 1 and says in done.output, done.output
