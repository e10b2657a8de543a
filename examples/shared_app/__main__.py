"""Run the demo shared app.

OpenID Connect (settings from SHARED_APP_*)::

    python -m examples.shared_app

CAS 3.0 (the service URL registered with ``commune-sso cas add-service``)::

    python -m examples.shared_app --protocol cas \\
        --cas-url http://127.0.0.1:8000/cas/ --service http://127.0.0.1:8002/cas/callback

SAML 2.0 (register <base URL>/saml/metadata with ``commune-sso saml add-sp --metadata``)::

    python -m examples.shared_app --protocol saml \\
        --idp-metadata http://127.0.0.1:8000/saml/metadata --base-url http://127.0.0.1:8003
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from examples.shared_app.app import Settings, create_app


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.shared_app",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--protocol",
        choices=("oidc", "cas", "saml"),
        default=os.environ.get("SHARED_APP_PROTOCOL", "oidc"),
        help="oidc (default; settings from SHARED_APP_*), cas or saml",
    )
    parser.add_argument(
        "--cas-url",
        default=os.environ.get("SHARED_APP_CAS_URL", "http://127.0.0.1:8000/cas/"),
        help="the provider's CAS prefix (cas only)",
    )
    parser.add_argument(
        "--service",
        default=os.environ.get("SHARED_APP_SERVICE", "http://127.0.0.1:8002/cas/callback"),
        help="the service URL registered for this app; its port is the one served (cas only)",
    )
    parser.add_argument(
        "--idp-metadata",
        default=os.environ.get("SHARED_APP_IDP_METADATA", "http://127.0.0.1:8000/saml/metadata"),
        help="the provider's SAML metadata URL, also its entity ID (saml only)",
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get("SHARED_APP_BASE_URL", "http://127.0.0.1:8003"),
        help="where this app runs; its port is the one served (saml only)",
    )
    parser.add_argument(
        "--key-dir",
        default=os.environ.get("SHARED_APP_SAML_KEY_DIR", "var/shared-app-saml"),
        help="the app's sp.key and sp.crt, made on first start when missing (saml only)",
    )
    parser.add_argument("--name", default=os.environ.get("SHARED_APP_NAME"), help="app name")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    if arguments.protocol == "cas":
        # Imported here: the OIDC app does not need python-cas installed.
        from examples.shared_app.cas_app import CasSettings, create_cas_app

        cas_settings = CasSettings(
            cas_url=arguments.cas_url,
            service_url=arguments.service,
            host=os.environ.get("SHARED_APP_HOST", "127.0.0.1"),
            cookie_name=os.environ.get("SHARED_APP_COOKIE_NAME", CasSettings.cookie_name),
            **({"name": arguments.name} if arguments.name else {}),
        )
        uvicorn.run(create_cas_app(cas_settings), host=cas_settings.host, port=cas_settings.port)
        return
    if arguments.protocol == "saml":
        run_saml_app(arguments)
        return
    settings = Settings.from_environment()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


def run_saml_app(arguments: argparse.Namespace) -> None:
    # Imported here: pysaml2 (and the xmlsec1 program) are needed by the SAML variant only.
    try:
        from examples.shared_app.saml_app import MissingXmlsec, SamlSettings, create_saml_app
    except ImportError as error:
        raise SystemExit(
            f"The SAML variant needs pysaml2 ({error}): pip install pysaml2, "
            "and the xmlsec1 program (apt install xmlsec1)."
        ) from None
    key_dir = Path(arguments.key_dir)
    settings = SamlSettings(
        idp_metadata_url=arguments.idp_metadata,
        base_url=arguments.base_url.rstrip("/"),
        key_file=key_dir / "sp.key",
        cert_file=key_dir / "sp.crt",
        host=os.environ.get("SHARED_APP_HOST", "127.0.0.1"),
        cookie_name=os.environ.get("SHARED_APP_COOKIE_NAME", SamlSettings.cookie_name),
        **({"name": arguments.name} if arguments.name else {}),
    )
    try:
        app = create_saml_app(settings)
    except MissingXmlsec as error:
        raise SystemExit(str(error)) from None
    uvicorn.run(app, host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
