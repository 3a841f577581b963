"""PROTOCOL.md is the authority: check that the code says what the page says.

The page is parsed strictly: every message type, every field of every content class and
of every nested type, every error code must be documented, with the same types and
defaults, and nothing may be documented that the code lacks.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

import refcolor_protocol.messages as messages
from refcolor_protocol.connection import ConnectionInfo
from refcolor_protocol.messages import MESSAGE_TYPES, Header
from refcolor_protocol.spec import (
    DELIMITER,
    MAX_BUFFERS,
    MAX_JSON_FRAME_BYTES,
    PROTOCOL_VERSION,
    SIGNATURE_SCHEME,
    ErrorCode,
    Layout,
)

SPEC_PATH = Path(__file__).resolve().parents[3] / "protocol" / "PROTOCOL.md"

# The requests a server accepts; everything else in MESSAGE_TYPES is sent by the server only.
CLIENT_TO_SERVER = {"hello", "ping", "status_request", "colorize_request", "cancel"}

FIELD_COLUMNS = ("field", "type", "default", "meaning")


@dataclass
class Table:
    section: str  # the "## ..." heading it is under
    subsection: str  # the "### ..." heading, or ""
    lead: str  # the last non-blank text line before the table
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass
class Spec:
    text: str
    tables: list[Table]
    paragraphs: list[str]


def _split_row(line: str) -> tuple[str, ...]:
    cells = line.strip().strip("|").replace("\\|", "\x00").split("|")
    return tuple(cell.strip().replace("\x00", "|") for cell in cells)


def parse_spec(text: str) -> Spec:
    tables: list[Table] = []
    section = subsection = lead = ""
    lines = text.splitlines()
    i = 0
    in_code = False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_code = not in_code
        elif in_code:
            pass
        elif line.startswith("## "):
            section, subsection, lead = line[3:].strip(), "", line
        elif line.startswith("### "):
            subsection, lead = line[4:].strip(), line
        elif line.startswith("|"):
            columns = _split_row(line)
            assert re.fullmatch(r"\|( *-+ *\|)+", lines[i + 1].replace(" ", "")), f"bad table at line {i + 1}"
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                row = _split_row(lines[i])
                assert len(row) == len(columns), f"line {i + 1}: {len(row)} cells, header has {len(columns)}"
                rows.append(row)
                i += 1
            tables.append(Table(section, subsection, lead, columns, rows))
            continue
        elif line.strip():
            lead = line.strip()
        i += 1
    paragraphs = [p.replace("\n", " ") for p in re.split(r"\n\s*\n", text)]
    return Spec(text, tables, paragraphs)


@pytest.fixture(scope="module")
def spec() -> Spec:
    return parse_spec(SPEC_PATH.read_text(encoding="utf-8"))


def tables_with(spec: Spec, first_column: str) -> list[Table]:
    return [t for t in spec.tables if t.columns[0] == first_column]


def one_table(spec: Spec, section: str, first_column: str) -> Table:
    found = [t for t in tables_with(spec, first_column) if t.section == section]
    assert len(found) == 1, f"expected one {first_column!r} table under '## {section}', found {len(found)}"
    return found[0]


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# --- types ---------------------------------------------------------------------------------------

NESTED_TYPE_NAMES = {"ImageRef", "ColorizeParams", "ModelEntry", "Limits", "JobState", "ResultLayer", "ResultMask"}


def nested_class(name: str) -> type[Any]:
    cls = getattr(messages, name, None)
    assert cls is not None and dataclasses.is_dataclass(cls), (
        f"PROTOCOL.md names type {name}, not in messages"
    )
    return cls  # type: ignore[return-value]


def type_matches(doc: str, annotation: Any) -> bool:
    """Whether a type as PROTOCOL.md writes it ("list of JobState", "int or null") is ``annotation``."""
    doc = doc.strip()
    if doc.endswith(" or null"):
        args = typing.get_args(annotation)
        if type(None) not in args:
            return False
        (inner,) = [a for a in args if a is not type(None)]
        return type_matches(doc.removesuffix(" or null"), inner)
    if doc.startswith("list of "):
        if typing.get_origin(annotation) is not tuple:
            return False
        inner, ellipsis = typing.get_args(annotation)
        return ellipsis is Ellipsis and type_matches(doc.removeprefix("list of "), inner)
    if doc == "string":  # enums travel as their string values
        return annotation is str or (
            isinstance(annotation, type) and issubclass(annotation, Enum) and issubclass(annotation, str)
        )
    simple = {"int": int, "float": float, "bool": bool}
    if doc in simple:
        return annotation is simple[doc]
    if doc in NESTED_TYPE_NAMES:
        return annotation is nested_class(doc)
    return False


def hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def encoded_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return dataclasses.MISSING
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def parse_default(cell: str, field: dataclasses.Field[Any]) -> Any:
    text = cell.strip()
    if text == "required":
        return dataclasses.MISSING
    if text == "all defaults":
        assert field.default_factory is not dataclasses.MISSING, (
            f"{field.name}: 'all defaults' needs a factory"
        )
        return encoded_default(field)
    text = text.strip("`")
    try:
        return json.loads(text)
    except ValueError:
        return text  # an enum value written bare, e.g. `both`


def same_default(documented: Any, actual: Any) -> bool:
    if documented is dataclasses.MISSING or actual is dataclasses.MISSING:
        return documented is actual
    return type(documented) is type(actual) and documented == actual


def check_field_table(table: Table, cls: type[Any], name: str) -> None:
    assert table.columns[: len(FIELD_COLUMNS) - 1] == FIELD_COLUMNS[:-1], f"{name}: columns {table.columns}"
    assert table.columns[-1] == "meaning", f"{name}: columns {table.columns}"
    documented = [row[0] for row in table.rows]
    actual = [f.name for f in dataclasses.fields(cls)]
    assert documented == actual, f"{name}: PROTOCOL.md documents fields {documented}, the code has {actual}"
    fields = {f.name: f for f in dataclasses.fields(cls)}
    annotations = hints(cls)
    for row in table.rows:
        cells = dict(zip(table.columns, row, strict=True))
        field = fields[cells["field"]]
        assert type_matches(cells["type"], annotations[field.name]), (
            f"{name}.{field.name}: documented as {cells['type']!r}, annotated {annotations[field.name]!r}"
        )
        documented_default = parse_default(cells["default"], field)
        assert same_default(documented_default, encoded_default(field)), (
            f"{name}.{field.name}: documented default {cells['default']!r}, code default "
            f"{encoded_default(field)!r}"
        )
        if "range" in cells:
            check_range_cell(f"{name}.{field.name}", cells["range"], field, annotations[field.name])


_NUMBER = r"[0-9.³²¹⁰]+(?:−[0-9]+)?"


def parse_number(text: str) -> float:
    """Numbers as PROTOCOL.md writes them: 4096, 0.5, 2³²−1."""
    match = re.fullmatch(r"([0-9]+)([⁰¹²³]+)?(?:−([0-9]+))?|[0-9]+\.[0-9]+", text)
    assert match, f"cannot read number {text!r}"
    if "." in text:
        return float(text)
    base, exponent, minus = match.groups()
    value = int(base)
    if exponent:
        value = value ** int(exponent.translate(str.maketrans("⁰¹²³", "0123")))
    return value - int(minus or 0)


def check_range_cell(path: str, cell: str, field: dataclasses.Field[Any], annotation: Any) -> None:
    inner = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    base = inner[0]
    if isinstance(base, type) and issubclass(base, Enum):
        choices = {c.strip() for c in cell.split(",")}
        assert choices == {m.value for m in base}, f"{path}: range lists {choices}, the enum has {list(base)}"
        return
    if not cell:
        ranged = (field.metadata.get("min"), field.metadata.get("max")) != (None, None)
        assert not ranged, f"{path}: ranged in code but PROTOCOL.md gives no range"
        return
    match = re.match(rf"({_NUMBER}) … ({_NUMBER})(,|$)", cell)
    assert match, f"{path}: cannot read range {cell!r}"
    low, high = parse_number(match.group(1)), parse_number(match.group(2))
    assert (field.metadata.get("min"), field.metadata.get("max")) == (low, high), (
        f"{path}: PROTOCOL.md says {low} … {high}, code says {field.metadata.get('min')} … "
        f"{field.metadata.get('max')}"
    )


# --- reachable types -----------------------------------------------------------------------------


def reachable_dataclasses(annotation: Any, found: set[type[Any]]) -> set[type[Any]]:
    for arg in typing.get_args(annotation):
        reachable_dataclasses(arg, found)
    if dataclasses.is_dataclass(annotation) and annotation not in found:
        found.add(annotation)  # type: ignore[arg-type]
        for tp in hints(annotation).values():  # type: ignore[arg-type]
            reachable_dataclasses(tp, found)
    return found


def nested_types_in_code() -> set[str]:
    found: set[type[Any]] = set()
    for cls in MESSAGE_TYPES.values():
        for tp in hints(cls).values():
            reachable_dataclasses(tp, found)
    return {cls.__name__ for cls in found}


# --- tests ---------------------------------------------------------------------------------------


def test_version_matches(spec: Spec) -> None:
    versions = re.findall(r"^Protocol version: \*\*([^*]+)\*\*$", spec.text, flags=re.MULTILINE)
    assert versions == [PROTOCOL_VERSION]


def test_message_table_matches(spec: Spec) -> None:
    table = one_table(spec, "Message types", "msg_type")
    assert table.columns == ("msg_type", "direction", "answered by")
    documented = [row[0] for row in table.rows]
    assert len(documented) == len(set(documented)), f"duplicate rows in {documented}"
    assert set(documented) == set(MESSAGE_TYPES)
    directions = {row[0]: row[1] for row in table.rows}
    assert set(directions.values()) == {"client → server", "server → client"}
    to_server = {name for name, direction in directions.items() if direction == "client → server"}
    assert to_server == CLIENT_TO_SERVER
    for msg_type, direction, answered_by in table.rows:
        if direction == "client → server":
            first_answer = re.split(r"\W+", answered_by)[0]
            assert first_answer in MESSAGE_TYPES and first_answer not in CLIENT_TO_SERVER, (
                f"{msg_type}: answered by {answered_by!r}"
            )
        else:
            assert answered_by == "", f"{msg_type} is not a request but is 'answered by' {answered_by!r}"


def message_sections(spec: Spec) -> dict[str, str]:
    """msg_type -> the ### heading documenting it."""
    sections: dict[str, str] = {}
    for heading in re.findall(r"^### (.+)$", spec.text, flags=re.MULTILINE):
        for name in heading.split(" / "):
            assert name.strip() in MESSAGE_TYPES, f"'### {heading}' names {name!r}, not a message type"
            sections[name.strip()] = heading
    return sections


def field_tables(spec: Spec) -> dict[str, Table]:
    """Type name (a msg_type or a nested type name, or "Header") -> its field table."""
    sections = message_sections(spec)
    found: dict[str, Table] = {}
    for table in tables_with(spec, "field"):
        if table.lead.startswith("### "):
            names = table.subsection.split(" / ")
            assert len(names) == 1, f"table right after '### {table.subsection}': whose is it?"
            owner = names[0]
        elif table.lead.startswith("## "):
            owner = table.section
        elif match := re.search(r"\*\*(\w+)\*\*[^*]*:$", table.lead):
            owner = match.group(1)  # "... an **ImageRef**:", "**ColorizeParams** (...):"
        elif match := re.search(r"(?:^|\. )(\w+):$", table.lead):
            owner = match.group(1)  # "ping:", "status_request has no fields. status:"
        else:
            raise AssertionError(f"cannot tell whose field table follows {table.lead!r}")
        if owner in MESSAGE_TYPES:
            assert sections.get(owner) == table.subsection, (
                f"{owner}'s table is under '### {table.subsection}'"
            )
        assert owner not in found, f"two field tables for {owner}"
        found[owner] = table
    return found


def test_every_message_type_has_a_section(spec: Spec) -> None:
    assert set(message_sections(spec)) == set(MESSAGE_TYPES)


@pytest.mark.parametrize("msg_type", sorted(MESSAGE_TYPES))
def test_message_fields_match(spec: Spec, msg_type: str) -> None:
    cls = MESSAGE_TYPES[msg_type]
    tables = field_tables(spec)
    if msg_type not in tables:
        assert f"{msg_type} has no fields." in spec.text, f"PROTOCOL.md has no field table for {msg_type}"
        assert dataclasses.fields(cls) == (), f"{msg_type} has fields but PROTOCOL.md says it has none"
        return
    table = tables[msg_type]
    assert table.columns == FIELD_COLUMNS, f"{msg_type}: columns {table.columns}"
    check_field_table(table, cls, msg_type)


def test_no_field_table_for_unknown_types(spec: Spec) -> None:
    allowed = set(MESSAGE_TYPES) | NESTED_TYPE_NAMES | {"Header"}
    assert set(field_tables(spec)) <= allowed


def test_header_table_matches(spec: Spec) -> None:
    table = field_tables(spec)["Header"]
    assert table.columns == ("field", "type", "meaning")
    assert [row[0] for row in table.rows] == [f.name for f in dataclasses.fields(Header)]
    assert all(row[1] == "string" for row in table.rows)
    assert all(tp is str for tp in hints(Header).values())
    version = dict((row[0], row[2]) for row in table.rows)["version"]
    assert backticked(version) == [f'"{PROTOCOL_VERSION}"']


def test_image_ref_table_matches(spec: Spec) -> None:
    cls = messages.ImageRef
    table = field_tables(spec)["ImageRef"]
    assert table.columns == ("field", "type", "meaning")
    assert [row[0] for row in table.rows] == [f.name for f in dataclasses.fields(cls)]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    annotations = hints(cls)
    for name, doc_type, meaning in table.rows:
        assert type_matches(doc_type, annotations[name]), f"ImageRef.{name}: {doc_type!r}"
        bounds = re.search(rf"({_NUMBER}) ≤ {name} ≤ ({_NUMBER})", meaning)
        if bounds:
            low, high = parse_number(bounds.group(1)), parse_number(bounds.group(2))
            assert (fields[name].metadata["min"], fields[name].metadata["max"]) == (low, high), name
        elif name in ("width", "height", "buffer"):
            raise AssertionError(f"ImageRef.{name}: PROTOCOL.md gives no range in {meaning!r}")
    layouts = dict((row[0], row[2]) for row in table.rows)["layout"]
    assert set(backticked(strip_parentheses(layouts))) == {m.value for m in Layout}
    assert fields["buffer"].metadata["max"] == MAX_BUFFERS - 1


def test_colorize_params_table_matches(spec: Spec) -> None:
    table = field_tables(spec)["ColorizeParams"]
    assert table.columns == ("field", "type", "default", "range", "meaning")
    check_field_table(table, messages.ColorizeParams, "ColorizeParams")
    # Every field optional, as the page says ("`{}` is valid").
    assert all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(messages.ColorizeParams)
    )


def strip_parentheses(text: str) -> str:
    out, depth = [], 0
    for char in text:
        depth += char == "("
        if depth == 0:
            out.append(char)
        depth -= char == ")" and depth > 0
    return "".join(out)


def bullet_description(spec: Spec, name: str) -> str:
    found = [p for p in spec.paragraphs if p.startswith(f"**{name}**: ")]
    assert len(found) == 1, f"expected one '**{name}**:' description in PROTOCOL.md, found {len(found)}"
    return found[0].removeprefix(f"**{name}**: ")


@pytest.mark.parametrize("name", ["ModelEntry", "Limits", "JobState", "ResultLayer", "ResultMask"])
def test_bullet_types_match(spec: Spec, name: str) -> None:
    cls = nested_class(name)
    text = bullet_description(spec, name)
    documented = backticked(strip_parentheses(text))
    actual = [f.name for f in dataclasses.fields(cls)]
    assert documented == actual, f"{name}: PROTOCOL.md lists {documented}, the code has {actual}"
    annotations = hints(cls)
    if text.rstrip().endswith("All ints."):
        assert all(tp is int for tp in annotations.values()), f"{name}: PROTOCOL.md says all ints"
        return
    for field_name, described in re.findall(r"`(\w+)` \(((?:[^()]|\([^()]*\))*)\)", text):
        if field_name not in annotations:
            continue  # a value inside another field's description
        annotation = annotations[field_name]
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            values = set(backticked(described))
            assert values == {m.value for m in annotation}, f"{name}.{field_name}: {values}"
            continue
        head = re.split(r"[:,]", described)[0].strip()
        assert type_matches(head, annotation), (
            f"{name}.{field_name}: documented {head!r}, code {annotation!r}"
        )


def test_every_nested_type_is_documented(spec: Spec) -> None:
    assert nested_types_in_code() == NESTED_TYPE_NAMES
    tables = set(field_tables(spec))
    for name in NESTED_TYPE_NAMES - tables:
        bullet_description(spec, name)


def test_enum_values_in_meanings(spec: Spec) -> None:
    tables = field_tables(spec)
    capabilities = {row[0]: row[-1] for row in tables["capabilities"].rows}
    assert backticked(capabilities["modes"]) == [m.value for m in messages.Mode]
    assert backticked(capabilities["schedulers"]) == [s.value for s in messages.Scheduler]
    outcome = {row[0]: row[-1] for row in tables["cancel_reply"].rows}["outcome"]
    assert backticked(outcome) == [o.value for o in messages.CancelOutcome]


def test_error_codes_match(spec: Spec) -> None:
    table = one_table(spec, "Error codes", "code")
    documented = [row[0] for row in table.rows]
    assert len(documented) == len(set(documented))
    assert set(documented) == {code.value for code in ErrorCode}


def test_delimiter_matches(spec: Spec) -> None:
    table = one_table(spec, "Wire format", "frame")
    contents = dict(table.rows)["delimiter"]
    assert backticked(contents) == [DELIMITER.decode("ascii")]
    count = re.match(r"the (\d+) ASCII bytes", contents)
    assert count and int(count.group(1)) == len(DELIMITER)
    assert f'"{DELIMITER.decode("ascii")}"' in spec.text  # the frame diagram


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)( MiB)?", text)
    assert match, f"cannot read size {text!r}"
    return int(match.group(1)) << (20 if match.group(2) else 0)


def test_limits_table_matches(spec: Spec) -> None:
    table = one_table(spec, "Limits", "limit")
    defaults = {row[0]: row[1] for row in table.rows}
    assert parse_size(defaults["JSON frame"]) == MAX_JSON_FRAME_BYTES
    assert parse_size(defaults["buffers per message"]) == MAX_BUFFERS
    assert "The three JSON frames are at most 1 MiB each" in spec.text
    assert MAX_JSON_FRAME_BYTES == 1 << 20


def test_connection_file_example_matches(spec: Spec) -> None:
    block = re.search(r"```json\n(.*?)```", spec.text, flags=re.DOTALL)
    assert block
    example = json.loads(block.group(1).replace('"<64 hex digits>"', '"00"'))
    assert example["signature_scheme"] == SIGNATURE_SCHEME
    written = ConnectionInfo(address=example["address"], key=b"00", pid=example["pid"]).to_dict()
    assert written == example
    assert example["protocol_version"] == PROTOCOL_VERSION
