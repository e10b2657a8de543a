"""``kill -9`` during ``commune-sso import-users``: the hand-out files list exactly the codes that
work, whatever moment the process died (issue 13, "dead activation codes after a crash").

The CLI runs as a real subprocess on the test's database (SQLite and PostgreSQL), is killed with
SIGKILL once a condition holds (accounts committed, lines in the files, a batch staged), and is
run again on the same file and output directory until it finishes. Then every line of every file
is checked against the database with the lookup ``/activate`` uses
(:func:`idp.bulk_import.activation.candidate_digests`), two codes are really redeemed, and every
account the import created is listed exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import transaction
from idp import accounts, units
from idp.bulk_import import activation
from idp.models import Account, ActivationCode, Unit
from idp.runtime import IdpRuntime
from tests.cli_runner import Cli
from tests.idp.import_files import cccd, csv_bytes, handout_rows, write

ROWS = 600
BATCH = 20
Condition = Callable[[], bool]


def start(cli: Cli, path: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("COMMUNE_")}
    env.update({name: value for name, value in cli.env.items() if value is not None})
    command = "from commune_sso.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", command, "import-users", str(path), "--output-dir", str(out),
         "--batch-size", str(BATCH), "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def kill_when(process: subprocess.Popen[bytes], condition: Condition) -> bool:
    """SIGKILL ``process`` as soon as ``condition`` holds; False if it finished first."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    _, errors = process.communicate()
    assert process.returncode == 0, errors.decode()
    return False


def listed(out: Path) -> list[dict[str, str]]:
    return [
        row
        for path in sorted(out.glob("*.csv"))
        for row in handout_rows(path.read_text(encoding="utf-8"))[1]
    ]


def test_kill_9_at_any_moment_leaves_only_working_codes(
    cli: Cli, runtime: IdpRuntime, tmp_path: Path
) -> None:
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="test")
        wards = list(
            session.scalars(
                select(Unit.code).where(Unit.level == "ward").order_by(Unit.code).limit(3)
            )
        )
    given = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Lan", "Mai", "Nam"]
    middle = ["Văn", "Thị", "Đức", "Minh", "Hữu", "Thanh"]
    rows = [[cccd(i), f"Nguyễn {middle[i // 10 % 6]} {given[i % 10]}", "", "", "", wards[i % 3],
             "Ủy ban nhân dân", ""] for i in range(ROWS)]  # fmt: skip
    path = write(tmp_path, "officials.csv", csv_bytes(rows))
    out = tmp_path / "codes"

    def accounts_count() -> int:
        with transaction(runtime.session_factory) as session:
            return session.scalar(select(func.count()).select_from(Account)) or 0

    def lines_on_disk() -> int:
        lines = 0
        for path in out.glob("*.csv"):
            # A re-run's reconciliation may remove a unit file between the glob and the read.
            with contextlib.suppress(FileNotFoundError):
                lines += path.read_bytes().count(b"\n")
        return lines

    moments: list[Condition] = [
        lambda: accounts_count() > 0,  # the first batches committed
        lambda: (out / activation.PENDING_NAME).exists(),  # a batch staged, around its commit
        lambda: lines_on_disk() > ROWS // 3,  # mid-way through publishing
        lambda: (out / activation.PENDING_NAME).exists(),
    ]
    killed = 0
    for condition in moments:
        killed += kill_when(start(cli, path, out), condition)
    assert killed >= 2, "the import finished before it could be killed"
    final = start(cli, path, out)
    _, errors = final.communicate(timeout=120)
    assert final.returncode == 0, errors.decode()
    assert not (out / activation.PENDING_NAME).exists()

    lines = listed(out)
    usernames = [line["username"] for line in lines]
    assert len(usernames) == len(set(usernames)), "a code listed twice"
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        created = dict(
            session.execute(
                select(Account.username, Account.id).where(Account.password_hash.is_(None))
            )
            .tuples()
            .all()
        )
        assert len(created) == ROWS
        # None missing: every account the import created has its line.
        assert set(usernames) == set(created)
        for line in lines:
            code = session.scalar(
                select(ActivationCode).where(
                    ActivationCode.account_id == created[line["username"]],
                    ActivationCode.code_digest.in_(
                        activation.candidate_digests(
                            account_id=created[line["username"]], raw=line["activation_code"]
                        )
                    ),
                )
            )
            assert code is not None, f"dead code for {line['username']}"
            assert code.used_at is None and code.expires_at > now
    # And two of them really open an account, read aloud the way an official would type them.
    for line in lines[:2]:
        typed = line["activation_code"].lower().replace("-", " ")
        with transaction(runtime.session_factory) as session:
            account = accounts.activate(
                session=session,
                clock=runtime.clock,
                passwords=runtime.passwords,
                username=line["username"],
                code=typed,
                password="Một mật khẩu đủ dài 2026!",
            )
            assert account is not None and account.username == line["username"]


@pytest.mark.parametrize("committed", [True, False])
def test_reconcile_keeps_exactly_the_committed_codes(tmp_path: Path, committed: bool) -> None:
    """The two sides of the window a kill can hit between a batch's staging and its
    publication: committed codes are published on the next run, the others dropped; a torn
    line of an interrupted publication is cut back."""
    from datetime import UTC, datetime

    out = tmp_path / "out"
    writer = activation.HandoutWriter(out, issuer="https://sso.example.vn", titles=["a"] * 6)
    first, _ = activation.new_code(account_id=1)
    writer.stage([activation.IssuedCode("00004", "an", "An", cccd(1), first,
                                        datetime(2026, 1, 1, tzinfo=UTC), 1)])  # fmt: skip
    writer.publish()
    before = (out / "00004.csv").read_bytes()
    second, second_digest = activation.new_code(account_id=2)
    issued = [activation.IssuedCode("00004", "binh", "Bình", cccd(2), second,
                                    datetime(2026, 1, 1, tzinfo=UTC), 2),
              activation.IssuedCode("00008", "cuong", "Cường", cccd(3), second,
                                    datetime(2026, 1, 1, tzinfo=UTC), 3)]  # fmt: skip
    writer.stage(issued)
    with (out / "00004.csv").open("ab") as torn:
        torn.write(b"binh,B\xc3")  # killed in the middle of publishing
    database = {second_digest} if committed else set()
    activation.HandoutWriter(out, issuer="https://sso.example.vn", titles=["a"] * 6).reconcile(
        lambda digests: database & set(digests)
    )
    assert not (out / activation.PENDING_NAME).exists()
    text = (out / "00004.csv").read_bytes()
    if committed:
        assert text.startswith(before) and [r["username"] for r in listed(out)] == ["an", "binh"]
    else:
        assert text == before
    assert not (out / "00008.csv").exists()  # its account's code never committed
