"""Speed and memory of the bulk import of officials (issue 3, "Performance").

Run: ``.venv/bin/python bench/import_bench.py [--quick] [--rows N]
[--database postgresql|sqlite|both] [--json-out PATH]``

What it measures, in one invocation (CONVENTIONS §16: the reference run is on the same
machine, at the same time):

1. A realistic file: ``--rows`` officials (default 35,200) spread over every ward of one
   province (15, Lào Cai, as synced from the ``vietnam-provinces`` package), with Vietnamese
   names drawn from common family, middle and given names (some typed in NFD or with extra
   spaces), valid synthetic CCCDs (birth-registration province from the 63 codes, century and
   gender digit matching the name, a plausible birth year), +84 phones in the formats people
   type, e-mails, agencies under their various spellings and positions. Written as CSV (UTF-8
   with BOM, Vietnamese headers) and as XLSX.
2. The databases as deployed: a throwaway PostgreSQL (``scripts/pg-throwaway --durable``, real
   fsync) and SQLite (WAL), each upgraded with Alembic and synced with the units.
3. The import as the CLI runs it (``commune-sso import-users``: ``read_file`` then
   ``build_plan`` or ``apply_file``), each step in a fresh process so that its peak RSS is
   its own (VmHWM: ``ru_maxrss`` survives fork and exec on Linux, so it would report the
   parent's peak): dry run, apply, re-import of the unchanged file (every row must come back
   *unchanged*), and a dry run of the XLSX file. tracemalloc slows allocation-heavy code
   several times, so the Python heap peak is measured in a second pass on a twin database,
   and the timed pass runs without it.
4. References: parsing the CSV alone, and a raw SQLAlchemy Core ``executemany`` INSERT of the
   same rows into a scratch table, 1,000 rows per transaction like the import's batches.

5. SCIM lookups on the imported officials, after the import steps on each backend, in a
   fresh process: ``create_app`` with its lifespan behind ``httpx.ASGITransport`` (in-process,
   no socket), a
   client_credentials client with scope ``scim`` reaching the province, its token from
   /oauth2/token, then p50/p99 over 300 sequential requests each of ``filter=userName eq``,
   ``startIndex`` paging (count=100) and ``GET /Users/<id>``.

Targets (issue 3): dry run and apply ≤ 30 s each, re-import ≤ 15 s, peak memory ≤ 500 MB,
SCIM lookups p50 ≤ 10 ms. The exit status is 1 when a target is missed or a step does not do
what it should.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from postgres_cluster import throwaway_postgres
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
PG_THROWAWAY = REPO / "scripts" / "pg-throwaway"

DEFAULT_ROWS = 35_200
QUICK_ROWS = 2_000
PROVINCE = "15"  # Lào Cai (2025 list): 99 wards, old Lào Cai and Yên Bái
ACTOR = "bench:import"
RAW_BATCH = 1_000  # rows per transaction of the raw INSERT, as idp.bulk_import.apply.BATCH_SIZE
RESULT_PREFIX = "RESULT "

TARGET_SECONDS = {"dry-run": 30.0, "dry-run xlsx": 30.0, "apply": 30.0, "re-import": 15.0}
TARGET_PEAK_MB = 500.0
BUSY_LOAD_AVERAGE = 0.5  # per core, at the start: the numbers are suspect above it

console = Console(width=max(160, shutil.get_terminal_size().columns))


# --------------------------------------------------------------------------------------------
# The file: realistic officials of one province.

# (name, weight): the frequencies of the most common Vietnamese family names, with the Hmong,
# Dao, Tày and Thái names that are common in Lào Cai.
FAMILY_NAMES = (
    ("Nguyễn", 30), ("Trần", 9), ("Lê", 8), ("Phạm", 6), ("Hoàng", 6), ("Vũ", 4), ("Đỗ", 3),
    ("Bùi", 3), ("Đặng", 3), ("Ngô", 2), ("Dương", 2), ("Lý", 2), ("Phan", 2), ("Đinh", 2),
    ("Hà", 3), ("Lò", 3), ("Giàng", 3), ("Sùng", 2), ("Vàng", 2), ("Thào", 2), ("Lù", 1),
    ("Nông", 2), ("Triệu", 2), ("Bàn", 2), ("Lương", 1), ("Mạc", 1), ("Đào", 1), ("Tạ", 1),
)  # fmt: skip
MIDDLE_NAMES = {
    "male": (("Văn", 40), ("Đức", 8), ("Hữu", 6), ("Minh", 8), ("Quang", 6), ("Xuân", 4),
             ("Thanh", 4), ("Công", 4), ("Mạnh", 3), ("A", 4), ("Seo", 2), ("Tiến", 3)),
    "female": (("Thị", 50), ("Ngọc", 6), ("Thu", 5), ("Thanh", 5), ("Minh", 3), ("Kim", 3),
               ("Hồng", 4), ("Phương", 3), ("Mai", 2), ("Diệu", 2)),
}  # fmt: skip
GIVEN_NAMES = {
    "male": ("An", "Anh", "Bình", "Chiến", "Cường", "Dũng", "Đạt", "Điệp", "Đông", "Giang",
             "Hải", "Hiếu", "Hòa", "Hùng", "Huy", "Khánh", "Khoa", "Kiên", "Lâm", "Long",
             "Lợi", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Quý", "Sơn", "Tài",
             "Thắng", "Thành", "Thịnh", "Toàn", "Trung", "Tú", "Tuấn", "Tùng", "Việt", "Vinh",
             "Chứ", "Páo", "Sính", "Pao", "Chản"),
    "female": ("Anh", "Bích", "Chi", "Dung", "Duyên", "Giang", "Hà", "Hạnh", "Hằng", "Hiền",
               "Hoa", "Hồng", "Huệ", "Hương", "Huyền", "Lan", "Liên", "Linh", "Loan", "Mai",
               "My", "Nga", "Ngân", "Ngọc", "Nhung", "Oanh", "Phượng", "Quỳnh", "Tâm", "Thảo",
               "Thơm", "Thủy", "Trang", "Tuyết", "Vân", "Xuân", "Yến", "Dở", "Mỷ", "Sua"),
}  # fmt: skip
# Agency as people type it: several spellings per kind (see idp.agencies): abbreviated, with
# the place, without "Việt Nam", the old tone placement, without diacritics, in capitals.
AGENCIES = (
    ("UBND", 14), ("Ủy ban nhân dân", 8), ("UBND xã", 3), ("Uỷ ban nhân dân", 2),
    ("uy ban nhan dan", 1), ("peoples_committee", 2), ("Đảng ủy", 10), ("ĐẢNG ỦY", 2),
    ("HĐND", 5), ("Hội đồng nhân dân", 3), ("MTTQ", 4), ("Ủy ban MTTQ", 2),
    ("Ủy ban Mặt trận Tổ quốc", 4), ("Ủy ban Mặt trận Tổ quốc Việt Nam", 2),
    ("Trung tâm Phục vụ hành chính công", 6), ("Trung tâm phục vụ hành chính công xã", 2),
    ("Khác", 2), ("", 22),
)  # fmt: skip
POSITIONS = (
    ("Chủ tịch UBND", 1), ("Phó Chủ tịch UBND", 2), ("Bí thư Đảng ủy", 1),
    ("Phó Bí thư Đảng ủy", 1), ("Chủ tịch HĐND", 1), ("Chủ tịch Ủy ban MTTQ", 1),
    ("Công chức Văn phòng - Thống kê", 3), ("Công chức Tư pháp - Hộ tịch", 3),
    ("Công chức Địa chính - Xây dựng - Đô thị và Môi trường", 3),
    ("Công chức Tài chính - Kế toán", 3), ("Công chức Văn hóa - Xã hội", 3),
    ("Chỉ huy trưởng Ban Chỉ huy Quân sự", 1), ("Chuyên viên", 8), ("Viên chức", 4),
    ("Kế toán", 2), ("", 4),
)  # fmt: skip
MOBILE_PREFIXES = ("32", "33", "34", "35", "36", "37", "38", "39", "56", "58", "70", "76",
                   "77", "78", "79", "81", "82", "83", "84", "85", "86", "88", "89", "90",
                   "91", "92", "93", "94", "96", "97", "98", "99")  # fmt: skip
EMAIL_DOMAINS = (("laocai.gov.vn", 50), ("LaoCai.gov.vn", 5), ("gmail.com", 35), ("yahoo.com", 5))
CSV_HEADER = (
    "Số CCCD",
    "Họ và tên",
    "Tên đăng nhập",
    "Email",
    "Số điện thoại",
    "Mã đơn vị",
    "Cơ quan",
    "Chức vụ",
)


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in pairs], weights=[w for _, w in pairs])[0]


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.lower().replace("đ", "d"))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum())


def _phone(rng: random.Random) -> str:
    prefix, rest = rng.choice(MOBILE_PREFIXES), f"{rng.randrange(10_000_000):07d}"
    national = f"{prefix}{rest}"  # 9 digits without the trunk 0
    form = rng.randrange(7)
    if form == 0:
        return f"0{national}"
    if form == 1:
        return f"0{national[:3]} {national[3:6]} {national[6:]}"
    if form == 2:
        return f"0{national[:3]}.{national[3:6]}.{national[6:]}"
    if form == 3:
        return f"+84 {national[:2]} {national[2:5]} {national[5:]}"
    if form == 4:
        return f"84{national}"
    if form == 5:
        return f"(+84) {national[:3]}-{national[3:6]}-{national[6:]}"
    return f"0084{national}"


def generate_officials(*, count: int, ward_codes: list[str], seed: int) -> list[list[str]]:
    """``count`` rows in :data:`CSV_HEADER` order, every one valid and with its own CCCD."""
    from idp.official_data import CCCD_PROVINCES

    rng = random.Random(seed)
    # Officials of Lào Cai were mostly born in old Lào Cai (010) or Yên Bái (015).
    provinces = [*CCCD_PROVINCES]
    province_weights = [30 if code in ("010", "015") else 1 for code in provinces]
    this_year = date.today().year
    seen: set[str] = set()
    rows: list[list[str]] = []
    for index in range(count):
        gender = "male" if rng.random() < 0.55 else "female"
        birth_year = rng.randint(this_year - 60, this_year - 20)
        century_digit = (birth_year - 1900) // 100 * 2 + (0 if gender == "male" else 1)
        while True:
            province = rng.choices(provinces, weights=province_weights)[0]
            cccd = f"{province}{century_digit}{birth_year % 100:02d}{rng.randrange(10**6):06d}"
            if cccd not in seen:
                seen.add(cccd)
                break
        family = _weighted(rng, FAMILY_NAMES)
        middle = _weighted(rng, MIDDLE_NAMES[gender])
        given = rng.choice(GIVEN_NAMES[gender])
        name = f"{family} {middle} {given}"
        style = rng.random()
        if style < 0.05:
            name = unicodedata.normalize("NFD", name)  # typed on a Mac, or pasted from a PDF
        elif style < 0.08:
            name = f" {family}  {middle} {given} "
        username = f"{_ascii(given)}.{_ascii(family)}.{index}" if rng.random() < 0.1 else ""
        email = ""
        if rng.random() < 0.8:
            local = f"{_ascii(given)}{_ascii(family)[:1]}{_ascii(middle)[:1]}.{index}"
            email = f"{local}@{_weighted(rng, EMAIL_DOMAINS)}"
        phone = _phone(rng) if rng.random() < 0.85 else ""
        rows.append(
            [
                cccd,
                name,
                username,
                email,
                phone,
                rng.choice(ward_codes),
                _weighted(rng, AGENCIES),
                _weighted(rng, POSITIONS),
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def write_xlsx(path: Path, rows: list[list[str]]) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Cán bộ")
    sheet.append(list(CSV_HEADER))
    for row in rows:
        sheet.append(row)  # text cells, as the template asks: leading zeros kept
    workbook.save(path)


def province_wards(database_url: str) -> list[str]:
    from sqlalchemy import select

    from core.db import make_engine
    from idp.models import Unit

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(Unit.code).where(
                Unit.level == "ward", Unit.province_code == PROVINCE, Unit.status == "active"
            )
            return sorted(connection.scalars(query))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# The databases.


def create_twin_postgres(database_url: str, name: str) -> tuple[str, str]:
    """A second, empty database in the same cluster (for the tracemalloc pass); returns its
    URL and the server version."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            version = str(connection.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()
    return database_url.rsplit("/", 1)[0] + f"/{name}", version


def prepare_database(database_url: str) -> dict[str, int]:
    """Schema at head (Alembic) and the units synced from the package, as in production."""
    import logging

    from commune_sso.database import upgrade
    from core import audit
    from core.clock import SystemClock
    from core.db import make_engine, make_session_factory, transaction
    from idp import units

    upgrade(database_url)
    logging.disable(logging.INFO)  # Alembic's env configures logging; keep the table readable
    engine = make_engine(database_url)
    try:
        factory = make_session_factory(engine)
        audit.install(factory)
        with transaction(factory) as session:
            result = units.sync_from_package(session=session, clock=SystemClock(), actor=ACTOR)
        return result.as_dict()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# One measured step, in a fresh process (``--step``): its ru_maxrss is its own.


def run_step(step: str, *, database_url: str, file: Path, output_dir: Path) -> dict[str, Any]:
    """Run ``step`` here; return seconds, rows and what the step reported."""
    from core import audit
    from core.clock import SystemClock
    from core.db import make_engine, make_session_factory, transaction
    from idp.bulk_import import apply as bulk_apply
    from idp.bulk_import import plan as bulk_plan
    from idp.bulk_import.reading import read_file

    if step == "read":
        started = time.perf_counter()
        imported = read_file(file)
        return {"seconds": time.perf_counter() - started, "rows": len(imported.rows)}
    if step == "raw-insert":
        return raw_insert(database_url=database_url, file=file)
    if step == "scim":
        return scim_lookups(database_url=database_url, work=output_dir)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    audit.install(factory)
    clock = SystemClock()
    try:
        # Timed like the CLI: reading the file is part of every step.
        started = time.perf_counter()
        imported = read_file(file)
        if step == "dry-run":
            with transaction(factory) as session:
                planned = bulk_plan.build_plan(session, imported, today=clock.now().date())
            summary = planned.summary
        elif step in ("apply", "re-import"):
            result = bulk_apply.apply_file(
                session_factory=factory,
                clock=clock,
                actor=ACTOR,
                file=imported,
                output_dir=output_dir,
                issuer="https://sso.laocai.gov.vn",
            )
            summary = result.summary
        else:
            raise ValueError(step)
        seconds = time.perf_counter() - started
        errors = [
            error.as_dict()
            for row in (planned.rows if step == "dry-run" else result.rows)
            for error in row.errors
        ]
        return {
            "seconds": seconds,
            "rows": len(imported.rows),
            "summary": summary.as_dict(),
            "first_errors": errors[:5],
        }
    finally:
        engine.dispose()


def raw_insert(*, database_url: str, file: Path) -> dict[str, Any]:
    """The same rows into a scratch table with Core executemany: the database's own speed."""
    from sqlalchemy import Column, Integer, MetaData, String, Table

    from core.db import make_engine

    with file.open(encoding="utf-8-sig", newline="") as handle:
        records = list(csv.reader(handle))[1:]
    names = ("citizen_id", "full_name", "username", "email", "phone", "unit_code", "agency")
    rows = [dict(zip(names, record, strict=False)) | {"position": record[7]} for record in records]
    metadata = MetaData()
    scratch = Table(
        "bench_raw_insert",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("citizen_id", String(12), unique=True),
        *(Column(name, String(200)) for name in (*names[1:], "position")),
    )
    engine = make_engine(database_url)
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        started = time.perf_counter()
        for start in range(0, len(rows), RAW_BATCH):
            with engine.begin() as connection:
                connection.execute(scratch.insert(), rows[start : start + RAW_BATCH])
        seconds = time.perf_counter() - started
        metadata.drop_all(engine)
    finally:
        engine.dispose()
    return {"seconds": seconds, "rows": len(rows)}


# --------------------------------------------------------------------------------------------
# SCIM lookups on the imported officials, through the real ASGI app.

SCIM_REQUESTS = 300  # per kind of request
SCIM_PAGE = 100
SCIM_TARGET_P50_MS = 10.0
SCIM_ISSUER = "http://127.0.0.1:8000"
SCIM_KINDS = ("filter userName eq", "startIndex paging (count=100)", "GET /Users/<id>")


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below."""
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * fraction)  # 1-based
    return ordered[max(0, min(len(ordered), rank) - 1)]


def scim_lookups(*, database_url: str, work: Path) -> dict[str, Any]:
    """Register a client_credentials client with scope ``scim`` reaching the province, get a
    token from /oauth2/token, then time each request (in-process: ``create_app`` behind
    httpx's ASGITransport, no socket)."""
    import asyncio

    import httpx
    from sqlalchemy import select

    from commune_sso.app import build_runtime, create_app
    from core.db import transaction
    from core.settings import Settings
    from idp import clients
    from idp.models import Account, AccountProfile, Unit

    settings = Settings(
        issuer=SCIM_ISSUER,
        var_dir=work / "scim-var",
        database_url=database_url,
        key_dir=work / "scim-keys",
        key_passphrase="bench-key-passphrase-0123456789",
        secret_key="bench-server-secret-0123456789abcdef",
    )
    runtime = build_runtime(settings)
    rng = random.Random(7)
    with transaction(runtime.session_factory) as session:
        province = session.scalars(
            select(Unit).where(Unit.level == "province", Unit.code == PROVINCE)
        ).one()
        client, secret = clients.create(
            session=session,
            clock=runtime.clock,
            actor=ACTOR,
            name="Bench SCIM",
            grant_types=["client_credentials"],
            scope="scim",
            units=[province],
        )
        client_id = client.client_id
        officials = session.execute(
            select(Account.username, Account.subject)
            .join(AccountProfile, AccountProfile.account_id == Account.id)
            .where(AccountProfile.deleted_at.is_(None))
        ).all()
    assert secret is not None
    total = len(officials)
    last_start = max(1, min(35_000, total - 2 * SCIM_PAGE))
    picks = [rng.choice(officials) for _ in range(SCIM_REQUESTS)]
    requests: dict[str, list[tuple[str, dict[str, str | int], Any]]] = {
        SCIM_KINDS[0]: [
            ("/scim/v2/Users", {"filter": f'userName eq "{username}"'}, 1) for username, _ in picks
        ],
        SCIM_KINDS[1]: [
            (
                "/scim/v2/Users",
                {"startIndex": rng.randint(1, last_start), "count": SCIM_PAGE},
                SCIM_PAGE,
            )
            for _ in range(SCIM_REQUESTS)
        ],
        SCIM_KINDS[2]: [(f"/scim/v2/Users/{subject}", {}, None) for _, subject in picks],
    }

    async def run() -> dict[str, Any]:
        app = create_app(settings, runtime=runtime)
        transport = httpx.ASGITransport(app=app)
        # With its lifespan, as served: httpx's transport does not run it, and without it the
        # token-state cache never starts, so every request would take the database path.
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url=SCIM_ISSUER) as web,
        ):
            answer = await web.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials", "scope": "scim"},
                auth=(client_id, secret),
            )
            answer.raise_for_status()
            web.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
            measured: dict[str, Any] = {}
            for kind, calls in requests.items():
                for path, params, _ in calls[:10]:  # warm-up: caches, pool, first queries
                    (await web.get(path, params=params)).raise_for_status()
                latencies: list[float] = []
                for path, params, expected in calls:
                    started = time.perf_counter()
                    response = await web.get(path, params=params)
                    latencies.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"SCIM {path} {params}: {response.status_code}")
                    if expected is not None and response.json()["itemsPerPage"] != expected:
                        raise SystemExit(f"SCIM {path} {params}: {response.text[:300]}")
                measured[kind] = {
                    "requests": len(latencies),
                    "p50_ms": _percentile(latencies, 0.50),
                    "p99_ms": _percentile(latencies, 0.99),
                    "mean_ms": sum(latencies) / len(latencies),
                    "max_ms": max(latencies),
                }
            return measured

    started = time.perf_counter()
    try:
        measured = asyncio.run(run())
    finally:
        runtime.session_factory.kw["bind"].dispose()
    return {"seconds": time.perf_counter() - started, "rows": total, "scim": measured}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB.

    Not ``ru_maxrss``: Linux carries it over fork and exec, so a child reports at least its
    parent's peak (here, the parent that generated the file). VmHWM belongs to the process's
    own address space and starts afresh at exec.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def step_main(args: argparse.Namespace) -> int:
    if args.trace:
        tracemalloc.start()
    rss_before = peak_rss_mb()
    result = run_step(
        args.step, database_url=args.url, file=Path(args.file), output_dir=Path(args.output_dir)
    )
    result["rss_before_mb"] = rss_before
    result["peak_rss_mb"] = peak_rss_mb()
    result["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.trace:
        result["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1_048_576
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


def measure(
    step: str, *, database_url: str, file: Path, output_dir: Path, trace: bool = False
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--step",
        step,
        "--url",
        database_url,
        "--file",
        str(file),
        "--output-dir",
        str(output_dir),
    ]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        console.print(done.stderr[-4000:], markup=False)
        raise SystemExit(f"step {step} failed (exit status {done.returncode})")
    return dict(json.loads(lines[-1][len(RESULT_PREFIX) :]))


# --------------------------------------------------------------------------------------------
# The run and the table.


@dataclass
class StepResult:
    backend: str
    step: str
    rows: int
    seconds: float
    peak_rss_mb: float
    traced_peak_mb: float | None = None
    target_seconds: float | None = None
    expected: str | None = None  # what the summary must say, e.g. "create=35200"
    summary: dict[str, int] | None = None
    first_errors: list[dict[str, Any]] = field(default_factory=list)
    reference: str | None = None  # how it compares with the reference steps
    rss_before_mb: float = 0.0
    ru_maxrss_mb: float = 0.0  # inherited from the parent: see peak_rss_mb()

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def outcome_ok(self) -> bool | None:
        if self.expected is None:
            return None
        assert self.summary is not None
        name, count = self.expected.split("=")
        return self.summary.get(name) == int(count) and self.summary.get("error") == 0

    @property
    def passed(self) -> bool | None:
        if self.target_seconds is None:
            return None
        return (
            self.seconds <= self.target_seconds
            and self.peak_rss_mb <= TARGET_PEAK_MB
            and self.outcome_ok is not False
        )


@dataclass
class ScimResult:
    backend: str
    request: str
    requests: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    officials: int  # in the database (every one in the client's reach)

    @property
    def passed(self) -> bool:
        return self.p50_ms <= SCIM_TARGET_P50_MS


def result_of(backend: str, step: str, measured: dict[str, Any], **extra: Any) -> StepResult:
    return StepResult(
        backend=backend,
        step=step,
        rows=int(measured["rows"]),
        seconds=float(measured["seconds"]),
        peak_rss_mb=float(measured["peak_rss_mb"]),
        rss_before_mb=float(measured["rss_before_mb"]),
        ru_maxrss_mb=float(measured["ru_maxrss_mb"]),
        summary=measured.get("summary"),
        first_errors=list(measured.get("first_errors", [])),
        **extra,
    )


def bench_backend(
    backend: str,
    *,
    timed_url: str,
    traced_url: str,
    csv_file: Path,
    xlsx_file: Path | None,
    rows: int,
    work: Path,
    read_seconds: float,
    read_xlsx_seconds: float,
    scim: list[ScimResult],
) -> list[StepResult]:
    console.print(f"[bold]{backend}[/bold]: raw insert, dry run, apply, re-import …")
    codes = work / f"codes-{backend}"
    results: list[StepResult] = []
    raw = result_of(
        backend,
        "reference: raw INSERT",
        measure("raw-insert", database_url=timed_url, file=csv_file, output_dir=codes),
    )
    results.append(raw)
    plan = (
        ("dry-run", csv_file, f"create={rows}"),
        *((("dry-run xlsx", xlsx_file, f"create={rows}"),) if xlsx_file else ()),
        ("apply", csv_file, f"create={rows}"),
        ("re-import", csv_file, f"unchanged={rows}"),
    )
    for step, file, expected in plan:
        measured = measure(step.split()[0], database_url=timed_url, file=file, output_dir=codes)
        result = result_of(
            backend, step, measured, target_seconds=TARGET_SECONDS[step], expected=expected
        )
        if step == "apply":
            result.reference = f"{result.seconds / raw.seconds:.1f}× raw INSERT"
        elif step == "dry-run xlsx":
            result.reference = f"{result.seconds / read_xlsx_seconds:.1f}× read XLSX"
        else:
            result.reference = f"{result.seconds / read_seconds:.1f}× read CSV"
        results.append(result)
        console.print(f"  {step}: {result.seconds:.2f} s, {result.peak_rss_mb:.0f} MB")
    # SCIM lookups on the imported officials, in a fresh process of their own.
    lookups = measure("scim", database_url=timed_url, file=csv_file, output_dir=work / backend)
    for request, numbers in lookups["scim"].items():
        scim.append(
            ScimResult(backend=backend, request=request, officials=lookups["rows"], **numbers)
        )
        console.print(
            f"  SCIM {request}: p50 {numbers['p50_ms']:.1f} ms, p99 {numbers['p99_ms']:.1f} ms"
        )
    # The tracemalloc pass, on the twin database (same steps, same order).
    console.print(f"[bold]{backend}[/bold]: tracemalloc pass on the twin database …")
    traced_codes = work / f"codes-{backend}-traced"
    for result in results:
        if result.step.startswith("reference"):
            continue
        file = xlsx_file if result.step == "dry-run xlsx" and xlsx_file else csv_file
        traced = measure(
            result.step.split()[0],
            database_url=traced_url,
            file=file,
            output_dir=traced_codes,
            trace=True,
        )
        result.traced_peak_mb = float(traced["traced_peak_mb"])
    return results


def format_number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_results(results: list[StepResult]) -> None:
    table = Table(title="Bulk import (in-process, as `commune-sso import-users` runs it)")
    columns = (
        "backend",
        "step",
        "rows",
        "seconds",
        "rows/s",
        "peak MB",
        "py heap MB",
        "target",
        "outcome",
        "vs reference",
        "pass/fail",
    )
    for column in columns:
        left = column in ("backend", "step", "target", "outcome", "vs reference")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "-"}
    for result in results:
        target = (
            f"≤ {result.target_seconds:.0f} s, ≤ {TARGET_PEAK_MB:.0f} MB"
            if result.target_seconds is not None
            else "-"
        )
        outcome = "-"
        if result.summary is not None:
            shown = {k: v for k, v in result.summary.items() if v and k != "total"}
            outcome = ", ".join(f"{v:,} {k}" for k, v in shown.items()) or "nothing"
            if result.outcome_ok is False:
                outcome = f"[red]{outcome} (expected {result.expected})[/red]"
        table.add_row(
            result.backend,
            result.step,
            format_number(result.rows),
            format_number(result.seconds, 2),
            format_number(result.rate),
            format_number(result.peak_rss_mb),
            format_number(result.traced_peak_mb),
            target,
            outcome,
            result.reference or "-",
            verdict[result.passed],
        )
    console.print(table)
    console.print(
        "seconds include reading the file, as the CLI does. peak MB is the step process's "
        "peak RSS (VmHWM, not ru_maxrss, which Linux carries over from the parent; interpreter "
        "and imports included: see rss_before_mb in the JSON); py heap "
        "MB is the tracemalloc peak, from a second pass on a twin database because tracemalloc "
        "slows the code down."
    )
    for result in results:
        if result.first_errors:
            console.print(f"{result.backend} {result.step}: first refused rows:")
            for error in result.first_errors:
                console.print(f"  {error}", markup=False)


def print_scim(scim: list[ScimResult]) -> None:
    if not scim:
        return
    table = Table(title="SCIM lookups after the import (in-process ASGI, httpx.ASGITransport)")
    for column in ("backend", "request", "officials", "N", "p50 ms", "p99 ms", "mean ms"):
        left = column in ("backend", "request")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    table.add_column("target", no_wrap=True)
    table.add_column("pass/fail", justify="right", no_wrap=True)
    for result in scim:
        table.add_row(
            result.backend,
            result.request,
            format_number(result.officials),
            format_number(result.requests),
            format_number(result.p50_ms, 2),
            format_number(result.p99_ms, 2),
            format_number(result.mean_ms, 2),
            f"p50 ≤ {SCIM_TARGET_P50_MS:.0f} ms",
            "[green]pass[/green]" if result.passed else "[red]FAIL[/red]",
        )
    console.print(table)
    console.print(
        "One request at a time, after 10 warm-up requests per kind, by a client_credentials "
        f"client with scope scim reaching province {PROVINCE}; latency is the whole ASGI "
        "request (token check, queries, serialisation), without a socket. userName values and "
        "ids are drawn at random from the imported officials; startIndex from 1 to 35,000 "
        "(fewer rows: up to rows - 200)."
    )


def machine_info() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="officials in the file")
    parser.add_argument("--database", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--json-out", type=Path, help="default bench/results/import-<time>.json")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_ROWS:,} rows")
    parser.add_argument("--seed", type=int, default=2025, help="seed of the generated officials")
    # Internal: one measured step in this (fresh) process.
    for name in ("--step", "--url", "--file", "--output-dir"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rows = QUICK_ROWS
    if args.rows < 1:
        parser.error("--rows must be positive")
    return args


def exit_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # runs every cleanup, like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.step:
        return step_main(args)
    started_at = datetime.now(UTC)
    json_out = args.json_out or (
        REPO / "bench" / "results" / f"import-{started_at:%Y%m%dT%H%M%SZ}.json"
    )
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    machine = machine_info()
    console.print(
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"Python {machine['python']}, load average {machine['load_average'][0]:.2f}"
    )
    if machine["load_average"][0] > BUSY_LOAD_AVERAGE * (machine["nproc"] or 1):
        console.print("[yellow]warning:[/yellow] the machine is busy; the numbers will be low")
    backends = ["postgresql", "sqlite"] if args.database == "both" else [args.database]
    results: list[StepResult] = []
    scim: list[ScimResult] = []
    databases: dict[str, str] = {}
    with contextlib.ExitStack() as cleanup:
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="import-bench-")))
        urls: dict[str, tuple[str, str]] = {}
        if "postgresql" in backends:
            timed, _ = cleanup.enter_context(throwaway_postgres("import-bench-pg-"))
            traced, version = create_twin_postgres(timed, "commune_sso_traced")
            urls["postgresql"] = (timed, traced)
            databases["postgresql"] = f"PostgreSQL {version} (durable)"
        if "sqlite" in backends:
            urls["sqlite"] = (f"sqlite:///{work / 'timed.db'}", f"sqlite:///{work / 'traced.db'}")
            databases["sqlite"] = "SQLite (WAL, synchronous=NORMAL)"
        for backend, pair in urls.items():
            for url in pair:
                synced = prepare_database(url)
            console.print(f"{databases[backend]}: schema at head, units {synced}")
        wards = province_wards(urls[backends[0]][0])
        officials = generate_officials(count=args.rows, ward_codes=wards, seed=args.seed)
        csv_file, xlsx_file = work / "officials.csv", work / "officials.xlsx"
        write_csv(csv_file, officials)
        write_xlsx(xlsx_file, officials)
        del officials
        console.print(
            f"file: {args.rows:,} officials over {len(wards)} wards of province {PROVINCE}; "
            f"CSV {csv_file.stat().st_size / 1_048_576:.1f} MB, "
            f"XLSX {xlsx_file.stat().st_size / 1_048_576:.1f} MB"
        )
        read_csv = result_of("-", "reference: read CSV", measure_read(csv_file, work))
        read_xlsx = result_of("-", "reference: read XLSX", measure_read(xlsx_file, work))
        results += [read_csv, read_xlsx]
        for backend in backends:
            timed_url, traced_url = urls[backend]
            results += bench_backend(
                backend,
                timed_url=timed_url,
                traced_url=traced_url,
                csv_file=csv_file,
                # The XLSX dry run is one extra row, on the first backend only.
                xlsx_file=xlsx_file if backend == backends[0] else None,
                rows=args.rows,
                work=work,
                read_seconds=read_csv.seconds,
                read_xlsx_seconds=read_xlsx.seconds,
                scim=scim,
            )
    print_results(results)
    print_scim(scim)
    report = {
        "started_at": started_at.isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "options": {"rows": args.rows, "database": args.database, "seed": args.seed},
        "databases": databases,
        "targets": {"seconds": TARGET_SECONDS, "peak_mb": TARGET_PEAK_MB},
        "scim": {
            "target_p50_ms": SCIM_TARGET_P50_MS,
            "transport": "in-process: create_app behind httpx.ASGITransport",
            "lookups": [asdict(result) | {"passed": result.passed} for result in scim],
        },
        "steps": [
            asdict(result) | {"rows_per_second": result.rate, "passed": result.passed}
            for result in results
        ],
    }
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    console.print(f"JSON: {json_out}")
    failed = any(result.passed is False for result in [*results, *scim])
    return 1 if failed else 0


def measure_read(file: Path, work: Path) -> dict[str, Any]:
    return measure("read", database_url="", file=file, output_dir=work)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        console.print("interrupted: the databases were stopped and removed")
        sys.exit(130)
