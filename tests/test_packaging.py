"""deploy/: the Dockerfile, the compose file and the systemd units are kept in step with the code and
README. No Docker engine runs here and hadolint is not installed: the Dockerfile is parsed and held to a
few lint rules, the compose file is parsed (PyYAML) and its settings validated by config.Settings, the
units are checked by `systemd-analyze verify` when it is installed."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import main
from config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def cli_commands() -> set[str]:
    """The subcommands `main.py` accepts, read from its parser."""
    import argparse

    parser = main.build_parser()
    return set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in joined.splitlines()) if line and not line.startswith("#")]


def known(names: set[str]) -> set[str]:
    return names - set(Settings.model_fields)


def test_the_dockerfile_parses_and_follows_the_lint_rules():
    instructions = dockerfile_instructions()
    assert {keyword for keyword, _ in instructions} <= INSTRUCTIONS
    assert instructions[0][0] == "FROM"
    image = instructions[0][1]
    assert ":" in image and not image.endswith(":latest")  # a pinned base (hadolint DL3006/DL3007)
    python = re.search(r"python:(\d+\.\d+)", image).group(1)
    requires = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, requires.split(".")))
    runs = [argument for keyword, argument in instructions if keyword == "RUN"]
    for run in runs:
        if "apt-get install" in run:  # DL3015, DL3009
            assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists" in run and "-y" in run
        if "pip install" in run:
            assert "-r requirements.txt" in run
    assert any("tools/quantize_models.py --check" in run for run in runs)  # the models are built, never downloaded
    users = [i for i, (keyword, _) in enumerate(instructions) if keyword == "USER"]
    cmd = [i for i, (keyword, _) in enumerate(instructions) if keyword == "CMD"]
    assert users and cmd and users[-1] < cmd[-1] and instructions[users[-1]][1] != "root"  # DL3002
    assert len(cmd) == 1
    command = yaml.safe_load(instructions[cmd[0]][1])  # exec form, a JSON array
    assert command[:2] == ["python", "main.py"] and command[2] in cli_commands()
    env_names = {name for keyword, argument in instructions if keyword == "ENV"
                 for name in re.findall(r"([A-Z][A-Z0-9_]+)=", argument)} - {"PYTHONDONTWRITEBYTECODE",
                 "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK"}
    assert env_names and known(env_names) == set()
    exposed = next(argument for keyword, argument in instructions if keyword == "EXPOSE")
    assert int(exposed) == Settings.model_fields["PORT"].default
    health = next(argument for keyword, argument in instructions if keyword == "HEALTHCHECK")
    assert "/api/health/live" in health
    for keyword, argument in instructions:
        if keyword == "COPY" and not argument.startswith("--"):
            assert (ROOT / argument.split()[0]).exists(), argument


def test_the_compose_file_runs_the_service_with_real_commands_and_settings():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "web", "worker"}
    commands = cli_commands()
    ours = {name: service for name, service in services.items() if name != "postgres"}
    for name, service in ours.items():
        command = service["command"]
        assert command[:2] == ["python", "main.py"] and command[2] in commands, name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        environment = service["environment"]
        assert known(set(environment)) == set(), name
        assert environment["DATABASE_URL"].startswith("postgresql+psycopg2://")
        # The literal values are valid settings (the ${...} ones come from the operator).
        literal = {k: str(v) for k, v in environment.items() if "${" not in str(v) and k in Settings.model_fields}
        Settings(**{"DATABASE_URL": "postgresql+psycopg2://ocr@postgres/ocr", **literal})  # its URL is ${...}
    assert [c for c in ours["migrate"]["command"]][2] == "migrate"
    assert ours["worker"]["command"][2] == "worker" and ours["web"]["command"][2] == "serve"
    for name in ("web", "worker"):
        environment = ours[name]["environment"]
        # The secrets every host shares are required from the operator, never defaulted.
        for secret in ("SECRET_KEY", "WEBHOOK_SECRETS_KEY", "API_KEYS"):
            assert re.fullmatch(r"\$\{%s:\?[^}]+\}" % secret, environment[secret]), (name, secret)
        assert environment["MIGRATE_ON_START"] == "false" and environment["IMAGE_STORAGE"] == "postgresql"
        assert ours[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert ours["web"]["environment"]["WORKER_ENABLED"] == "false"  # a web-only host; the worker is its own service
    assert ours["web"]["environment"]["HOST_NAME"] != ours["worker"]["environment"]["HOST_NAME"]
    assert ours["web"]["volumes"] != ours["worker"]["volumes"]  # no shared directory: images are in PostgreSQL


def test_the_systemd_units_run_real_commands_and_verify():
    commands = cli_commands()
    env_example = {line.split("=", 1)[0] for line in (DEPLOY / "ocr.env.example").read_text().splitlines() if line}
    assert known(env_example) == set()
    for unit in ("ocr-service.service", "ocr-migrate.service"):
        text = (DEPLOY / unit).read_text()
        exec_start = re.search(r"^ExecStart=(\S+) main\.py (\S+)$", text, re.M)
        assert exec_start and exec_start.group(2) in commands
        assert known(set(re.findall(r"^Environment=([A-Z][A-Z0-9_]+)=", text, re.M))) == set()
    assert "main.py migrate" in (DEPLOY / "ocr-migrate.service").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path):
    """As installed: the paths of /srv/ocr/app replaced by this checkout's, so the commands exist."""
    copies = []
    for unit in ("ocr-service.service", "ocr-migrate.service"):
        text = (DEPLOY / unit).read_text().replace("/srv/ocr/app/.venv/bin/python", str(ROOT / ".venv" / "bin" / "python"))
        (tmp_path / unit).write_text(text)
        copies.append(str(tmp_path / unit))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", *copies], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if line.strip() and "ocr.env" not in line]  # the env file exists on the host only
    assert done.returncode == 0 and problems == [], done.stdout + done.stderr


def test_readme_points_at_every_deploy_file():
    readme = (ROOT / "README.md").read_text()
    for path in sorted(DEPLOY.iterdir()):
        assert f"deploy/{path.name}" in readme, path.name
