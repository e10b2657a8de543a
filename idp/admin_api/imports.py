"""Bulk import over HTTP: ``/admin/api/v1/imports`` (issue 3, "Bulk import" and "Delegated
administration").

- ``POST /imports?dry_run=true|false`` — the file (see :mod:`idp.admin_api.uploads`); answers
  ``202 Accepted`` with ``Location`` and the job, then plans (and applies) in the background;
- ``GET /imports/{job_id}`` — status (queued/running/done/failed), rows, counts, times;
- ``GET /imports/{job_id}/results.csv`` — one line per row (per refusal), in the caller's language;
- ``GET /imports/{job_id}/activation-codes.zip`` — the codes of the accounts the job created:
  once, for the administrator who started it, within a day of its end;
- ``POST /imports/{job_id}/resume`` — finish a job whose process was killed.

Who sees a job: the administrator who started it, and system administrators. Rows for units
outside the caller's scope are refused one by one, exactly as ``import-users --as`` does. A
refused file (encoding, format, columns, size) is 400/413 with the CLI's message, translated
(Accept-Language, Vietnamese by default), and leaves no job behind.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.support import Translations
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import core
import idp
from core import audit
from core.db import transaction
from core.errors import Conflict, DomainError, NotFound, PermissionDenied
from core.opaque_tokens import new_opaque_token
from core.web.client_certificate import presented_certificate
from core.web.i18n import N_, load_translations
from idp.admin_api import code_vault
from idp.admin_api.auth import AdminCaller, authenticate, error_response, locale_of
from idp.admin_api.import_jobs import (
    FAILED,
    QUEUED,
    RUNNING,
    UPLOAD_NAME,
    ImportRunner,
    RunOrder,
    api_state,
    codes_available_until,
    counts_of,
    public_status,
    remove_leftover_spools,
    results_csv,
    server_secret,
    set_api_state,
    spool_dir,
    sweep_expired_codes,
    wipe_codes,
)
from idp.admin_api.uploads import BadUpload, receive_upload
from idp.bulk_import import activation
from idp.bulk_import.reading import ImportFile, read_bytes
from idp.models import ImportJob
from idp.oauth.http import NO_STORE, request_client_address
from idp.runtime import IdpRuntime

PREFIX = "/admin/api/v1"
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})

JOB_NOT_FOUND = N_("No such import job.")


class Gone(DomainError):
    status_code = 410
    code = "gone"


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def job_url(job_id: str) -> str:
    return f"{PREFIX}/imports/{job_id}"


def job_view(job: ImportJob) -> dict[str, Any]:
    state = api_state(job)
    status = public_status(job)
    codes = state.get("codes") or {}
    until = codes_available_until(state)
    started = state.get("started_at")
    view: dict[str, Any] = {
        "job_id": job.job_id,
        "file_name": job.file_name,
        "dry_run": job.dry_run,
        "status": status,
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "counts": counts_of(job),
        "created_at": _iso(job.created_at),
        "started_at": _iso(datetime.fromisoformat(started)) if started else None,
        "finished_at": _iso(job.finished_at) if status in ("done", FAILED) else None,
        "results_url": f"{job_url(job.job_id)}/results.csv",
    }
    if not job.dry_run:
        view["activation_codes"] = {
            "count": int(codes.get("count", 0)),
            "available_until": _iso(until),
            "downloaded_at": codes.get("downloaded_at"),
            "url": f"{job_url(job.job_id)}/activation-codes.zip",
        }
    return view


def _flag(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadUpload(N_("dry_run must be true or false."), field="dry_run")


class ImportsApi:
    """The endpoints, bound to one app's runner (no global state: the app factory builds it)."""

    def __init__(self) -> None:
        self.runner = ImportRunner()
        self._translations: dict[str, Translations] | None = None
        self._lock = threading.Lock()

    def translations(self) -> dict[str, Translations]:
        with self._lock:
            if self._translations is None:
                self._translations = load_translations(
                    [
                        Path(core.__file__).parent / "web" / "locale",
                        Path(idp.__file__).parent / "locale",
                    ]
                )
            return self._translations

    def translate(self, locale: str) -> Callable[[str], str]:
        catalogue = self.translations().get(locale)
        return catalogue.gettext if catalogue is not None else str

    # ----------------------------------------------------------------------------------------
    # Plumbing: authenticate first (before any body is read), one transaction per step

    async def _caller(self, request: Request) -> AdminCaller:
        runtime: IdpRuntime = request.app.state.idp

        def work() -> AdminCaller:
            with transaction(runtime.session_factory) as session:
                return authenticate(
                    runtime,
                    session,
                    request.headers.get("authorization"),
                    presented_certificate(request.scope, runtime.settings),
                )

        return await run_in_threadpool(work)

    async def _in_transaction(
        self,
        request: Request,
        handler: Callable[[IdpRuntime, Session, AdminCaller, str], Response],
    ) -> Response:
        runtime: IdpRuntime = request.app.state.idp
        locale = locale_of(request)
        try:
            caller = await self._caller(request)

            def work() -> Response:
                with transaction(runtime.session_factory) as session:
                    return handler(runtime, session, caller, locale)

            return await run_in_threadpool(work)
        except DomainError as error:
            return error_response(error, self.translations(), locale)

    @staticmethod
    def _job(session: Session, caller: AdminCaller, job_id: str) -> ImportJob:
        job = session.scalar(select(ImportJob).where(ImportJob.job_id == job_id[:64]))
        # Another admin's job answers like a missing one: its existence is not theirs to know.
        if job is None or not (job.actor == caller.actor or caller.reach.system):
            raise NotFound(JOB_NOT_FOUND)
        return job

    # ----------------------------------------------------------------------------------------
    # POST /imports

    async def submit(self, request: Request) -> Response:
        runtime: IdpRuntime = request.app.state.idp
        locale = locale_of(request)
        job_id = new_opaque_token(32)
        directory = spool_dir(runtime, job_id)
        try:
            caller = await self._caller(request)
            dry_run = _flag(request.query_params.get("dry_run"))
            try:
                name = await receive_upload(request, directory / UPLOAD_NAME)
                address = request_client_address(request, runtime.settings)
                view = await run_in_threadpool(
                    self.start, runtime, caller, job_id, name, dry_run, address
                )
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
        except DomainError as error:
            return error_response(error, self.translations(), locale)
        headers = {**NO_STORE, "Location": job_url(view["job_id"]), "Content-Language": locale}
        return JSONResponse(view, status_code=202, headers=headers)

    def start(
        self,
        runtime: IdpRuntime,
        caller: AdminCaller,
        job_id: str,
        name: str,
        dry_run: bool,
        address: str | None,
    ) -> dict[str, Any]:
        upload = spool_dir(runtime, job_id) / UPLOAD_NAME
        imported = read_bytes(upload.read_bytes(), name=name)  # FileRefused: 400, nothing kept
        now = runtime.clock.now()
        with transaction(runtime.session_factory) as session:
            sweep_expired_codes(session, now=now)
            remove_leftover_spools(runtime, session)
            job = None if dry_run else self._interrupted(session, caller, imported)
            resumed = job is not None
            if job is None:
                job = ImportJob(
                    job_id=job_id,
                    file_name=imported.name[:300],
                    file_digest=imported.digest,
                    dry_run=dry_run,
                    actor=caller.actor,
                    created_at=now,
                    summary={},
                    processed_rows=0,
                )
                session.add(job)
            else:
                # The same file again: finish the interrupted job rather than start another
                # (the CLI does the same, keyed on the file's SHA-256).
                target = spool_dir(runtime, job.job_id)
                target.mkdir(mode=0o700, parents=True, exist_ok=True)
                upload.replace(target / UPLOAD_NAME)
            job.status = QUEUED
            job.total_rows = len(imported.rows)
            job.finished_at = None
            session.flush()
            audit.record(
                session,
                clock=runtime.clock,
                actor=caller.actor,
                action="import.submit",
                target=f"import:{job.job_id}",
                details={
                    "file": imported.name,
                    "digest": imported.digest,
                    "rows": len(imported.rows),
                    "dry_run": dry_run,
                    "resumes": resumed,
                },
                client_address=address,
            )
            view = job_view(job)
        if dry_run or view["job_id"] != job_id:
            # A dry run keeps its rows in memory only (the plaintext file is not kept); a
            # resumed job keeps the file in its own directory.
            shutil.rmtree(spool_dir(runtime, job_id), ignore_errors=True)
        self._run(runtime, caller, view["job_id"], imported, dry_run)
        return view

    def _interrupted(
        self, session: Session, caller: AdminCaller, imported: ImportFile
    ) -> ImportJob | None:
        candidates = session.scalars(
            select(ImportJob)
            .where(
                ImportJob.file_digest == imported.digest,
                ImportJob.dry_run.is_(False),
                ImportJob.actor == caller.actor,
                ImportJob.status.in_((QUEUED, RUNNING, FAILED)),
            )
            .order_by(ImportJob.id.desc())
        )
        for job in candidates:
            if not self.runner.is_active(job.job_id):
                return job
            raise Conflict(
                N_("This file is already being imported (job %(job_id)s)."), job_id=job.job_id
            )
        return None

    def _run(
        self,
        runtime: IdpRuntime,
        caller: AdminCaller,
        job_id: str,
        imported: ImportFile,
        dry_run: bool,
    ) -> None:
        self.runner.submit(
            runtime,
            RunOrder(
                job_id=job_id,
                file=imported,
                dry_run=dry_run,
                actor=caller.actor,
                reach=caller.reach,
            ),
        )

    # ----------------------------------------------------------------------------------------
    # GET /imports/{job_id}

    async def show(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]

        def handler(
            runtime: IdpRuntime, session: Session, caller: AdminCaller, locale: str
        ) -> Response:
            view = job_view(self._job(session, caller, job_id))
            return JSONResponse(view, headers={**NO_STORE, "Content-Language": locale})

        return await self._in_transaction(request, handler)

    # ----------------------------------------------------------------------------------------
    # GET /imports/{job_id}/results.csv

    async def results(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]

        def handler(
            runtime: IdpRuntime, session: Session, caller: AdminCaller, locale: str
        ) -> Response:
            job = self._job(session, caller, job_id)
            state = api_state(job)
            if not state.get("concluded"):
                raise Conflict(N_("The import is not finished yet; its results come at the end."))
            body = results_csv(state.get("results"), self.translate(locale))
            return Response(
                body,
                media_type="text/csv; charset=utf-8",
                headers={
                    **NO_STORE,
                    "Content-Language": locale,
                    "Content-Disposition": f'attachment; filename="import-{job.id}-results.csv"',
                },
            )

        return await self._in_transaction(request, handler)

    # ----------------------------------------------------------------------------------------
    # GET /imports/{job_id}/activation-codes.zip

    async def activation_codes(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]

        def handler(
            runtime: IdpRuntime, session: Session, caller: AdminCaller, locale: str
        ) -> Response:
            job = self._job(session, caller, job_id)
            if job.actor != caller.actor:
                raise PermissionDenied(
                    N_("Only the administrator who started the import can fetch its codes.")
                )
            state = api_state(job)
            codes = state.get("codes") or {}
            if job.dry_run:
                raise NotFound(N_("A dry run creates no accounts and no activation codes."))
            if not state.get("concluded") or public_status(job) in (QUEUED, RUNNING):
                raise Conflict(N_("The import is not finished yet; its codes come at the end."))
            if codes.get("downloaded_at"):
                return self._gone(N_("The activation codes were already downloaded."), locale)
            until = codes_available_until(state)
            if until is None:
                if codes.get("expired_at"):
                    return self._gone(
                        N_("The activation codes were not downloaded in time and are deleted."),
                        locale,
                    )
                raise NotFound(N_("This import created no accounts, so there are no codes."))
            now = runtime.clock.now()
            if until <= now:
                wipe_codes(state, reason="expired_at", at=now)
                set_api_state(job, state)
                return self._gone(
                    N_("The activation codes were not downloaded in time and are deleted."),
                    locale,
                )
            try:
                opened = code_vault.open_sealed(
                    codes["sealed"], server_secret=server_secret(runtime), job_id=job.job_id
                )
            except code_vault.VaultError:
                raise Conflict(
                    N_("The activation codes cannot be opened (the server secret changed).")
                ) from None
            # Wiped in the transaction that hands them out: a second download finds nothing.
            wipe_codes(state, reason="downloaded_at", at=now, by=caller.actor)
            set_api_state(job, state)
            audit.record(
                session,
                clock=runtime.clock,
                actor=caller.actor,
                action="import.activation_codes_downloaded",
                target=f"import:{job.job_id}",
                details={"codes": sum(len(rows) for rows in opened.values())},
            )
            return Response(
                code_vault.as_zip(opened, titles=activation.headers(self.translate(locale))),
                media_type="application/zip",
                headers={
                    **NO_STORE,
                    "Content-Disposition": (
                        f'attachment; filename="import-{job.id}-activation-codes.zip"'
                    ),
                },
            )

        return await self._in_transaction(request, handler)

    def _gone(self, message: str, locale: str) -> Response:
        # Returned, not raised: the wipe that goes with it must be committed.
        return error_response(Gone(message), self.translations(), locale)

    # ----------------------------------------------------------------------------------------
    # POST /imports/{job_id}/resume

    async def resume(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        resumed: dict[str, Any] = {}

        def handler(
            runtime: IdpRuntime, session: Session, caller: AdminCaller, locale: str
        ) -> Response:
            job = self._job(session, caller, job_id)
            if job.actor != caller.actor:
                raise PermissionDenied(
                    N_("Only the administrator who started the import can resume it.")
                )
            if job.dry_run:
                raise Conflict(N_("A dry run is not resumed; upload the file again."))
            status = public_status(job)
            if status == "done":
                raise Conflict(N_("This import is already done."))
            if self.runner.is_active(job.job_id):
                raise Conflict(N_("This import is still running."))
            upload = spool_dir(runtime, job.job_id) / UPLOAD_NAME
            if not upload.is_file():
                raise Conflict(
                    N_(
                        "The uploaded file is not kept on this server; upload the same file "
                        "again to finish the import."
                    )
                )
            imported = read_bytes(upload.read_bytes(), name=job.file_name)
            if imported.digest != job.file_digest:
                raise Conflict(N_("The kept file does not match the job; upload it again."))
            job.status = QUEUED
            job.finished_at = None
            audit.record(
                session,
                clock=runtime.clock,
                actor=caller.actor,
                action="import.resume_requested",
                target=f"import:{job.job_id}",
                details={"processed_rows": job.processed_rows, "rows": len(imported.rows)},
            )
            resumed.update(file=imported, caller=caller)
            return JSONResponse(
                job_view(job),
                status_code=202,
                headers={**NO_STORE, "Location": job_url(job.job_id), "Content-Language": locale},
            )

        response = await self._in_transaction(request, handler)
        if resumed:
            # After the commit: the background run must see the job queued.
            self._run(
                request.app.state.idp, resumed["caller"], job_id, resumed["file"], dry_run=False
            )
        return response
