"""QR codes drawn with Unicode half blocks (two modules per character cell).

The kiosk theme is light text on black, so *light* modules are drawn (full,
upper or lower half block) and dark modules are left as background; the
quiet zone around the code is light too, which is what phone scanners need.
Rendered as plain ``Text`` (no markup), so the data can never style anything.
"""

from __future__ import annotations

import segno
from rich.text import Text

_CELLS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def qr_lines(data: str, *, border: int = 2, error: str = "L") -> list[str]:
    """The code as lines of half blocks, ``border`` light modules all round."""
    code = segno.make(data, error=error, boost_error=False)
    matrix = [[bool(v) for v in row] for row in code.matrix]
    size = len(matrix) + 2 * border
    light = [[True] * size for _ in range(border)]
    for row in matrix:
        light.append([True] * border + [not dark for dark in row] + [True] * border)
    light.extend([True] * size for _ in range(border))
    if len(light) % 2:
        light.append([False] * size)  # below the code: background, not part of it
    return ["".join(_CELLS[(top, bottom)] for top, bottom in zip(light[i], light[i + 1]))
            for i in range(0, len(light), 2)]


def qr_text(data: str, *, border: int = 2) -> Text:
    return Text("\n".join(qr_lines(data, border=border)), no_wrap=True, overflow="crop", end="")


def decode_lines(lines: list[str], border: int = 2) -> list[list[bool]]:
    """The dark/light module matrix back from drawn lines (tests compare it with segno's)."""
    rows: list[list[bool]] = []
    for line in lines:
        top = [ch in "█▀" for ch in line]
        bottom = [ch in "█▄" for ch in line]
        rows.extend([top, bottom])
    inner = rows[border:]
    width = len(lines[0]) - 2 * border
    return [[not light for light in row[border:border + width]] for row in inner[:width]]
