"""Report an evaluation: a text table, a JSON file, a contact sheet."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from refcolor.data.samples import Sample
from refcolor.eval.runner import Evaluation

COLUMNS = (
    ("fg_error", "FG ΔE00 ↓", 1),
    ("bg_error", "BG ΔE00 ↓", 1),
    ("fg_segment_error", "FG seg ΔE ↓", 1),
    ("bg_segment_error", "BG seg ΔE ↓", 1),
    ("fg_leak", "FG leak %", 100),
    ("bg_leak", "BG leak %", 100),
    ("line_f1", "line F1 ↑", 1),
    ("fill_line_f1", "fills F1 ↑", 1),
    ("frechet", "Fréchet ↓", 1),
)


def _cell(summary: Mapping[str, object], key: str, scale: float) -> str:
    interval = summary.get(key)
    if interval is None:
        return "—"
    mean, low, high = (getattr(interval, f) * scale for f in ("mean", "low", "high"))
    if math.isnan(mean):
        return "n/a"
    digits = 2 if abs(mean) < 10 else 1
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def table(evaluation: Evaluation, markdown: bool = False) -> str:
    """Means with 95 % intervals, one row per method (the ground truth first)."""
    keys = [c for c in COLUMNS if any(c[0] in r.summary for r in evaluation.results)]
    header = ["method", *(c[1] for c in keys), "s/img"]
    rows = [
        [r.method.name, *(_cell(r.summary, k, s) for k, _, s in keys), f"{r.seconds_per_image:.2f}"]
        for r in evaluation.results
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]
    )


def write_json(evaluation: Evaluation, path: Path) -> None:
    path.write_text(json.dumps(evaluation.to_dict(), indent=1, allow_nan=True))


def contact_sheet(
    evaluation: Evaluation, triplets: list[Sample], rows: int = 6, side: int = 160
) -> Image.Image:
    """Per triplet: sketch, mask, reference, then every method's output (ground truth first)."""
    titles = ["sketch", "mask", "reference", *(r.method.name for r in evaluation.results)]
    header = 16
    shown = triplets[:rows]
    sheet = Image.new("RGB", (side * len(titles), header + side * len(shown)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(titles):
        draw.text((i * side + 3, 2), title[: side // 6], fill="black")
    for row, sample in enumerate(shown):
        tiles = [np.dstack([sample.sketch] * 3), np.dstack([sample.mask] * 3), sample.reference]
        tiles += [r.outputs[row] for r in evaluation.results]
        for col, tile in enumerate(tiles):
            image = Image.fromarray(tile).resize((side, side), Image.Resampling.BILINEAR)
            sheet.paste(image, (col * side, header + row * side))
    return sheet
