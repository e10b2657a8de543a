"""RequestedAuthnContext (SAML Core §3.3.2.2.1) with pysaml2 as the SP: the class stated in the
assertion is the one the session can truthfully claim that satisfies the comparison (exact,
minimum, better, maximum); a session that falls short asks for a stronger sign-in when the
official has TOTP enrolled, and is answered Responder / NoAuthnContext otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from saml2 import BINDING_HTTP_POST
from saml2.response import StatusNoAuthnContext, StatusNoPassive
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from idp.authentication_levels import PHISHING_RESISTANT
from idp.runtime import IdpRuntime
from idp.saml import authn_context
from idp.saml.vocabulary import (
    NO_AUTHN_CONTEXT,
    PASSWORD_PROTECTED_TRANSPORT,
    REFEDS_MFA,
    RESPONDER,
    TIME_SYNC_TOKEN,
    X509,
)
from tests.idp.cas.cas_flow import is_login_form, submit_password
from tests.idp.saml.conftest import enrol_totp, submit_code
from tests.idp.saml.pysaml2_sp import (
    ServiceProvider,
    follow_to_sp,
    posted_form,
    send_to_idp,
    sign_in,
)
from tests.idp.saml.test_sign_in import SAML, response_xml

KERBEROS = "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos"


def asking(*class_refs: str, comparison: str = "exact") -> dict[str, Any]:
    return {
        "requested_authn_context": {
            "authn_context_class_ref": list(class_refs),
            "comparison": comparison,
        }
    }


def stated_class(response: Any) -> str:
    return str(response.authn_info()[0][0])


def with_password(web: TestClient, sp: ServiceProvider, **options: Any) -> Any:
    request_id, info = sp.authn_request(**options)
    return sp.parse_response(sign_in(web, send_to_idp(web, info)), request_id)


def with_session(web: TestClient, sp: ServiceProvider, **options: Any) -> Any:
    """A request answered from the live session, without a form (else the test fails)."""
    request_id, info = sp.authn_request(**options)
    return sp.parse_response(posted_form(follow_to_sp(web, send_to_idp(web, info))), request_id)


def with_password_and_code(
    web: TestClient, runtime: IdpRuntime, sp: ServiceProvider, secret: bytes, **options: Any
) -> Any:
    request_id, info = sp.authn_request(**options)
    page = follow_to_sp(web, send_to_idp(web, info))
    assert is_login_form(page), page.text[:500]
    otp_page = follow_to_sp(web, submit_password(web, page))
    answer = submit_code(web, runtime, otp_page, secret)
    return sp.parse_response(posted_form(follow_to_sp(web, answer)), request_id)


def expect_no_authn_context(web: TestClient, sp: ServiceProvider, **options: Any) -> None:
    """The request is answered at the ACS at once (no form) with Responder/NoAuthnContext."""
    request_id, info = sp.authn_request(**options)
    form = posted_form(follow_to_sp(web, send_to_idp(web, info)))
    with pytest.raises(StatusNoAuthnContext):
        sp.parse_response(form, request_id)
    status = response_xml(form).find("samlp:Status/samlp:StatusCode", SAML)
    assert status.get("Value") == RESPONDER
    assert status.find("samlp:StatusCode", SAML).get("Value") == NO_AUTHN_CONTEXT
    assert response_xml(form).find("saml:Assertion", SAML) is None


def test_exact_password_is_stated(web: TestClient, sp: ServiceProvider) -> None:
    response = with_password(web, sp, **asking(PASSWORD_PROTECTED_TRANSPORT))
    assert stated_class(response) == PASSWORD_PROTECTED_TRANSPORT


def test_minimum_totp_without_totp_enrolled_is_no_authn_context(
    web: TestClient, sp: ServiceProvider, runtime: IdpRuntime
) -> None:
    with_password(web, sp)  # a password session
    expect_no_authn_context(web, sp, **asking(TIME_SYNC_TOKEN, comparison="minimum"))
    with transaction(runtime.session_factory) as session:
        issued = audit.tail(session, action_prefix="saml.assertion_issued")
    assert len(issued) == 1  # the first sign-in only


def test_a_password_sign_in_cannot_give_totp(web: TestClient, sp: ServiceProvider) -> None:
    # No session yet: the form is shown (a second factor might be enrolled), the password
    # alone falls short, and the answer is NoAuthnContext.
    request_id, info = sp.authn_request(**asking(TIME_SYNC_TOKEN))
    form = sign_in(web, send_to_idp(web, info))
    with pytest.raises(StatusNoAuthnContext):
        sp.parse_response(form, request_id)


def test_a_class_we_never_use_is_no_authn_context_without_a_form(
    web: TestClient, sp: ServiceProvider
) -> None:
    expect_no_authn_context(web, sp, **asking(KERBEROS))


def test_totp_enrolled_asks_for_a_stronger_sign_in(
    web: TestClient, sp: ServiceProvider, runtime: IdpRuntime, official_at_work: Any
) -> None:
    first = with_password(web, sp)
    assert stated_class(first) == PASSWORD_PROTECTED_TRANSPORT
    secret = enrol_totp(runtime, official_at_work)  # enrolled after that sign-in
    # The password session falls short of "minimum TimeSyncToken": the official signs in
    # again, now with the one-time code as the login requires.
    stronger = with_password_and_code(
        web, runtime, sp, secret, **asking(TIME_SYNC_TOKEN, comparison="minimum")
    )
    assert stated_class(stronger) == TIME_SYNC_TOKEN
    # The new session satisfies the next request without a form.
    again = with_session(web, sp, **asking(TIME_SYNC_TOKEN))
    assert stated_class(again) == TIME_SYNC_TOKEN


def test_is_passive_cannot_ask_for_a_stronger_sign_in(
    web: TestClient, sp: ServiceProvider, runtime: IdpRuntime, official_at_work: Any
) -> None:
    with_password(web, sp)
    enrol_totp(runtime, official_at_work)
    request_id, info = sp.authn_request(
        is_passive="true", **asking(TIME_SYNC_TOKEN, comparison="minimum")
    )
    form = posted_form(follow_to_sp(web, send_to_idp(web, info)))
    with pytest.raises(StatusNoPassive):
        sp.parse_response(form, request_id)


@pytest.mark.parametrize(
    ("class_refs", "comparison", "stated"),
    [
        # A TOTP session can truthfully claim both classes; the comparison picks.
        ((PASSWORD_PROTECTED_TRANSPORT,), "exact", PASSWORD_PROTECTED_TRANSPORT),
        ((KERBEROS, TIME_SYNC_TOKEN), "exact", TIME_SYNC_TOKEN),
        ((PASSWORD_PROTECTED_TRANSPORT,), "minimum", TIME_SYNC_TOKEN),
        ((PASSWORD_PROTECTED_TRANSPORT,), "better", TIME_SYNC_TOKEN),
        ((PASSWORD_PROTECTED_TRANSPORT,), "maximum", PASSWORD_PROTECTED_TRANSPORT),
        ((TIME_SYNC_TOKEN,), "maximum", TIME_SYNC_TOKEN),
    ],
)
def test_comparisons_against_a_totp_session(
    web: TestClient,
    sp: ServiceProvider,
    runtime: IdpRuntime,
    official_at_work: Any,
    class_refs: tuple[str, ...],
    comparison: str,
    stated: str,
) -> None:
    secret = enrol_totp(runtime, official_at_work)
    with_password_and_code(web, runtime, sp, secret)
    response = with_session(
        web, sp, binding=BINDING_HTTP_POST, **asking(*class_refs, comparison=comparison)
    )
    assert stated_class(response) == stated


def test_better_than_password_with_a_password_session_is_no_authn_context(
    web: TestClient, sp: ServiceProvider
) -> None:
    with_password(web, sp)
    expect_no_authn_context(web, sp, **asking(PASSWORD_PROTECTED_TRANSPORT, comparison="better"))


@pytest.mark.parametrize(
    ("amr", "claimable"),
    [
        (["pwd"], (PASSWORD_PROTECTED_TRANSPORT,)),
        (["pwd", "otp"], (TIME_SYNC_TOKEN, REFEDS_MFA, PASSWORD_PROTECTED_TRANSPORT)),
        # A passkey alone (user verified): phishing-resistant and two factors, not a password.
        (["hwk", "user", "mfa"], (PHISHING_RESISTANT, REFEDS_MFA)),
        (
            ["pwd", "swk", "user", "mfa"],
            (PHISHING_RESISTANT, REFEDS_MFA, PASSWORD_PROTECTED_TRANSPORT),
        ),
        (["fed", "pwd"], (PASSWORD_PROTECTED_TRANSPORT,)),
        (["x509"], (X509,)),
    ],
)
def test_the_classes_a_session_may_state_follow_its_amr(amr, claimable) -> None:
    """AuthnContextClassRef reflects password, one-time code or passkey (Authn Context §3.4;
    the passkey class is the OIDC acr URI of the same level)."""
    assert authn_context.claimable_classes(amr) == claimable
    asked = authn_context.RequestedContext((PASSWORD_PROTECTED_TRANSPORT,), "minimum")
    assert authn_context.class_to_state(asked, amr) == claimable[0]
    phishing_resistant = authn_context.RequestedContext((PHISHING_RESISTANT,), "exact")
    expected = PHISHING_RESISTANT if "hwk" in amr or "swk" in amr else None
    assert authn_context.class_to_state(phishing_resistant, amr) == expected
