"""Personal identifiers into keyed hashes, and the length a value is cut to in a message.

The loader converts and checks cells in the database (`hospital_ops.load.checks_sql`); the Python
reference those checks are tested against is `tests/reference_parsing.py`.
"""

from __future__ import annotations

import hashlib
import hmac

SHOWN_CHARS = 80  # a value in a message is cut to this many characters (a 10 MB cell makes no 10 MB reason)


def pseudonymize(value: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256) of a personal identifier: stable, not reversible without the key."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
