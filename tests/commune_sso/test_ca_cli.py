"""`commune-sso ca ...` in-process on both databases: the hierarchy, the RA step with two admins,
revocation, CRL and chain files, the lifecycle sync and a unit merger, with --json output and
clean failures."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ca_admin.serials import parse_serial, serial_hex
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import BA_DINH, HOAN_KIEM, People, make_csr, people  # noqa: F401
from tests.cli_runner import Cli, assert_clean_failure, one_line
from tests.commune_sso.test_cli import ACTION_ONLY_COMMANDS, all_commands

ORGANISATION = "Sở KH&CN tỉnh Lào Cai"
FAST = ("--root-algorithm", "ec-p256", "--issuing-algorithm", "ec-p256")
FAST += ("--ocsp-algorithm", "ec-p256")


@pytest.fixture
def ca(cli: Cli, runtime: IdpRuntime, people: People) -> Cli:  # noqa: F811
    """A CA set up through the CLI, on the database the `people` fixture filled."""
    cli.ok("ca", "init", "--organisation", ORGANISATION, *FAST)
    return cli


def issue(ca: Cli, tmp_path: Path, username: str = "nguyen.van.an") -> str:
    csr_file = tmp_path / f"{username}.csr"
    csr_file.write_bytes(make_csr()[0])
    request = ca.json("ca", "issue", username, "--csr", str(csr_file), "--as", "admin.hoankiem")
    assert request["status"] == "pending" and request["serial"] is None
    approved = ca.json("ca", "approve", request["id"], "--as", "admin2.hoankiem")
    assert approved["status"] == "issued"
    return str(approved["serial"])


def test_every_ca_command_offers_json() -> None:
    commands = dict(all_commands())
    ca_commands = {name for name in commands if name.startswith("ca ")}
    assert {"ca init", "ca issue", "ca revoke", "ca list", "ca merger apply"} <= ca_commands
    for name in ca_commands - ACTION_ONLY_COMMANDS:
        assert "--json" in {opt for p in commands[name].params for opt in p.opts}, name


def test_the_authentication_profile_is_issued_from_the_command_line(ca: Cli, tmp_path: Path):
    """Certificate sign-in's profile (clientAuth, digitalSignature only), chosen by name."""
    csr_file = tmp_path / "login.csr"
    csr_file.write_bytes(make_csr()[0])
    request = ca.json(
        "ca", "issue", "nguyen.van.an", "--csr", str(csr_file), "--as", "admin.hoankiem",
        "--profile", "official-authentication",
    )  # fmt: skip
    approved = ca.json("ca", "approve", request["id"], "--as", "admin2.hoankiem")
    assert approved["status"] == "issued" and approved["profile"] == "official-authentication"


def test_init_exports_the_root_key_for_offline_keeping(cli: Cli, tmp_path: Path) -> None:
    passphrase_file = tmp_path / "export-passphrase"
    passphrase_file.write_text("một cụm mật khẩu rất dài\n", encoding="utf-8")
    exported = tmp_path / "root-key.pem"
    result = cli.ok(
        "ca",
        "init",
        "--organisation",
        ORGANISATION,
        *FAST,
        "--export-root-key",
        str(exported),
        "--export-passphrase-file",
        str(passphrase_file),
    )
    assert "can now be moved offline" in one_line(result.stdout)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    key = load_pem_private_key(exported.read_bytes(), "một cụm mật khẩu rất dài".encode())
    chain = cli.json("ca", "export-chain")["certificates"]
    root = x509.load_pem_x509_certificate(chain[-1]["pem"].encode())
    assert root.public_key() == key.public_key()
    assert ORGANISATION in root.subject.rfc4514_string()

    again = cli("ca", "init", "--organisation", ORGANISATION, *FAST)
    assert_clean_failure(again, "The CA hierarchy already exists")


def test_init_takes_the_organisation_from_the_setting(cli: Cli) -> None:
    missing = cli("ca", "init", *FAST)
    assert_clean_failure(missing, "give --organisation, or set COMMUNE_SSO_ORGANISATION_NAME")
    named = Cli({**cli.env, "COMMUNE_SSO_ORGANISATION_NAME": ORGANISATION})
    named.ok("ca", "init", *FAST)
    chain = named.json("ca", "export-chain")["certificates"]
    root = x509.load_pem_x509_certificate(chain[-1]["pem"].encode())
    assert ORGANISATION in root.subject.rfc4514_string()


def test_init_and_rollover_take_the_cas_names(cli: Cli) -> None:
    created = cli.json(
        "ca",
        "init",
        "--organisation",
        ORGANISATION,
        *FAST,
        "--root-name",
        "CA gốc tỉnh Lào Cai",
        "--issuing-name",
        "CA cấp phát tỉnh Lào Cai 2026",
    )
    assert created["root"]["subject"].startswith("CN=CA gốc tỉnh Lào Cai,")
    assert created["issuing"]["subject"].startswith("CN=CA cấp phát tỉnh Lào Cai 2026,")
    fast = ("--algorithm", "ec-p256", *FAST[4:])
    taken = cli("ca", "add-issuing", "issuing-ca-2", *fast, "--name", "CA gốc tỉnh Lào Cai")
    assert_clean_failure(taken, "already exists")
    added = cli.json("ca", "add-issuing", "issuing-ca-2", *fast)
    assert added["subject"].startswith(f"CN={ORGANISATION} Issuing CA 2,")


def test_issue_approve_list_show_revoke_and_crl(ca: Cli, tmp_path: Path) -> None:
    csr_file = tmp_path / "an.csr"
    csr_file.write_bytes(make_csr()[0])
    request = ca.json(
        "ca", "issue", "nguyen.van.an", "--csr", str(csr_file), "--as", "admin.hoankiem"
    )
    assert [r["id"] for r in ca.json("ca", "requests")] == [request["id"]]
    # The requester cannot approve; an admin of another ward cannot either.
    own = ca("ca", "approve", request["id"], "--as", "admin.hoankiem")
    assert_clean_failure(own, "You cannot approve your own request")
    outside = ca("ca", "approve", request["id"], "--as", "admin.badinh")
    assert_clean_failure(outside, "You do not administer this official's unit")
    approved = ca.json("ca", "approve", request["id"], "--as", "admin2.hoankiem")
    serial = approved["serial"]
    # People by username, never the IdP's opaque sub; the request id is `id`, as in the API.
    assert (approved["requested_by"], approved["approved_by"]) == (
        "admin.hoankiem",
        ["admin2.hoankiem"],
    )
    assert "request_id" not in approved
    requests_table = one_line(ca.ok("ca", "requests", "--status", "issued").stdout)
    assert "admin.hoankiem" in requests_table

    # Diacritic- and case-insensitive name search, unit and status filters.
    assert [c["serial"] for c in ca.json("ca", "list", "--name", "NGUYEN van")] == [serial]
    assert [c["serial"] for c in ca.json("ca", "list", "--unit", HOAN_KIEM)] == [serial]
    assert ca.json("ca", "list", "--unit", BA_DINH) == []
    assert [c["serial"] for c in ca.json("ca", "list", "--expiring-within", "800")] == [serial]
    assert ca.json("ca", "list", "--expiring-within", "30") == []

    shown = ca.json("ca", "show", serial)
    assert shown["status"] == "good"
    assert "CN=Nguyễn Văn An" in shown["subject"]
    # Attributes by name: title (RFC 4519), not its OID.
    assert "title=Chuyên viên" in shown["subject"] and "2.5.4.12" not in shown["subject"]
    assert "1.3.6.1.5.5.7.3.36" in shown["extended_key_usage"]
    table = ca.ok("ca", "show", serial).stdout
    assert serial in table and "Nguyễn Văn An" in table

    revoked = ca.json(
        "ca",
        "revoke",
        serial,
        "--reason",
        "keyCompromise",
        "--invalidity-date",
        "2026-01-01T08:00:00+07:00",
        "--as",
        "admin.hoankiem",
    )
    assert (revoked["status"], revoked["revocation_reason"]) == ("revoked", "keyCompromise")
    assert_clean_failure(
        ca("ca", "revoke", serial, "--reason", "keyCompromise"), "is already revoked"
    )

    crl_file = tmp_path / "issuing.crl"
    published = ca.json("ca", "crl", "--out", str(crl_file))
    crl = x509.load_der_x509_crl(crl_file.read_bytes())
    assert (
        published["crl_number"]
        == crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    )
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    audit = ca.json("audit", "tail", "--action", "ca.certificate.revoked")
    # The audit log keys certificates by the stored form (lowercase, no leading zero).
    assert audit[-1]["target"] == f"cert:{serial_hex(parse_serial(serial))}"
    assert audit[-1]["actor"] != "cli"


def test_crl_partitions_listed_and_published_by_the_operator(ca: Cli, tmp_path: Path) -> None:
    serial, held = issue(ca, tmp_path), issue(ca, tmp_path)
    revoked = ca.json("ca", "revoke", serial, "--reason", "superseded", "--as", "admin.hoankiem")
    # The partition's CRL is signed at once, the full CRL by the maintenance pass.
    assert revoked["crl_url"].endswith("/ca/crl/issuing-ca-1/1.crl")
    assert revoked["crl_owed_since"] is None
    stale_since = datetime.fromisoformat(revoked["full_crl_stale_since"])
    assert datetime.fromisoformat(revoked["full_crl_due_by"]) == stale_since + timedelta(minutes=5)
    assert "the full CRL follows by" in ca.ok("ca", "hold", held, "--as", "admin.hoankiem").stdout
    [authority] = [row for row in ca.json("ca", "authorities") if row["role"] == "issuing"]
    assert authority["full_crl_stale_since"] == revoked["full_crl_stale_since"]  # the first
    assert "behind since" in ca.ok("ca", "crl-partitions").stdout

    [partition] = ca.json("ca", "crl-partitions")
    assert (partition["partition"], partition["certificates"], partition["entries"]) == (1, 2, 2)
    assert partition["url"].endswith("/ca/crl/issuing-ca-1/1.crl")
    assert partition["crl_owed_since"] is None
    assert "/ca/crl/issuing-ca-1/1.crl" in ca.ok("ca", "crl-partitions").stdout

    crl_file = tmp_path / "partition-1.crl"
    published = ca.json("ca", "crl", "--partition", "1", "--out", str(crl_file))
    assert (published["partition"], published["url"]) == (1, partition["url"])
    crl = x509.load_der_x509_crl(crl_file.read_bytes())
    assert (
        crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        == (published["crl_number"])
    )
    assert crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).critical
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert_clean_failure(ca("ca", "crl", "--partition", "7"), "has no CRL partition 7")
    assert "full CRL: behind since" in ca.ok("ca", "crl", "--partition", "1").stdout
    # `ca crl` signs the full CRL now: nothing left behind.
    assert ca.json("ca", "crl")["full_crl_stale_since"] is None
    assert "/ca/crl/issuing-ca-1.crl: current" in ca.ok("ca", "crl-partitions").stdout


def test_hold_and_release_as_the_operator(ca: Cli, tmp_path: Path) -> None:
    serial = issue(ca, tmp_path)
    assert ca.json("ca", "hold", serial)["status"] == "hold"
    assert [c["serial"] for c in ca.json("ca", "list", "--status", "hold")] == [serial]
    assert ca.json("ca", "release", serial)["status"] == "good"
    actors = {e["actor"] for e in ca.json("audit", "tail", "--action", "ca.certificate.")}
    assert "cli" in actors
    assert_clean_failure(ca("ca", "release", serial), "is not on hold")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ca", "show", "zz-not-hex"), "is not a certificate serial number"),
        (("ca", "show", "0123abcd"), "No certificate has serial number 0123ABCD"),
        (("ca", "revoke", "0123abcd", "--reason", "keyCompromise"), "No certificate"),
        (("ca", "approve", "nope", "--as", "admin.hoankiem"), "There is no certificate request"),
        (("ca", "approve", "nope", "--as", "nobody"), "nobody is not an active administrator"),
        (("ca", "list", "--status", "weird"), "--status must be good, revoked or hold"),
        (("ca", "crl", "--authority", "nope"), "There is no CA named nope"),
        (("ca", "merger", "apply", "nope"), "There is no merger job nope"),
    ],
)
def test_refusals_are_clean(ca: Cli, args: tuple[str, ...], message: str) -> None:
    assert_clean_failure(ca(*args), message)


def test_bad_reason_and_bad_csr_are_clean(ca: Cli, tmp_path: Path) -> None:
    serial = issue(ca, tmp_path)
    assert_clean_failure(
        ca("ca", "revoke", serial, "--reason", "boredom"), "Unknown revocation reason boredom"
    )
    garbage = tmp_path / "garbage.csr"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")
    result = ca("ca", "issue", "tran.thi.binh", "--csr", str(garbage), "--as", "admin.hoankiem")
    assert_clean_failure(result, "not a valid PKCS#10")
    missing = ca(
        "ca", "issue", "tran.thi.binh", "--csr", str(tmp_path / "nope"), "--as", "admin.hoankiem"
    )
    assert_clean_failure(missing, "cannot read")


def test_reject_and_export_chain(ca: Cli, tmp_path: Path) -> None:
    csr_file = tmp_path / "binh.csr"
    csr_file.write_bytes(make_csr()[0])
    request = ca.json("ca", "issue", "tran.thi.binh", "--csr", str(csr_file), "--as", "admin.hanoi")
    rejected = ca.json(
        "ca", "reject", request["id"], "--reason", "Sai chức vụ", "--as", "admin.hoankiem"
    )
    assert rejected["status"] == "rejected" and rejected["decision_reason"] == "Sai chức vụ"
    assert ca.json("ca", "requests") == []
    assert [r["status"] for r in ca.json("ca", "requests", "--status", "rejected")] == ["rejected"]

    chain_file = tmp_path / "chain.pem"
    ca.ok("ca", "export-chain", "--out", str(chain_file))
    issuing, root = x509.load_pem_x509_certificates(chain_file.read_bytes())
    issuing.verify_directly_issued_by(root)
    assert ca.ok("ca", "export-chain").stdout == chain_file.read_text()


def test_sync_lifecycle_holds_a_disabled_officials_certificate(ca: Cli, tmp_path: Path) -> None:
    serial = issue(ca, tmp_path)
    ca.ok("user", "disable", "nguyen.van.an")
    synced = ca.json("ca", "sync-lifecycle")
    assert synced["changed_serials"] == [serial]
    assert ca.json("ca", "show", serial)["revocation_reason"] == "certificateHold"
    assert ca.json("ca", "sync-lifecycle")["events"] == 0


def test_merger_preview_plan_approve_apply(ca: Cli, tmp_path: Path) -> None:
    first, second = issue(ca, tmp_path), issue(ca, tmp_path, "tran.thi.binh")
    preview = ca.json("ca", "merger", "preview", HOAN_KIEM, BA_DINH)
    assert sorted(p["serial"] for p in preview) == sorted([first, second])
    job = ca.json("ca", "merger", "plan", HOAN_KIEM, BA_DINH, "--as", "admin.hanoi")
    assert (job["status"], job["total"]) == ("pending_approval", 2)
    assert_clean_failure(
        ca("ca", "merger", "approve", job["job_id"], "--as", "admin.hanoi"),
        "You cannot approve a merger job you planned",
    )
    assert_clean_failure(ca("ca", "merger", "apply", job["job_id"]), "is not approved yet")
    approved = ca.json("ca", "merger", "approve", job["job_id"], "--as", "root.admin")
    assert approved["status"] == "approved"
    ca.ok("unit", "merge", HOAN_KIEM, BA_DINH, "--reason", "Nghị quyết 1656/NQ-UBTVQH15")
    applied = ca.json("ca", "merger", "apply", job["job_id"], "--batch-size", "1")
    assert (applied["status"], applied["reissued"], applied["batches_run"]) == ("done", 2, 2)
    assert ca.json("ca", "show", first)["revocation_reason"] == "superseded"
    fresh = ca.json("ca", "list", "--unit", BA_DINH)
    assert len(fresh) == 2 and {c["status"] for c in fresh} == {"good"}
    assert ca.json("ca", "merger", "apply", job["job_id"])["batches_run"] == 0
    assert ca.json("ca", "merger", "show", job["job_id"])["done"] == 2


def test_renew_with_a_new_csr_needs_another_admin(ca: Cli, tmp_path: Path) -> None:
    serial = issue(ca, tmp_path)
    csr_file = tmp_path / "renewal.csr"
    csr_file.write_bytes(make_csr()[0])
    request = ca.json("ca", "renew", serial, "--csr", str(csr_file), "--as", "admin.hoankiem")
    assert request["status"] == "pending"
    renewed = ca.json("ca", "approve", request["id"], "--as", "admin2.hoankiem")
    shown = ca.json("ca", "show", renewed["serial"])
    assert shown["renewal_of"] == serial and shown["status"] == "good"
    assert_clean_failure(ca("ca", "renew", serial, "--as", "admin.badinh"), "do not administer")


def test_tsa_init_and_show(ca: Cli, tmp_path: Path) -> None:
    created = ca.json("ca", "tsa", "init")
    assert created["name"] == "tsa-1" and created["active"]
    assert created["subject"].startswith("CN=Time-Stamping Authority (tsa-1),")
    assert created["url"].endswith("/tsa")
    certificate = x509.load_pem_x509_certificate(created["pem"].encode())
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [x509.ExtendedKeyUsageOID.TIME_STAMPING]
    taken = ca("ca", "tsa", "init")
    assert_clean_failure(taken, "already exists")
    second = ca.json("ca", "tsa", "init", "--name", "tsa-2", "--algorithm", "ec-p384")
    shown = ca.json("ca", "tsa", "show")
    assert [(unit["name"], unit["active"]) for unit in shown] == [
        ("tsa-2", True),
        ("tsa-1", False),
    ]
    assert ca.ok("ca", "tsa", "show", "--pem").stdout == second["pem"]
    assert_clean_failure(ca("ca", "tsa", "init", "--reuse-key"), "--reuse-key needs --key-uri")
