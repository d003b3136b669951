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

NATIONAL_ID_MARK = "[身份证号已删除]"
PHONE_MARK = "[电话已删除]"

# 18-character resident ID (GB 11643: 17 digits + digit or X) or the old 15-digit one
_NATIONAL_ID = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
# mainland mobile (optionally +86, optionally split 3-4-4 by spaces or hyphens)
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
# landline with area code: 010-12345678, 0571 8765 4321, (021)12345678
_LANDLINE = re.compile(r"(?<!\d)(?:\(0\d{2,3}\)|0\d{2,3}[- ])\s?\d{3,4}[- ]?\d{4}(?!\d)")


def scrub(text: str | None) -> str | None:
    """`text` with national-ID and phone numbers replaced by a marker; None stays None."""
    if not text:
        return text
    text = _NATIONAL_ID.sub(NATIONAL_ID_MARK, text)
    text = _MOBILE.sub(PHONE_MARK, text)
    return _LANDLINE.sub(PHONE_MARK, text)
