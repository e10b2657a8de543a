"""The validation responses of CAS 3.0 §2.5.2 / §2.6.2 (``cas:serviceResponse``) in XML and,
with ``format=JSON``, in JSON (Appendix: JSON response format); UTF-8 either way.

The XML is written, never parsed: values are escaped, and characters XML 1.0 cannot hold at
all (C0 controls other than tab and newlines) are dropped."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response

CAS_NAMESPACE = "http://www.yale.edu/tp/cas"
XML = "XML"
JSON = "JSON"
FORMATS = (XML, JSON)
# §2.5.3 error codes.
INVALID_REQUEST = "INVALID_REQUEST"
INVALID_TICKET_SPEC = "INVALID_TICKET_SPEC"
INVALID_TICKET = "INVALID_TICKET"
INVALID_SERVICE = "INVALID_SERVICE"
INTERNAL_ERROR = "INTERNAL_ERROR"
NOT_XML_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return escape(NOT_XML_CHARACTERS.sub("", value))


@dataclass(frozen=True)
class Success:
    user: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    code: str
    description: str


def xml_body(outcome: Success | Failure) -> str:
    lines = [f'<cas:serviceResponse xmlns:cas="{CAS_NAMESPACE}">']
    if isinstance(outcome, Failure):
        lines.append(
            f"  <cas:authenticationFailure code={quoteattr(outcome.code)}>"
            f"{_text(outcome.description)}</cas:authenticationFailure>"
        )
    else:
        lines.append("  <cas:authenticationSuccess>")
        lines.append(f"    <cas:user>{_text(outcome.user)}</cas:user>")
        if outcome.attributes:
            lines.append("    <cas:attributes>")
            for name, value in outcome.attributes.items():
                lines.append(f"      <cas:{name}>{_text(value)}</cas:{name}>")
            lines.append("    </cas:attributes>")
        lines.append("  </cas:authenticationSuccess>")
    lines.append("</cas:serviceResponse>")
    return "\n".join(lines) + "\n"


def json_body(outcome: Success | Failure) -> dict[str, object]:
    if isinstance(outcome, Failure):
        content: dict[str, object] = {
            "authenticationFailure": {"code": outcome.code, "description": outcome.description}
        }
    else:
        # Appendix: every attribute value is a list in the JSON form.
        content = {
            "authenticationSuccess": {
                "user": outcome.user,
                "attributes": {name: [value] for name, value in outcome.attributes.items()},
            }
        }
    return {"serviceResponse": content}


def service_response(outcome: Success | Failure, response_format: str) -> Response:
    """§2.5.2: answered with 200 whatever the outcome; the body says which."""
    if response_format == JSON:
        return Response(
            json.dumps(json_body(outcome), ensure_ascii=False),
            media_type="application/json",
        )
    return Response(xml_body(outcome), media_type="application/xml; charset=utf-8")
