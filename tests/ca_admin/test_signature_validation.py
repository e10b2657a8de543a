"""POST /ca/api/v1/validations through the real app: PDFs and detached CMS signatures made by
pyHanko with keys whose certificates our CA issued, judged against our own status table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import revocation
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from core.audit import AuditEntry
from core.clock import FixedClock
from core.db import transaction
from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People
from tests.ca_admin.signed_documents import (
    Holder,
    LocalTsa,
    change_page_content,
    countersign_pdf,
    foreign_signer,
    issue_for,
    make_test_tsa,
    sign_detached,
    sign_pdf,
    stranger,
)
from tests.ca_admin.test_api import service_token
from tests.conftest import settings_for

VALIDATIONS = "/ca/api/v1/validations"


@pytest.fixture
def test_tsa(tmp_path: Path) -> tuple[LocalTsa, Path]:
    return make_test_tsa(tmp_path)


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, key_dir: Path, test_tsa: tuple[LocalTsa, Path]
) -> Settings:
    """The usual settings, trusting the test TSA's root as a configured extra anchor."""
    return settings_for(tmp_path=tmp_path, database_url=database_url, key_dir=key_dir).model_copy(
        update={"ca_validation_trust_anchors": [test_tsa[1]]}
    )


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


@pytest.fixture
def holder(ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People) -> Holder:
    return issue_for(ca_runtime, people)


@pytest.fixture
def token(web: TestClient, runtime: IdpRuntime) -> str:
    """A shared app's client_credentials token with the validation scope only."""
    return service_token(web, runtime, "ca:validate")[0]


def _validate(web: TestClient, token: str, pdf: bytes, **headers: str) -> dict[str, object]:
    response = web.post(
        VALIDATIONS,
        content=pdf,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/pdf",
            **headers,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _only(report: dict[str, object]) -> dict[str, object]:
    signatures = report["signatures"]
    assert isinstance(signatures, list) and len(signatures) == 1
    signature: dict[str, object] = signatures[0]
    return signature


def _last_validation_audit(ca_runtime: CaRuntime) -> tuple[AuditEntry, dict[str, Any]]:
    with transaction(ca_runtime.session_factory) as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "ca.signature.validated")
            .order_by(AuditEntry.seq.desc())
        ).first()
        assert entry is not None
        session.expunge(entry)
        return entry, json.loads(entry.details)


def _revoke(ca_runtime: CaRuntime, holder: Holder, reason: str = "keyCompromise") -> None:
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session, runtime=ca_runtime, actor="test", serial=holder.serial, reason=reason
        )


def test_a_valid_signature_names_the_official_and_unit(
    web: TestClient, token: str, holder: Holder, ca_runtime: CaRuntime, people: People
) -> None:
    report = _validate(web, token, sign_pdf(holder))
    assert report["indication"] == "TOTAL-PASSED"
    assert report["kind"] == "pades"
    signature = _only(report)
    assert signature["indication"] == "TOTAL-PASSED", json.dumps(signature, indent=1)
    assert signature["sub_indication"] is None
    assert signature["integrity"] == {
        "intact": True,
        "signature_valid": True,
        "covers_whole_document": True,
        "modified_after_signing": False,
        "hash_algorithm": "sha256",
    }
    signer = signature["signer"]
    assert isinstance(signer, dict)
    assert signer["issued_by_us"] is True
    assert signer["official"]["username"] == people.official.username
    assert signer["official"]["subject_ref"] == people.official.subject
    assert signer["unit"]["code"] == "00070"
    assert signature["chain"]["trusted"] is True
    assert signature["certificate_status"]["source"] == "ca_status_table"
    assert signature["certificate_status"]["at_signing_time"] == "good"
    assert signature["timestamp"]["present"] is False

    # Audited in the same transaction, by the calling app, with the document's digest only.
    entry, details = _last_validation_audit(ca_runtime)
    assert entry.target == f"sha256:{report['document']['sha256']}"  # type: ignore[index]
    assert details["indication"] == "TOTAL-PASSED"
    assert details["via"].startswith("api:")


def test_revoked_before_signing_fails(
    web: TestClient, token: str, holder: Holder, ca_runtime: CaRuntime
) -> None:
    _revoke(ca_runtime, holder)
    # pyHanko's signing time is the real time, after the revocation at the test clock's time.
    signature = _only(_validate(web, token, sign_pdf(holder)))
    assert (signature["indication"], signature["sub_indication"]) == ("TOTAL-FAILED", "REVOKED")
    assert signature["certificate_status"]["current"] == "revoked"
    assert signature["certificate_status"]["revocation_reason"] == "keyCompromise"
    assert signature["certificate_status"]["at_signing_time"] == "revoked"


def test_revoked_after_a_timestamped_signature_passes(
    web: TestClient,
    token: str,
    holder: Holder,
    ca_runtime: CaRuntime,
    clock: FixedClock,
    test_tsa: tuple[LocalTsa, Path],
) -> None:
    pdf = sign_pdf(holder, tsa=test_tsa[0])
    clock.advance(minutes=3)  # revoked three minutes after the timestamp
    _revoke(ca_runtime, holder)
    signature = _only(_validate(web, token, pdf))
    assert signature["indication"] == "TOTAL-PASSED", json.dumps(signature, indent=1)
    assert signature["timestamp"]["present"] is True
    assert signature["timestamp"]["valid"] is True
    assert signature["timestamp"]["authority"] == "CN=Test TSA"
    assert signature["certificate_status"]["current"] == "revoked"
    assert signature["certificate_status"]["at_signing_time"] == "good"


def test_revoked_after_an_untimestamped_signature_is_indeterminate(
    web: TestClient, token: str, holder: Holder, ca_runtime: CaRuntime, clock: FixedClock
) -> None:
    pdf = sign_pdf(holder)
    clock.advance(minutes=3)
    _revoke(ca_runtime, holder)
    # Only the signer's own claim dates the signature: nothing proves it came first.
    signature = _only(_validate(web, token, pdf))
    assert (signature["indication"], signature["sub_indication"]) == (
        "INDETERMINATE",
        "REVOKED_NO_POE",
    )


def test_on_hold_since_before_signing_is_try_later(
    web: TestClient, token: str, holder: Holder, ca_runtime: CaRuntime
) -> None:
    _revoke(ca_runtime, holder, "certificateHold")
    signature = _only(_validate(web, token, sign_pdf(holder)))
    assert (signature["indication"], signature["sub_indication"]) == (
        "INDETERMINATE",
        "TRY_LATER",
    )
    assert signature["certificate_status"]["current"] == "hold"


def test_an_expired_certificate_passes_only_with_a_timestamp_from_its_validity(
    web: TestClient,
    runtime: IdpRuntime,
    holder: Holder,
    clock: FixedClock,
    test_tsa: tuple[LocalTsa, Path],
) -> None:
    stamped = sign_pdf(holder, tsa=test_tsa[0])
    unstamped = sign_pdf(holder)
    clock.set(holder.certificate.not_valid_after_utc + timedelta(days=30))
    token = service_token(web, runtime, "ca:validate")[0]  # one the later clock accepts
    signature = _only(_validate(web, token, unstamped))
    assert (signature["indication"], signature["sub_indication"]) == (
        "INDETERMINATE",
        "OUT_OF_BOUNDS_NO_POE",
    ), json.dumps(signature, indent=1)
    # The timestamp proves the signature existed while the certificate was valid (§5.5.4).
    signature = _only(_validate(web, token, stamped))
    assert signature["indication"] == "TOTAL-PASSED", json.dumps(signature, indent=1)


def test_every_signature_of_a_pdf_is_judged(
    web: TestClient, token: str, holder: Holder, ca_runtime: CaRuntime, people: People
) -> None:
    colleague = issue_for(ca_runtime, people, people.colleague)
    pdf = countersign_pdf(colleague, sign_pdf(holder))
    report = _validate(web, token, pdf)
    assert report["signature_count"] == 2
    first, second = report["signatures"]  # type: ignore[misc]
    assert first["field"] == "Signature1" and second["field"] == "Signature2"
    # The first signature's revision is followed by the second signature: allowed.
    assert first["integrity"]["covers_whole_document"] is False
    assert first["integrity"]["modified_after_signing"] is False
    assert [s["indication"] for s in (first, second)] == ["TOTAL-PASSED", "TOTAL-PASSED"]
    assert first["signer"]["official"]["username"] == people.official.username
    assert second["signer"]["official"]["username"] == people.colleague.username

    # The colleague's certificate is revoked, then a new document is countersigned with it:
    # that signature fails, so does the document, while the official's still passes.
    _revoke(ca_runtime, colleague)
    report = _validate(web, token, countersign_pdf(colleague, sign_pdf(holder)))
    assert [s["indication"] for s in report["signatures"]] == ["TOTAL-PASSED", "TOTAL-FAILED"]  # type: ignore[union-attr]
    assert report["indication"] == "TOTAL-FAILED"


def test_a_signer_of_another_configured_anchor(
    web: TestClient, token: str, test_tsa: tuple[LocalTsa, Path]
) -> None:
    """COMMUNE_SSO_CA_VALIDATION_TRUST_ANCHORS (here the test TSA root stands for the
    Government CA): its signers are trusted, their status is not from our table."""
    signer = foreign_signer(test_tsa[0], "Trần Thị Bình")
    signature = _only(_validate(web, token, sign_pdf(signer)))
    assert signature["indication"] == "TOTAL-PASSED", json.dumps(signature, indent=1)
    assert signature["signer"]["issued_by_us"] is False
    assert signature["signer"]["official"] is None
    assert signature["certificate_status"]["source"] == "ocsp_crl"
    assert signature["chain"]["trust_anchor"] == "CN=Test TSA Root"


def test_a_byte_changed_in_the_signed_range_is_a_hash_failure(
    web: TestClient, token: str, holder: Holder
) -> None:
    pdf = sign_pdf(holder)
    # The page's MediaBox width 595 → 596: still a readable PDF, no longer what was signed.
    tampered = pdf.replace(b"595", b"596", 1)
    signature = _only(_validate(web, token, tampered))
    assert (signature["indication"], signature["sub_indication"]) == (
        "TOTAL-FAILED",
        "HASH_FAILURE",
    )
    assert signature["integrity"]["intact"] is False


def test_an_incremental_update_changing_the_page_fails(
    web: TestClient, token: str, holder: Holder
) -> None:
    signature = _only(_validate(web, token, change_page_content(sign_pdf(holder))))
    assert signature["indication"] == "TOTAL-FAILED", json.dumps(signature, indent=1)
    assert signature["integrity"]["intact"] is True  # the signed revision itself is untouched
    assert signature["integrity"]["modified_after_signing"] is True
    assert signature["integrity"]["covers_whole_document"] is False


def test_an_unknown_signer_has_no_chain(web: TestClient, token: str, holder: Holder) -> None:
    signature = _only(_validate(web, token, sign_pdf(stranger("Nguyễn Văn Giả"))))
    assert (signature["indication"], signature["sub_indication"]) == (
        "INDETERMINATE",
        "NO_CERTIFICATE_CHAIN_FOUND",
    )
    assert signature["signer"]["issued_by_us"] is False
    assert signature["signer"]["official"] is None
    assert signature["signer"]["common_name"] == "Nguyễn Văn Giả"


def test_a_detached_cms_signature_with_its_document(
    web: TestClient, token: str, holder: Holder
) -> None:
    document = "Quyết định số 12/QĐ-UBND".encode()
    signature_der = sign_detached(holder, document)
    response = web.post(
        VALIDATIONS,
        files={
            "document": ("quyet-dinh.txt", document, "text/plain"),
            "signature": ("quyet-dinh.p7s", signature_der, "application/pkcs7-signature"),
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["kind"] == "cms"
    assert _only(report)["indication"] == "TOTAL-PASSED"

    other = web.post(
        VALIDATIONS,
        files={
            "document": ("quyet-dinh.txt", document + b" (sua)", "text/plain"),
            "signature": ("quyet-dinh.p7s", signature_der, "application/pkcs7-signature"),
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert other.status_code == 200, other.text
    assert _only(other.json())["sub_indication"] == "HASH_FAILURE"


def test_a_multipart_pdf_upload(web: TestClient, token: str, holder: Holder) -> None:
    response = web.post(
        VALIDATIONS,
        files={"file": ("van-ban.pdf", sign_pdf(holder), "application/pdf")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["indication"] == "TOTAL-PASSED"


def _refusal(response: object) -> tuple[int, str]:
    status = response.status_code  # type: ignore[attr-defined]
    return status, response.json()["error"]  # type: ignore[attr-defined]


@pytest.fixture
def pdf_of(holder: Holder) -> Iterator[bytes]:
    yield sign_pdf(holder)


def test_hostile_input_is_refused_clearly(
    web: TestClient, token: str, pdf_of: bytes, ca_runtime: CaRuntime
) -> None:
    auth = {"Authorization": f"Bearer {token}"}

    def post(content: bytes, media_type: str = "application/pdf") -> tuple[int, str]:
        return _refusal(
            web.post(VALIDATIONS, content=content, headers={**auth, "Content-Type": media_type})
        )

    assert post(b"Hello, this is not a PDF") == (422, "unreadable_document")
    assert post(pdf_of[: len(pdf_of) // 3]) == (422, "unreadable_document")
    assert post(b"%PDF-1.7\n" + b"\x00" * 200) == (422, "unreadable_document")
    from tests.ca_admin.interop_support import one_page_pdf

    unsigned = web.post(
        VALIDATIONS,
        content=one_page_pdf(),
        headers={**auth, "Content-Type": "application/pdf", "Accept-Language": "vi"},
    )
    assert _refusal(unsigned) == (422, "no_signature")
    assert unsigned.json()["message"] == "Tài liệu không có chữ ký nào."
    assert post(b"{}", "application/json") == (415, "unsupported_media_type")
    ca_runtime.validation_max_bytes = 1024
    assert post(pdf_of) == (413, "request_too_large")
    assert (
        "%("
        not in web.post(
            VALIDATIONS, content=pdf_of, headers={**auth, "Content-Type": "application/pdf"}
        ).json()["message"]
    )
    broken_form = web.post(
        VALIDATIONS,
        content=b"--x\r\nnonsense",
        headers={**auth, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert broken_form.status_code == 400


def test_the_validation_scope_is_required(
    web: TestClient, runtime: IdpRuntime, pdf_of: bytes
) -> None:
    missing = web.post(VALIDATIONS, content=pdf_of, headers={"Content-Type": "application/pdf"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="ca"'
    read_only = service_token(web, runtime, "ca:read")[0]
    refused = web.post(
        VALIDATIONS,
        content=pdf_of,
        headers={"Authorization": f"Bearer {read_only}", "Content-Type": "application/pdf"},
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"


# --------------------------------------------------------------------------------------------
# The page: an official drops a PDF on /ca/pages/validate


PAGE = "/ca/pages/validate"


def test_an_official_sees_who_signed_a_pdf_in_vietnamese_and_english(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    holder: Holder,
    people: People,
) -> None:
    from tests.ca_admin.pages_flow import csrf_of
    from tests.ca_admin.pages_flow import sign_in as sign_in_to_ca_pages
    from tests.idp.test_pages_in_vietnamese import problems_in

    pdf = sign_pdf(holder)
    # A colleague checks the document the official signed.
    landed = sign_in_to_ca_pages(web, runtime, people.colleague)
    assert f'href="{PAGE}"' in landed.text  # in the CA pages' navigation
    form = web.get(PAGE)
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text
    assert '<label for="document">' in form.text
    assert problems_in(PAGE, form.text) == []

    checked = web.post(
        PAGE,
        data={"csrf_token": csrf_of(form)},
        files={"document": ("quyet-dinh.pdf", pdf, "application/pdf")},
    )
    assert checked.status_code == 200, checked.text
    page = checked.text
    assert "Chữ ký hợp lệ" in page
    with transaction(ca_runtime.session_factory) as session:
        identity = ca_runtime.directory.find(session, subject_ref=people.official.subject)
        assert identity is not None
    assert identity.full_name in page
    assert "00070" in page  # the official's unit
    assert "Không thay đổi từ khi ký" in page
    assert "Chứng thư số lúc ký" in page
    assert problems_in(PAGE, page) == []

    # The audit names the colleague who checked it, through the pages.
    entry, details = _last_validation_audit(ca_runtime)
    assert entry.actor == people.colleague.subject
    assert details["via"] == "pages"

    not_pdf = web.post(
        PAGE,
        data={"csrf_token": csrf_of(form)},
        files={"document": ("ghi-chu.pdf", b"khong phai PDF", "application/pdf")},
    )
    assert not_pdf.status_code == 422
    assert "Tệp không phải là tài liệu PDF." in not_pdf.text
    assert 'aria-invalid="true"' in not_pdf.text

    nothing = web.post(PAGE, data={"csrf_token": csrf_of(form)})
    assert nothing.status_code == 400
    assert "Hãy chọn một tệp PDF đã ký để kiểm tra." in nothing.text

    forged = web.post(
        PAGE,
        data={"csrf_token": "forged"},
        files={"document": ("quyet-dinh.pdf", pdf, "application/pdf")},
    )
    assert forged.status_code == 403

    ca_runtime.validation_max_bytes = 1024 * 1024
    huge = web.post(
        PAGE,
        data={"csrf_token": csrf_of(form)},
        files={
            "document": ("lon.pdf", b"%PDF-1.7\n" + b"0" * (2 * 1024 * 1024), "application/pdf")
        },
    )
    assert huge.status_code == 413
    assert "Tệp quá lớn" in huge.text

    # Last: ?lang=en is remembered for the next pages.
    english = web.post(
        f"{PAGE}?lang=en",
        data={"csrf_token": csrf_of(form)},
        files={"document": ("quyet-dinh.pdf", change_page_content(pdf), "application/pdf")},
    )
    assert english.status_code == 200, english.text
    assert "Invalid signature" in english.text
    assert "The document was changed after it was signed." in english.text


def test_the_page_needs_a_signed_in_official(web: TestClient) -> None:
    response = web.get(PAGE)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ca/pages/login")


def test_an_unreadable_trust_anchor_file_stops_the_start(
    tmp_path: Path, settings: Settings, runtime: IdpRuntime
) -> None:
    from commune_sso.ca_bridge import build_ca_runtime
    from core.errors import ConfigurationError

    not_pem = tmp_path / "gov-ca.pem"
    not_pem.write_text("not a certificate")
    for anchors in ([tmp_path / "missing.pem"], [not_pem]):
        with pytest.raises(ConfigurationError, match="CA_VALIDATION_TRUST_ANCHORS"):
            build_ca_runtime(
                settings.model_copy(update={"ca_validation_trust_anchors": anchors}), runtime
            )


def test_a_signature_blob_that_cannot_be_read_is_refused_clearly(
    web: TestClient, token: str, holder: Holder
) -> None:
    pdf = sign_pdf(holder)
    start = pdf.index(b"/Contents <") + len(b"/Contents <")
    end = pdf.index(b">", start)
    # The CMS blob replaced by as many zeros: same byte range, nothing to parse.
    garbled = pdf[:start] + b"0" * (end - start) + pdf[end:]
    response = web.post(
        VALIDATIONS,
        content=garbled,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/pdf"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "unreadable_document"


def test_damaged_copies_of_a_signed_pdf_never_fail_the_server(
    web: TestClient, token: str, holder: Holder
) -> None:
    import random

    pdf = sign_pdf(holder)
    chance = random.Random(18)  # the same damage on every run
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/pdf"}
    for _ in range(30):
        damaged = bytearray(pdf)
        for _ in range(chance.randint(1, 8)):
            damaged[chance.randrange(len(damaged))] = chance.randrange(256)
        cut = chance.choice([len(damaged), chance.randrange(len(damaged))])
        response = web.post(VALIDATIONS, content=bytes(damaged[:cut]), headers=auth)
        assert response.status_code in (200, 413, 422), response.text
