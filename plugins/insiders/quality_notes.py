"""What the quality stage says beside its counts: a column mostly unreadable, a file that
is mostly copies of lines read before. The lines are set aside either way (counted, in the
quarantine); these notes tell the user what the figures rest on and what to check in the
input (report and answers.json, data quality)."""

from __future__ import annotations

from .quality import QualityReport

# a column whose format the reader does not know sets many lines aside under one reason: the
# run goes on with the rest, and says so beside the figures (the data quality notes)
FORMAT_REASONS = {"unparseable_date": "invoice date", "unparseable_quantity": "quantity",
                  "unparseable_price": "unit price"}
FORMAT_WARNING_SHARE = 0.2


def format_warnings(report: QualityReport) -> list[str]:
    """One note per column whose unreadable values set aside at least FORMAT_WARNING_SHARE
    of the lines (an export writing `2,550.00` lost 58% of a file to unparseable_price)."""
    from .wording import share

    out = []
    for reason, what in FORMAT_REASONS.items():
        n = report.set_aside.get(reason, 0)
        if report.rows_in and n >= FORMAT_WARNING_SHARE * report.rows_in:
            out.append(f"{share(n / report.rows_in)} of the lines ({n:,}) have a {what} that "
                       f"cannot be read ({reason}): check that column's format (the "
                       "quarantine shows each line); every figure rests on the other lines")
    return out


# a file whose lines are mostly copies of lines read before it is the same export twice (a
# month delivered again, a file concatenated with itself); a real export repeats ~1% of lines
COPIED_FILE_SHARE = 0.4


def count_aside(report: QualityReport, files, reasons) -> None:
    """Count set-aside lines per input file into `report.copies` (reason `duplicate`) and
    `report.other_aside`: `files` the lines' `source_file` values, `reasons` their reasons
    or one reason for all (Arrow arrays or pandas Series)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def per_file(values) -> dict[str, int]:
        if not len(values):
            return {}
        counts = pc.value_counts(values.cast(pa.string()))
        return dict(zip(counts.field("values").to_pylist(),
                        counts.field("counts").to_pylist(), strict=True))

    files = files if isinstance(files, (pa.Array, pa.ChunkedArray)) else pa.array(files)
    if isinstance(reasons, str):
        copies = per_file(files) if reasons == "duplicate" else {}
        other = {} if reasons == "duplicate" else per_file(files)
    else:
        reasons = reasons if isinstance(reasons, (pa.Array, pa.ChunkedArray)) \
            else pa.array(reasons)
        copy = pc.fill_null(pc.equal(reasons, "duplicate"), False)
        copies, other = per_file(files.filter(copy)), per_file(files.filter(pc.invert(copy)))
    for into, counts in ((report.copies, copies), (report.other_aside, other)):
        for name, n in counts.items():
            into[str(name)] = into.get(str(name), 0) + int(n)


def copied_file_notes(report: QualityReport, lines_per_file: dict[str, int]) -> list[str]:
    """One note per input file whose lines that pass every other check are at least
    COPIED_FILE_SHARE exact copies of lines read before: they are set aside as duplicates
    (counted, in the quarantine), and the user should know the input probably holds an
    export twice."""
    from .wording import share

    out = []
    for name, n in report.copies.items():
        checked = int(lines_per_file.get(name, 0)) - report.other_aside.get(name, 0)
        if checked > 0 and n >= COPIED_FILE_SHARE * checked:
            out.append(f"{name}: {n:,} of the {checked:,} lines that pass the other checks "
                       f"({share(n / checked)}) are exact copies of lines read before, set "
                       "aside as duplicates: is the same export in the input twice?")
    return out
