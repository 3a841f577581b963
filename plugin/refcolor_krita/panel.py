"""The docker's widgets (PyQt5 only, no ``krita``): pickers, controls, progress, status."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from refcolor_protocol import Layout, Mode

from .jobs import Controls
from .masks import LABELS, MaskSource, keep_choice
from .pixels import Pixels, thumbnail_rgba
from .settings import Settings

MODE_HELP = {
    Mode.BOTH: "Foreground takes only the reference's foreground colours, background only its background.",
    Mode.FOREGROUND: "Split only the foreground; the background follows the whole reference.",
    Mode.BACKGROUND: "Split only the background; the foreground follows the whole reference.",
    Mode.PLAIN: "No split: every pixel may take any colour of the reference.",
}
FILE_ITEM = "Image file…"
THUMB = 96


def to_qimage(pixels: Pixels) -> QImage:
    fmt = QImage.Format_RGBA8888 if pixels.layout is Layout.RGBA8 else QImage.Format_ARGB32
    if pixels.layout is Layout.L8:
        fmt = QImage.Format_Grayscale8
    bpl = pixels.width * pixels.layout.bytes_per_pixel
    return QImage(pixels.data, pixels.width, pixels.height, bpl, fmt).copy()


class Strength(QWidget):
    """A slider with its value shown, for a float in [low, high] in steps of ``step``."""

    def __init__(
        self, low: float, high: float, value: float, parent: QWidget | None = None, step: float = 0.05
    ) -> None:
        super().__init__(parent)
        self.low, self.high, self.step = low, high, step
        self.slider = QSlider(Qt.Horizontal)
        # Whole steps, so round defaults (guidance 5 on 0..15) are exact rather than 4.95.
        self.slider.setRange(0, round((high - low) / step))
        self.label = QLabel()
        self.label.setMinimumWidth(32)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._show)
        self.set_value(value)

    def value(self) -> float:
        return round(self.low + self.step * self.slider.value(), 2)

    def set_value(self, value: float) -> None:
        self.slider.setValue(round((value - self.low) / self.step))
        self._show()

    def _show(self, *_: object) -> None:
        self.label.setText(f"{self.value():g}")


class OptionalStrength(Strength):
    """A :class:`Strength` that can be left to the model: with "auto" ticked its value is None."""

    def __init__(self, low: float, high: float, value: float | None, parent: QWidget | None = None) -> None:
        super().__init__(low, high, low if value is None else value, parent)
        self.default: float | None = None  # the model's value, shown while "auto" is ticked
        self.auto = QCheckBox("auto")
        self.auto.setToolTip("Use the model's own default")
        self.layout().addWidget(self.auto)
        self.auto.toggled.connect(self._show)
        self.auto.setChecked(value is None)

    def value(self) -> float | None:  # type: ignore[override]
        return None if self.auto.isChecked() else super().value()

    def set_value(self, value: float | None) -> None:  # type: ignore[override]
        if value is not None:
            super().set_value(value)
        if hasattr(self, "auto"):
            self.auto.setChecked(value is None)

    def set_default(self, value: float | None) -> None:
        """Show the model's own value (None: unknown); while "auto" is ticked the slider sits there,
        so unticking starts from it."""
        self.default = value
        if self.auto.isChecked() and value is not None:
            super().set_value(value)
        self._show()

    def _show(self, *_: object) -> None:
        auto = hasattr(self, "auto") and self.auto.isChecked()
        self.slider.setEnabled(not auto)
        default = getattr(self, "default", None)
        self.label.setText(("" if default is None else f"{default:g}") if auto else f"{super().value():g}")


class Panel(QWidget):
    """The docker's contents. The docker fills the pickers and reacts to the buttons."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.line_art = QComboBox()
        self.refresh = QToolButton()
        self.refresh.setText("↻")
        self.refresh.setToolTip("Refresh the layer lists")
        self.reference = QComboBox()
        self.reference_thumb = QLabel()
        self.reference_thumb.setFixedHeight(THUMB)
        self.reference_thumb.setAlignment(Qt.AlignCenter)
        self.sketch_mask = QComboBox()
        self.reference_mask = QComboBox()
        self.background = QComboBox()
        self.mode = QComboBox()
        for mode in (Mode.BOTH, Mode.FOREGROUND, Mode.BACKGROUND, Mode.PLAIN):
            self.mode.addItem(mode.value, mode)
        self.mode_help = QLabel()
        self.mode_help.setWordWrap(True)
        self.reference_scale = Strength(0.0, 15.0, settings.reference_scale)
        self.sketch_scale = Strength(0.0, 5.0, settings.sketch_scale)
        self.fg_strength = Strength(0.0, 2.0, settings.fg_strength)
        self.bg_strength = Strength(0.0, 2.0, settings.bg_strength)
        # Settings keep "auto" (the model's default) as a negative number.
        self.color_match = OptionalStrength(0.0, 1.0, None if settings.color_match < 0 else settings.color_match)
        self.color_match.setToolTip("How far each side takes the colours of its side of the reference")
        self.flatten = OptionalStrength(0.0, 1.0, None if settings.flatten < 0 else settings.flatten)
        self.flatten.setToolTip("How far each closed region of the line art is evened out to its local colour")
        self.steps = QSpinBox()
        self.steps.setRange(1, 200)
        self.steps.setValue(settings.steps)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(settings.seed)
        self.new_seed = QToolButton()
        self.new_seed.setText("🎲")
        self.new_seed.setToolTip("New seed")
        self.variations = QSpinBox()
        self.variations.setRange(1, 8)
        self.variations.setValue(settings.variations)
        self.replace_previous = QCheckBox("Replace the previous result")
        self.replace_previous.setChecked(settings.replace_previous)
        self.colorize = QPushButton("Colorize")
        self.colorize.setObjectName("refcolor-colorize")
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(THUMB)
        self.status = QLabel("Not connected.")
        self.status.setWordWrap(True)
        self.status.setObjectName("refcolor-status")
        self._build()
        index = self.mode.findData(Mode(settings.mode)) if settings.mode in {m.value for m in Mode} else 0
        self.mode.setCurrentIndex(max(0, index))
        self.mode.currentIndexChanged.connect(self._mode_help)
        self.new_seed.clicked.connect(lambda: self.seed.setValue(random.randrange(2**31)))
        for combo in (self.sketch_mask, self.reference_mask):
            combo.activated.connect(lambda _, c=combo: c.setProperty("user_pick", c.currentData()))
        self._mode_help()

    def _build(self) -> None:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        line = QHBoxLayout()
        line.addWidget(self.line_art, 1)
        line.addWidget(self.refresh)
        form.addRow("Line art", line)
        form.addRow("Reference", self.reference)
        form.addRow("", self.reference_thumb)
        form.addRow("Line-art mask", self.sketch_mask)
        form.addRow("Reference mask", self.reference_mask)
        form.addRow("Background", self.background)
        form.addRow("Mode", self.mode)
        form.addRow("", self.mode_help)
        form.addRow("Reference", self.reference_scale)
        form.addRow("Sketch", self.sketch_scale)
        form.addRow("Foreground", self.fg_strength)
        form.addRow("Background", self.bg_strength)
        form.addRow("Colour match", self.color_match)
        form.addRow("Flatten", self.flatten)
        form.addRow("Steps", self.steps)
        seed = QHBoxLayout()
        seed.addWidget(self.seed, 1)
        seed.addWidget(self.new_seed)
        form.addRow("Seed", seed)
        form.addRow("Variations", self.variations)
        form.addRow("", self.replace_previous)
        buttons = QHBoxLayout()
        buttons.addWidget(self.colorize, 1)
        buttons.addWidget(self.cancel)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.preview)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _mode_help(self, *_: object) -> None:
        self.mode_help.setText(MODE_HELP[self.mode.currentData()])

    # --- filling the pickers --------------------------------------------------------------

    @staticmethod
    def fill(combo: QComboBox, items: list[tuple[str, Any]], keep: Any = None, file_item: bool = False) -> None:
        """Replace a combo's items, keeping the current pick when it is still there."""
        current = combo.currentData() if keep is None else keep
        combo.blockSignals(True)
        combo.clear()
        for label, data in items:
            combo.addItem(label, data)
        if file_item:
            combo.addItem(FILE_ITEM, FILE_ITEM)
        for i in range(combo.count()):
            if combo.itemData(i) == current and current is not None:
                combo.setCurrentIndex(i)
                break
        combo.blockSignals(False)

    def fill_masks(self, combo: QComboBox, choices: list[MaskSource]) -> None:
        """Offer ``choices``; a pick the user made stays while available, else the default."""
        picked = combo.property("user_pick")
        self.fill(combo, [(LABELS[c], c) for c in choices], keep=keep_choice(picked, choices))

    def pick_file(self, combo: QComboBox, title: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, title, "", "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)")
        if not path:
            return None
        combo.insertItem(0, path.rsplit("/", 1)[-1], path)
        combo.setCurrentIndex(0)
        return path

    def show_thumbnail(self, pixels: Pixels | None) -> None:
        if pixels is None:
            self.reference_thumb.clear()
            return
        small = thumbnail_rgba(pixels, THUMB)
        self.reference_thumb.setPixmap(QPixmap.fromImage(to_qimage(small)))

    def show_model_defaults(self, color_match: float | None, flatten: float | None) -> None:
        """What "auto" means for the model that will run (from the backend's capabilities)."""
        self.color_match.set_default(color_match)
        self.flatten.set_default(flatten)

    # --- reading the controls -------------------------------------------------------------

    def controls(self, model: str = "") -> Controls:
        return Controls(
            mode=self.mode.currentData(),
            steps=self.steps.value(),
            seed=self.seed.value(),
            variations=self.variations.value(),
            reference_scale=self.reference_scale.value(),
            sketch_scale=self.sketch_scale.value(),
            fg_strength=self.fg_strength.value(),
            bg_strength=self.bg_strength.value(),
            color_match=self.color_match.value(),
            flatten=self.flatten.value(),
            model=model,
        )

    # --- showing progress -----------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self.colorize.setEnabled(not running)
        self.cancel.setEnabled(running)

    def set_progress(self, step: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)

    def set_preview(self, pixels: Pixels) -> None:
        image = to_qimage(pixels).scaled(self.preview.width() or THUMB, THUMB * 2, Qt.KeepAspectRatio)
        self.preview.setPixmap(QPixmap.fromImage(image))

    def set_status(self, text: str, ok: bool = True) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("" if ok else "color: #c0392b;")


def connect_clicked(button: QPushButton | QToolButton, slot: Callable[[], None]) -> None:
    button.clicked.connect(lambda *_: slot())
