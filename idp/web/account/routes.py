"""The routes of the official's account pages, the activation page and the password reset."""

from __future__ import annotations

from starlette.routing import Route

from idp.web.account import activation, pages, passkeys, password_reset, security


def account_routes() -> list[Route]:
    return [
        Route("/account", pages.profile_endpoint, methods=["GET"]),
        Route("/account/password", pages.password_page_endpoint, methods=["GET"]),
        Route("/account/password", pages.password_submit_endpoint, methods=["POST"]),
        Route("/account/sessions", pages.sessions_page_endpoint, methods=["GET"]),
        Route("/account/sessions/end", pages.end_session_endpoint, methods=["POST"]),
        Route("/account/sessions/end-others", pages.end_others_endpoint, methods=["POST"]),
        Route("/account/security", security.security_page_endpoint, methods=["GET"]),
        Route("/account/security/totp/start", security.start_endpoint, methods=["POST"]),
        Route("/account/security/totp/confirm", security.confirm_endpoint, methods=["POST"]),
        Route("/account/security/totp/disable", security.disable_endpoint, methods=["POST"]),
        Route(
            "/account/security/recovery-codes",
            security.regenerate_codes_endpoint,
            methods=["POST"],
        ),
        Route("/account/passkeys", passkeys.passkeys_page_endpoint, methods=["GET"]),
        Route("/account/passkeys/options", passkeys.options_endpoint, methods=["POST"]),
        Route("/account/passkeys/add", passkeys.add_endpoint, methods=["POST"]),
        Route("/account/passkeys/remove", passkeys.remove_page_endpoint, methods=["GET"]),
        Route("/account/passkeys/remove", passkeys.remove_endpoint, methods=["POST"]),
        Route("/activate", activation.activation_page_endpoint, methods=["GET"]),
        Route("/activate", activation.activation_submit_endpoint, methods=["POST"]),
        Route("/login/forgot", password_reset.request_page_endpoint, methods=["GET"]),
        Route("/login/forgot", password_reset.request_submit_endpoint, methods=["POST"]),
        Route("/login/reset", password_reset.reset_page_endpoint, methods=["GET"]),
        Route("/login/reset", password_reset.reset_submit_endpoint, methods=["POST"]),
    ]
