"""The compose deployment and the app image, checked as far as this machine can without a Docker engine: the
files parse, every service the app needs is declared and wired, every setting they pass exists, and the image
runs the same install as `make install` and the same commands a machine does."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from citewise.cli import app as cli

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _settings_names() -> set[str]:
    """Every environment variable citewise reads (all of them are read in core/settings.py)."""
    return set(re.findall(r'"((?:CITEWISE|SLACK)_[A-Z0-9_]+)"', (ROOT / "core" / "settings.py").read_text()))


def _cli_has(*words: str) -> bool:
    command = get_command(cli)
    for word in words:
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            return False
    return True


def test_every_service_the_app_needs_is_declared_and_wired() -> None:
    services = COMPOSE["services"]
    assert {"db", "llm", "app", "worker", "vllm"} <= services.keys()
    app = services["app"]
    assert app["command"] == ["citewise", "serve"] and _cli_has("serve")
    assert set(app["depends_on"]) == {"db", "llm"}
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    env = app["environment"]
    assert "@db:5432/" in env["CITEWISE_DATABASE_URL"]
    assert env["CITEWISE_LLM_BASE_URL"].endswith("http://llm:8080/v1}"), "the LLM is its own service by default"
    assert env["CITEWISE_HOST"] == "0.0.0.0", "listening beyond the container's loopback"
    assert "/v1/health" in " ".join(app["healthcheck"]["test"])
    assert services["worker"]["command"] == ["citewise", "worker"] and _cli_has("worker")
    llm = services["llm"]
    assert llm["command"][:3] == ["citewise", "llm", "serve"] and _cli_has("llm", "serve")
    assert "8080" in llm["command"]
    assert services["vllm"]["profiles"] == ["gpu"], "vLLM only where a GPU is asked for"
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    for name in ("app", "worker"):
        assert any(v.startswith("appdata:") for v in services[name]["volumes"]), f"{name} keeps its data"
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])
    assert set(COMPOSE["volumes"]) >= {"pgdata", "appdata", "models"}


def test_secrets_come_from_the_environment_and_every_setting_exists() -> None:
    known = _settings_names()
    text = (ROOT / "docker-compose.yml").read_text()
    for service in COMPOSE["services"].values():
        for name in (service.get("environment") or {}):
            if name.startswith(("CITEWISE_", "SLACK_")):
                assert name in known, f"{name} is passed to a container but citewise reads no such setting"
    assert "citewise:citewise@" not in text and "PASSWORD: citewise" not in text, "no default password"
    for secret in ("CITEWISE_DB_PASSWORD", "CITEWISE_AUTH_SECRET"):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be given, never defaulted"


def test_the_image_runs_make_install_once_at_build_and_serves_with_a_healthcheck() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^RUN make install-app\b", DOCKERFILE, re.M), "the image installs as a machine does"
    assert re.search(r"^install-app: \$\(APP_STAMP\)$", makefile, re.M)
    assert re.search(r"^\$\(STAMP\): \$\(APP_STAMP\)$", makefile, re.M), "make install runs the same steps first"
    assert 'CMD ["citewise", "serve"]' in DOCKERFILE
    assert re.search(r"HEALTHCHECK .*\n\s+CMD curl -fsS http://127\.0\.0\.1:8000/v1/health", DOCKERFILE)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in (p.rstrip("*") for p in packages["include"]):
        assert f"COPY {package}/ {package}/" in DOCKERFILE, f"the image lacks the {package} package"
    assert "USER citewise" in DOCKERFILE, "the app does not run as root"
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE, "torch's CPU build, as pinned"


@pytest.mark.slow
def test_the_llm_service_command_serves_the_bundled_model_over_the_openai_protocol(settings, tmp_path) -> None:
    """`citewise llm serve`, the compose deployment's LLM service, run for real: it answers /v1/models and a chat
    completion on the address it was given."""
    import subprocess
    import sys
    import time

    import httpx

    from chat.engine.llm import MODEL_ALIAS, MODEL_FILE, assemble_model
    from tests.helpers.serving import free_port

    model = assemble_model(settings.llm.models_dir)  # the slow tier's shared copy, linked, not copied again
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for name in (MODEL_FILE, model.with_suffix(".verified").name):
        (home / "models" / name).symlink_to(model.parent / name)
    port = free_port()
    log = (tmp_path / "llm.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "citewise.cli", "llm", "serve", "--host", "127.0.0.1", "--port",
                             str(port)], env={**os.environ, "CITEWISE_HOME": str(home), "CITEWISE_LLM_THREADS": "2"},
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                models = httpx.get(f"{base}/models", timeout=2).json()
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "llm.log").read_text()
                time.sleep(1)
        assert [m["id"] for m in models["data"]] == [MODEL_ALIAS]
        reply = httpx.post(f"{base}/chat/completions", timeout=120, json={
            "model": MODEL_ALIAS, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say OK."}]}).json()
        assert reply["choices"][0]["message"]["content"].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
