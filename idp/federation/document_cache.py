"""The upstream providers' discovery documents and JWK Sets, kept in memory by each worker so
that a sign-in does not fetch the upstream's keys again, and a forged ``kid`` cannot make us
hammer the upstream.

A document is kept for the ``max-age`` its response gives (RFC 9111 §5.2.2.1), bounded below
and above, or :data:`DEFAULT_MAX_AGE` without one. A JWK Set is fetched again before that only
when an ID token names a key it lacks (the upstream rotated its keys: OIDC Core §10.1.1), at
most once per :data:`REFETCH_INTERVAL` per set, whoever asks; a failed fetch keeps the copy in
hand. Discovery documents are kept only once they passed the checks (a broken one is fetched
again at the next try). Time comes from the injected clock.

Kept per worker, not in the database: these are public documents, and each worker fetching
them once per max-age costs the upstream little."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.clock import Clock

DEFAULT_MAX_AGE = timedelta(hours=1)
MIN_MAX_AGE = timedelta(minutes=5)
MAX_MAX_AGE = timedelta(hours=24)
# The most often one JWK Set is fetched again for a key it lacks (or after a failed fetch).
REFETCH_INTERVAL = timedelta(minutes=1)
MAX_AGE_DIRECTIVE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.I)


def max_age_of(cache_control: str | None) -> timedelta:
    """How long to keep a response, from its Cache-Control header, within our bounds.
    ``no-store``/``no-cache`` still keep it :data:`MIN_MAX_AGE`: the upstream is not fetched
    at every sign-in."""
    if not cache_control:
        return DEFAULT_MAX_AGE
    if re.search(r"no-store|no-cache", cache_control, re.I):
        return MIN_MAX_AGE
    found = MAX_AGE_DIRECTIVE.search(cache_control)
    if found is None:
        return DEFAULT_MAX_AGE
    return min(max(timedelta(seconds=int(found.group(1))), MIN_MAX_AGE), MAX_MAX_AGE)


@dataclass(frozen=True)
class Kept:
    value: Any
    expires_at: datetime


def key_ids(jwks: Any) -> set[str]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    return {
        str(key["kid"])
        for key in (keys if isinstance(keys, list) else [])
        if isinstance(key, dict) and isinstance(key.get("kid"), str)
    }


class UpstreamDocumentCache:
    """Documents by URL. The fetching is the caller's (synchronous for discovery, async for
    JWK Sets): this class says whether to fetch and keeps what was fetched."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._kept: dict[str, Kept] = {}
        self._last_fetch: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def fresh(self, url: str) -> Any | None:
        with self._lock:
            kept = self._kept.get(url)
        if kept is None or kept.expires_at <= self._clock.now():
            return None
        return kept.value

    def in_hand(self, url: str) -> Any | None:
        """The last copy kept, expired or not (used when a fetch fails)."""
        with self._lock:
            kept = self._kept.get(url)
        return kept.value if kept is not None else None

    def keep(self, url: str, value: Any, *, cache_control: str | None) -> None:
        with self._lock:
            self._kept[url] = Kept(value, self._clock.now() + max_age_of(cache_control))

    def forget(self, url: str) -> None:
        with self._lock:
            self._kept.pop(url, None)

    def claim_fetch(self, url: str) -> bool:
        """Whether the caller may fetch ``url`` now; claiming it counts as a fetch, so of
        several requests that ask at once only one goes to the upstream."""
        now = self._clock.now()
        with self._lock:
            last = self._last_fetch.get(url)
            if last is not None and now - last < REFETCH_INTERVAL:
                return False
            self._last_fetch[url] = now
            return True

    def jwks_to_fetch(self, url: str, *, kid: str | None) -> bool:
        """Whether the JWK Set at ``url`` is to be fetched for a token naming ``kid``: none
        fresh in hand, or ``kid`` missing from it (rate-limited)."""
        jwks = self.fresh(url)
        if jwks is None:
            # Expired or never fetched: the first asker fetches; the others in the same
            # moment use the copy in hand if there is one.
            return self.claim_fetch(url) or self.in_hand(url) is None
        if kid is None or kid in key_ids(jwks):
            return False
        return self.claim_fetch(url)
