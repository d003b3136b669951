"""The vendor files' formats: a CSV with its header in the spec's column order, in a given encoding,
and a one-row Excel workbook whose bytes depend only on its content."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook

from hospital_ops.sources.spec import Entity


def _write_csv(path: Path, entity: Entity, rows: list[list[str]], encoding: str) -> None:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([c.name for c in entity.columns])
        writer.writerows(rows)


def _write_workbook(path: Path, entity: Entity, values: Sequence[object], stamp: date) -> None:
    """An .xlsx whose bytes depend only on its content: fixed zip times and document dates."""
    book = Workbook(write_only=True)
    moment = datetime(stamp.year, stamp.month, stamp.day, 9, 0, 0)
    book.properties.creator = str(values[0])
    book.properties.created = moment
    sheet = book.create_sheet(title=entity.sheet)
    sheet.append([c.name for c in entity.columns])
    sheet.append(list(values))
    buffer = io.BytesIO()
    book.save(buffer)
    modified = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = modified.sub(rb"\g<1>" + moment.strftime("%Y-%m-%dT%H:%M:%SZ").encode() + rb"\2", data)
            fixed = zipfile.ZipInfo(info.filename, date_time=moment.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, data)
