"""docker/: Docker cannot run here, so the compose file is checked as data (services, secrets,
volumes, published ports, health checks) against the settings it uses, and the nginx
configuration is checked by a real ``nginx -t``."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from core.settings import ENV_PREFIX, Settings
from tests.throwaway_certificates import self_signed_p256

DOCKER = Path(__file__).resolve().parent.parent / "docker"
REPLICAS = ("sso-1", "sso-2")
SECRET_SETTINGS = {"database_url", "key_passphrase", "secret_key", "smtp_password"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict)
    return {name: str(value) for name, value in env.items()}


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "migrate", *REPLICAS, "proxy"} <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in REPLICAS:
        assert services[name]["command"][0] == "serve"
    assert services["sso-1"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_only_the_proxy_publishes_ports(compose: dict[str, Any]) -> None:
    published = {name for name, service in compose["services"].items() if "ports" in service}
    assert published == {"proxy"}
    assert {str(port).rsplit(":", 1)[-1] for port in compose["services"]["proxy"]["ports"]} == {
        "443",
        "80",
    }


def test_settings_are_real_and_secrets_are_files(compose: dict[str, Any]) -> None:
    known = set(Settings.model_fields)
    declared_secrets = set(compose["secrets"])
    for name in ("migrate", *REPLICAS):
        service = compose["services"][name]
        env = environment(service)
        given = set()
        for variable, value in env.items():
            assert variable.startswith(ENV_PREFIX), variable
            setting = variable.removeprefix(ENV_PREFIX).lower()
            if setting.endswith("_file"):
                setting = setting.removesuffix("_file")
                secret = value.removeprefix("/run/secrets/")
                assert value.startswith("/run/secrets/") and secret in declared_secrets, value
                assert secret in service["secrets"], (name, secret)
            else:
                assert setting not in SECRET_SETTINGS, f"{variable} in plain environment"
            assert setting in known, variable
            given.add(setting)
        assert {"database_url", "key_passphrase", "secret_key"} <= given
        assert env["COMMUNE_SSO_ENVIRONMENT"] == "production"
    replica = environment(compose["services"]["sso-1"])
    assert replica["COMMUNE_SSO_BEHIND_PROXY"] == "true"
    assert replica["COMMUNE_SSO_ISSUER"].startswith("https://")
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    assert "/docker/secrets/" in (DOCKER.parent / ".gitignore").read_text().split()


def test_trusted_proxies_is_the_network_the_proxy_is_on(compose: dict[str, Any]) -> None:
    (subnet,) = [entry["subnet"] for entry in compose["networks"]["backend"]["ipam"]["config"]]
    trusted = environment(compose["services"]["sso-1"])["COMMUNE_SSO_TRUSTED_PROXIES"]
    assert trusted == subnet
    proxy_address = compose["services"]["proxy"]["networks"]["backend"]["ipv4_address"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)


def test_every_piece_of_state_is_on_a_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("migrate", *REPLICAS):
        env = environment(services[name])
        var_dir = env["COMMUNE_SSO_VAR_DIR"]
        mounts = {
            volume.split(":")[1]: volume.split(":")[0] for volume in services[name]["volumes"]
        }
        assert mounts.get(var_dir) == "sso-var", name
        # Everything else the app writes defaults to a directory under var_dir.
        settings = Settings(var_dir=Path(var_dir))
        for path in (settings.resolved_key_dir, settings.resolved_ca_key_dir):
            assert path.is_relative_to(var_dir)
        for setting in ("KEY_DIR", "CA_KEY_DIR"):
            assert f"COMMUNE_SSO_{setting}" not in env
    assert "db-data:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert {"db-data", "sso-var"} <= set(compose["volumes"])


def test_health_checks_ask_readyz(compose: dict[str, Any]) -> None:
    for name in REPLICAS:
        assert "/readyz" in " ".join(compose["services"][name]["healthcheck"]["test"])
        assert compose["services"]["proxy"]["depends_on"][name]["condition"] == "service_healthy"
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"HEALTHCHECK[^\n]*\n[^\n]*/readyz", dockerfile)
    assert "pip install /opt/dist/commune_sso-*.whl" in dockerfile


def self_signed(directory: Path) -> tuple[Path, Path]:
    certificate, key = self_signed_p256("sso.example.gov.vn")
    cert_path, key_path = directory / "tls_cert", directory / "tls_key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.skip("nginx is not installed")
    text = (DOCKER / "nginx.conf").read_text()
    upstream = re.search(r"upstream commune_sso \{(.*?)\}", text, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+):8000 max_fails=\d+ fail_timeout=\d+s;", upstream.group(1)) == [
        *REPLICAS
    ]
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert "proxy_next_upstream error timeout http_502 http_503;" in text
    assert "non_idempotent" not in text.split("proxy_next_upstream ", 1)[1].split(";")[0]

    cert, key = self_signed(tmp_path)
    for replica in REPLICAS:
        text = text.replace(f"server {replica}:8000", "server 127.0.0.1:8000")
    text = text.replace("/run/secrets/tls_cert", str(cert)).replace(
        "/run/secrets/tls_key", str(key)
    )
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(tmp_path), "-g", f"pid {tmp_path}/nginx.pid;"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
