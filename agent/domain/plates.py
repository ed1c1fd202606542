"""Chinese vehicle plates: normalise what the operator typed and accept only real plate forms."""

from __future__ import annotations

import re
import unicodedata

from agent.errors import Refused

# The province (and municipality, autonomous region) characters that start a civil plate.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

# Separators people type inside a plate; NFKC already folds the full-width forms to these.
_SEPARATORS = re.compile(r"[\s\-·・•.]+")

# GA 36: serial letters exclude I and O (confusable with 1 and 0).
_L = "A-HJ-NP-Z"
_AN = f"[{_L}0-9]"
_ORDINARY = re.compile(f"[{PROVINCES}][{_L}]{_AN}{{5}}")
# New-energy (8 characters): small cars have D/F (or another energy letter) first, large
# vehicles have it last.
_ENERGY = "ABCDEFGHJK"
_NEW_ENERGY = re.compile(f"[{PROVINCES}][{_L}](?:[{_ENERGY}]{_AN}[0-9]{{4}}|[0-9]{{5}}[{_ENERGY}])")
_TRAILER = re.compile(f"[{PROVINCES}][{_L}]{_AN}{{4}}挂")

EXAMPLE = "苏A12345"


class PlateError(Refused, ValueError):
    """The text is not a plate; the message is one sentence saying what is wrong."""


def clean(text: str) -> str:
    """Full-width to ordinary characters (NFKC), upper case, separators removed."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()


def kind(plate: str) -> str | None:
    """'ordinary', 'new_energy' or 'trailer' for a cleaned plate, None when it is none of them."""
    if _ORDINARY.fullmatch(plate):
        return "ordinary"
    if _NEW_ENERGY.fullmatch(plate):
        return "new_energy"
    if _TRAILER.fullmatch(plate):
        return "trailer"
    return None


def normalise(text: str) -> str:
    """The plate in its one stored spelling, e.g. ' 苏a·１２３４５ ' → '苏A12345'.

    Raises PlateError with one sentence when the text is not an ordinary 7-character plate, an
    8-character new-energy plate or a trailer plate ending in 挂.
    """
    plate = clean(text)
    if not plate:
        raise PlateError(f"the plate is empty; enter it like {EXAMPLE}")
    if kind(plate) is not None:
        return plate
    if plate[0] not in PROVINCES:
        raise PlateError(
            f"plate {text.strip()!r} does not start with a province character such as 苏 or 京;"
            f" enter it like {EXAMPLE}"
        )
    if re.search("[IO]", plate[1:]):
        raise PlateError(
            f"plate {text.strip()!r} contains the letter I or O, which plates never use;"
            " did you mean 1 or 0?"
        )
    raise PlateError(
        f"plate {text.strip()!r} is not a plate: expected a province character, a letter and"
        f" 5 letters or digits ({EXAMPLE}), an 8-character new-energy plate (苏AD12345)"
        " or a trailer plate ending in 挂 (苏A1234挂)"
    )
