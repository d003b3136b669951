"""What an error message may show of what arrived in a file.

A message goes to the task log, the terminal and e-mail, where nobody guards personal data. When a
file comes without its header, its first row (names, ID numbers, phones) is what a header check
would print as "unexpected columns"; a 10 MB line would make a 10 MB message. So a cell is shown
only when it looks like a column name, anything else by its length alone, and the whole list is
bounded.
"""

from __future__ import annotations

import re

MAX_SHOWN = 12  # cells listed before "… and N more"
MAX_CHARS = 400  # of the whole list
_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,63}")  # spec column names are snake_case English


def shown_cells(cells: list[str]) -> str:
    """A bounded list of header cells, each as it is when it looks like a column name, else as
    `<N characters>` (a name in Chinese, a number: possibly a person's)."""
    shown = [repr(cell) if _NAME_LIKE.fullmatch(cell) else f"<{len(cell)} characters>" for cell in cells[:MAX_SHOWN]]
    if len(cells) > MAX_SHOWN:
        shown.append(f"… and {len(cells) - MAX_SHOWN} more")
    text = "[" + ", ".join(shown) + "]"
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "…]"
