"""The image's Dockerfile, without a Docker engine: its base is Ray's image at the version and
Python minor the project pins, it ends as a non-root user, copies only the package and bakes in
no secret."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "cluster" / "docker"
SECRETISH = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|API_KEY|DATABASE_URL|AMQP_URL")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                logical.append(current.strip())
            current = ""
    pairs = []
    for instruction in logical:
        op, _, args = instruction.partition(" ")
        pairs.append((op.upper(), args.strip()))
    return pairs


def pins() -> tuple[str, str]:
    """The pinned Ray version and the Python minor (``3.11``) of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    ray = next(d for d in project["dependencies"] if d.startswith("ray["))
    version = re.fullmatch(r"ray\[[\w,]+\]==([\d.]+)", ray)
    assert version, f"ray must be pinned exactly: {ray}"
    python = re.search(r">=\s*(3\.\d+)", project["requires-python"])
    assert python, project["requires-python"]
    return version.group(1), python.group(1)


def test_base_image_is_ray_at_the_pinned_version_and_python() -> None:
    ray_version, python_minor = pins()
    froms = [args for op, args in instructions() if op == "FROM"]
    assert len(froms) == 1, froms
    image = froms[0].split()[0]
    match = re.fullmatch(r"rayproject/ray:(?P<ray>[\d.]+)-py(?P<py>\d+)(?:-cpu)?", image)
    assert match, f"expected rayproject/ray:<version>-py<NN>[-cpu], got {image}"
    assert match["ray"] == ray_version
    assert match["py"] == python_minor.replace(".", "")
    # The lock and the virtualenv were made for the same minor.
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == python_minor


def test_it_ends_as_a_non_root_user() -> None:
    users = [args.split()[0] for op, args in instructions() if op == "USER"]
    assert users, "no USER: the image would run as whatever the base says"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user


def test_no_secret_is_baked_in() -> None:
    for op, args in instructions():
        if op in ("ENV", "ARG", "LABEL"):
            assert not SECRETISH.search(args.upper()), f"{op} {args}"
    assert not SECRETISH.search(
        " ".join(args for op, args in instructions() if op in ("COPY", "ADD")).upper()
    )


def test_it_copies_the_package_and_the_lock_only() -> None:
    copied = []
    for op, args in instructions():
        assert op != "ADD", "ADD fetches and unpacks; COPY says what it does"
        if op == "COPY":
            parts = [p for p in args.split() if not p.startswith("--")]
            copied += parts[:-1]
    assert {"pyproject.toml", "uv.lock", "marketplace", "actors", "serve_app", "load"} <= set(
        copied
    )
    for source in copied:
        assert (ROOT / source).exists(), source
    run = " ".join(args for op, args in instructions() if op == "RUN")
    assert "--frozen" in run, "dependencies must come from uv.lock"
    assert "--no-deps ." in run, "the package must not re-resolve its dependencies"


def test_the_build_context_is_an_allowlist() -> None:
    lines = [
        line.strip()
        for line in (DOCKER / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**", "everything is excluded first"
    allowed = {line[1:].split("/")[0] for line in lines if line.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "marketplace",
        "actors",
        "serve_app",
        "load",
    }
