"""Which files are a shot's frames, and in what order (refcolor.batch.frames)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from refcolor.batch.frames import list_frames


def write(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "white").save(path)
    return path


def test_frames_come_in_natural_order_from_a_folder_a_glob_or_files(tmp_path: Path) -> None:
    names = ["f10.png", "f2.png", "f1.png", "F3.png"]
    for name in names:
        write(tmp_path / "shot" / name)
    (tmp_path / "shot" / "notes.txt").write_text("not a frame")
    write(tmp_path / "shot" / "sub" / "f0.png")  # a subfolder is not part of the shot
    want = ["f1", "f2", "F3", "f10"]
    assert [p.stem for p in list_frames([tmp_path / "shot"])] == want
    assert [p.stem for p in list_frames([str(tmp_path / "shot" / "*.png")])] == want
    # Files as a shell expands a glob (f10 before f2): still natural order, and each once.
    files = sorted(str(tmp_path / "shot" / name) for name in names)
    assert [p.stem for p in list_frames([*files, files[0]])] == want


def test_what_names_no_frame_is_an_error_saying_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list_frames([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="no image matches"):
        list_frames([str(tmp_path / "*.png")])
    with pytest.raises(FileNotFoundError, match="no frame at"):
        list_frames([tmp_path / "missing.png"])


def test_two_frames_with_one_name_are_refused(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a" / "f1.png"), write(tmp_path / "b" / "f1.jpg")
    with pytest.raises(ValueError, match="two frames are named 'f1'"):
        list_frames([a, b])
