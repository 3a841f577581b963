"""The samplers a request can name, all built from the model's one training schedule."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from refcolor.diffusion.config import ScheduleSpec

# name -> (class, overrides). "trailing" spacing starts at the last training step (t = 999), as the
# official k-diffusion samplers do, instead of SD's "leading" 951.
SCHEDULERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "ddim": (DDIMScheduler, {"set_alpha_to_one": False, "clip_sample": False}),
    "unipc": (UniPCMultistepScheduler, {}),
}


def make_scheduler(name: str, base_config: Any) -> SchedulerMixin:
    """A fresh scheduler called ``name`` with ``base_config``'s noise schedule.

    Raises:
        ValueError: unknown name.
    """
    value = getattr(name, "value", name)
    if value not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {value!r}: expected one of {', '.join(SCHEDULERS)}")
    cls, overrides = SCHEDULERS[value]
    return cls.from_config(base_config, timestep_spacing="trailing", **overrides)


def default_scheduler(spec: ScheduleSpec) -> SchedulerMixin:
    return DPMSolverMultistepScheduler(
        **asdict(spec),
        algorithm_type="dpmsolver++",
        solver_order=2,
        timestep_spacing="trailing",
    )
