"""Flicker of a colorized shot, with and without consistency (issue 20), in one run.

Synthetic shots (refcolor.eval.flicker.moving_shot): a character of ``--data`` moving smoothly over
a still background for ``--frames`` frames, line art extracted per frame. Every frame is rendered
once by the model with the shot's seed (what ``refcolor batch --consistency off`` gives); the
``carry`` row is those renders with the colours carried frame to frame (``--consistency carry``,
the default). ``--seed-per-frame`` adds frames colorized one by one with a fresh seed each (a loop
over ``refcolor colorize``). Rows: flicker (mean CIEDE2000 between corresponding foreground pixels
of consecutive frames) and colour error (mean CIEDE2000 against the ground truth, foreground), both
on the fills, and the ground truth's own flicker (resampling alone).

    python benchmarks/bench_flicker.py --data DATA/train            # tuning
    python benchmarks/bench_flicker.py --data DATA/heldout --seed-per-frame --sheet docs/flicker-contact-sheet.png
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from refcolor.batch.shot import Consistency, Shot, carry, render
from refcolor.data.samples import list_images
from refcolor.eval.flicker import flicker, foreground_error, moving_shot
from refcolor.eval.runner import fills_rgb
from refcolor.models import load_colorizer
from refcolor_protocol.messages import ColorizeParams


def contact_sheet(rows: dict[str, list[np.ndarray]], path: Path, start: int, count: int = 6) -> None:
    tiles = {name: images[start : start + count] for name, images in rows.items()}
    side = next(iter(tiles.values()))[0].shape[0]
    label = 110
    sheet = Image.new("RGB", (label + count * (side + 4), len(tiles) * (side + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, images) in enumerate(tiles.items()):
        draw.text((4, r * (side + 4) + side // 2), name, fill="black")
        for c, image in enumerate(images):
            sheet.paste(Image.fromarray(image), (label + c * (side + 4), r * (side + 4)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data/build/heldout"),
                        help="a split: characters/ and backgrounds/ (refcolor data build)")  # fmt: skip
    parser.add_argument("--shots", type=int, default=4, help="characters (shots), spread over the split")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--model", default="nano")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-per-frame", action="store_true", help="also colorize with a fresh seed per frame")
    parser.add_argument("--sheet", type=Path, help="contact sheet of 6 consecutive frames of the first shot")
    args = parser.parse_args()

    characters = list_images(args.data / "characters")
    backgrounds = list_images(args.data / "backgrounds")
    stride = max(1, len(characters) // args.shots)
    colorizer = load_colorizer(args.model)
    rows: dict[str, list[float]] = {}
    errors: dict[str, list[float]] = {}
    first: dict[str, list[np.ndarray]] = {}
    seconds = 0.0
    for s in range(args.shots):
        character = Image.open(characters[s * stride])
        background = Image.open(backgrounds[s % len(backgrounds)])
        shot = moving_shot(character, background, args.size, args.frames, seed=args.seed + s)
        params = ColorizeParams(seed=args.seed + s, steps=args.steps, previews=False)
        base = Shot(shot.reference_rgba(), params, shot.reference_mask, consistency=Consistency.OFF)
        carrying = dataclasses.replace(base, consistency=Consistency.CARRY)
        began = time.perf_counter()
        rendered = [render(colorizer, base, shot.sketch_rgba(i), shot.masks[i]) for i in range(args.frames)]
        seconds += time.perf_counter() - began
        carried, previous = [], None
        for frame in rendered:
            previous = carry(carrying, frame, previous)
            carried.append(previous)
        outputs = {
            "ground truth": list(shot.frames),
            "independent (shot seed)": [fills_rgb(f.layers) for f in rendered],
            "carry": [fills_rgb(f.layers) for f in carried],
        }
        if args.seed_per_frame:
            fresh = [
                render(colorizer, dataclasses.replace(base, params=dataclasses.replace(params, seed=1000 * s + i)),
                       shot.sketch_rgba(i), shot.masks[i])
                for i in range(args.frames)
            ]
            outputs["independent (seed per frame)"] = [fills_rgb(f.layers) for f in fresh]
        for name, images in outputs.items():
            rows.setdefault(name, []).append(flicker(images, shot))
            errors.setdefault(name, []).append(foreground_error(images, shot))
        if s == 0:
            first = {name: images for name, images in outputs.items()}
            first["line art"] = [np.dstack([g, g, g]) for g in shot.sketches]
        print(f"shot {s}: " + ", ".join(f"{n} {rows[n][-1]:.2f}" for n in rows), flush=True)

    print(f"\n{args.shots} shots of {args.frames} frames at {args.size} px, {args.model}, {args.steps} steps "
          f"({args.data})")
    print("| frames | flicker (ΔE00) | colour error (ΔE00) |\n|---|---|---|")
    for name in rows:
        print(f"| {name} | {np.mean(rows[name]):.2f} | {np.mean(errors[name]):.2f} |")
    if args.sheet:
        order = ["line art", "ground truth", "independent (shot seed)", "carry"]
        start = args.frames // 2 - 3
        contact_sheet({name: first[name] for name in order}, args.sheet, start)
        print(f"contact sheet: {args.sheet} (frames {start}-{start + 5} of shot 0)")
    independent, carried = np.mean(rows["independent (shot seed)"]), np.mean(rows["carry"])
    print(f"flicker_independent: {independent:.3f}")
    print(f"flicker_carry: {carried:.3f}")
    print(f"flicker_ground_truth: {np.mean(rows['ground truth']):.3f}")
    print(f"flicker_reduction: {independent / max(carried, 1e-9):.2f}")
    print(f"error_independent: {np.mean(errors['independent (shot seed)']):.3f}")
    print(f"error_carry: {np.mean(errors['carry']):.3f}")
    print(f"seconds_per_frame: {seconds / (args.shots * args.frames):.2f}")


if __name__ == "__main__":
    main()
