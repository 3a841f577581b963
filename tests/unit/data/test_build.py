from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from refcolor.data import build, debian, sources


def fake_packages(root: Path, disc) -> dict[str, debian.UnpackedPackage]:
    wesnoth, clipart = root / "wesnoth", root / "clipart"
    rng = np.random.default_rng(0)
    for i, color in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]):
        path = wesnoth / sources.WESNOTH_TREE / sources.WESNOTH_PORTRAITS / f"race/unit{'abcd'[i]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(disc(340, color)).save(path)
        path = clipart / sources.OPENCLIPART_TREE / f"animals/beast{'abcd'[i]}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(disc(340, (30 + 50 * i, 200 - 40 * i, 60))).save(path)
    for name in ("hills", "coast", "swamp"):
        path = wesnoth / sources.WESNOTH_TREE / f"data/core/images/story/{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (320, 400, 3), dtype=np.uint8)).save(path)
    return {
        debian.WESNOTH: debian.UnpackedPackage(debian.WESNOTH, "1:1.16.9-1", Path("w.deb"), wesnoth),
        debian.OPENCLIPART: debian.UnpackedPackage(
            debian.OPENCLIPART, "1:0.18+dfsg-19", Path("o.deb"), clipart
        ),
    }


def test_build_writes_split_folders_manifest_and_sheet(tmp_path, monkeypatch, disc):
    packages = fake_packages(tmp_path / "pkgs", disc)
    monkeypatch.setattr(debian, "fetch", lambda name, work, apt_update=False: packages[name])
    out = tmp_path / "out"
    manifest = build.build(build.BuildConfig(out, tmp_path / "work", heldout_fraction=0.25, sheet_size=48))

    train = sorted(p.name for p in (out / "train/characters").iterdir())
    heldout = sorted(p.name for p in (out / "heldout/characters").iterdir())
    assert len(train) + len(heldout) == 8 and not set(train) & set(heldout)
    assert any(n.startswith("wesnoth--") for n in heldout) and any(
        n.startswith("openclipart--") for n in heldout
    )
    assert len(list((out / "heldout/backgrounds").iterdir())) == 2  # at least two backgrounds held out
    assert len(list((out / "train/backgrounds").iterdir())) == 1
    character = Image.open(out / "train/characters" / train[0])
    assert character.mode == "RGBA" and character.getchannel("A").getextrema()[0] == 0

    written = json.loads((out / "manifest.json").read_text())
    assert written == json.loads(json.dumps(manifest))
    assert written["packages"][debian.WESNOTH]["version"] == "1:1.16.9-1"
    assert "GPL-2+" in written["packages"][debian.WESNOTH]["license"]
    assert sum(c["count"] for c in written["counts"]) == 11 == len(written["files"])
    sheet = Image.open(out / "sample-sheet.png")
    assert sheet.size == (48 * 5, 18 + 48 * 6)
