"""Run the demo shared app: ``python -m examples.shared_app`` (settings from SHARED_APP_*)."""

from __future__ import annotations

import uvicorn

from examples.shared_app.app import Settings, create_app


def main() -> None:
    settings = Settings.from_environment()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
