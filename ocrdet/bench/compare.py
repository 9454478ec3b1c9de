"""``ocrdet bench compare OLD.json NEW.json``: the change of every row of two ``bench suite`` results.

A row's change is NEW / OLD, turned so that > 1 is better (OLD / NEW for times). Rows with a ratio to their own
reference compare those ratios (machine-independent); the comparison fails when one falls by more than
``threshold``. Absolute values are compared only when the two machines' facts (``MACHINE_KEYS``) agree, and
then a slowdown of more than ``threshold`` fails as well. ``fraction`` rows (data wait, monitor cost) are shown,
never judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocrdet.bench.suite import MACHINE_KEYS

DEFAULT_THRESHOLD = 0.10


@dataclass(frozen=True)
class Change:
    key: str
    kind: str
    """``ratio`` (vs its own reference), ``absolute`` or ``info``."""
    old: float
    new: float
    change: float
    """> 1: better."""
    regression: bool


def _higher_is_better(unit: str) -> bool:
    return unit.endswith("/s") or unit == "hmean"


def same_machine(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old["facts"].get(k) == new["facts"].get(k) for k in MACHINE_KEYS)


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float = DEFAULT_THRESHOLD) -> list[Change]:
    """One ``Change`` per measurement that both results have (rows matched by bench and name)."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    before = {f"{r['bench']}/{r['name']}": r for r in old["rows"]}
    absolute = same_machine(old, new)
    changes = []
    for row in new["rows"]:
        key = f"{row['bench']}/{row['name']}"
        was = before.get(key)
        if was is None:
            continue
        if row.get("ratio") is not None and was.get("ratio") is not None:
            change = row["ratio"] / was["ratio"]
            changes.append(Change(key, "ratio", was["ratio"], row["ratio"], change, change < 1 - threshold))
        if row["unit"] == "fraction":
            changes.append(Change(key, "info", was["value"], row["value"], 1.0, False))
        elif absolute and was["value"] > 0 and row["value"] > 0:
            up = _higher_is_better(row["unit"])
            change = row["value"] / was["value"] if up else was["value"] / row["value"]
            changes.append(Change(key, "absolute", was["value"], row["value"], change, change < 1 - threshold))
    return changes


def format_changes(changes: list[Change], old: dict[str, Any], new: dict[str, Any], threshold: float) -> str:
    from ocrdet.bench.common import text_table

    lines = [("row", "compared", "old", "new", "change", "")]
    for c in changes:
        flag = "REGRESSION" if c.regression else ""
        lines.append((c.key, c.kind, f"{c.old:.4g}", f"{c.new:.4g}", f"{c.change:.2f}x", flag))
    machine = (
        "same machine: absolute values compared too"
        if same_machine(old, new)
        else "different machines: only the ratios to each row's own reference are compared"
    )
    bad = sum(c.regression for c in changes)
    verdict = f"{bad} regression(s) beyond {100 * threshold:.0f}%" if bad else f"no regression beyond {threshold:.0%}"
    return f"{text_table(lines, text_columns=2)}\n({machine}; change > 1 = better)\n{verdict}"
