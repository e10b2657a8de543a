"""Where the key passphrase and the server secret come from.

Production sets both explicitly. The embedded default (http issuer, development) generates
them once under ./var/ so that a first start needs no configuration; an https issuer refuses
that, so a generated secret can never protect a real deployment.
"""

from __future__ import annotations

from core.errors import ConfigurationError
from core.settings import Settings
from keys.passphrase import load_or_create_secret_file

PLACEHOLDERS = frozenset({"change-me", "changeme", "secret", "password", ""})


def _resolve(settings: Settings, value: str | None, env_name: str, file_name: str) -> str:
    if value is not None:
        if value.strip().lower() in PLACEHOLDERS or len(value) < 16:
            raise ConfigurationError(f"{env_name} is a placeholder or shorter than 16 characters.")
        return value
    if not settings.development_secrets_allowed:
        raise ConfigurationError(
            f"{env_name} must be set when the issuer is https or the environment is production."
        )
    return load_or_create_secret_file(settings.var_dir / file_name)


def key_passphrase(settings: Settings) -> bytes:
    return _resolve(
        settings, settings.key_passphrase, "COMMUNE_SSO_KEY_PASSPHRASE", "dev-key-passphrase"
    ).encode("utf-8")


def server_secret(settings: Settings) -> bytes:
    return _resolve(
        settings, settings.secret_key, "COMMUNE_SSO_SECRET_KEY", "dev-secret-key"
    ).encode("utf-8")
