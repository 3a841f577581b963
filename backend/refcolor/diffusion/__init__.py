"""The split cross-attention colorization model (Yan et al., CVPR 2025) on diffusers and peft.

Data path: ``inputs`` (checks, model-size images from :mod:`refcolor.imaging.pixels`) ->
``sketch_encoder`` / ``reference_encoder`` / ``background`` (encodings) -> ``conditioning``
(guidance batches per mode) -> ``unet`` with ``attention`` (split processor; the mode is an
argument of every call) and ``adapters`` (peft LoRA) -> ``pipeline`` -> back to full resolution and
finished by :mod:`refcolor.imaging` (``upsample``, ``finishing``). The service runs it through
:mod:`refcolor.models.diffusion`. ``config`` and ``factory`` build models.
"""
