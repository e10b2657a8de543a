"""Admin pages: bulk import of officials from a CSV/XLSX file (issue 5, "import").

1. Upload (a multipart form with its CSRF token): the file is checked exactly as the CLI and
   the admin API check it, and a dry run starts in the background.
2. The dry run's page shows its progress, then every row with its line number, what it would
   do and, highlighted, why a row is refused — in the page's language.
3. "Apply" starts the real import from the same file, in the background; its page shows a
   progress bar (a meta refresh every few seconds: no JavaScript needed) until it is done, then
   the per-row results (CSV download) and the activation codes (one download).

The jobs are the admin API's (:mod:`idp.admin_api.import_jobs`, one runner thread per process
for these pages): the same job rows, audit entries, scope rules (rows for units outside the
admin's scope are refused one by one), resume of an interrupted import, sealed activation codes.
Between the dry run and "apply" the uploaded file is kept, owner-only, under
``<var_dir>/admin-page-imports/<dry-run job>/`` for :data:`KEEP_FOR`; "apply" moves it away
atomically, so a double submit starts one import only.
"""

from __future__ import annotations

import os
import shutil
import time as wall_time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message

from core import audit
from core.errors import Conflict, DomainError
from core.opaque_tokens import new_opaque_token
from core.web.csrf import CsrfError
from core.web.i18n import N_
from idp import labels, units
from idp.admin_api import code_vault
from idp.admin_api.auth import AdminCaller
from idp.admin_api.import_jobs import (
    QUEUED,
    RUNNING,
    UPLOAD_NAME,
    api_state,
    codes_available_until,
    counts_of,
    decode_results,
    public_status,
    results_csv,
    server_secret,
    set_api_state,
    spool_dir,
    wipe_codes,
)
from idp.admin_api.imports import ImportsApi
from idp.admin_api.uploads import MULTIPART_OVERHEAD
from idp.bulk_import import activation, template
from idp.bulk_import.reading import MAX_FILE_BYTES
from idp.models import ImportJob
from idp.oauth.http import request_client_address
from idp.request_scope import RequestScope
from idp.runtime import IdpRuntime
from idp.web.admin_pages import guard
from idp.web.admin_pages.guard import Admin, error_page, not_found, query_of, render

KEEP_DIR_NAME = "admin-page-imports"
KEEP_FOR = timedelta(hours=24)
APPLIED_AS = "applied-as"
NAME_FILE = "name"
ROWS_PER_PAGE = 100
REFRESH_SECONDS = 2
RECENT_JOBS = 20
ACTION_LABELS = labels.IMPORT_ROW_ACTIONS
STATUS_LABELS = labels.IMPORT_JOB_STATUSES
NO_FILE = N_("Choose a CSV or XLSX file.")
TOO_LARGE = N_("The file is larger than %(limit)s MB. Split it into smaller files.")
BAD_FORM = N_("The upload could not be read. Please try again.")
NOT_KEPT = N_(
    "The file of this dry run is no longer kept (it is kept for 24 hours, until it is "
    "applied). Upload it again."
)
ALREADY_APPLIED = N_("This dry run was already applied.")
NOT_YOUR_JOB = N_("Only the administrator who started the import can do this.")
NOT_FINISHED = N_("The import is not finished yet.")
CODES_TAKEN = N_("The activation codes were already downloaded.")
CODES_EXPIRED = N_("The activation codes were not downloaded in time and are deleted.")
NO_CODES = N_("This import created no accounts, so there are no activation codes.")
CODES_UNREADABLE = N_("The activation codes cannot be opened (the server secret changed).")


def keep_dir(runtime: IdpRuntime, job_id: str) -> Path:
    return runtime.settings.var_dir / KEEP_DIR_NAME / job_id


def _sweep_kept(runtime: IdpRuntime) -> None:
    """Forget files of dry runs nobody applied (they hold officials' personal data)."""
    root = runtime.settings.var_dir / KEEP_DIR_NAME
    if not root.is_dir():
        return
    limit = wall_time.time() - KEEP_FOR.total_seconds()
    for directory in root.iterdir():
        try:
            if directory.stat().st_mtime < limit:
                shutil.rmtree(directory, ignore_errors=True)
        except FileNotFoundError:
            continue


def _caller(admin: Admin) -> AdminCaller:
    return AdminCaller(
        account_id=admin.account.id, username=admin.account.username, reach=admin.reach
    )


def _download(content: bytes, media_type: str, name: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@dataclass(frozen=True)
class _Gate:
    caller: AdminCaller | None
    refusal: Response | None


class ImportPages:
    """The import pages of one app, with their own background runner (the admin API's code)."""

    def __init__(self, api: ImportsApi) -> None:
        self.api = api

    def routes(self) -> list[Route]:
        job = "/admin/imports/{job_id}"
        return [
            Route("/admin/imports", guard.admin_page(self.index), methods=["GET"]),
            Route("/admin/imports", self.upload, methods=["POST"]),
            # Before the job routes: "import-template.csv" is no job id.
            Route(
                f"/admin/imports/{template.CSV_NAME}",
                guard.admin_page(self.template_csv),
                methods=["GET"],
            ),
            Route(
                f"/admin/imports/{template.XLSX_NAME}",
                guard.admin_page(self.template_xlsx),
                methods=["GET"],
            ),
            Route(job, guard.admin_page(self.show), methods=["GET"]),
            Route(f"{job}/apply", self.apply, methods=["POST"]),
            Route(f"{job}/results.csv", guard.admin_page(self.results), methods=["GET"]),
            Route(f"{job}/activation-codes", guard.admin_action(self.codes), methods=["POST"]),
        ]

    # ----------------------------------------------------------------------------------------
    # Plumbing

    async def _gate(self, request: Request) -> _Gate:
        """Who is asking, checked before any large body is read (and in a transaction of its
        own: the import's transactions must not wait behind this request's)."""
        found: list[AdminCaller] = []

        def check(scope: RequestScope, admin: Admin) -> Response:
            found.append(_caller(admin))
            return Response(status_code=204)

        response = await guard.admin_page(check)(request)
        if found:
            return _Gate(caller=found[0], refusal=None)
        return _Gate(caller=None, refusal=response)

    def _visible_job(self, scope: RequestScope, admin: Admin, job_id: str) -> ImportJob:
        job = scope.session.scalar(select(ImportJob).where(ImportJob.job_id == job_id[:64]))
        # Another admin's job answers like a missing one, as in the admin API.
        if job is None or not (job.actor == admin.actor or admin.is_system):
            raise not_found()
        return job

    def _render_index(
        self,
        scope: RequestScope,
        admin: Admin,
        *,
        error: DomainError | None = None,
        status_code: int = 200,
    ) -> Response:
        statement = select(ImportJob).order_by(ImportJob.id.desc()).limit(RECENT_JOBS)
        if not admin.is_system:
            statement = statement.where(ImportJob.actor == admin.actor)
        jobs = list(scope.session.scalars(statement))
        return render(
            scope,
            admin,
            "admin/imports.html",
            {
                "jobs": [(job, public_status(job)) for job in jobs],
                "status_labels": STATUS_LABELS,
                "error": error,
                "max_mb": MAX_FILE_BYTES // 1_048_576,
                "template_csv": f"/admin/imports/{template.CSV_NAME}",
                "template_xlsx": f"/admin/imports/{template.XLSX_NAME}",
            },
            status_code=status_code,
        )

    # ----------------------------------------------------------------------------------------
    # GET /admin/imports

    def index(self, scope: RequestScope, admin: Admin) -> Response:
        _sweep_kept(scope.runtime)
        return self._render_index(scope, admin)

    # ----------------------------------------------------------------------------------------
    # GET /admin/imports/import-template.csv and .xlsx

    def template_csv(self, scope: RequestScope, admin: Admin) -> Response:
        return _download(template.template_csv(), "text/csv; charset=utf-8", template.CSV_NAME)

    def template_xlsx(self, scope: RequestScope, admin: Admin) -> Response:
        return _download(template.template_xlsx(), template.XLSX_MEDIA_TYPE, template.XLSX_NAME)

    # ----------------------------------------------------------------------------------------
    # POST /admin/imports (multipart: csrf_token + file)

    async def _receive(self, request: Request, destination: Path) -> str:
        """Stream the form's file to ``destination``; the CSRF token is checked first among
        the form's fields. Refuses, without holding it, a body over the limit."""
        limit = MAX_FILE_BYTES
        body_limit = limit + MULTIPART_OVERHEAD
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "multipart/form-data":
            raise DomainError(BAD_FORM, field="file")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body_limit:
            raise DomainError(TOO_LARGE, field="file", limit=limit // 1_048_576)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await request.receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > body_limit:
                    raise DomainError(TOO_LARGE, field="file", limit=limit // 1_048_576)
            return message

        counted = Request(request.scope, counting_receive)
        try:
            form = await counted.form(max_files=1, max_fields=4)
        except (MultiPartException, ClientDisconnect):
            raise DomainError(BAD_FORM, field="file") from None
        try:
            token = form.get("csrf_token")
            request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
            upload: Any = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise DomainError(NO_FILE, field="file")
            if upload.size is not None and upload.size > limit:
                raise DomainError(TOO_LARGE, field="file", limit=limit // 1_048_576)
            destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(descriptor, "wb") as handle:
                await upload.seek(0)
                await run_in_threadpool(shutil.copyfileobj, upload.file, handle, 1024 * 1024)
            name = os.path.basename(upload.filename.replace("\\", "/"))
            return "".join(ch for ch in name if ch.isprintable()).strip()[:200] or "upload.csv"
        finally:
            await form.close()

    async def _refused_upload(self, request: Request, error: DomainError) -> Response:
        def page(scope: RequestScope, admin: Admin) -> Response:
            return self._render_index(scope, admin, error=error, status_code=error.status_code)

        return await guard.admin_page(page)(request)

    async def upload(self, request: Request) -> Response:
        gate = await self._gate(request)
        if gate.caller is None:
            assert gate.refusal is not None
            return gate.refusal
        runtime: IdpRuntime = request.app.state.idp
        job_id = new_opaque_token(32)
        spooled = spool_dir(runtime, job_id) / UPLOAD_NAME
        kept = keep_dir(runtime, job_id)
        try:
            name = await self._receive(request, spooled)
            kept.mkdir(mode=0o700, parents=True, exist_ok=True)
            await run_in_threadpool(shutil.copyfile, spooled, kept / UPLOAD_NAME)
            (kept / NAME_FILE).write_text(name, encoding="utf-8")
            address = request_client_address(request, runtime.settings)
            view = await run_in_threadpool(
                self.api.start, runtime, gate.caller, job_id, name, True, address
            )
        except CsrfError as error:
            shutil.rmtree(spooled.parent, ignore_errors=True)
            shutil.rmtree(kept, ignore_errors=True)
            return error_page(request, status_code=403, title=N_("Form expired"), message=error)
        except DomainError as error:
            shutil.rmtree(spooled.parent, ignore_errors=True)
            shutil.rmtree(kept, ignore_errors=True)
            return await self._refused_upload(request, error)
        return RedirectResponse(f"/admin/imports/{view['job_id']}", status_code=303)

    # ----------------------------------------------------------------------------------------
    # GET /admin/imports/{job_id}

    def show(self, scope: RequestScope, admin: Admin) -> Response:
        job = self._visible_job(scope, admin, scope.request.path_params["job_id"])
        status = public_status(job)
        state = api_state(job)
        query = query_of(scope)
        only_errors = query.get("only") == "errors"
        rows: list[dict[str, Any]] = []
        unit_names: dict[str, str] = {}
        total_shown = 0
        page = guard.page_number(scope)
        if status == "done" and state.get("results"):
            decoded = decode_results(state["results"])
            if only_errors:
                decoded = [row for row in decoded if row["e"]]
            total_shown = len(decoded)
            rows = decoded[(page - 1) * ROWS_PER_PAGE : page * ROWS_PER_PAGE]
        # Rows of jobs from before names and units were kept have neither: shown as "—".
        unit_names = units.names_by_code(
            scope.session, (row["uc"] for row in rows if row.get("uc"))
        )
        kept = keep_dir(scope.runtime, job.job_id)
        applied_as = (
            (kept / APPLIED_AS).read_text(encoding="utf-8").strip()
            if (kept / APPLIED_AS).is_file()
            else None
        )
        can_apply = (
            job.dry_run
            and status == "done"
            and job.actor == admin.actor
            and applied_as is None
            and (kept / UPLOAD_NAME).is_file()
        )
        codes = state.get("codes") or {}
        until = codes_available_until(state)
        pages = guard.Pager(
            page=page,
            size=ROWS_PER_PAGE,
            total=total_shown,
            params=tuple(scope.http.query),
            path=scope.request.url.path,
        )
        percent = (
            100
            if status == "done"
            else int(100 * job.processed_rows / job.total_rows)
            if job.total_rows
            else 0
        )
        return render(
            scope,
            admin,
            "admin/import_job.html",
            {
                "job": job,
                "status": status,
                "status_labels": STATUS_LABELS,
                "action_labels": ACTION_LABELS,
                "counts": counts_of(job),
                "percent": percent,
                "rows": rows,
                "unit_names": unit_names,
                "pager": pages,
                "only_errors": only_errors,
                "can_apply": can_apply,
                "applied_as": applied_as,
                "refresh": REFRESH_SECONDS if status in (QUEUED, RUNNING) else None,
                "failed": state.get("failure"),
                "codes_count": int(codes.get("count", 0)),
                "codes_until": until if until and until > scope.runtime.clock.now() else None,
                "codes_downloaded": codes.get("downloaded_at"),
                "mine": job.actor == admin.actor,
            },
        )

    # ----------------------------------------------------------------------------------------
    # POST /admin/imports/{job_id}/apply

    async def apply(self, request: Request) -> Response:
        form = await request.form()
        token = form.get("csrf_token")
        try:
            request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
        except CsrfError as error:
            return error_page(request, status_code=403, title=N_("Form expired"), message=error)
        gate = await self._gate(request)
        if gate.caller is None:
            assert gate.refusal is not None
            return gate.refusal
        caller = gate.caller
        runtime: IdpRuntime = request.app.state.idp
        dry_run_id = str(request.path_params["job_id"])[:64]
        checked: list[ImportJob] = []

        def check(scope: RequestScope, admin: Admin) -> Response:
            job = self._visible_job(scope, admin, dry_run_id)
            if job.actor != admin.actor:
                raise DomainError(NOT_YOUR_JOB)
            if not job.dry_run or public_status(job) != "done":
                raise Conflict(NOT_FINISHED)
            checked.append(job)
            return Response(status_code=204)

        response = await guard.admin_page(check)(request)
        if not checked:
            return response
        kept = keep_dir(runtime, dry_run_id)
        if (kept / APPLIED_AS).is_file():
            applied = (kept / APPLIED_AS).read_text(encoding="utf-8").strip()
            return RedirectResponse(f"/admin/imports/{applied}", status_code=303)
        job_id = new_opaque_token(32)
        target = spool_dir(runtime, job_id)
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            # Atomic: of two submits of the same form, one finds the file gone.
            os.replace(kept / UPLOAD_NAME, target / UPLOAD_NAME)
        except FileNotFoundError:
            shutil.rmtree(target, ignore_errors=True)
            return await self._refused_apply(request, dry_run_id)
        name = (kept / NAME_FILE).read_text(encoding="utf-8").strip() or checked[0].file_name
        address = request_client_address(request, runtime.settings)
        try:
            view = await run_in_threadpool(
                self.api.start, runtime, caller, job_id, name, False, address
            )
        except DomainError as error:
            # Put the file back: the admin may try again once the cause is gone.
            if (target / UPLOAD_NAME).is_file():
                os.replace(target / UPLOAD_NAME, kept / UPLOAD_NAME)
            shutil.rmtree(target, ignore_errors=True)
            return await self._refused_upload(request, error)
        (kept / APPLIED_AS).write_text(view["job_id"], encoding="utf-8")
        return RedirectResponse(f"/admin/imports/{view['job_id']}", status_code=303)

    async def _refused_apply(self, request: Request, dry_run_id: str) -> Response:
        kept = keep_dir(request.app.state.idp, dry_run_id)
        if (kept / APPLIED_AS).is_file():
            applied = (kept / APPLIED_AS).read_text(encoding="utf-8").strip()
            return RedirectResponse(f"/admin/imports/{applied}", status_code=303)
        return await self._refused_upload(request, Conflict(NOT_KEPT))

    # ----------------------------------------------------------------------------------------
    # GET /admin/imports/{job_id}/results.csv

    def results(self, scope: RequestScope, admin: Admin) -> Response:
        job = self._visible_job(scope, admin, scope.request.path_params["job_id"])
        state = api_state(job)
        if not state.get("concluded"):
            raise Conflict(NOT_FINISHED)
        translate: Callable[[str], str] = self.api.translate(scope.locale())
        return Response(
            results_csv(state.get("results"), translate),
            media_type="text/csv; charset=utf-8",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="import-{job.id}-results.csv"',
            },
        )

    # ----------------------------------------------------------------------------------------
    # POST /admin/imports/{job_id}/activation-codes (once; a POST because it wipes them)

    def codes(self, scope: RequestScope, admin: Admin) -> Response:
        job = self._visible_job(scope, admin, scope.request.path_params["job_id"])
        if job.actor != admin.actor:
            raise DomainError(NOT_YOUR_JOB)
        state = api_state(job)
        codes = state.get("codes") or {}
        if job.dry_run:
            raise not_found()
        if not state.get("concluded") or public_status(job) in (QUEUED, RUNNING):
            raise Conflict(NOT_FINISHED)
        if codes.get("downloaded_at"):
            raise Conflict(CODES_TAKEN)
        until = codes_available_until(state)
        if until is None:
            raise Conflict(CODES_EXPIRED if codes.get("expired_at") else NO_CODES)
        now: datetime = scope.runtime.clock.now()
        if until <= now:
            wipe_codes(state, reason="expired_at", at=now)
            set_api_state(job, state)
            # Returned, not raised: the wipe must be committed.
            return error_page(
                scope, status_code=410, title=N_("Request refused"), message=CODES_EXPIRED
            )
        try:
            opened = code_vault.open_sealed(
                codes["sealed"], server_secret=server_secret(scope.runtime), job_id=job.job_id
            )
        except code_vault.VaultError:
            raise Conflict(CODES_UNREADABLE) from None
        # Wiped in the transaction that hands them out: a second download finds nothing.
        wipe_codes(state, reason="downloaded_at", at=now, by=admin.actor)
        set_api_state(job, state)
        audit.record(
            scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            action="import.activation_codes_downloaded",
            target=f"import:{job.job_id}",
            details={"codes": sum(len(rows) for rows in opened.values()), "via": "admin_pages"},
            client_address=scope.http.client_address,
        )
        return Response(
            code_vault.as_zip(
                opened, titles=activation.headers(self.api.translate(scope.locale()))
            ),
            media_type="application/zip",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": (
                    f'attachment; filename="import-{job.id}-activation-codes.zip"'
                ),
            },
        )
