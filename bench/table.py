"""The benchmarks' common table: figure, jitpam, ceiling or peer, ratio, target, met."""

from __future__ import annotations

from typing import Any


def row(
    figure: str,
    jitpam: float,
    ceiling: float | None,
    against: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    unit: str = "",
) -> dict[str, Any]:
    """One line. With a ceiling, the ratio is jitpam / ceiling and the target bounds it; without
    one, the target bounds jitpam's own figure."""
    ratio = jitpam / ceiling if ceiling else None
    judged = ratio if ceiling is not None else jitpam
    met = judged is not None and (
        (at_least is None or judged >= at_least) and (at_most is None or judged <= at_most)
    )
    bound = f">= {at_least:g}" if at_least is not None else f"<= {at_most:g}"
    return {
        "figure": figure,
        "jitpam": round(jitpam, 3),
        "ceiling": round(ceiling, 3) if ceiling is not None else None,
        "against": against,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "target": f"ratio {bound}" if ceiling is not None else f"{bound} {unit}".strip(),
        "met": met,
        "unit": unit,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| figure | jitpam | ceiling or peer | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        ceiling = f"{r['ceiling']:g}{unit} ({r['against']})" if r["ceiling"] is not None else "-"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        out.append(
            f"| {r['figure']} | {r['jitpam']:g}{unit} | {ceiling} | {ratio} | {r['target']} "
            f"| {'yes' if r['met'] else 'NO'} |"
        )
    return "\n".join(out)
