"""The only way untrusted XML enters this package (DESIGN, PITFALLS "XML (SAML)"): a hardened
lxml parser with DTDs, entity expansion and network access off, and any document that carries
a DOCTYPE refused outright (billion laughs, XXE, external DTDs: none of them can be written
without one)."""

from __future__ import annotations

import re

from lxml import etree

# A sign-in request or metadata document is a few kilobytes; metadata of a big SP with many
# certificates stays well under this.
MAX_DOCUMENT_BYTES = 512 * 1024
# Cheap refusal before any parsing, for the encodings these messages come in (UTF-8, ASCII).
_DOCTYPE_MARKER = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeXml(ValueError):
    """Not well-formed, too large, or carrying a DTD or an entity declaration."""


def _parser() -> etree.XMLParser:
    # A parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        # Comments inside a signed value can shorten what a naive reader sees
        # ("a@b.vn<!---->.evil"); nothing we read needs them.
        remove_comments=True,
        remove_pis=True,
    )


def parse_untrusted(document: bytes) -> etree._Element:
    """The root element of ``document``, or :class:`UnsafeXml`."""
    if len(document) > MAX_DOCUMENT_BYTES:
        raise UnsafeXml("document too large")
    if _DOCTYPE_MARKER.search(document):
        raise UnsafeXml("a DOCTYPE or an entity declaration is not accepted")
    try:
        root = etree.fromstring(document, parser=_parser())
    except etree.XMLSyntaxError as error:
        raise UnsafeXml(f"not well-formed XML: {error}") from error
    docinfo = root.getroottree().docinfo
    # Another encoding (UTF-16) would pass the byte scan; the parsed tree still shows the DTD.
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml("a DOCTYPE is not accepted")
    return root
