"""panva ``oidc-provider`` 9 as the reference peer of ``oidc_bench.py`` (issue 15).

The bench installs the package from the npm registry into ``.cache/oidc-provider-9/`` (git
ignored; ``npm install`` runs only when the package is missing there), writes a small ES module
next to it and starts one ``node`` process on a loopback port. The peer is configured like
commune-sso: the same endpoint paths, ES256 JWT access tokens for client_credentials (a resource
indicator, as oidc-provider 9 issues JWT access tokens only for a resource server), a
confidential client that introspects, an RSA key for RS256 ID tokens beside the P-256 one, and
its in-memory adapter. A logged-in official's access token for userinfo and introspection is
made in the same process through the provider's own models (a Grant with the OpenID scopes and
an AccessToken bound to it, exactly what the authorization-code grant stores) and printed on
a file once the server listens.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER_MAJOR = 9
INSTALL_DIRECTORY = REPO / ".cache" / f"oidc-provider-{PEER_MAJOR}"
NPM_TIMEOUT = 300.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# The paths commune-sso serves, so that every scenario sends the same request to both.
ROUTES = {
    "authorization": "/oauth2/authorize",
    "token": "/oauth2/token",
    "userinfo": "/oauth2/userinfo",
    "introspection": "/oauth2/introspect",
    "revocation": "/oauth2/revoke",
    "jwks": "/oauth2/jwks",
    "end_session": "/oauth2/logout",
}

PEER_SCRIPT = r"""
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const privateJwk = (type, options, alg) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  alg,
  use: 'sig',
  kid: randomBytes(8).toString('hex'),
});
const user = config.user;
const clients = config.clients;

const provider = new Provider(config.issuer, {
  clients: [
    {
      client_id: clients.web.client_id,
      client_secret: clients.web.client_secret,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [config.redirect_uri],
      id_token_signed_response_alg: 'ES256',
    },
    ...[clients.service, clients.resource_server].map((client) => ({
      client_id: client.client_id,
      client_secret: client.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: config.resource_scope,
    })),
  ],
  jwks: {
    keys: [
      privateJwk('rsa', { modulusLength: 2048 }, 'RS256'),
      privateJwk('ec', { namedCurve: 'P-256' }, 'ES256'),
    ],
  },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  routes: config.routes,
  scopes: ['openid', 'offline_access', config.resource_scope],
  // Given so that it does not log a notice on each token: commune-sso's own lifetimes.
  ttl: { AccessToken: 3600, ClientCredentials: 3600, Grant: 14 * 24 * 3600 },
  claims: {
    openid: ['sub'],
    profile: ['name', 'family_name', 'given_name', 'preferred_username', 'updated_at'],
    email: ['email', 'email_verified'],
  },
  findAccount: async (ctx, sub) => (sub === user.sub
    ? { accountId: sub, claims: async () => ({ sub, ...user.claims }) }
    : undefined),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // oidc-provider's own default, given so that it does not warn: a confidential client
      // may introspect any token.
      allowedPolicy: async (ctx, client, token) => client.clientAuthMethod !== 'none'
        || token.clientId === ctx.oidc.client.clientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => config.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async () => ({
        scope: config.resource_scope,
        audience: config.resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

// What the authorization-code grant stores for a logged-in official: the grant of the OpenID
// scopes to the web client, and an (opaque, in-memory) access token bound to it.
const grant = new provider.Grant({ accountId: user.sub, clientId: clients.web.client_id });
grant.addOIDCScope(config.user_scope);
const grantId = await grant.save();
const client = await provider.Client.find(clients.web.client_id);
const accessToken = new provider.AccessToken({
  accountId: user.sub,
  client,
  grantId,
  gty: 'authorization_code',
  scope: config.user_scope,
});
const bearer = await accessToken.save();

createServer(provider.callback()).listen(config.port, config.host, () => {
  writeFileSync(config.ready_file, JSON.stringify({ access_token: bearer }));
});
"""


class PeerUnavailable(Exception):
    """The peer cannot run here (no node or npm, no registry): the bench reports ours alone."""


@dataclass(frozen=True)
class PeerClient:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class RunningPeer:
    pid: int
    port: int
    version: str
    service: PeerClient  # client_credentials, ES256 JWT access tokens
    resource_server: PeerClient  # confidential client that introspects
    bearer: str  # the logged-in official's access token


def installed_version(directory: Path, package: str, major: int) -> str | None:
    manifest = directory / "node_modules" / package / "package.json"
    if not manifest.is_file():
        return None
    version = str(json.loads(manifest.read_text("utf-8"))["version"])
    return version if version.split(".")[0] == str(major) else None


def install_npm_package(directory: Path, package: str, major: int) -> str:
    """``package@major`` in ``directory`` (npm install when missing there); its version."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PeerUnavailable("node or npm is not installed")
    version = installed_version(directory, package, major)
    if version is not None:
        return version
    directory.mkdir(parents=True, exist_ok=True)
    try:
        completed = subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(directory),
                f"{package}@{major}",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise PeerUnavailable(f"npm install did not finish in {NPM_TIMEOUT:.0f} s") from error
    version = installed_version(directory, package, major)
    if completed.returncode != 0 or version is None:
        output = (completed.stderr or completed.stdout).strip().splitlines()
        raise PeerUnavailable(
            f"npm install {package}@{major} failed (no network?): "
            + (output[-1] if output else f"exit status {completed.returncode}")
        )
    return version


def install() -> str:
    """oidc-provider 9 in the cache directory; its version."""
    return install_npm_package(INSTALL_DIRECTORY, "oidc-provider", PEER_MAJOR)


@contextlib.contextmanager
def running_peer(
    *, host: str, port: int, redirect_uri: str, log_path: Path
) -> Iterator[RunningPeer]:
    """One ``node`` process serving oidc-provider; stopped by its PID at the end (also on
    error or interruption). Raises PeerUnavailable when it cannot be installed or started."""
    version = install()
    clients = {
        name: PeerClient(f"bench-{name}", secrets.token_urlsafe(32))
        for name in ("web", "service", "resource_server")
    }
    config = {
        "issuer": f"http://{host}:{port}",
        "host": host,
        "port": port,
        "routes": ROUTES,
        "redirect_uri": redirect_uri,
        "resource": "urn:commune-sso:bench:api",
        "resource_scope": "api",
        "user_scope": "openid profile email",
        "clients": {name: vars(client) for name, client in clients.items()},
        "user": {
            "sub": "bench-user",
            "claims": {
                "name": "Nguyễn Văn Bench",
                "family_name": "Nguyễn",
                "given_name": "Bench",
                "preferred_username": "bench.user",
                "email": "bench@example.vn",
                "email_verified": True,
                "updated_at": 1751328000,
            },
        },
    }
    config_path = log_path.with_name("oidc-provider-config.json")
    ready_path = log_path.with_name("oidc-provider-ready.json")
    ready_path.unlink(missing_ok=True)
    config["ready_file"] = str(ready_path)
    config_path.write_text(json.dumps(config, ensure_ascii=False))
    script = INSTALL_DIRECTORY / "bench-peer.mjs"
    script.write_text(PEER_SCRIPT)
    with log_path.open("wb") as log:
        peer = subprocess.Popen(
            ["node", str(script), str(config_path)],
            cwd=INSTALL_DIRECTORY,
            env={**os.environ, "NODE_ENV": "production"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop it by its PID
        )
    try:
        bearer = _wait_until_listening(peer, ready_path, log_path)
        yield RunningPeer(
            pid=peer.pid,
            port=port,
            version=version,
            service=clients["service"],
            resource_server=clients["resource_server"],
            bearer=bearer,
        )
    finally:
        stop_by_pid(peer)


def _wait_until_listening(peer: subprocess.Popen[bytes], ready_path: Path, log_path: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and peer.poll() is None:
        with contextlib.suppress(FileNotFoundError, ValueError):  # absent, or half written
            return str(json.loads(ready_path.read_text("utf-8"))["access_token"])
        time.sleep(0.1)
    log = log_path.read_text("utf-8", "replace")[-2000:]
    raise PeerUnavailable(f"oidc-provider did not start:\n{log}")


def stop_by_pid(peer: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGTERM to the peer we started (to its process group with ``group``: one it made
    itself, e.g. ``openssl ocsp -multi``), SIGKILL if it is still there after a while."""
    send = os.killpg if group else os.kill
    if peer.poll() is None or group:
        with contextlib.suppress(ProcessLookupError):
            send(peer.pid, signal.SIGTERM)
        try:
            peer.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                send(peer.pid, signal.SIGKILL)
            peer.wait()
