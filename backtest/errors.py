"""Errors the package raises on bad input.

Every data problem is a :class:`DataError`, a ``ValueError`` whose message names the file, the
column and the row (or timestamp) at fault, so a user can open the file and find it. The CLI turns
it into a one-line message and exit code 2.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad market data: names the file, column and row at fault.

    >>> err = DataError("price is negative", file="btc.csv", column="low", row=17)
    >>> str(err)
    'btc.csv: column low, row 17: price is negative'
    """

    def __init__(self, problem: str, *, file=None, column=None, row=None):
        self.problem = problem
        self.file = None if file is None else str(file)
        self.column = column
        self.row = row
        where = []
        if column is not None:
            where.append(f"column {column}")
        if row is not None:
            where.append(f"row {row}")
        prefix = self.file or "<data>"
        if where:
            prefix += ": " + ", ".join(where)
        super().__init__(f"{prefix}: {problem}")


class DataWarning(UserWarning):
    """A data issue that does not stop the run (gaps in the bars, for instance)."""
