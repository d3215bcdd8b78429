"""The Hangul font the page embeds, so Korean renders the same on any machine, offline.

fonts/ holds a subset of Noto Sans CJK KR Regular (SIL Open Font License 1.1, fonts/OFL.txt): Latin,
punctuation, arrows, the Hangul compatibility jamo and the 2,350 syllables of KS X 1001 (every
syllable EUC-KR can write, which covers everyday Korean), about 300 KB. Each page embeds that font cut
down again to the characters the page uses, a few tens of KB. `cli/report.py font` rebuilds the asset
from Debian's fonts-noto-cjk.
"""

from __future__ import annotations

import base64
import io
import logging
from functools import cache
from pathlib import Path
from typing import Final

from fontTools import subset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]

FONT_DIR: Final = Path(__file__).resolve().parent / "fonts"
FONT_FILE: Final = FONT_DIR / "NotoSansCJKkr-Regular-report.otf"
LICENSE_FILE: Final = FONT_DIR / "OFL.txt"
FAMILY: Final = "Report Sans"

logging.getLogger("fontTools").setLevel(logging.WARNING)  # its subsetter logs every table at INFO


def asset_characters() -> str:
    """What the committed subset holds (cli/report.py font cuts it to these)."""
    ranges = [
        (0x20, 0x7E),
        (0xA0, 0xFF),
        (0x2010, 0x205E),
        (0x2190, 0x21FF),
        (0x3000, 0x303F),
        (0x3131, 0x318E),
    ]
    chars = [chr(c) for start, end in ranges for c in range(start, end + 1)]
    chars += [
        "\u2212",
        "\u2264",
        "\u2265",
        "\u00b7",
        "\u2026",
        "\u20a9",
        "\u25a0",
        "\u25b2",
        "\u25bc",
        "\u25cf",
        "\u2713",
        "\u2717",
    ]
    chars += [chr(c) for c in range(0xAC00, 0xD7A4) if len(chr(c).encode("euc_kr")) == 2]
    return "".join(dict.fromkeys(chars))


@cache
def _asset() -> bytes:
    return FONT_FILE.read_bytes()


@cache
def covered() -> frozenset[str]:
    """The characters the committed font has a glyph for."""
    cmap = TTFont(io.BytesIO(_asset()))["cmap"].getBestCmap()
    return frozenset(chr(code) for code in cmap)


def embedded(text: str) -> tuple[str, frozenset[str]]:
    """The font cut to the characters of `text`, base64 for a data: URL, and the characters of `text`
    it has no glyph for (the browser draws those with a font of its own)."""
    wanted = {c for c in text if not c.isspace()} | {" "}
    missing = frozenset(c for c in wanted - covered() if ord(c) >= 0x20)
    font = TTFont(io.BytesIO(_asset()))
    options = subset.Options()
    options.name_IDs = ["*"]  # keep the copyright and licence names with the font
    options.notdef_outline = True
    options.layout_features = ["kern", "liga", "ccmp", "locl", "ljmo", "vjmo", "tjmo"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(wanted - missing)))
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return base64.b64encode(out.getvalue()).decode("ascii"), missing
