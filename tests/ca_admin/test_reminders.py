"""Expiry reminders: 30, 7 and 1 days before expiry, each (certificate, threshold) once, on a
fixed clock; written as .eml files (no SMTP host) with a Vietnamese subject (RFC 2047) and the
official's address from the IdP; renewed certificates get none."""

from __future__ import annotations

import email
from email.header import decode_header, make_header
from email.policy import default
from pathlib import Path

from sqlalchemy import select

from ca_admin import maintenance, reminders
from ca_admin.models import Authority, IssuedCertificate, ReminderSent
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core.clock import FixedClock
from core.db import transaction
from tests.ca_admin.conftest import People
from tests.ca_admin.test_pages import issue_for


def mail_dir(ca_runtime: CaRuntime) -> Path:
    assert ca_runtime.mailer is not None
    return ca_runtime.mailer.settings.directory


def messages(ca_runtime: CaRuntime) -> list[email.message.EmailMessage]:
    directory = mail_dir(ca_runtime)
    if not directory.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[misc]
        for path in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def test_each_threshold_is_sent_once(
    ca_runtime: CaRuntime,
    clock: FixedClock,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official, days=100)
    assert reminders.send_due(ca_runtime) == {}  # 100 days left: nothing yet
    assert messages(ca_runtime) == []

    clock.advance(days=71)  # 29 days left
    assert reminders.send_due(ca_runtime) == {"sent": 1}
    assert reminders.send_due(ca_runtime) == {}  # the same threshold is not sent again
    clock.advance(days=10)
    assert reminders.send_due(ca_runtime) == {}  # 19 days: still between 30 and 7
    clock.advance(days=13)  # 6 days left
    # The maintenance pass runs the reminders too.
    maintenance.run_due(ca_runtime)
    clock.advance(days=5, hours=12)  # half a day left
    assert reminders.send_due(ca_runtime) == {"sent": 1}
    clock.advance(hours=1)
    assert reminders.send_due(ca_runtime) == {}

    sent = messages(ca_runtime)
    assert len(sent) == 3
    assert all(m["To"] == "nguyen.van.an@hanoi.gov.vn" for m in sent)
    assert [str(m["Subject"]) for m in sent] == [
        "Chứng thư số ký của bạn sẽ hết hạn sau 29 ngày",
        "Chứng thư số ký của bạn sẽ hết hạn sau 6 ngày",
        "Chứng thư số ký của bạn sẽ hết hạn sau 1 ngày",
    ]
    raw = next(iter(sorted(mail_dir(ca_runtime).glob("*.eml")))).read_bytes()
    subject_line = next(line for line in raw.splitlines() if line.startswith(b"Subject:"))
    assert b"=?utf-8?" in subject_line.lower()  # RFC 2047 encoded word, ASCII on the wire
    assert str(make_header(decode_header(subject_line[9:].decode("ascii")))).startswith(
        "Chứng thư số"
    )
    body = sent[0].get_content()
    assert "Kính gửi Nguyễn Văn An" in body and openssl_serial(certificate.serial) in body
    assert body.index("Kính gửi") < body.index("Dear Nguyễn Văn An")  # Vietnamese first
    assert "http://127.0.0.1:8000/ca/pages/" in body
    with transaction(ca_runtime.session_factory) as session:
        rows = session.scalars(select(ReminderSent).order_by(ReminderSent.threshold_days)).all()
        assert [(r.threshold_days, r.outcome) for r in rows] == [
            (1, "sent"),
            (7, "sent"),
            (30, "sent"),
        ]


def test_a_late_pass_sends_only_the_nearest_threshold_and_renewed_ones_get_none(
    ca_runtime: CaRuntime,
    clock: FixedClock,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    late = issue_for(ca_runtime, people.official, days=5)
    renewed = issue_for(ca_runtime, people.colleague, days=5)
    newer = issue_for(ca_runtime, people.colleague, days=365)
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(IssuedCertificate, newer.id)
        assert row is not None
        row.renewal_of_id = renewed.id
    assert reminders.send_due(ca_runtime) == {"sent": 1}
    sent = messages(ca_runtime)
    assert len(sent) == 1 and "5 ngày" in str(sent[0]["Subject"])
    assert sent[0]["To"] == "nguyen.van.an@hanoi.gov.vn"
    with transaction(ca_runtime.session_factory) as session:
        outcomes = {
            (r.certificate_id, r.threshold_days): r.outcome
            for r in session.scalars(select(ReminderSent))
        }
    assert outcomes == {(late.id, 7): "sent", (late.id, 30): "covered"}
    clock.advance(days=4, hours=1)
    assert reminders.send_due(ca_runtime) == {"sent": 1}
    assert reminders.send_due(ca_runtime) == {}
