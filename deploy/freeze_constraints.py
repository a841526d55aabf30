"""Write deploy/constraints.txt: every runtime dependency of digestbot[postgres,pool], pinned.

Run it with the Python of an environment where digestbot[postgres,pool] is installed and tested:

    .venv/bin/python deploy/freeze_constraints.py > deploy/constraints.txt

It walks the requirements of pyproject.toml's dependencies and the `postgres` and `pool` extras
through the installed distributions (markers evaluated for this interpreter, Linux), and pins each
one at its installed version: `pip freeze` restricted to what the image needs, so a Docker build
installs what the tests ran against (`pip install -c deploy/constraints.txt ...`).
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("postgres", "pool")


def roots() -> list[Requirement]:
    """pyproject.toml's runtime requirements: the dependencies and the extras the image installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def closure(start: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed version} of `start` and everything they require here."""
    wanted: dict[str, set[str]] = {}
    todo = [(r, set(r.extras)) for r in start]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in wanted and extras <= wanted[name]:
            continue
        wanted[name] = wanted.get(name, set()) | extras
        for line in md.distribution(name).requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ["", *sorted(wanted[name])]):
                todo.append((sub, set(sub.extras)))
    return {name: md.version(name) for name in sorted(wanted)}


def main() -> None:
    pins = closure(roots())
    python = ".".join(platform.python_version_tuple()[:2])
    print(f"# Pinned runtime dependencies of digestbot[{','.join(EXTRAS)}], frozen with Python {python}")
    print("# by `python deploy/freeze_constraints.py > deploy/constraints.txt`; the Dockerfile installs with it.")
    for name, version in pins.items():
        print(f"{name}=={version}")


if __name__ == "__main__":
    sys.exit(main())
