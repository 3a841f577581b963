"""What the artist picked as line art, reference and background, and how it is remembered
(pure rules: no Krita, no Qt).

A pick is a :class:`Source`: a layer of an open document (remembered by the document's file and
the layer's id and name), an image file (by path), or nothing. Picks are saved as text in the
settings, so they survive a Krita restart; a layer that is not open any more is reported as
missing, never replaced by another one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .placement import group_number


class Kind(str, Enum):
    NONE = "none"
    FILE = "file"
    LAYER = "layer"


@dataclass(frozen=True)
class Source:
    kind: Kind = Kind.NONE
    path: str = ""  # FILE: the image file; LAYER: the document's file ("" for an unsaved one)
    document: str = ""  # LAYER: the document's title as shown (its file name, or "Untitled")
    layer_id: str = ""  # LAYER: the layer's unique id
    layer: str = ""  # LAYER: the layer's name

    @classmethod
    def file(cls, path: str) -> Source:
        return cls(Kind.FILE, path=path)

    def to_text(self) -> str:
        """The settings' form: ``none``, ``file:PATH`` or ``layer:{json}``."""
        if self.kind is Kind.FILE:
            return f"file:{self.path}"
        if self.kind is Kind.LAYER:
            fields = {"path": self.path, "document": self.document, "id": self.layer_id, "layer": self.layer}
            return "layer:" + json.dumps(fields, ensure_ascii=False, sort_keys=True)
        return "none"

    @classmethod
    def from_text(cls, text: str) -> Source:
        """The inverse of :meth:`to_text`; anything unreadable is no pick."""
        if text.startswith("file:") and len(text) > 5:
            return cls.file(text[5:])
        if text.startswith("layer:"):
            try:
                fields = json.loads(text[6:])
                return cls(Kind.LAYER, str(fields["path"]), str(fields["document"]), str(fields["id"]),
                           str(fields["layer"]))  # fmt: skip
            except (ValueError, KeyError, TypeError):
                return cls()
        return cls()

    @property
    def label(self) -> str:
        if self.kind is Kind.FILE:
            return f"File: {os.path.basename(self.path)}"
        if self.kind is Kind.LAYER:
            return f"{self.layer} — {self.document}"
        return "None"

    def describe(self) -> str:
        """How a message names it."""
        if self.kind is Kind.FILE:
            return f"the file {self.path}"
        if self.kind is Kind.LAYER:
            return f"the layer “{self.layer}” of {self.document}"
        return "nothing"


@dataclass(frozen=True)
class Missing:
    """A picked layer that is not in any open document any more (shown, and refused at Colorize)."""

    source: Source

    @property
    def label(self) -> str:
        return f"⚠ missing: {self.source.label}"

    def message(self, what: str) -> str:
        return (
            f"the {what} was {self.source.describe()}, which is not open any more: open that document again "
            f"or pick another {what}"
        )


def document_titles(documents: Sequence[tuple[str, str]]) -> list[str]:
    """A title per open document, from its (file path, name): the file's name, else its name,
    else "Untitled"; equal titles are told apart with " (2)", " (3)", ... in opening order."""
    bases = [os.path.basename(path) or name or "Untitled" for path, name in documents]
    titles = []
    for i, base in enumerate(bases):
        n = bases[:i].count(base)
        titles.append(base if n == 0 else f"{base} ({n + 1})")
    return titles


def layer_label(path: Sequence[str], document: str) -> str:
    """A layer's entry: its name, inside its groups (``Group › layer``), and its document."""
    return f"{' › '.join(path)} — {document}"


def is_result_layer(path: Sequence[str]) -> bool:
    """Whether a layer (by the names from the top group down to it) is one of refcolor's results:
    a layer inside a "Colorized N" group."""
    return any(group_number(name) is not None for name in path[:-1])


@dataclass(frozen=True)
class Entry:
    """A layer as a picker lists it. ``handle`` is the app's (a LayerRef in Krita)."""

    label: str
    source: Source
    result: bool  # one of refcolor's own result layers
    handle: object = None


def line_art_entries(entries: Sequence[Entry]) -> list[Entry]:
    """The line-art picker: the artist's layers only, never refcolor's results."""
    return [e for e in entries if not e.result]


def reference_entries(entries: Sequence[Entry]) -> list[Entry]:
    """The reference picker: the artist's layers first, refcolor's results at the end."""
    return [e for e in entries if not e.result] + [e for e in entries if e.result]


def find(source: Source, entries: Sequence[Entry]) -> Entry | None:
    """The entry a remembered layer pick is now: the same document and layer id, else (ids change
    may change when a file is reopened) the same saved document and its one layer of that name."""
    if source.kind is not Kind.LAYER:
        return None
    same_doc = [e for e in entries if e.source.path == source.path]
    by_id = [e for e in same_doc if e.source.layer_id == source.layer_id]
    if by_id:
        return by_id[0]
    if not source.path:  # an unsaved document: only its own layer ids identify it
        return None
    by_name = [e for e in same_doc if e.source.layer == source.layer]
    return by_name[0] if len(by_name) == 1 else None
