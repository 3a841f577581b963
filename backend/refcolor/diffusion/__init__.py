"""The split cross-attention colorization model (Yan et al., CVPR 2025) on diffusers and peft.

Data path: ``imaging`` (pixels) -> ``sketch_encoder`` / ``reference_encoder`` / ``background``
(encodings) -> ``conditioning`` (guidance batches per mode) -> ``unet`` with ``attention``
(split processor) and ``adapters`` (peft LoRA) -> ``pipeline`` -> ``upsample`` (back to full
resolution) -> ``finishing`` (reference colour statistics, flat fills) -> ``colorizer`` (the
service's job interface). ``config`` and ``factory`` build models.
"""
