"""``/ca/pages/admin/certificates``: search the certificates of the admin's units (name ignoring
diacritics, citizen ID, unit, expiry before a date, status); one certificate's page with revoke
(RFC 5280 §5.3.1 reason, optional invalidity date), hold and release. Every action goes through
``ca_admin.revocation``, which audits and re-publishes the CRL in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time

from sqlalchemy import Select, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import labels, revocation
from ca_admin.lifecycle import CA_PROFILES
from ca_admin.models import IssuedCertificate
from ca_admin.serials import openssl_serial
from ca_admin.web.pages.admin_requests import reach_of
from ca_admin.web.pages.my_certificates import STATUS_LABELS, view_of
from ca_admin.web.pages.page_scope import PREFIX, PageScope, run_page
from core.errors import DomainError, PermissionDenied
from core.text_search import fold_for_search
from core.web.i18n import N_

PAGE_SIZE = 100
# What an admin may choose on the page (certificateHold has its own button).
# Hold has its own button: the revoke form offers the other reasons.
REVOCATION_REASONS = {
    code: label for code, label in labels.REVOCATION_REASONS.items() if code != "certificateHold"
}
NOTICES = {
    "revoked": N_("The certificate was revoked."),
    "held": N_("The certificate was put on hold."),
    "released": N_("The certificate was released from hold."),
}
BAD_DATE = N_("Choose a valid date in the date picker.")


def parse_date(text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DomainError(BAD_DATE) from None


def search_statement(
    query: Mapping[str, str], *, reach: Iterable[str] | None, before: date | None
) -> Select[IssuedCertificate]:
    """The page's query: one page (and one row more) of the matching certificates, soonest
    expiry first. bench/ca_bench.py times it on a million certificates."""
    statement = select(IssuedCertificate).where(IssuedCertificate.profile.not_in(CA_PROFILES))
    if reach is not None:
        statement = statement.where(IssuedCertificate.unit_code.in_(sorted(reach)))
    if query.get("name"):
        statement = statement.where(
            IssuedCertificate.search_name.contains(fold_for_search(query["name"]), autoescape=True)
        )
    if query.get("citizen_id"):
        statement = statement.where(IssuedCertificate.citizen_id == query["citizen_id"])
    if query.get("unit"):
        statement = statement.where(IssuedCertificate.unit_code == query["unit"])
    if before is not None:
        statement = statement.where(
            IssuedCertificate.not_after < datetime.combine(before, time(), tzinfo=UTC)
        )
    if query.get("status") in ("good", "hold", "revoked"):
        statement = statement.where(IssuedCertificate.status == query["status"])
    return statement.order_by(IssuedCertificate.not_after).limit(PAGE_SIZE + 1)


def _search(scope: PageScope) -> Response:
    reach = reach_of(scope)
    query = {
        name: scope.query.get(name, "").strip()[:100]
        for name in ("name", "citizen_id", "unit", "expiring_before", "status")
    }
    errors: dict[str, DomainError] = {}
    if query["citizen_id"] and not (
        query["citizen_id"].isdigit() and len(query["citizen_id"]) == 12
    ):
        errors["citizen_id"] = DomainError(N_("A citizen ID is 12 digits."))
    if query["unit"] and reach is not None and query["unit"] not in reach:
        errors["unit"] = DomainError(N_("You do not administer this unit."))
    try:
        before = parse_date(query["expiring_before"])
    except DomainError as error:
        errors["expiring_before"], before = error, None
    now = scope.runtime.clock.now()
    rows = (
        []
        if errors
        else scope.session.scalars(search_statement(query, reach=reach, before=before)).all()
    )
    shown = rows[:PAGE_SIZE]
    return scope.render(
        "admin_certificates.html",
        {
            "query": query,
            "errors": errors,
            "rows": [view_of(row, now) for row in shown],
            "unit_names": _unit_names(scope, shown),
            "more": len(rows) > PAGE_SIZE,
            "status_labels": STATUS_LABELS,
            "units": sorted(reach) if reach is not None else None,
        },
        status_code=400 if errors else 200,
    )


def _unit_names(scope: PageScope, certificates: Sequence[IssuedCertificate]) -> dict[str, str]:
    codes = {c.unit_code for c in certificates if c.unit_code}
    return scope.runtime.directory.unit_names(scope.session, codes=codes)


def _administered(scope: PageScope) -> IssuedCertificate:
    certificate = revocation.find_certificate(scope.session, scope.request.path_params["serial"])
    if not scope.runtime.approvers.may_administer(
        scope.session, actor_ref=scope.signed_in.sub, unit_code=certificate.unit_code
    ):
        raise PermissionDenied(N_("You do not administer this official's unit."))
    return certificate


def _render_one(
    scope: PageScope,
    certificate: IssuedCertificate,
    *,
    errors: dict[str, DomainError] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return scope.render(
        "admin_certificate.html",
        {
            "certificate": view_of(certificate, scope.runtime.clock.now()),
            "row": certificate,
            "unit_names": _unit_names(scope, [certificate]),
            "reasons": REVOCATION_REASONS,
            "status_labels": STATUS_LABELS,
            "errors": errors or {},
            "values": values or {},
            "notice": NOTICES.get(scope.query.get("done", "")),
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render_one(scope, _administered(scope))


def _act(scope: PageScope, action: str) -> Response:
    certificate = _administered(scope)
    values = {
        "reason": scope.form.get("reason", ""),
        "invalidity_date": scope.form.get("invalidity_date", ""),
    }
    errors: dict[str, DomainError] = {}
    invalidity = None
    if action == "revoke":
        if values["reason"] not in REVOCATION_REASONS:
            errors["reason"] = DomainError(N_("Choose a revocation reason."))
        try:
            day = parse_date(values["invalidity_date"])
            invalidity = datetime.combine(day, time(), tzinfo=UTC) if day else None
        except DomainError as error:
            errors["invalidity_date"] = error
    if errors:
        return _render_one(scope, certificate, errors=errors, values=values, status_code=400)
    try:
        with scope.session.begin_nested():
            if action == "revoke":
                revocation.revoke(
                    session=scope.session,
                    runtime=scope.runtime,
                    actor=scope.signed_in.sub,
                    serial=certificate.serial,
                    reason=values["reason"],
                    invalidity_date=invalidity,
                )
            elif action == "hold":
                revocation.revoke(
                    session=scope.session,
                    runtime=scope.runtime,
                    actor=scope.signed_in.sub,
                    serial=certificate.serial,
                    reason="certificateHold",
                )
            else:
                revocation.release_hold(
                    session=scope.session,
                    runtime=scope.runtime,
                    actor=scope.signed_in.sub,
                    serial=certificate.serial,
                )
    except DomainError as error:
        field = error.field if error.field in ("reason", "invalidity_date") else action
        scope.session.refresh(certificate)
        return _render_one(
            scope,
            certificate,
            errors={field: error},
            values=values,
            status_code=error.status_code,
        )
    done = {"revoke": "revoked", "hold": "held", "release": "released"}[action]
    return RedirectResponse(
        f"{PREFIX}/admin/certificates/{openssl_serial(certificate.serial)}?done={done}",
        status_code=303,
    )


async def search(request: Request) -> Response:
    return await run_page(request, _search)


async def show(request: Request) -> Response:
    return await run_page(request, _show)


async def revoke(request: Request) -> Response:
    return await run_page(request, lambda scope: _act(scope, "revoke"))


async def hold(request: Request) -> Response:
    return await run_page(request, lambda scope: _act(scope, "hold"))


async def release(request: Request) -> Response:
    return await run_page(request, lambda scope: _act(scope, "release"))
