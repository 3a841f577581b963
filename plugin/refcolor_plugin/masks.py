"""Which foreground masks can be used, and which is the default (pure rules)."""

from __future__ import annotations

from enum import Enum


class MaskSource(str, Enum):
    SELECTION = "selection"  # the document's current selection
    LAYER_MASK = "layer_mask"  # a selection mask attached to the layer
    ALPHA = "alpha"  # the layer's own transparency (references only)
    AUTO = "auto"  # computed by the backend (protocol 1.6: colorize_request.auto_masks)
    IMAGE = "image"  # another image of the same size, white = foreground (Blender)
    NONE = "none"  # no mask: everything is foreground


LABELS = {
    MaskSource.SELECTION: "Current selection",
    MaskSource.LAYER_MASK: "Selection mask on the layer",
    MaskSource.ALPHA: "Layer transparency",
    MaskSource.AUTO: "Automatic",
    MaskSource.IMAGE: "An image",
    MaskSource.NONE: "None (all foreground)",
}


def sketch_mask_choices(has_selection: bool, has_layer_mask: bool, can_auto: bool = True) -> list[MaskSource]:
    """Choices for the sketch's foreground mask, the default first.

    The current selection is the default when one exists (an artist selects the character
    and presses Colorize), then a selection mask attached to the line-art layer; with neither,
    the backend finds the character (what the canvas border cannot reach through the paper), when
    it can (``can_auto``: its capabilities list the mask, or they are not known yet).
    """
    return _choices(MaskSource.SELECTION if has_selection else None, has_layer_mask, can_auto)


def reference_mask_choices(has_transparency: bool, has_layer_mask: bool, can_auto: bool = True) -> list[MaskSource]:
    """Choices for the reference's foreground mask, the default first.

    A reference with transparency (a character cut out on its own layer) uses its alpha by
    default; a selection mask on the reference layer comes next; a flattened picture (a JPEG, a
    character sheet on a background) gets its character found by the backend when it can.
    """
    return _choices(MaskSource.ALPHA if has_transparency else None, has_layer_mask, can_auto)


def _choices(own: MaskSource | None, has_layer_mask: bool, can_auto: bool) -> list[MaskSource]:
    """The image's own mask (a selection, a transparency) first, then a selection mask on the layer,
    then Automatic, then none."""
    choices = [own] if own is not None else []
    if has_layer_mask:
        choices.append(MaskSource.LAYER_MASK)
    if can_auto:
        choices.append(MaskSource.AUTO)
    return [*choices, MaskSource.NONE]


def keep_choice(previous: MaskSource | None, choices: list[MaskSource]) -> MaskSource:
    """Keep the user's pick while it is still available; otherwise the default."""
    return previous if previous in choices else choices[0]
