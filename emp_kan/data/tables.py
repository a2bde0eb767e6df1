"""CSV tables as measured: the separator, the decimal comma, the encoding and a byte-order mark
found out, the columns chosen, named as formula variables and checked, with errors that name
the file, the column and the line.
"""

from __future__ import annotations

import csv
import io
import keyword
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emp_kan.data.formula_parse import CONSTANTS, FUNCTIONS
from emp_kan.data.units import split_unit_header

log = logging.getLogger("emp_kan")

__all__ = ["Table", "read_table", "variable_name"]

_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class Table:
    """The numeric columns a discovery uses: ``inputs (n, d)`` and ``target (n,)`` as float64,
    with the variables' names (identifiers) and the columns' own names."""

    inputs: np.ndarray
    target: np.ndarray
    variables: list[str]  # formula names of the input columns
    target_name: str  # the target column's formula name
    columns: dict[str, str]  # formula name -> the column's name in the file
    dropped_rows: int  # rows with a missing cell, dropped (dropna)
    units: dict[str, str]  # formula name -> the unit its header gives in brackets, "F [N]"


def variable_name(column: str, taken: set[str]) -> str:
    """A formula variable for a column name (its unit in brackets left off): letters, digits
    and _ (``P (bar)`` -> ``P_bar``),
    never a function or constant of the formula grammar (``pi`` -> ``pi_``) nor one in
    ``taken`` (a suffix ``_2``, ``_3``, ... tells them apart)."""
    name = re.sub(r"\W+", "_", column.strip(), flags=re.ASCII).strip("_") or "column"
    if name[0].isdigit():
        name = f"x_{name}"
    if name in FUNCTIONS or name in CONSTANTS or keyword.iskeyword(name) or name.startswith("_"):
        name = f"{name}_"
    unique, k = name, 2
    while unique in taken:
        unique, k = f"{name}_{k}", k + 1
    return unique


def _text(path: Path) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), else Windows-1252."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        raise ValueError(
            f"{path} is neither UTF-8 nor Windows-1252 text; save it as UTF-8 CSV"
        ) from None
    log.info("%s is not UTF-8; read as Windows-1252", path)
    return text


def _dialect(sample: str) -> tuple[str, str]:
    """(separator, decimal mark) of a CSV sample: ``,`` ``;`` or a tab; a decimal comma where
    the separator is not a comma and numbers are written ``1,5``."""
    # The header decides: names hold no decimal commas, while a row of "1,5;2,3" holds both.
    header = sample.split("\n", 1)[0]
    counts = {mark: header.count(mark) for mark in (";", "\t", ",")}
    separator = max(counts, key=counts.get) if any(counts.values()) else ""
    if not separator:
        try:
            separator = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
        except csv.Error:
            separator = ","
    decimal = "," if separator != "," and re.search(r"\d,\d", sample) else "."
    return separator, decimal


def read_table(
    path: str | Path,
    target: str,
    inputs: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    dropna: bool = False,
) -> Table:
    """Read a CSV file with a header row into the columns of one discovery.

    Parameters
    ----------
    path : path
    target : str
        The label column (its name in the file).
    inputs : sequence of str, optional
        The input columns; default every column but ``target`` and ``exclude``.
    exclude : sequence of str
        Columns left out of the default inputs.
    dropna : bool
        Drop rows with a missing cell in a used column (default: refuse them).

    Raises
    ------
    ValueError
        One line naming the file and what to do: a missing file, undecodable text, a header
        without names or with a name twice, an unknown column, a text cell (its column and
        line), missing cells without ``dropna``, fewer than 10 rows.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such CSV file: {path}")
    text = _text(path)
    separator, decimal = _dialect(text[:_SNIFF_BYTES])
    frame = pd.read_csv(
        io.StringIO(text), sep=separator, dtype=str, skipinitialspace=True, keep_default_na=False
    )
    header = [str(c).strip() for c in frame.columns]
    frame.columns = header
    _check_header(path, header, frame)
    used = _used_columns(path, header, target, inputs, exclude)
    values = _numbers(path, frame[used], decimal)
    missing = values.isna().any(axis=1)
    if missing.any() and not dropna:
        lines = ", ".join(str(int(i) + 2) for i in np.flatnonzero(missing)[:5])
        columns = ", ".join(repr(c) for c in used if values[c].isna().any())
        raise ValueError(
            f"{path}: {int(missing.sum())} row(s) have missing cells (columns {columns}; "
            f"line(s) {lines}); drop those rows with --dropna or fill them"
        )
    values = values[~missing]
    if len(values) < 10:
        raise ValueError(f"{path} has {len(values)} usable data rows; at least 10 are needed")
    taken: set[str] = set()
    names = {}
    units = {}
    for column in used:
        bare, unit = split_unit_header(column)  # "F [N]": the variable F in newtons
        names[column] = variable_name(bare, taken)
        taken.add(names[column])
        if unit is not None:
            units[names[column]] = unit
        if names[column] != column:
            log.info("column %r is the variable %s", column, names[column])
    input_columns = [c for c in used if c != target]
    return Table(
        inputs=values[input_columns].to_numpy(dtype=np.float64),
        target=values[target].to_numpy(dtype=np.float64),
        variables=[names[c] for c in input_columns],
        target_name=names[target],
        columns={names[c]: c for c in used},
        dropped_rows=int(missing.sum()),
        units=units,
    )


def _check_header(path: Path, header: list[str], frame: pd.DataFrame) -> None:
    if len(frame) == 0:
        raise ValueError(f"{path} needs a header row and at least one data row")
    if any(not h or h.startswith("Unnamed:") for h in header):
        raise ValueError(f"{path} has a column without a name; name every column in the header")
    renamed = [h for h in header if re.fullmatch(r".+\.\d+", h) and h.rsplit(".", 1)[0] in header]
    if renamed:  # pandas' way of keeping a name given twice: "a", "a.1"
        twice = sorted({h.rsplit(".", 1)[0] for h in renamed})
        raise ValueError(
            f"{path} names the column(s) {', '.join(map(repr, twice))} more than once; "
            "give every column its own name"
        )


def _used_columns(
    path: Path,
    header: list[str],
    target: str,
    inputs: Sequence[str] | None,
    exclude: Sequence[str],
) -> list[str]:
    """The input columns, then the target; ValueError naming an unknown column."""
    for name in [target, *(inputs or []), *exclude]:
        if name not in header:
            raise ValueError(f"{path} has no column {name!r}; its columns: {', '.join(header)}")
    if target in exclude or (inputs is not None and target in inputs):
        raise ValueError(
            f"{path}: {target!r} is the target; it cannot also be an input or excluded"
        )
    chosen = (
        list(inputs)
        if inputs is not None
        else [h for h in header if h != target and h not in exclude]
    )
    if not chosen:
        raise ValueError(f"{path} has no input column besides {target!r}")
    return [*chosen, target]


def _numbers(path: Path, cells: pd.DataFrame, decimal: str) -> pd.DataFrame:
    """The cells as float64 (blank: NaN); ValueError naming the first column holding text or a
    number that is not finite."""
    out = {}
    for column in cells.columns:
        text = cells[column].str.strip()
        if decimal == ",":
            text = text.str.replace(",", ".", regex=False)
        blank = text.eq("") | text.str.lower().isin(["nan", "na", "n/a", "null"])
        numbers = pd.to_numeric(text.where(~blank), errors="coerce")
        bad = numbers.isna() & ~blank
        if not bad.any():
            bad = ~np.isfinite(numbers.fillna(0.0))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: column {column!r} holds {cells[column].iloc[row]!r} on line {row + 2}, "
                f"not a finite number; clean it, or leave the column out with --exclude"
            )
        out[column] = numbers.astype(np.float64)
    return pd.DataFrame(out)
