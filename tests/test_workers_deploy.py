"""The worker-pool deployment files: compose and Kubernetes, one dispatcher, N workers, a broker,
the web front; and the `pool` extra: Celery and Redis only for the pool, imported only there."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from packaging.requirements import Requirement
from test_deploy import (
    assert_digestbot_command,
    assert_known_env,
    parse_command,
    workers_apply_line,
)

from bot.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
POOL_ONLY = ("celery", "kombu", "redis")  # the `pool` extra and what it brings


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (d["kind"], d["metadata"]["name"]): d
        for d in yaml.safe_load_all((DEPLOY / "k8s" / "workers.yaml").read_text())
    }


def test_k8s_one_dispatcher_many_workers_and_a_broker() -> None:
    m = _objects()
    assert set(m) == {
        ("Deployment", "digestbot-dispatcher"),
        ("Deployment", "digestbot-worker"),
        ("Deployment", "digestbot-redis"),
        ("Service", "digestbot-redis"),
    }
    dispatcher, worker = (
        m["Deployment", "digestbot-dispatcher"],
        m["Deployment", "digestbot-worker"],
    )
    assert (
        dispatcher["spec"]["replicas"] == 1 and dispatcher["spec"]["strategy"]["type"] == "Recreate"
    )
    assert worker["spec"]["replicas"] > 1
    base = {
        (d["kind"], d["metadata"]["name"])
        for f in ("secret.yaml", "configmap.yaml")
        for d in yaml.safe_load_all((DEPLOY / "k8s" / f).read_text())
    }
    for dep in (dispatcher, worker):
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (c,) = spec["containers"]
        assert_digestbot_command(c["args"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert_known_env(list(env), dep["metadata"]["name"])
        assert env["DIGESTBOT_BROKER_URL"].startswith("redis://digestbot-redis:6379/")
        assert ("Secret", c["envFrom"][0]["secretRef"]["name"]) in base
        for v in spec["volumes"]:
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in base
    assert parse_command(dispatcher["spec"]["template"]["spec"]["containers"][0]["args"]) == (
        "run",
        {"once": False, "workers": "celery", "subscriptions": None},
    )
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["digestbot", "worker"]
    assert (
        m["Service", "digestbot-redis"]["spec"]["selector"].items()
        <= m["Deployment", "digestbot-redis"]["spec"]["template"]["metadata"]["labels"].items()
    )


def test_k8s_pool_is_applied_with_its_secret_config_and_web_front() -> None:
    files = workers_apply_line()
    assert files[-1] == "workers.yaml" and {"secret.yaml", "configmap.yaml", "web.yaml"} <= set(
        files
    )
    for name in files:
        assert (DEPLOY / "k8s" / name).is_file(), (
            f"workers.yaml tells to apply {name}, which does not exist"
        )


def test_compose_pool_scheduler_workers_web_postgres_and_redis() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.workers.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"scheduler", "worker", "web", "postgres", "redis"}
    assert parse_command(services["scheduler"]["command"])[1]["workers"] == "celery"
    assert parse_command(services["worker"]["command"])[0] == "worker"
    assert parse_command(services["web"]["command"])[0] == "serve"
    env = services["worker"]["environment"]
    assert_known_env(list(env), "compose.workers.yaml")
    assert (
        env["DIGESTBOT_DATABASE_URL"].startswith("postgresql+psycopg://")
        and "@postgres:5432/" in env["DIGESTBOT_DATABASE_URL"]
    )
    assert env["DIGESTBOT_BROKER_URL"] == "redis://redis:6379/0"
    assert "working_dir" not in services["worker"], "the image's WORKDIR is its state folder"


# --- the `pool` extra ---------------------------------------------------------------------------


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_celery_and_redis_are_the_pool_extra_not_everyones() -> None:
    project = _project()["project"]
    everyone = {Requirement(r).name.lower() for r in project["dependencies"]}
    pool = {
        Requirement(r).name.lower(): Requirement(r)
        for r in project["optional-dependencies"]["pool"]
    }
    assert not everyone & set(POOL_ONLY), (
        f"{sorted(everyone & set(POOL_ONLY))} are required by everyone"
    )
    assert "redis" in pool["celery"].extras and "redis" in pool
    dev = {Requirement(r).name.lower() for r in _project()["dependency-groups"]["dev"]}
    assert {"celery", "redis"} <= dev, "the dev group must carry what the pool tests need"


def test_bot_imports_the_pool_libraries_only_inside_functions() -> None:
    """A module-level `import celery` (or kombu, redis) would make every command need the extra."""
    for path in (ROOT / "bot").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level, including under `if`/`try`
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    break
                names = (
                    [a.name for a in sub.names]
                    if isinstance(sub, ast.Import)
                    else [sub.module or ""]
                    if isinstance(sub, ast.ImportFrom)
                    else []
                )
                for name in names:
                    assert name.split(".")[0] not in POOL_ONLY, (
                        f"{path.relative_to(ROOT)}:{sub.lineno} imports {name} at module level"
                    )


def test_every_bot_module_imports_without_the_pool_extra() -> None:
    """Every module of bot/ imports with celery, kombu and redis absent (as after `pip install .`)."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {POOL_ONLY!r}: sys.modules[name] = None\n"
        "import bot\n"
        "for m in pkgutil.walk_packages(bot.__path__, 'bot.'):\n"
        "    if not m.name.endswith(('__main__', 'migrations.env')): importlib.import_module(m.name)\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr[-2000:]


@pytest.mark.parametrize("argv", [["worker"], ["run", "--workers", "celery"]])
def test_the_pool_without_celery_says_how_to_install_it(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        sys.modules, "celery", None
    )  # `import celery` raises ImportError, as when not installed
    (tmp_path / "digestbot.toml").write_text('subscriptions_dir = "subscriptions"\n')
    (tmp_path / "subscriptions").mkdir()
    env = {
        "DIGESTBOT_CONFIG": str(tmp_path / "digestbot.toml"),
        "DIGESTBOT_BROKER_URL": "redis://127.0.0.1:9/0",
        "DIGESTBOT_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
    }
    done = CliRunner().invoke(cli, argv, env=env)
    assert done.exit_code == 1, done.exception
    lines = done.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'digestbot[pool]'" in lines[0], done.output
