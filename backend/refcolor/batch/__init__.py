"""Colorizing a shot: every line-art frame of an animation from one character sheet (issue 20).

* :mod:`refcolor.batch.frames`: which files are the frames, in natural order.
* :mod:`refcolor.batch.shot`: one frame's colours (the model, then the colours carried from the
  previous frame, :mod:`refcolor.imaging.carry`).
* :mod:`refcolor.batch.run`: the resumable run over a folder, with its ``manifest.json``.

The model's part of a frame depends on that frame alone; only the carry, a cheap pass, runs in
frame order. That is what lets the model's part run on many workers.
"""
