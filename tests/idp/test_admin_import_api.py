"""The admin API for bulk import (/admin/api/v1/imports) through the real ASGI app, with real
access tokens from the authorization code flow, on SQLite and PostgreSQL.

Every job runs on the real background path (the app's import thread); tests wait for it by
polling the status endpoint.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from core.audit import AuditEntry
from core.db import transaction
from idp import accounts, admin_scope, units
from idp.admin_api.import_jobs import (
    CODES_DIR_NAME,
    ORPHAN_UPLOAD_SECONDS,
    UPLOAD_NAME,
    spool_dir,
)
from idp.admin_api.uploads import XLSX_MEDIA_TYPE
from idp.bulk_import.apply import apply_file
from idp.bulk_import.reading import read_bytes
from idp.models import Account, AccountProfile, ActivationCode, ImportJob, Unit
from idp.runtime import IdpRuntime
from tests.cli_runner import Cli
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.import_files import cccd, csv_bytes, handout_rows, stored_digest, write
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of

API = "/admin/api/v1"
HANOI = "01"
SYSTEM = admin_scope.AdminScope(True, frozenset(), frozenset())


@pytest.fixture
def wards(runtime: IdpRuntime) -> list[str]:
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="test")
        return list(
            session.scalars(
                select(Unit.code)
                .where(Unit.province_code == HANOI, Unit.level == "ward")
                .order_by(Unit.code)
                .limit(3)
            )
        )


@pytest.fixture
def admin_app(runtime: IdpRuntime) -> tuple[str, str]:
    """The admin pages' client: a first-party app that may ask for the admin scope."""
    client, secret = register_client(runtime, name="Trang quản trị", scope="openid profile admin")
    assert secret is not None
    return client.client_id, secret


def make_account(
    runtime: IdpRuntime, username: str, *, system: bool = False, unit_admin_of: str | None = None
) -> Account:
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username=username,
            full_name="Quản trị viên",
            password=OFFICIAL_PASSWORD,
            is_system_admin=system,
        )
        if unit_admin_of is not None:
            admin_scope.grant(
                session=session,
                clock=runtime.clock,
                actor_scope=SYSTEM,
                actor="test",
                account=account,
                role=admin_scope.UNIT_ADMIN,
                unit=units.get_by_code(session, unit_admin_of),
            )
        return account


def token_for(
    web: TestClient, app_client: tuple[str, str], username: str, scope: str = "openid admin"
) -> str:
    web.cookies.clear()  # a fresh browser: no single sign-on into the previous user's session
    client_id, secret = app_client
    verifier, challenge = pkce_pair()
    redirect = log_in(
        web, authorize_params(client_id, challenge, scope=scope), username, OFFICIAL_PASSWORD
    )
    code = query_of(redirect.headers["location"])["code"]
    response = exchange_code(web, client_id, secret, code, verifier)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def upload(
    web: TestClient, token: str, data: bytes, *, dry_run: bool = False, name: str = "can-bo.csv"
) -> httpx.Response:
    return web.post(
        f"{API}/imports",
        params={"dry_run": "true" if dry_run else "false"},
        files={"file": (name, data, "text/csv")},
        headers=bearer(token),
    )


def wait_for(web: TestClient, token: str, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = web.get(f"{API}/imports/{job_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}"
        time.sleep(0.05)


def removed_soon(path: Path, timeout: float = 10.0) -> bool:
    """Whether ``path`` is gone within ``timeout``. The job thread removes its spool just after
    the commit that makes the job "done" (never before: a crash in between would lose the file
    a resume needs), so a poll that saw "done" can come a moment before the removal."""
    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def store_unfinished_job(
    runtime: IdpRuntime, job_id: str, name: str, digest: str, status: str, *, total_rows: int = 3
) -> None:
    """A job row as a killed process (or a failed run) leaves it: nothing processed yet."""
    with transaction(runtime.session_factory) as session:
        session.add(
            ImportJob(
                job_id=job_id,
                file_name=name,
                file_digest=digest,
                dry_run=False,
                status=status,
                total_rows=total_rows,
                processed_rows=0,
                summary={},
                actor="user:qt.tinh",
                created_at=runtime.clock.now(),
            )
        )


def run(web: TestClient, token: str, data: bytes, **options: Any) -> dict[str, Any]:
    started = upload(web, token, data, **options)
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"{API}/imports/{started.json()['job_id']}"
    return wait_for(web, token, started.json()["job_id"])


def results(web: TestClient, token: str, job_id: str, lang: str = "en") -> list[dict[str, str]]:
    response = web.get(
        f"{API}/imports/{job_id}/results.csv", headers=bearer(token, **{"Accept-Language": lang})
    )
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def officials(wards: list[str]) -> list[list[str]]:
    return [
        [cccd(1), "Nguyễn Văn An", "", "an.nv@hanoi.gov.vn", "0912 345 678", wards[0],
         "UBND", "Chủ tịch"],
        [cccd(2, female=True), "Trần Thị Bình", "", "", "0987654321", wards[0], "", ""],
        [cccd(3), "Lê Hoàng Minh", "minh.lh", "minh@hanoi.gov.vn", "", wards[1], "", ""],
    ]  # fmt: skip


def count(runtime: IdpRuntime, model: Any) -> int:
    with transaction(runtime.session_factory) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def system_token(web: TestClient, runtime: IdpRuntime, admin_app, wards) -> Iterator[str]:
    make_account(runtime, "qt.tinh", system=True)
    yield token_for(web, admin_app, "qt.tinh")


# --------------------------------------------------------------------------------------------


def test_tokens_scope_and_admin_role_are_required(web, runtime, admin_app, wards):
    make_account(runtime, "qt.tinh", system=True)
    make_account(runtime, "can.bo")
    data = csv_bytes(officials(wards))

    missing = web.post(f"{API}/imports", files={"file": ("f.csv", data, "text/csv")})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="admin"'

    invalid = upload(web, "not-a-token", data)
    assert invalid.status_code == 401
    assert invalid.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in invalid.headers["www-authenticate"]

    without_scope = token_for(web, admin_app, "qt.tinh", scope="openid profile")
    narrow = upload(web, without_scope, data)
    assert narrow.status_code == 403 and narrow.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope", scope="admin"' in narrow.headers["www-authenticate"]

    not_admin = upload(web, token_for(web, admin_app, "can.bo"), data)
    assert not_admin.status_code == 403 and not_admin.json()["error"] == "forbidden"

    # A revoked token (RFC 7009) no longer works, even before it expires.
    token = token_for(web, admin_app, "qt.tinh")
    assert web.get(f"{API}/imports/nope", headers=bearer(token)).status_code == 404
    client_id, secret = admin_app
    revoked = web.post("/oauth2/revoke", data={"token": token}, auth=(client_id, secret))
    assert revoked.status_code == 200
    after = web.get(f"{API}/imports/nope", headers=bearer(token))
    assert after.status_code == 401 and after.json()["error"] == "invalid_token"

    # An application's own token (client_credentials) is never an administrator.
    service, service_secret = register_client(
        runtime,
        name="Dịch vụ",
        grant_types=["client_credentials"],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        scope="admin",
    )
    assert service_secret is not None
    issued = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(service.client_id, service_secret),
    )
    assert issued.status_code == 200, issued.text
    as_app = upload(web, issued.json()["access_token"], data)
    assert as_app.status_code == 403 and as_app.json()["error"] == "insufficient_scope"
    assert count(runtime, ImportJob) == 0

    discovery = web.get("/.well-known/openid-configuration").json()
    assert "admin" in discovery["scopes_supported"]


def test_dry_run_gives_the_same_diff_as_the_cli(
    web, runtime, system_token, wards, cli: Cli, tmp_path
):
    rows = [
        *officials(wards),
        [cccd(4), "Phạm Văn Dũng", "", "not-an-email", "", wards[1], "", ""],
        [cccd(5), "Hoàng Thị E", "", "", "", "99999", "", ""],
        [cccd(1), "Trùng Lặp", "", "", "", wards[0], "", ""],
    ]
    data = csv_bytes(rows)
    job = run(web, system_token, data, dry_run=True)
    assert job["status"] == "done" and job["dry_run"] is True
    assert job["total_rows"] == job["processed_rows"] == 6
    assert count(runtime, AccountProfile) == 0  # a dry run changes nothing

    by_cli = json.loads(
        cli(
            "import-users",
            str(write(tmp_path, "f.csv", data)),
            "--dry-run",
            "--json",
            "--lang",
            "en",
        ).stdout
    )
    summary = by_cli["summary"]
    assert job["counts"] == {
        "create": summary["create"],
        "update": summary["update"],
        "unchanged": summary["unchanged"],
        "errors": summary["error"],
    }
    assert job["counts"] == {"create": 2, "update": 0, "unchanged": 0, "errors": 4}
    lines = results(web, system_token, job["job_id"])
    assert {(int(r["line"]), r["action"]) for r in lines} == {
        (row["line"], row["action"]) for row in by_cli["rows"]
    }
    assert sorted(
        (int(r["line"]), r["field"], r["reason"]) for r in lines if r["action"] == "error"
    ) == sorted((e["line"], e["field"], e["message"]) for e in by_cli["errors"])
    # The same plan for the same usernames the CLI would generate.
    assert {r["username"] for r in lines if r["action"] == "create"} == {
        row["username"] for row in by_cli["rows"] if row["action"] == "create"
    }


def test_apply_creates_accounts_and_a_second_upload_changes_nothing(
    web, runtime, system_token, wards, tmp_path
):
    data = csv_bytes(officials(wards))
    job = run(web, system_token, data)
    assert job["status"] == "done", job
    assert job["counts"] == {"create": 3, "update": 0, "unchanged": 0, "errors": 0}
    assert job["processed_rows"] == job["total_rows"] == 3
    assert job["started_at"] and job["finished_at"]
    assert job["activation_codes"]["count"] == 3
    with transaction(runtime.session_factory) as session:
        created = {
            a.username: a.password_hash
            for a in session.scalars(select(Account).where(Account.username != "qt.tinh"))
        }
        assert set(session.scalars(select(AccountProfile.citizen_id))) == {
            cccd(1),
            cccd(2, female=True),
            cccd(3),
        }
        stored_digests = set(session.scalars(select(ActivationCode.code_digest)))
    assert set(created) == {"nguyen.van.an", "tran.thi.binh", "minh.lh"}
    assert set(created.values()) == {None}  # no passwords: activation codes only
    # The uploaded file is not kept once the job is done.
    assert removed_soon(spool_dir(runtime, job["job_id"]))

    # The codes: one CSV per unit, the same columns as the CLI's files, once.
    fetched = web.get(
        f"{API}/imports/{job['job_id']}/activation-codes.zip", headers=bearer(system_token)
    )
    assert fetched.status_code == 200, fetched.text
    archive = zipfile.ZipFile(io.BytesIO(fetched.content))
    assert sorted(archive.namelist()) == sorted({f"{wards[0]}.csv", f"{wards[1]}.csv"})
    codes = []
    for name in archive.namelist():
        text = archive.read(name).decode("utf-8")
        assert text.startswith("\ufeff")
        titles, rows = handout_rows(text)
        assert titles[3] == "Mã kích hoạt"  # the caller's language: Vietnamese by default
        codes += rows
    assert {c["username"] for c in codes} == set(created)
    with transaction(runtime.session_factory) as session:
        handed_out = {stored_digest(session, c["username"], c["activation_code"]) for c in codes}
    assert handed_out == stored_digests
    again = web.get(
        f"{API}/imports/{job['job_id']}/activation-codes.zip", headers=bearer(system_token)
    )
    assert again.status_code == 410 and again.json()["error"] == "gone"
    with transaction(runtime.session_factory) as session:
        stored = session.scalar(select(ImportJob).where(ImportJob.job_id == job["job_id"]))
        assert stored is not None
        assert "sealed" not in json.dumps(stored.summary)  # wiped, not just hidden
        downloads = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "import.activation_codes_downloaded")
        )
    assert downloads == 1

    # Same file again: idempotent, keyed on the citizen ID.
    second = run(web, system_token, data)
    assert second["job_id"] != job["job_id"]
    assert second["counts"] == {"create": 0, "update": 0, "unchanged": 3, "errors": 0}
    assert second["activation_codes"]["count"] == 0
    assert count(runtime, AccountProfile) == 3
    assert count(runtime, ActivationCode) == 3


def test_results_csv_is_translated_and_neutralises_formulas(web, runtime, system_token, wards):
    rows = [
        *officials(wards)[:1],
        ['=HYPERLINK("http://evil.example")', "Kẻ Gian", "", "", "", wards[0], "", ""],
        ["@SUM(A1)", "Người Khác", "", "", "", wards[0], "", ""],
    ]
    job = run(web, system_token, csv_bytes(rows))
    assert job["counts"]["errors"] == 2
    english = results(web, system_token, job["job_id"], lang="en")
    refused = [r for r in english if r["action"] == "error"]
    assert [r["citizen_id"] for r in refused] == [
        '\'=HYPERLINK("http://evil.example")',
        "'@SUM(A1)",
    ]
    assert all(r["field"] == "citizen_id" and r["reason"] for r in refused)
    raw = web.get(
        f"{API}/imports/{job['job_id']}/results.csv", headers=bearer(system_token)
    ).content.decode("utf-8-sig")
    assert not any(line.startswith(("=", "+", "-", "@")) for line in raw.splitlines())
    for cells in csv.reader(io.StringIO(raw)):
        assert not any(cell[:1] in ("=", "+", "-", "@") for cell in cells)


def test_unit_admin_of_a_cannot_import_into_b_nor_read_other_jobs(
    web, runtime, admin_app, system_token, wards
):
    mine, theirs = wards[0], wards[1]
    make_account(runtime, "qt.phuong", unit_admin_of=mine)
    unit_token = token_for(web, admin_app, "qt.phuong")
    rows = [
        [cccd(11), "Đỗ Thị Hạnh", "", "", "", mine, "", ""],
        [cccd(12), "Vũ Văn Khải", "", "", "", theirs, "", ""],
    ]
    job = run(web, unit_token, csv_bytes(rows))
    assert job["counts"] == {"create": 1, "update": 0, "unchanged": 0, "errors": 1}
    with transaction(runtime.session_factory) as session:
        assert set(session.scalars(select(AccountProfile.citizen_id))) == {cccd(11)}
    refused = [r for r in results(web, unit_token, job["job_id"]) if r["action"] == "error"]
    assert refused == [
        {
            "line": "3",
            "citizen_id": cccd(12),
            "username": "",
            "action": "error",
            "field": "unit_code",
            "reason": "You do not administer this unit.",
        }
    ]

    # The system admin's job is invisible to the unit admin (404, as if it did not exist).
    other = run(
        web, system_token, csv_bytes([[cccd(13), "Lý Thị Mai", "", "", "", theirs, "", ""]])
    )
    for path in ("", "/results.csv", "/activation-codes.zip"):
        hidden = web.get(f"{API}/imports/{other['job_id']}{path}", headers=bearer(unit_token))
        assert hidden.status_code == 404, path
    # A system admin may follow any job, but only its starter gets the codes.
    assert (
        web.get(f"{API}/imports/{job['job_id']}", headers=bearer(system_token)).json()["counts"][
            "create"
        ]
        == 1
    )
    codes = web.get(
        f"{API}/imports/{job['job_id']}/activation-codes.zip", headers=bearer(system_token)
    )
    assert codes.status_code == 403
    # An official of B cannot be taken over by reusing their citizen ID in A.
    grab = run(web, unit_token, csv_bytes([[cccd(13), "Lý Thị Mai", "", "", "", mine, "", ""]]))
    assert grab["counts"]["errors"] == 1
    with transaction(runtime.session_factory) as session:
        profile = session.scalar(
            select(AccountProfile).where(AccountProfile.citizen_id == cccd(13))
        )
        assert profile is not None
        assert session.get(Unit, profile.unit_id).code == theirs


def test_oversized_and_undecodable_files_are_refused_cleanly(web, runtime, system_token, wards):
    big = b"citizen_id,full_name,unit_code\n" + b"x" * (50 * 1024 * 1024 + 1)
    declared = web.post(
        f"{API}/imports",
        content=big,
        headers=bearer(system_token, **{"Content-Type": "text/csv", "Accept-Language": "en"}),
    )
    assert declared.status_code == 413
    assert (
        declared.json()["message"] == "The file is larger than 50 MB. Split it into smaller files."
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for _ in range(51):
            yield b"y" * (1024 * 1024)

    streamed = web.post(
        f"{API}/imports",
        content=chunks(),
        headers=bearer(system_token, **{"Content-Type": "text/csv"}),
    )
    assert streamed.status_code == 413 and streamed.json()["error"] == "request_too_large"
    multipart = upload(web, system_token, big)
    assert multipart.status_code == 413

    ansi = csv_bytes([[cccd(1), "Nguyễn Văn An", "", "", "", wards[0], "", ""]])
    ansi = ansi.decode("utf-8").encode("cp1258", errors="replace")
    refused = web.post(
        f"{API}/imports",
        files={"file": ("ansi.csv", ansi, "text/csv")},
        headers=bearer(system_token, **{"Accept-Language": "en-GB,en;q=0.9"}),
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "file_refused"
    assert "not UTF-8" in refused.json()["message"]
    assert "Windows-1258" in refused.json()["message"]
    with pytest.raises(Exception) as by_cli:  # the very message the CLI prints
        read_bytes(ansi, name="ansi.csv")
    assert refused.json()["message"] == by_cli.value.text()  # type: ignore[attr-defined]

    wrong_type = web.post(
        f"{API}/imports",
        content=b"a,b",
        headers=bearer(system_token, **{"Content-Type": "text/plain"}),
    )
    assert wrong_type.status_code == 415
    bad_flag = web.post(
        f"{API}/imports?dry_run=perhaps",
        files={"file": ("f.csv", b"x", "text/csv")},
        headers=bearer(system_token),
    )
    assert bad_flag.status_code == 400
    no_file = web.post(
        f"{API}/imports",
        data={"other": "x"},
        files={"nothing": ("f.csv", b"", "text/csv")},
        headers=bearer(system_token),
    )
    assert no_file.status_code == 400

    assert count(runtime, ImportJob) == 0
    spool = runtime.settings.var_dir / "admin-imports"
    assert not spool.exists() or not any(spool.iterdir())


def test_raw_body_upload_with_filename(web, runtime, system_token, wards):
    started = web.post(
        f"{API}/imports",
        params={"dry_run": "true", "filename": "../../danh-sach.csv"},
        content=csv_bytes(officials(wards), bom=True),
        headers=bearer(system_token, **{"Content-Type": "text/csv; charset=utf-8"}),
    )
    assert started.status_code == 202, started.text
    job = wait_for(web, system_token, started.json()["job_id"])
    assert job["file_name"] == "danh-sach.csv"
    assert job["counts"]["create"] == 3


def test_an_interrupted_job_is_resumed_and_hands_out_every_code(
    web, runtime, system_token, wards, tmp_path
):
    """A process killed after its first batch: ``resume`` finishes the job, and the codes file
    holds the codes of both runs."""
    names = ["Cán Bộ Một", "Cán Bộ Hai", "Cán Bộ Ba", "Cán Bộ Bốn", "Cán Bộ Năm"]
    rows = [[cccd(20 + n), name, "", "", "", wards[n % 2], "", ""] for n, name in enumerate(names)]
    data = csv_bytes(rows)
    imported = read_bytes(data, name="lon.csv")
    job_id = "interrupted-job-0000000000000000000000000"
    directory = spool_dir(runtime, job_id)
    directory.mkdir(parents=True)
    (directory / UPLOAD_NAME).write_bytes(data)
    store_unfinished_job(runtime, job_id, "lon.csv", imported.digest, "queued", total_rows=5)

    class Killed(BaseException):
        pass

    def kill_after_first(number: int, _plans: object) -> None:
        if number == 2:
            raise Killed

    with pytest.raises(Killed):
        apply_file(
            session_factory=runtime.session_factory,
            clock=runtime.clock,
            actor="user:qt.tinh",
            file=imported,
            output_dir=directory / CODES_DIR_NAME,
            batch_size=2,
            job_id=job_id,
            on_batch=kill_after_first,
            issuer=runtime.settings.issuer,
        )
    with transaction(runtime.session_factory) as session:
        job = session.scalar(select(ImportJob).where(ImportJob.job_id == job_id))
        assert job is not None
        job.status = "running"  # a killed process never gets to say "failed"
    assert count(runtime, AccountProfile) == 2  # whole batches only

    shown = web.get(f"{API}/imports/{job_id}", headers=bearer(system_token)).json()
    assert shown["status"] == "running" and shown["processed_rows"] == 2
    resumed = web.post(f"{API}/imports/{job_id}/resume", headers=bearer(system_token))
    assert resumed.status_code == 202, resumed.text
    done = wait_for(web, system_token, job_id)
    assert done["status"] == "done"
    assert done["counts"] == {"create": 3, "update": 0, "unchanged": 2, "errors": 0}
    assert count(runtime, AccountProfile) == 5
    assert done["activation_codes"]["count"] == 5
    again = web.post(f"{API}/imports/{job_id}/resume", headers=bearer(system_token))
    assert again.status_code == 409

    fetched = web.get(f"{API}/imports/{job_id}/activation-codes.zip", headers=bearer(system_token))
    archive = zipfile.ZipFile(io.BytesIO(fetched.content))
    codes = [
        row
        for name in archive.namelist()
        for row in handout_rows(archive.read(name).decode("utf-8"))[1]
    ]
    with transaction(runtime.session_factory) as session:
        stored_digests = set(session.scalars(select(ActivationCode.code_digest)))
        handed_out = {stored_digest(session, c["username"], c["activation_code"]) for c in codes}
    assert len(codes) == 5
    assert handed_out == stored_digests
    assert removed_soon(directory)  # no plaintext codes left on disk


def test_reuploading_the_file_of_an_interrupted_job_resumes_it(web, runtime, system_token, wards):
    data = csv_bytes(officials(wards))
    imported = read_bytes(data, name="f.csv")
    store_unfinished_job(
        runtime, "killed-0000000000000000000000000000000000", "f.csv", imported.digest, "running"
    )
    started = upload(web, system_token, data)
    assert started.status_code == 202
    assert started.json()["job_id"] == "killed-0000000000000000000000000000000000"
    done = wait_for(web, system_token, started.json()["job_id"])
    assert done["status"] == "done" and done["counts"]["create"] == 3
    assert count(runtime, ImportJob) == 1


def test_a_new_upload_removes_spools_a_crash_left_behind(web, runtime, system_token, wards):
    """A process that died after a job's last commit leaves the uploaded file (and perhaps
    plaintext codes) on disk; one that died mid-upload leaves a file without a job. The next
    upload removes both, and keeps what a resume still needs."""
    done = run(web, system_token, csv_bytes(officials(wards)[:1]))
    assert done["status"] == "done"
    after_commit = spool_dir(runtime, done["job_id"])
    assert removed_soon(after_commit)  # the job thread's own removal, then as if it never ran
    (after_commit / CODES_DIR_NAME).mkdir(parents=True)
    (after_commit / CODES_DIR_NAME / "codes.csv").write_text("plaintext codes")

    failed_job = "failed-00000000000000000000000000000000000"
    store_unfinished_job(runtime, failed_job, "f.csv", "0" * 64, "failed")
    kept_for_resume = spool_dir(runtime, failed_job)
    kept_for_resume.mkdir()
    (kept_for_resume / UPLOAD_NAME).write_bytes(b"rows")
    stale_upload = spool_dir(runtime, "stale-upload")
    stale_upload.mkdir()
    long_ago = time.time() - 2 * ORPHAN_UPLOAD_SECONDS
    os.utime(stale_upload, (long_ago, long_ago))
    upload_in_progress = spool_dir(runtime, "upload-in-progress")
    upload_in_progress.mkdir()

    later = run(web, system_token, csv_bytes(officials(wards)[1:]))
    assert later["status"] == "done"
    assert not after_commit.exists()
    assert not stale_upload.exists()
    assert (kept_for_resume / UPLOAD_NAME).read_bytes() == b"rows"
    assert upload_in_progress.exists()


def test_codes_expire_unfetched(web, runtime, system_token, wards, clock):
    job = run(web, system_token, csv_bytes(officials(wards)[:1]))
    clock.advance(hours=25)
    # The token outlives nothing here: get a fresh one after the clock moved.
    late = web.get(
        f"{API}/imports/{job['job_id']}/activation-codes.zip",
        headers=bearer(token_for(web, _admin_app(runtime), "qt.tinh")),
    )
    assert late.status_code == 410
    with transaction(runtime.session_factory) as session:
        stored = session.scalar(select(ImportJob).where(ImportJob.job_id == job["job_id"]))
        assert stored is not None and "sealed" not in json.dumps(stored.summary)


def _admin_app(runtime: IdpRuntime) -> tuple[str, str]:
    client, secret = register_client(runtime, name="Trang quản trị 2", scope="openid admin")
    assert secret is not None
    return client.client_id, secret


def test_xlsx_as_raw_body(web, runtime, system_token, wards):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Số CCCD", "Họ và tên", "Mã đơn vị"])
    sheet.append([cccd(30), "Đinh Công Tráng", wards[2]])
    buffer = io.BytesIO()
    workbook.save(buffer)
    started = web.post(
        f"{API}/imports",
        params={"filename": "can-bo.xlsx"},
        content=buffer.getvalue(),
        headers=bearer(system_token, **{"Content-Type": XLSX_MEDIA_TYPE}),
    )
    assert started.status_code == 202, started.text
    job = wait_for(web, system_token, started.json()["job_id"])
    assert job["status"] == "done" and job["counts"]["create"] == 1
    with transaction(runtime.session_factory) as session:
        assert (
            session.scalar(
                select(Account.username)
                .join(AccountProfile, AccountProfile.account_id == Account.id)
                .where(AccountProfile.citizen_id == cccd(30))
            )
            == "dinh.cong.trang"
        )
