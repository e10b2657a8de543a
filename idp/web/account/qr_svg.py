"""A QR code as inline SVG markup, drawn on the server (no script, no image request, nothing
the Content-Security-Policy has to allow): the ``qrcode`` package computes the module matrix
(ISO/IEC 18004), this module draws one path of the dark modules."""

from __future__ import annotations

import qrcode
import qrcode.constants
from markupsafe import Markup

QUIET_ZONE = 4  # modules of light margin around the symbol (ISO/IEC 18004 §6.3.8)


def qr_svg(data: str, *, size_px: int = 220) -> Markup:
    """``<svg>`` hidden from assistive technology: the page wraps it in an element with a
    translated accessible name and shows the same secret as text next to it."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE, box_size=1
    )
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()  # includes the quiet zone
    width = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < width:
            if row[x]:
                start = x
                while x < width and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    # Markup is safe here: every interpolated value is an int or built from ints above.
    return Markup(  # noqa: S704
        f'<svg class="qr" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false" '
        f'width="{size_px}" height="{size_px}" '
        f'viewBox="0 0 {width} {width}" shape-rendering="crispEdges">'
        f'<rect width="{width}" height="{width}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(runs)}"/></svg>'
    )
