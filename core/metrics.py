"""Prometheus metrics of the service (names prefixed ``commune_sso_``), shared by every package.

Why module-level metric objects despite CONVENTIONS §5 ("no global state beyond the app
factory"): prometheus-client's registry is process-global by design, and in multiprocess mode
(several uvicorn workers, ``PROMETHEUS_MULTIPROC_DIR``) each metric's value lives in a file
named after the process and the metric, not in an object we could hang on ``app.state``. Two
apps in one process (tests) therefore share the counters; tests compare before and after.
Nothing here reads settings or touches the database.

Gauges that describe the database (CRL age, audit checkpoint age) or the keys (HSM) are not
here: they are computed when ``/metrics`` is scraped (``commune_sso.observability``), so they
are true whichever worker answers and cost nothing between scrapes.

Label values are bounded on purpose: a route *template*, a status class, a grant type from a
fixed list. Anything else becomes ``other``, so a scanner cannot grow the series without limit.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PREFIX = "commune_sso_"

HTTP_REQUESTS = Counter(
    f"{PREFIX}http_requests",
    "HTTP requests answered, by method, route template and status class.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    f"{PREFIX}http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    # Token and userinfo requests take milliseconds; logins (argon2id) tens to hundreds.
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

LOGIN_OUTCOMES = ("success", "failure", "locked", "second_factor_required", "second_factor_failure")
LOGINS = Counter(
    f"{PREFIX}logins",
    "Password and second-factor login attempts by outcome: " + ", ".join(LOGIN_OUTCOMES) + ".",
    ["outcome"],
)

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
TOKENS_ISSUED = Counter(
    f"{PREFIX}tokens_issued",
    "Successful token endpoint responses by grant type (RFC 6749 §5.1).",
    ["grant_type"],
)

IMPORT_JOBS = Counter(
    f"{PREFIX}import_jobs",
    "Bulk account import jobs that ended, by outcome (finished, failed).",
    ["outcome"],
)

CERTIFICATES_ISSUED = Counter(
    f"{PREFIX}certificates_issued",
    "Certificates signed by an issuing CA (counted when signed, in the issuing transaction).",
)
CERTIFICATES_REVOKED = Counter(
    f"{PREFIX}certificates_revoked",
    "Certificates revoked or put on hold, by RFC 5280 reason code.",
    ["reason"],
)

OCSP_RESPONSES = Counter(
    f"{PREFIX}ocsp_responses",
    "OCSP answers by certificate status (good, revoked, unknown), several for a request "
    "about several certificates, or error status (malformed_request, unauthorized), "
    "RFC 6960 §2.2-2.3.",
    ["status"],
)


def grant_type_label(grant_type: str | None) -> str:
    return grant_type if grant_type in GRANT_TYPES else "other"
