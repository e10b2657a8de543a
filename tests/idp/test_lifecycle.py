"""Lifecycle events: written with the change, read in order with a cursor."""

from __future__ import annotations

import pytest

from core.db import transaction
from idp import accounts, lifecycle
from idp.models import Account


def make_official(runtime, username):
    with transaction(runtime.session_factory) as session:
        return accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username=username,
            full_name="Phạm Thị Dung",
        )


def disable(runtime, account_id):
    with transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="admin:tinh",
            account=session.get(Account, account_id),
        )


def test_disabling_publishes_one_event_in_the_same_transaction(runtime):
    official = make_official(runtime, "pham.thi.dung")
    disable(runtime, official.id)
    disable(runtime, official.id)  # already disabled: nothing new happens
    with transaction(runtime.session_factory) as session:
        events = lifecycle.events_after(session, cursor=0)
    assert [(e.kind, e.account_subject) for e in events] == [
        (lifecycle.ACCOUNT_DISABLED, official.subject)
    ]
    assert events[0].payload == {"by": "admin:tinh"}
    assert events[0].as_dict()["sub"] == official.subject


def test_a_rolled_back_change_publishes_nothing(runtime):
    official = make_official(runtime, "vo.van.em")
    with pytest.raises(RuntimeError), transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="admin:tinh",
            account=session.get(Account, official.id),
        )
        raise RuntimeError("crash before commit")
    with transaction(runtime.session_factory) as session:
        assert lifecycle.events_after(session, cursor=0) == []
        assert session.get(Account, official.id).status == "active"


def test_consumers_page_through_events_with_a_cursor(runtime):
    ids = [make_official(runtime, f"can.bo.{n}").id for n in range(5)]
    for account_id in ids:
        disable(runtime, account_id)
    seen: list[int] = []
    cursor = 0
    with transaction(runtime.session_factory) as session:
        while batch := lifecycle.events_after(session, cursor=cursor, limit=2):
            seen.extend(event.id for event in batch)
            cursor = batch[-1].id
    assert len(seen) == 5 and seen == sorted(seen)


def test_unknown_kinds_are_refused(runtime):
    official = make_official(runtime, "ho.thi.gam")
    with pytest.raises(ValueError), transaction(runtime.session_factory) as session:
        lifecycle.publish(
            session=session,
            clock=runtime.clock,
            kind="account.renamed",
            subject=official.subject,
        )
