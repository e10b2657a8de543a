"""The CA's HTML pages under ``/ca/pages/`` (issue 5): the official's certificates and renewal,
and the admin pages (requests queue, certificates, unit merger). Vietnamese by default."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route


def page_routes() -> list[BaseRoute]:
    from ca_admin.web.pages import (
        admin_certificates,
        admin_merger,
        admin_requests,
        first_certificate,
        login,
        my_certificates,
        renewal,
        report_key,
        signature_check,
    )
    from ca_admin.web.pages.page_scope import PREFIX

    def get(path: str, endpoint: object) -> Route:
        return Route(PREFIX + path, endpoint, methods=["GET"])  # type: ignore[arg-type]

    def post(path: str, endpoint: object) -> Route:
        return Route(PREFIX + path, endpoint, methods=["POST"])  # type: ignore[arg-type]

    return [
        Route(PREFIX, my_certificates.home_redirect, methods=["GET"]),
        get("/", my_certificates.home),
        get("/login", login.login),
        get("/callback", login.callback),
        post("/logout", login.logout),
        get("/certificates/{serial}/download", my_certificates.download),
        get("/certificates/{serial}/report-lost", report_key.report_page),
        post("/certificates/{serial}/report-lost", report_key.report_submit),
        get("/request", first_certificate.request_page),
        post("/request", first_certificate.request_submit),
        get("/renew/{serial}", renewal.renewal_page),
        post("/renew/{serial}", renewal.renewal_submit),
        get("/requests/{request_id}/collect", my_certificates.collect_form),
        post("/requests/{request_id}/collect", my_certificates.collect),
        get("/validate", signature_check.check_page),
        post("/validate", signature_check.check_submit),
        get("/admin/requests", admin_requests.queue),
        post("/admin/requests/{request_id}/approve", admin_requests.approve),
        post("/admin/requests/{request_id}/reject", admin_requests.reject),
        get("/admin/certificates", admin_certificates.search),
        get("/admin/certificates/{serial}", admin_certificates.show),
        post("/admin/certificates/{serial}/revoke", admin_certificates.revoke),
        post("/admin/certificates/{serial}/hold", admin_certificates.hold),
        post("/admin/certificates/{serial}/release", admin_certificates.release),
        get("/admin/merger", admin_merger.merger_page),
        post("/admin/merger/plan", admin_merger.plan),
        post("/admin/merger/{job_id}/approve", admin_merger.approve),
        post("/admin/merger/{job_id}/apply", admin_merger.apply),
    ]
