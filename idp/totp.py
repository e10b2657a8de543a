"""One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238), with the standard library only.

The parameters are the ones every authenticator app understands (Google Authenticator ignores
the others): HMAC-SHA1, 6 digits, 30-second steps, a 160-bit secret (RFC 4226 §4 R6
recommends 160 bits). Verification accepts the current step and one step either side for
clock drift (RFC 6238 §5.2 recommends at most one step of network delay) and refuses a step
at or before the last one accepted, so a code cannot be replayed (RFC 6238 §5.2: "the
verifier MUST NOT accept the second attempt of the OTP after the successful validation").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from urllib.parse import quote, urlencode

DIGITS = 6
STEP_SECONDS = 30  # RFC 6238 §5.2 recommends 30 seconds
SECRET_BYTES = 20  # RFC 4226 §4 R6: 160 bits
DRIFT_STEPS = 1
ALGORITHMS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
# ASCII digits only: \d would also match the digits of other scripts.
CODE_PATTERN = re.compile(r"^[0-9]{6}$")


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """RFC 4226 §5.3: HMAC of the 8-byte counter, dynamic truncation, modulo 10^digits."""
    mac = hmac.new(key, counter.to_bytes(8, "big"), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def time_step(moment: datetime | float, *, step_seconds: int = STEP_SECONDS) -> int:
    """RFC 6238 §4.2: T = floor((Unix time - T0) / X), with T0 = 0."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    return int(seconds // step_seconds)


def totp(
    key: bytes,
    moment: datetime | float,
    *,
    digits: int = DIGITS,
    algorithm: str = "SHA1",
    step_seconds: int = STEP_SECONDS,
) -> str:
    """RFC 6238 §4.2: TOTP = HOTP(K, T)."""
    return hotp(
        key, time_step(moment, step_seconds=step_seconds), digits=digits, algorithm=algorithm
    )


def matching_step(
    key: bytes,
    code: str,
    *,
    now: datetime,
    last_used_step: int | None,
    drift_steps: int = DRIFT_STEPS,
) -> int | None:
    """The time step ``code`` belongs to, within ±``drift_steps`` of now and after
    ``last_used_step``; None if there is none (wrong, too old, or a replay)."""
    found = code_step(key, code, now=now, drift_steps=drift_steps)
    if found is None or (last_used_step is not None and found <= last_used_step):
        return None
    return found


def code_step(
    key: bytes, code: str, *, now: datetime, drift_steps: int = DRIFT_STEPS
) -> int | None:
    """The time step ``code`` belongs to, within ±``drift_steps`` of now, used or not; None for
    a wrong or too old code. :func:`matching_step` adds the replay check."""
    code = code.strip().replace(" ", "")
    if not CODE_PATTERN.fullmatch(code):
        return None
    current = time_step(now)
    found = None
    # Every candidate is computed and compared in constant time, so the answer's timing does
    # not tell which step (if any) matched.
    for step in range(current - drift_steps, current + drift_steps + 1):
        if hmac.compare_digest(hotp(key, step).encode("ascii"), code.encode("ascii")):
            found = step if found is None else found
    return found


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def secret_as_base32(key: bytes) -> str:
    """The form authenticator apps accept (RFC 4648 base32, padding removed)."""
    return base64.b32encode(key).decode("ascii").rstrip("=")


def grouped(secret_b32: str, size: int = 4) -> str:
    """``JBSW Y3DP ...``: easier to type by hand from the screen."""
    return " ".join(secret_b32[i : i + size] for i in range(0, len(secret_b32), size))


def provisioning_uri(key: bytes, *, account_name: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI of the Key Uri Format that authenticator apps scan: the
    label is ``issuer:account``, and ``issuer`` is repeated as a parameter."""
    label = quote(f"{issuer}:{account_name}", safe=":@")
    params = {
        "secret": secret_as_base32(key),
        "issuer": issuer,
        "algorithm": "SHA1",
        "digits": str(DIGITS),
        "period": str(STEP_SECONDS),
    }
    return f"otpauth://totp/{label}?{urlencode(params, quote_via=quote)}"
