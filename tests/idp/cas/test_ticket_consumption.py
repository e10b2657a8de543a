"""Service tickets are spent by exactly one validation, also when two arrive at once (two
workers or hosts), on SQLite and PostgreSQL; only their digest is stored."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from core.db import transaction
from core.opaque_tokens import digest
from idp import sessions
from idp.cas import services, tickets
from idp.models import CasTicket
from idp.runtime import IdpRuntime

SERVICE_URL = "https://vanban.laocai.gov.vn/cas"


def issued_ticket(runtime: IdpRuntime, official) -> str:
    with transaction(runtime.session_factory) as session:
        service = services.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            service_id="van-ban",
            name="Quản lý văn bản",
            url=SERVICE_URL,
        )
        browser_session, _cookie = sessions.create(
            session=session,
            clock=runtime.clock,
            settings=runtime.settings,
            account=official,
            amr=["pwd"],
            client_address=None,
            user_agent=None,
        )
        return tickets.issue(
            session=session,
            clock=runtime.clock,
            settings=runtime.settings,
            service=service,
            service_url=SERVICE_URL,
            browser_session=browser_session,
            from_new_login=True,
        )


def test_two_concurrent_validations_spend_the_ticket_once(runtime: IdpRuntime, official) -> None:
    ticket = issued_ticket(runtime, official)
    first_spent = threading.Event()
    winners: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction(runtime.session_factory) as session:
                if tickets.consume(session=session, clock=runtime.clock, ticket=ticket):
                    winners.append("first")
                first_spent.set()
                # Hold the row (PostgreSQL) or the write lock (SQLite) while the second tries.
                time.sleep(0.5)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            first_spent.set()

    def second() -> None:
        first_spent.wait(10)
        try:
            with transaction(runtime.session_factory) as session:
                if tickets.consume(session=session, clock=runtime.clock, ticket=ticket):
                    winners.append("second")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert winners == ["first"]


def test_only_the_digest_is_stored_and_other_values_spend_nothing(
    runtime: IdpRuntime, official
) -> None:
    ticket = issued_ticket(runtime, official)
    assert ticket.startswith("ST-") and len(ticket) >= 3 + 43
    with transaction(runtime.session_factory) as session:
        row = session.scalars(select(CasTicket)).one()
        assert row.ticket_digest == digest(ticket) and row.session_index is None
        for wrong in (ticket[:-1], ticket + "x", "PT-" + ticket[3:], "ST-" + "a" * 300):
            assert tickets.consume(session=session, clock=runtime.clock, ticket=wrong) is None
        assert row.consumed_at is None
