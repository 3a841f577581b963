"""The backend's layout: dependencies point one way, and saved model folders keep loading."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "backend" / "refcolor"

# Each layer may import itself and the layers before it, never one after it.
LAYERS = ["imaging", "diffusion", "convert", "models", "service", "batch", "data", "eval", "train", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
RANK["train"] = RANK["eval"]  # eval and train are siblings: neither imports the other


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "refcolor" and len(parts) > 1 and parts[1] in RANK else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every refcolor import in ``path``, function-local ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("refcolor.")]


def test_dependencies_point_one_way() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = layer_of(module)
        if own is None:
            continue
        for line, name in imports(path):
            other = layer_of(name)
            if other is not None and RANK[other] > RANK[own]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {name} ({other})")
    assert not wrong, "imports against the layer order " + " -> ".join(LAYERS) + ":\n" + "\n".join(wrong)


def test_every_module_is_in_a_layer() -> None:
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert loose == [] and folders - {"weights"} == set(LAYERS), (loose, folders)  # weights: data


def test_a_model_folder_saved_with_the_old_module_names_loads(tmp_path: Path) -> None:
    # The scenario: a folder written by `refcolor convert` before the layout of issue 15 names
    # refcolor.model.unet (and the other components) in its model_index.json.
    from refcolor.diffusion.config import TINY
    from refcolor.diffusion.factory import build_pipeline
    from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

    build_pipeline(TINY, seed=0).save_pretrained(tmp_path)
    index = tmp_path / "model_index.json"
    config = json.loads(index.read_text())
    for name, value in config.items():
        if isinstance(value, list) and str(value[0]).startswith("refcolor.diffusion."):
            config[name] = [value[0].replace("refcolor.diffusion.", "refcolor.model."), value[1]]
    index.write_text(json.dumps(config))
    assert '"refcolor.model.unet"' in index.read_text()
    loaded = ReferenceColorizationPipeline.from_pretrained(tmp_path)
    assert type(loaded.unet).__module__ == "refcolor.diffusion.unet"


def test_the_command_loads_only_the_subcommand_it_runs() -> None:
    # The scenario: `refcolor --help` imported every subcommand (0.56 s, numpy, PIL and scipy).
    probe = (
        "import sys; from refcolor.cli import build_parser; build_parser({argv}); "
        "print(sorted(m for m in ('numpy', 'torch', 'PIL', 'scipy', 'refcolor.cli.colorize') if m in sys.modules))"
    )

    def loaded(argv: list[str]) -> str:
        command = [sys.executable, "-c", probe.format(argv=argv)]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()

    assert loaded([]) == "[]"
    assert "refcolor.cli.colorize" in loaded(["colorize"])
