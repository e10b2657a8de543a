"""The common-passwords list that NIST SP 800-63B §5.1.1.2 asks verifiers to refuse.

``idp/data/common-passwords.txt`` ships with the project (one password a line, lowercase,
UTF-8): the 30,000 most frequent passwords of the "passwords" frequency list that the zxcvbn
project (MIT licence; Python port 4.5.0) derived from Mark Burnett's 10-million-password
corpus, followed by a few dozen passwords common among Vietnamese users ("matkhau",
"anhyeuem", "Admin@123", ...). It is read once, lazily, into a frozenset.

The comparison ignores case and surrounding spaces: "PASSWORD1" is as guessable as
"password1" to a cracker that tries case variants first.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

LIST_PATH = Path(__file__).parent / "data" / "common-passwords.txt"


@lru_cache(maxsize=1)
def _passwords() -> frozenset[str]:
    with LIST_PATH.open(encoding="utf-8") as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def is_common(password: str) -> bool:
    return password.strip().lower() in _passwords()
