"""deploy/: the Dockerfile, compose.yaml, systemd units and Kubernetes manifests agree with the code."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

from bot import __version__
from bot.cli import cli
from bot.config import parse_settings
from bot.subscriptions import cron_trigger, parse_subscriber

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE = f"digestbot:{__version__}"


def code_env_names() -> set[str]:
    """Every environment variable name the package's code mentions."""
    names: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        names |= set(re.findall(r"\"((?:DIGESTBOT|SLACK)_[A-Z0-9_]+)\"", path.read_text(encoding="utf-8")))
    return names


ENV_NAMES = code_env_names()


def assert_digestbot_command(argv: list[str]) -> None:
    """`argv` is a digestbot command line this CLI accepts (checked by click with --help appended)."""
    assert argv[0] in ("digestbot",) or argv[0].endswith("/digestbot"), argv
    result = CliRunner().invoke(cli, [*argv[1:], "--help"], prog_name="digestbot")
    assert result.exit_code == 0, f"{shlex.join(argv)}: {result.output}"
    names = [a for a in argv[1:] if not a.startswith("-")]
    assert any(n in cli.commands for n in names), f"{shlex.join(argv)} names no digestbot command"


def assert_known_env(names: set[str] | list[str], where: str) -> None:
    unknown = set(names) - ENV_NAMES
    assert not unknown, f"{where} sets {sorted(unknown)}, which digestbot does not read"


def test_the_env_scan_finds_the_documented_names() -> None:
    assert {"DIGESTBOT_DATABASE_URL", "DIGESTBOT_SMTP_URL", "DIGESTBOT_SMTP_PASSWORD", "DIGESTBOT_CONFIG",
            "DIGESTBOT_OUTBOX", "SLACK_BOT_TOKEN"} <= ENV_NAMES
    with pytest.raises(AssertionError):
        assert_known_env({"DIGESTBOT_NO_SUCH_THING"}, "a test")


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
    assert any(op == "RUN" and re.search(r"pip install \"\$\(ls /wheels/digestbot-\*\.whl\)\[postgres\]\"", a)
               for op, a in stage), "the runtime stage installs the wheel built in the first stage"
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
    init = re.search(r"digestbot (init \S+)", next(a for op, a in steps if op == "RUN" and "digestbot init" in a))
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


def test_compose_has_digestbot_postgres_and_mailpit() -> None:
    services = compose()["services"]
    assert set(services) == {"digestbot", "postgres", "mailpit"}
    for name, svc in services.items():
        assert svc.get("image"), f"service {name} names no image"
    bot = services["digestbot"]
    assert bot["image"] == IMAGE
    assert (DEPLOY / bot["build"]["context"] / bot["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert_digestbot_command(bot["command"])
    assert_known_env(list(bot["environment"]), "compose.yaml")
    for volume in bot["volumes"]:
        host = volume.split(":")[0]
        if host.startswith("."):
            assert (DEPLOY / host).exists(), f"compose mounts {host}, which does not exist"


def test_compose_urls_point_at_its_services() -> None:
    services = compose()["services"]
    env = services["digestbot"]["environment"]
    db = urlsplit(env["DIGESTBOT_DATABASE_URL"])
    pg = services["postgres"]["environment"]
    assert db.scheme == "postgresql+psycopg" and db.hostname == "postgres"
    assert (db.username, db.password, db.path.lstrip("/")) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    smtp = urlsplit(env["DIGESTBOT_SMTP_URL"])
    assert smtp.hostname == "mailpit"
    # Plain SMTP: the email channel uses STARTTLS on any port but 25 towards a non-loopback host,
    # and Mailpit here has no certificate; so Mailpit listens on 25.
    assert smtp.port == 25 == int(services["mailpit"]["environment"]["MP_SMTP_BIND_ADDR"].rsplit(":", 1)[1])
    assert "8025" in services["mailpit"]["ports"][0]
    assert services["digestbot"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_config_mounts_parse_as_the_container_reads_them() -> None:
    """The repository's digestbot.toml, mounted at /etc/digestbot, names files the mounts provide."""
    raw = tomllib.loads((ROOT / "digestbot.toml").read_text())
    settings, problems = parse_settings(raw, "digestbot.toml", compose()["services"]["digestbot"]["environment"])
    assert problems == []
    mounted = {v.split(":")[1] for v in compose()["services"]["digestbot"]["volumes"]}
    for spec in settings.sources:
        if spec.type == "file":
            assert str(Path("/etc/digestbot") / spec.options["path"]).startswith(tuple(mounted))
    assert f"/etc/digestbot/{settings.subscriptions_dir}" in mounted


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker is not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    probe = subprocess.run(["docker", "compose", "version"], check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    done = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- Kubernetes -----------------------------------------------------------------------------------

def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object in deploy/k8s/*.yaml by (kind, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name in ("kustomization.yaml", "workers.yaml"):  # the worker-pool variant: test_workers_deploy.py
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} defined twice"
            out[key] = doc
    return out


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    m = manifests()
    return [("Deployment", m["Deployment", "digestbot"]["spec"]["template"]["spec"]),
            ("CronJob", m["CronJob", "digestbot"]["spec"]["jobTemplate"]["spec"]["template"]["spec"])]


def test_k8s_kinds_and_single_scheduler() -> None:
    m = manifests()
    assert set(m) == {("Secret", "digestbot"), ("ConfigMap", "digestbot-config"),
                      ("ConfigMap", "digestbot-subscriptions"), ("Deployment", "digestbot"), ("CronJob", "digestbot")}
    deployment = m["Deployment", "digestbot"]
    assert deployment["apiVersion"] == "apps/v1"
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    cron = m["CronJob", "digestbot"]
    assert cron["apiVersion"] == "batch/v1" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    cron_trigger(cron["spec"]["schedule"], "UTC")  # a valid five-field cron line


@pytest.mark.parametrize("kind", ["Deployment", "CronJob"])
def test_k8s_pods_run_existing_commands_with_known_env_and_real_volumes(kind: str) -> None:
    m = manifests()
    spec = dict(pod_specs())[kind]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
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
    probe = container.get("readinessProbe")
    if probe:
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
    done = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(done.stdout))
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "Secret"]


# --- systemd ------------------------------------------------------------------------------------

UNITS = ("digestbot.service", "digestbot-once.service", "digestbot-once.timer")


def unit_values(name: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in (DEPLOY / "systemd" / name).read_text().splitlines()
            if line.startswith(f"{key}=")]


def test_systemd_units_run_existing_commands() -> None:
    for name in ("digestbot.service", "digestbot-once.service"):
        for cmd in unit_values(name, "ExecStart") + unit_values(name, "ExecStartPre"):
            assert_digestbot_command(shlex.split(cmd))
        envs = [v.split("=", 1)[0] for v in unit_values(name, "Environment")]
        assert_known_env(envs, name)
        assert unit_values(name, "User") == ["digestbot"]
    assert unit_values("digestbot-once.service", "ExecStart") == ["/opt/digestbot/bin/digestbot run --once"]
    assert unit_values("digestbot-once.timer", "Unit") == ["digestbot-once.service"]


def verify(folder: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=folder,
                          check=False, capture_output=True, text=True, timeout=60)


def installed_copies(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this environment's digestbot (verify checks it exists)."""
    exe = Path(sys.executable).parent / "digestbot"
    if not exe.exists():
        pytest.skip(f"no digestbot script next to {sys.executable}; install the package first")
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/opt/digestbot/bin/digestbot", str(exe))
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


# --- the wheel the Dockerfile installs ------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (found,) = out.glob("digestbot-*.whl")
    return found


@pytest.mark.slow
def test_wheel_ships_templates_and_example_feed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bot/data/papers.xml", "bot/templates/email.html.j2", "bot/templates/email.txt.j2",
            "bot/templates/slack_item.md.j2", "bot/_console.py", "bot/scaffold.py"} <= names


@pytest.mark.slow
def test_init_from_the_installed_wheel_works(wheel: Path, tmp_path: Path) -> None:
    """As in the image: the wheel installed (not the source tree), `digestbot init` then `check`."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = "import sys, bot; assert bot.__file__.startswith(sys.argv[1]), bot.__file__; from bot.cli import main; main(sys.argv[2:])"
    for args in (["init"], ["check"]):
        done = subprocess.run([sys.executable, "-c", code, str(target), *args], cwd=work, env=env,
                              check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "No problems: 1 source, 1 subscriber.\n"
