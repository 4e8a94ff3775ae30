"""The image definition, checked without a Docker engine (the full build replay is scripts/check_image.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import server_env

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import check_image  # noqa: E402


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    return (ROOT / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def context() -> list[str]:
    return check_image.build_context(ROOT)


def test_the_image_keeps_every_rule(dockerfile_text: str, context: list[str]) -> None:
    dockerfile = check_image.parse(dockerfile_text)
    assert check_image.problems(dockerfile, context) == []
    build, runtime = dockerfile.stages
    assert build.name == "build" and runtime.image == build.image == "python:3.11-slim-bookworm"
    assert runtime.all("USER")[-1].args == "10001:10001"
    assert runtime.all("ENTRYPOINT")[-1].exec_form == check_image.CONTRACT


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("USER 10001:10001", "USER root"), "runs as root"),
        (("USER 10001:10001", "USER 4242"), "not a user the runtime stage creates"),
        (("EXPOSE 8000", "EXPOSE 8080"), "does not EXPOSE 8000"),
        (('"--stateless"]', '"--stateless", "--json"]'), "not the AgentCore contract"),
        (("ENTRYPOINT [", "ENTRYPOINT rlm-mcp serve #["), "not the AgentCore contract"),
        (("COPY --from=build ${VENV} ${VENV}", "COPY . /src"), "copies from the build context"),
        (("RLM_LOG_FORMAT=json", "RLM_REQUEST_STATE_KEYS=abc"), "bake a secret"),
        (("FROM ${PYTHON_IMAGE} AS runtime", "FROM python:3.11 AS runtime"), "not a slim image"),
    ],
)
def test_the_checks_catch_mistakes(dockerfile_text: str, context: list[str], change, complaint: str) -> None:
    old, new = change
    assert old in dockerfile_text
    found = check_image.problems(check_image.parse(dockerfile_text.replace(old, new, 1)), context)
    assert any(complaint in problem for problem in found), found


def test_the_build_context_is_the_package_only(context: list[str]) -> None:
    assert {"pyproject.toml", "README.md", "rlm_mcp/server/app.py", "sandbox/worker/main.py"} <= set(context)
    assert not [p for p in context if p.endswith(".whl") or p.startswith(("tests/", ".git", "docs/", "scripts/"))]
    assert not [p for p in context if "__pycache__" in p]
    patterns = check_image.ignore_patterns("*\n!src/\nsrc/**/*.tmp\n")
    assert check_image.included("src/a.py", patterns) and not check_image.included("src/x/b.tmp", patterns)
    assert not check_image.included("other/a.py", patterns)


def test_the_entry_point_serves_the_contract(dockerfile_text: str, tmp_path: Path, fake) -> None:
    """The ENTRYPOINT as written, with the image's ENV, run from this install (only --port is added)."""
    dockerfile = check_image.parse(dockerfile_text)
    venv = Path(sys.executable).parent.parent
    base = {k: v for k, v in server_env(tmp_path, tmp_path, fake.url).items() if not k.startswith("RLM_")}
    base["PATH"] = f"{venv / 'bin'}:{base['PATH']}"
    env, workdir = check_image.runtime_environment(dockerfile, tmp_path / "root", {"VENV": str(venv)}, base)
    assert env["RLM_DATA_DIR"] == str(tmp_path / "root" / "home" / "rlm" / "data")
    assert env["PATH"].startswith(f"{venv}/bin:")
    check_image.smoke_test(dockerfile, env, workdir, {})
    assert list((tmp_path / "root" / "home" / "rlm" / "data" / "trajectories").glob("t_*.jsonl"))
