"""Scrubbing personal identifiers out of free text a person typed (survey comments, complaints, notes).

Patients write their phone number or ID number into a comment ("请回电 13812345678"). Those columns are
not identifiers, so the loader does not pseudonymize them; the extractor runs `scrub` on every
`free_text` column *before* the value is written to the landing folder, so the numbers never reach
disk. A regular expression is the field's tool for this (the formats are fixed by national standard);
a general PII-detection library would add weight and guesses about names that the warehouse does not
need.
"""

from __future__ import annotations

import re
import unicodedata
from typing import overload

NATIONAL_ID_MARK = "[身份证号已删除]"
PHONE_MARK = "[电话已删除]"

# What people put between digits: spaces (NFKC turns the ideographic and no-break spaces into one),
# dots, hyphens and dashes, slashes, middle dots, underscores.
_SEP = r"[\s.\-‐‑‒–—―−/·•_]"
# A run of digits that may hold separators (at most two in a row) and parentheses, and may end in an
# X (the ID's check character). Only digits bound it: "ID110101…" or "电话13812345678" match too.
_DIGIT_RUN = re.compile(rf"(?<!\d)(?:\+?86{_SEP}{{0,2}})?\(?\d(?:(?:{_SEP}{{0,2}}|\)\s?|{_SEP}?\(){{0,1}}\d)*"
                        rf"(?:{_SEP}{{0,2}}[Xx])?(?!\d)")
# 18-character resident ID (GB 11643: 17 digits + digit or X) or the old 15-digit one
_NATIONAL_ID = re.compile(r"(?<!\d)(?:\d{17}[\dXx]|\d{15})(?![\dXx])")
# mainland mobile (optionally +86, optionally split 3-4-4 by a separator)
_MOBILE = re.compile(rf"(?<!\d)(?:\+?86{_SEP}?)?1[3-9]\d(?:{_SEP}?\d{{4}}){{2}}(?!\d)")
# landline with area code: 010-12345678, 0571 8765 4321, (021)12345678
_LANDLINE = re.compile(rf"(?<!\d)(?:\(0\d{{2,3}}\)|0\d{{2,3}}{_SEP})\s?\d{{3,4}}{_SEP}?\d{{4}}(?!\d)")


def _classify(digits: str) -> str | None:
    """The mark for a run's digits (separators removed), or None when it is neither an ID nor a phone."""
    if re.fullmatch(r"\d{17}[\dXx]|\d{15}", digits):
        return NATIONAL_ID_MARK
    national = digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
    if re.fullmatch(r"1[3-9]\d{9}", national):
        return PHONE_MARK
    if re.fullmatch(r"0\d{9,11}", digits):  # area code (3-4 digits with the 0) + a 7-8 digit number
        return PHONE_MARK
    return None


def _scrub_run(match: re.Match) -> str:
    run = match.group(0)
    mark = _classify(re.sub(r"[^\dXx]", "", run))
    if mark:
        return mark
    # a run that joins a number to its neighbours ("3号床 13812345678" has none, "床3 138 1234 5678"
    # does): look for the usual forms inside it
    run = _NATIONAL_ID.sub(NATIONAL_ID_MARK, run)
    run = _MOBILE.sub(PHONE_MARK, run)
    return _LANDLINE.sub(PHONE_MARK, run)


@overload
def scrub(text: str) -> str: ...
@overload
def scrub(text: None) -> None: ...
def scrub(text: str | None) -> str | None:
    """`text` with national-ID and phone numbers replaced by a marker; None stays None.

    The text is first NFKC-normalised: full-width digits and letters (１３８…, ＩＤ) and compatibility
    spaces become their plain forms, so one set of patterns sees every width. The scrubbed text is
    returned normalised (full-width punctuation becomes ASCII; the words are unchanged)."""
    if not text:
        return text
    text = unicodedata.normalize("NFKC", text)
    return _DIGIT_RUN.sub(_scrub_run, text)
