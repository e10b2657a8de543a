"""``/ca/pages/admin/merger``: bulk revoke/re-issue preview for a unit merged into another
(``ca_admin.unit_merger``): preview the certificates still naming the old unit, plan a job,
approve it (another admin: four eyes), apply it. The admin must administer both units.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import unit_merger
from ca_admin.models import MergerJob
from ca_admin.runtime import CaRuntime
from ca_admin.web.pages.admin_requests import reach_of
from ca_admin.web.pages.page_scope import PREFIX, PageScope, message_page, read_user, run_page
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_

NOTICES = {
    "planned": N_("The merger job was planned. Another administrator must approve it."),
    "approved": N_("The merger job was approved."),
    "applied": N_("The merger job was applied."),
}
UNIT_CODE_CHARS = 8


def _require_units(scope: PageScope, *codes: str) -> None:
    for code in codes:
        if not scope.runtime.approvers.may_administer(
            scope.session, actor_ref=scope.signed_in.sub, unit_code=code
        ):
            raise PermissionDenied(N_("You do not administer unit %(unit)s."), unit=code)


def _render(
    scope: PageScope,
    *,
    old_unit: str,
    new_unit: str,
    errors: dict[str, DomainError] | None = None,
    status_code: int = 200,
) -> Response:
    reach = reach_of(scope)
    errors = dict(errors or {})
    preview = None
    if old_unit and new_unit and not errors:
        try:
            _require_units(scope, old_unit, new_unit)
            preview = unit_merger.preview(scope.session, scope.runtime, old_unit, new_unit)
        except DomainError as error:
            errors[error.field or "old_unit"] = error
            status_code = error.status_code
    jobs_query = select(MergerJob).order_by(MergerJob.id.desc()).limit(20)
    if reach is not None:
        codes = sorted(reach)
        jobs_query = jobs_query.where(
            or_(MergerJob.old_unit_code.in_(codes), MergerJob.new_unit_code.in_(codes))
        )
    jobs = scope.session.scalars(jobs_query).all()
    return scope.render(
        "admin_merger.html",
        {
            "old_unit": old_unit,
            "new_unit": new_unit,
            "preview": preview,
            "jobs": jobs,
            "progress": {job.job_id: unit_merger.progress(scope.session, job) for job in jobs},
            "errors": errors,
            "notice": NOTICES.get(scope.query.get("done", "")),
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(
        scope,
        old_unit=scope.query.get("old_unit", "").strip()[:UNIT_CODE_CHARS],
        new_unit=scope.query.get("new_unit", "").strip()[:UNIT_CODE_CHARS],
    )


def _plan(scope: PageScope) -> Response:
    reach_of(scope)
    old_unit = scope.form.get("old_unit", "").strip()[:UNIT_CODE_CHARS]
    new_unit = scope.form.get("new_unit", "").strip()[:UNIT_CODE_CHARS]
    try:
        with scope.session.begin_nested():
            unit_merger.plan(
                session=scope.session,
                runtime=scope.runtime,
                actor=scope.signed_in.sub,
                old_unit_code=old_unit,
                new_unit_code=new_unit,
            )
    except DomainError as error:
        return _render(
            scope,
            old_unit=old_unit,
            new_unit=new_unit,
            errors={"plan": error},
            status_code=error.status_code,
        )
    return RedirectResponse(
        f"{PREFIX}/admin/merger?done=planned&old_unit={old_unit}&new_unit={new_unit}",
        status_code=303,
    )


def _approve(scope: PageScope) -> Response:
    reach_of(scope)
    unit_merger.approve(
        session=scope.session,
        runtime=scope.runtime,
        actor=scope.signed_in.sub,
        job_id=scope.request.path_params["job_id"],
    )
    return RedirectResponse(f"{PREFIX}/admin/merger?done=approved", status_code=303)


def _check_apply(scope: PageScope) -> Response:
    reach_of(scope)
    job = unit_merger.find_job(scope.session, scope.request.path_params["job_id"])
    _require_units(scope, job.old_unit_code, job.new_unit_code)
    # apply() runs its own transaction per batch (resumable), so it runs after this one.
    return Response(status_code=204)


async def merger_page(request: Request) -> Response:
    return await run_page(request, _show)


async def plan(request: Request) -> Response:
    return await run_page(request, _plan)


async def approve(request: Request) -> Response:
    return await run_page(request, _approve)


async def apply(request: Request) -> Response:
    checked = await run_page(request, _check_apply)
    if checked.status_code != 204:
        return checked
    runtime: CaRuntime = request.app.state.ca
    user = read_user(runtime, request)
    assert user is not None

    def work() -> None:
        unit_merger.apply(runtime=runtime, actor=user.sub, job_id=request.path_params["job_id"])

    try:
        await run_in_threadpool(work)
    except DomainError as error:
        return message_page(
            request,
            runtime,
            title=N_("The action was refused"),
            error=error,
            status_code=error.status_code,
            user=user,
            back_url=f"{PREFIX}/admin/merger",
        )
    return RedirectResponse(f"{PREFIX}/admin/merger?done=applied", status_code=303)
