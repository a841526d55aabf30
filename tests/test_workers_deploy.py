"""The worker-pool deployment files: compose and Kubernetes, one dispatcher, N workers, a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from test_deploy import assert_known_env

from bot.cli import cli

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all((DEPLOY / "k8s" / "workers.yaml").read_text())}


def _assert_command(args: list[str]) -> None:
    assert args[0] == "digestbot"
    words = [a for a in args[1:] if not a.startswith("-") and a not in ("json", "celery")]
    assert words[0] in cli.commands, f"{words[0]!r} is not a digestbot command"


def test_k8s_one_dispatcher_many_workers_and_a_broker() -> None:
    m = _objects()
    assert set(m) == {("Deployment", "digestbot-dispatcher"), ("Deployment", "digestbot-worker"),
                      ("Deployment", "digestbot-redis"), ("Service", "digestbot-redis")}
    dispatcher, worker = m["Deployment", "digestbot-dispatcher"], m["Deployment", "digestbot-worker"]
    assert dispatcher["spec"]["replicas"] == 1 and dispatcher["spec"]["strategy"]["type"] == "Recreate"
    assert worker["spec"]["replicas"] > 1
    base = {(d["kind"], d["metadata"]["name"]) for f in ("secret.yaml", "configmap.yaml")
            for d in yaml.safe_load_all((DEPLOY / "k8s" / f).read_text())}
    for dep in (dispatcher, worker):
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        (c,) = spec["containers"]
        _assert_command(c["args"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert_known_env(list(env), dep["metadata"]["name"])
        assert env["DIGESTBOT_BROKER_URL"].startswith("redis://digestbot-redis:6379/")
        assert ("Secret", c["envFrom"][0]["secretRef"]["name"]) in base
        for v in spec["volumes"]:
            if "configMap" in v:
                assert ("ConfigMap", v["configMap"]["name"]) in base
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"] == ["digestbot", "worker"]
    assert m["Service", "digestbot-redis"]["spec"]["selector"].items() <= \
        m["Deployment", "digestbot-redis"]["spec"]["template"]["metadata"]["labels"].items()


def test_compose_pool_scheduler_workers_postgres_and_redis() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.workers.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"scheduler", "worker", "postgres", "redis"}
    _assert_command(services["worker"]["command"])
    _assert_command(services["scheduler"]["command"])
    env = services["worker"]["environment"]
    assert_known_env(list(env), "compose.workers.yaml")
    assert env["DIGESTBOT_DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["DIGESTBOT_DATABASE_URL"]
    assert env["DIGESTBOT_BROKER_URL"] == "redis://redis:6379/0"
