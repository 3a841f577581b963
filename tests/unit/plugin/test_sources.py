"""What a pick is, how it is saved, labelled and found again (plugin/refcolor_krita/sources.py)."""

from __future__ import annotations

import pytest

from refcolor_plugin.sources import (
    Entry,
    Kind,
    Missing,
    Source,
    document_titles,
    find,
    is_result_layer,
    layer_label,
    line_art_entries,
    reference_entries,
)


def layer(path: str, document: str, layer_id: str, name: str) -> Source:
    return Source(Kind.LAYER, path, document, layer_id, name)


@pytest.mark.parametrize(
    "source",
    [
        Source(),
        Source.file("/art/sheets/hero sheet.png"),
        layer("/art/shot 12.kra", "shot 12.kra", "{1f0e}", "inks: “final”"),
        layer("", "Untitled", "{abcd}", "Background"),
    ],
)
def test_a_pick_survives_its_text_form(source: Source) -> None:
    assert Source.from_text(source.to_text()) == source


@pytest.mark.parametrize("text", ["", "garbage", "file:", "layer:{not json", 'layer:{"path": "x"}'])
def test_unreadable_saved_picks_are_no_pick(text: str) -> None:
    assert Source.from_text(text) == Source()


def test_documents_are_told_apart_by_file_name_then_number() -> None:
    titles = document_titles([("/a/sketch.png", "x"), ("", ""), ("/b/sketch.png", ""), ("", ""), ("", "scan16")])
    assert titles == ["sketch.png", "Untitled", "sketch.png (2)", "Untitled (2)", "scan16"]
    assert layer_label(["Characters", "hero", "inks"], "shot.kra") == "Characters › hero › inks — shot.kra"


def test_results_stay_out_of_the_line_art_list_and_come_last_among_references() -> None:
    def entry(*path: str) -> Entry:
        return Entry(layer_label(path, "a.kra"), layer("/a.kra", "a.kra", "/".join(path), path[-1]),
                     is_result_layer(path))  # fmt: skip

    entries = [entry("Colorized 2", "foreground"), entry("inks"), entry("Colorized 1", "lines"), entry("paper")]
    assert not is_result_layer(["Colorized 1"]) and is_result_layer(["Colorized 1", "background"])
    assert not is_result_layer(["My Colorized 1 copy", "x"])
    assert [e.label for e in line_art_entries(entries)] == ["inks — a.kra", "paper — a.kra"]
    assert [e.label for e in reference_entries(entries)] == [
        "inks — a.kra",
        "paper — a.kra",
        "Colorized 2 › foreground — a.kra",
        "Colorized 1 › lines — a.kra",
    ]


def test_a_layer_is_found_by_id_then_by_its_one_name_in_a_saved_document() -> None:
    inks = Entry("inks", layer("/a.kra", "a.kra", "{1}", "inks"), False)
    paper = Entry("paper", layer("/a.kra", "a.kra", "{2}", "paper"), False)
    other = Entry("inks", layer("/b.kra", "b.kra", "{3}", "inks"), False)
    entries = [inks, paper, other]
    assert find(layer("/a.kra", "a.kra", "{1}", "renamed"), entries) is inks  # renamed: the id finds it
    assert find(layer("/a.kra", "a.kra", "{9}", "paper"), entries) is paper  # reopened: new ids, same name
    assert find(layer("/c.kra", "c.kra", "{1}", "inks"), entries) is None  # its document is not open
    assert find(layer("", "Untitled", "{9}", "paper"), entries) is None  # unsaved: only the id counts
    assert find(Source.file("/x.png"), entries) is None
    twice = [paper, Entry("paper", layer("/a.kra", "a.kra", "{5}", "paper"), False)]
    assert find(layer("/a.kra", "a.kra", "{9}", "paper"), twice) is None  # ambiguous: not guessed


def test_a_missing_pick_says_what_it_was_and_what_to_do() -> None:
    gone = Missing(layer("/a/character.kra", "character.kra", "{1}", "character"))
    assert gone.label == "⚠ missing: character — character.kra"
    message = gone.message("reference")
    assert "the layer “character” of character.kra" in message and "pick another reference" in message
    assert Source.file("/s/sky.png").label == "File: sky.png"
