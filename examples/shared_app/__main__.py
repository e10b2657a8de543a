"""Run the demo shared app.

OpenID Connect (settings from SHARED_APP_*)::

    python -m examples.shared_app

CAS 3.0 (the service URL registered with ``commune-sso cas add-service``)::

    python -m examples.shared_app --protocol cas \\
        --cas-url http://127.0.0.1:8000/cas/ --service http://127.0.0.1:8002/cas/callback
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

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
        choices=("oidc", "cas"),
        default=os.environ.get("SHARED_APP_PROTOCOL", "oidc"),
        help="oidc (default; settings from SHARED_APP_*) or cas",
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
    settings = Settings.from_environment()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
