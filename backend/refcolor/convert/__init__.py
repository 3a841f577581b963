"""Official ColorizeDiffusion checkpoints -> refcolor pipeline folders, and the equivalence oracle.

``readers`` (one tensor at a time) -> ``mapping`` (the conversion plan) -> ``checks``
(completeness) -> ``writer`` (streamed safetensors) in ``converter``; ``clip`` handles the
CLIP ViT-H/14 reference encoder, ``oracle`` compares with the authors' recorded outputs.
Importing this package is light; the submodules import torch/diffusers.
"""
