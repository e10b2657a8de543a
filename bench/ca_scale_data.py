"""National-scale data for the CA (issue 18): one issuing CA with 1,000,000 certificates of
officials of 34 provinces, 300,000 of them revoked, in CRL partitions as issuance fills them.

Run (on a database upgraded to head with a CA made by ``commune-sso ca init``):
``.venv/bin/python bench/ca_scale_data.py --database-url URL [--authority issuing-ca-1]
[--certificates 1000000] [--revoked 300000] [--partition-size 100000]``;
``bench/ca_bench.py`` calls :func:`populate` for its "national scale" rows.

The rows are what issuance stores (``ca_admin.issuance``): random serials, Vietnamese names
(with their folded search form), 12-digit citizen IDs, ward codes of 34 provinces, validity
spread over two years, a real certificate's DER (the same bytes for every row: nothing here
reads it, and its size is the real one), the partition of sequential fill. Three rows in ten
are revoked with RFC 5280 reasons, a few hundred are on hold. PostgreSQL gets them by COPY,
SQLite by executemany in batches; both in one transaction, the partition fill row moved on in
the same transaction.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ca_admin.models import Authority, IssuedCertificate, PartitionFill
from core.db import make_engine
from core.text_search import fold_for_search

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng")
FAMILY += ("Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý")
MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Xuân", "Thu")
GIVEN = ("An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Hương")
GIVEN += ("Khánh", "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phong", "Phúc", "Quân")
GIVEN += ("Quỳnh", "Sơn", "Tâm", "Thảo", "Thủy", "Trang", "Tuấn", "Việt", "Yến")
PROVINCES = 34
WARDS_PER_PROVINCE = 98  # 3,321 communes and wards after the 2025 merger, about 98 each
REASONS = ("superseded", "keyCompromise", "affiliationChanged", "cessationOfOperation")
REASONS += ("unspecified", "privilegeWithdrawn")
PROFILE = "official-document-signing"
VALIDITY = timedelta(days=2 * 365)
BATCH = 20_000

_CERTIFICATES = cast(Table, IssuedCertificate.__table__)
COLUMNS = [column.name for column in _CERTIFICATES.c if column.name != "id"]


@dataclass(frozen=True)
class ScaleData:
    certificates: int
    revoked: int
    held: int
    partitions: list[int]
    seconds: float


def _names() -> list[tuple[str, str]]:
    """Every (name, folded name) combination, folded once (1,000,000 folds would cost more)."""
    return [
        (name, fold_for_search(name))
        for name in (" ".join(parts) for parts in itertools.product(FAMILY, MIDDLE, GIVEN))
    ]


def ward_code(number: int) -> str:
    """The ward of the ``number``-th official: 34 provinces × 98 wards, codes 00001…03332."""
    return f"{number % (PROVINCES * WARDS_PER_PROVINCE) + 1:05d}"


def certificate_rows(
    *,
    authority_id: int,
    count: int,
    revoked: int,
    first_number: int,
    partitions: Iterator[int],
    template_der: bytes,
    now: datetime,
    tally: dict[str, int],
) -> Iterator[dict[str, Any]]:
    """``count`` rows of the ``ca_certificate`` table, ``revoked`` of them revoked (spread
    evenly, so every partition gets its share), one in 3,000 on hold; ``tally`` counts the
    statuses."""
    names = _names()
    now = now.replace(microsecond=0)
    revoke_every = count / revoked if revoked else 0.0
    next_revoked = 0.0
    for index in range(count):
        number = first_number + index
        name, folded = names[(number * 7919) % len(names)]
        unit = ward_code(number)
        not_before = now - timedelta(minutes=(number * 37) % (VALIDITY.days * 1440))
        status, revoked_at, reason = "good", None, None
        if revoked and index >= next_revoked:
            next_revoked += revoke_every
            status, reason = "revoked", REASONS[number % len(REASONS)]
            revoked_at = not_before + (now - not_before) / 2
        elif number % 3000 == 0:
            status, reason, revoked_at = "hold", "certificateHold", now - timedelta(days=1)
        tally[status] = tally.get(status, 0) + 1
        province = number % PROVINCES + 1
        yield {
            "serial": "1" + secrets.token_hex(16),
            "authority_id": authority_id,
            "profile": PROFILE,
            "subject_ref": f"scale-{number:07d}",
            "subject": f"UID=CCCD:{province:03d}{number:09d},CN={name},L=Phường {unit},C=VN",
            "common_name": name,
            "search_name": folded,
            "citizen_id": f"{province:03d}{number:09d}",
            "unit_code": unit,
            "spki_sha256": hashlib.sha256(b"scale %d" % number).hexdigest(),
            "not_before": not_before,
            "not_after": not_before + VALIDITY,
            "der": template_der,
            "status": status,
            "revoked_at": revoked_at,
            "revocation_reason": reason,
            "invalidity_date": None,
            "request_id": None,
            "renewal_of_id": None,
            "issued_at": not_before,
            "crl_partition": next(partitions),
        }


def _partition_numbers(fill: PartitionFill, size: int, count: int) -> list[int]:
    """The partitions issuance would give the next ``count`` certificates
    (``crl_partitions.assign``); ``fill`` moves on as it would."""
    partition, assigned = fill.partition, fill.assigned
    numbers: list[int] = []
    while len(numbers) < count:
        if assigned >= size:
            partition, assigned = partition + 1, 0
        take = min(size - assigned, count - len(numbers))
        numbers += [partition] * take
        assigned += take
    fill.partition, fill.assigned = partition, assigned
    return numbers


def _copy_into_postgresql(session: Session, rows: Iterator[dict[str, Any]]) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    statement = f"COPY ca_certificate ({', '.join(COLUMNS)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row([row[column] for column in COLUMNS])


def _insert_in_batches(session: Session, rows: Iterator[dict[str, Any]]) -> None:
    """The driver's executemany, values converted by the columns' own bind processors (what
    SQLAlchemy's executemany would do, without its per-row parameter bookkeeping)."""
    dialect = session.get_bind().dialect
    # The processors SQLAlchemy itself applies (UTCDateTime: naive UTC text on SQLite).
    convert = [
        (name, _CERTIFICATES.c[name].type._cached_bind_processor(dialect)) for name in COLUMNS
    ]
    statement = (
        "INSERT INTO ca_certificate ("
        + ", ".join(COLUMNS)
        + ") VALUES ("
        + ", ".join("?" * len(COLUMNS))
        + ")"
    )
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    while batch := list(itertools.islice(rows, BATCH)):
        cursor.executemany(
            statement,
            [
                [
                    process(row[name]) if process and row[name] is not None else row[name]
                    for name, process in convert
                ]
                for row in batch
            ],
        )


def populate(
    session: Session,
    *,
    authority_name: str,
    certificates: int,
    revoked: int,
    partition_size: int,
    now: datetime | None = None,
) -> ScaleData:
    """Insert the rows in the caller's transaction (commit is the caller's)."""
    started = time.monotonic()
    authority = session.scalars(select(Authority).where(Authority.name == authority_name)).one()
    template_der = (
        session.scalar(
            select(IssuedCertificate.der)
            .where(IssuedCertificate.authority_id == authority.id)
            .limit(1)
        )
        or authority.certificate_der
    )  # no certificate issued yet: the CA's own, as large
    fill = session.get(PartitionFill, authority.id, with_for_update=True)
    if fill is None:
        fill = PartitionFill(authority_id=authority.id, partition=1, assigned=0)
        session.add(fill)
    first_number = (
        session.scalar(select(IssuedCertificate.id).order_by(IssuedCertificate.id.desc()).limit(1))
        or 0
    )
    numbers = _partition_numbers(fill, partition_size, certificates)
    tally: dict[str, int] = {}
    rows = certificate_rows(
        authority_id=authority.id,
        tally=tally,
        count=certificates,
        revoked=revoked,
        first_number=first_number + 1,
        partitions=iter(numbers),
        template_der=template_der,
        now=now or datetime.now(UTC),
    )
    if session.get_bind().dialect.name == "postgresql":
        _copy_into_postgresql(session, rows)
    else:
        _insert_in_batches(session, rows)
    session.flush()
    return ScaleData(
        certificates=certificates,
        revoked=tally.get("revoked", 0),
        held=tally.get("hold", 0),
        partitions=sorted(set(numbers)),
        seconds=time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--authority", default="issuing-ca-1")
    parser.add_argument("--certificates", type=int, default=1_000_000)
    parser.add_argument("--revoked", type=int, default=300_000)
    parser.add_argument("--partition-size", type=int, default=100_000)
    args = parser.parse_args(argv)
    if not 0 <= args.revoked <= args.certificates or args.partition_size < 1:
        parser.error("need 0 ≤ revoked ≤ certificates and a positive partition size")
    with Session(make_engine(args.database_url)) as session, session.begin():
        data = populate(
            session,
            authority_name=args.authority,
            certificates=args.certificates,
            revoked=args.revoked,
            partition_size=args.partition_size,
        )
    print(
        f"{data.certificates:,} certificates ({data.revoked:,} revoked, {data.held} on hold) "
        f"in partitions {data.partitions[0]}–{data.partitions[-1]}: {data.seconds:.1f} s; "
        "the next CA maintenance pass publishes the partitions' CRLs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
