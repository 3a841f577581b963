"""The docker's widgets (PyQt5 only, no ``krita``): pickers, controls, progress, status."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QIcon, QImage, QPixmap
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from refcolor_plugin.masks import LABELS, MaskSource, keep_choice
from refcolor_plugin.pixels import Pixels, thumbnail_rgba
from refcolor_plugin.settings import PANEL_PARAMS, Settings
from refcolor_protocol import Capabilities, ColorizeParams, Layout, Mode
from refcolor_protocol.schema import AUTO, ParamSpec, params_from

MODE_HELP = {
    Mode.BOTH: "Foreground takes only the reference's foreground colours, background only its background.",
    Mode.FOREGROUND: "Split only the foreground; the background follows the whole reference.",
    Mode.BACKGROUND: "Split only the background; the foreground follows the whole reference.",
    Mode.PLAIN: "No split: every pixel may take any colour of the reference.",
}
FILE_ITEM = "Image file…"
THUMB = 64
# Folded into "Advanced": what an artist rarely changes once it suits them.
ADVANCED = ("seed", "steps", "sketch_scale", "fg_strength", "bg_strength", "color_match", "flatten", "prior_strength")
IconFor = Callable[[str], QIcon]  # an icon by name (Krita's own, from the docker); null when unknown


def to_qimage(pixels: Pixels) -> QImage:
    fmt = QImage.Format_RGBA8888 if pixels.layout is Layout.RGBA8 else QImage.Format_ARGB32
    if pixels.layout is Layout.L8:
        fmt = QImage.Format_Grayscale8
    bpl = pixels.width * pixels.layout.bytes_per_pixel
    return QImage(pixels.data, pixels.width, pixels.height, bpl, fmt).copy()


def show_icon(button: QToolButton, icon: QIcon | None, text: str) -> None:
    """``icon`` on ``button``; ``text`` where there is none (outside Krita, or an unknown name)."""
    if icon is not None and not icon.isNull():
        button.setIcon(icon)
    else:
        button.setText(text)


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


class Choice(QComboBox):
    """An enum parameter: one item per value the backend offers."""

    def __init__(self, spec: ParamSpec, value: object) -> None:
        super().__init__()
        self.offer(spec.choices)
        self.set_value(value)

    def value(self) -> str:
        return str(self.currentData())

    def set_value(self, value: object) -> None:
        self.setCurrentIndex(max(0, self.findData(getattr(value, "value", value))))

    def offer(self, choices: Sequence[str]) -> None:
        """Offer ``choices`` (what the backend advertises), keeping the current one if it is there."""
        current = self.currentData()
        self.blockSignals(True)
        self.clear()
        for choice in choices:
            self.addItem(choice, choice)
        self.blockSignals(False)
        self.set_value(current if current in choices else choices[0])


class Count(QWidget):
    """An int parameter; below its range sits "auto" where the parameter allows it. ``dice``: a
    button that draws a new value (seeds)."""

    def __init__(self, spec: ParamSpec, value: int | None, dice: bool = False, icon: QIcon | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.spin = QSpinBox()
        low = int(spec.low or 0)
        self.spin.setMinimum(low - 1 if spec.auto else low)
        self.set_high(spec.high or 0)
        if spec.auto:
            self.spin.setSpecialValueText(AUTO)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.spin, 1)
        self.dice: QToolButton | None = None
        if dice:
            self.dice = QToolButton()
            show_icon(self.dice, icon, "New")
            self.dice.setToolTip(f"New {spec.label.lower()}")
            self.dice.clicked.connect(lambda *_: self.spin.setValue(random.randrange(self.spin.maximum())))
            layout.addWidget(self.dice)
        self.set_value(value)

    def value(self) -> int | None:
        auto = self.spec.auto and self.spin.value() == self.spin.minimum()
        return None if auto else self.spin.value()

    def set_value(self, value: int | None) -> None:
        self.spin.setValue(self.spin.minimum() if value is None else int(value))

    def set_high(self, high: float) -> None:
        """Clamp to ``high`` (the protocol's bound, or the backend's limit); a spin box holds 32 bits."""
        self.spin.setMaximum(min(int(high), 2**31 - 1))


Control = Choice | Count | Strength  # a parameter's control: value() and set_value(), and a QWidget
DICE = {"seed"}  # parameters whose control has a "draw a new one" button


def make_control(spec: ParamSpec, value: Any, icon_for: IconFor | None = None) -> Control:
    """The control for one parameter, from its schema: a list for an enum, a spin box for an int, a
    slider for a float (with "auto" where allowed)."""
    if spec.choices:
        control: Control = Choice(spec, value)
    elif spec.kind is int:
        dice = spec.name in DICE
        control = Count(spec, value, dice=dice, icon=icon_for("dice") if dice and icon_for else None)
    elif spec.kind is float:
        high = spec.slider_high if spec.slider_high is not None else spec.high
        low = spec.low or 0.0
        control = OptionalStrength(low, high, value) if spec.auto else Strength(low, high, value)
    else:
        raise TypeError(f"no panel control for {spec.name} ({spec.kind.__name__})")  # a schema bug
    control.setToolTip(spec.help[0].upper() + spec.help[1:])
    return control


class Panel(QWidget):
    """The docker's contents. The docker fills the pickers and reacts to the buttons.

    The inputs and controls scroll; the Colorize and Cancel buttons, the progress and the two
    status lines (the connection's, and the current job's or input's) stay in view below them,
    whatever the docker's height.
    """

    def __init__(self, settings: Settings, parent: QWidget | None = None, icon_for: IconFor | None = None) -> None:
        super().__init__(parent)
        self.line_art = QComboBox()
        self.settings_button = QToolButton()
        show_icon(self.settings_button, icon_for("configure") if icon_for else None, "⚙")
        self.settings_button.setToolTip("Backend settings: how to start it, where it is")
        self.reference = QComboBox()
        self.reference_thumb = QLabel()
        self.reference_thumb.setFixedHeight(THUMB)
        self.reference_thumb.setAlignment(Qt.AlignCenter)
        self.sketch_mask = QComboBox()
        self.reference_mask = QComboBox()
        self.use_masks = QPushButton("Use as selection")
        self.use_masks.setToolTip(
            "Turn the masks refcolor found automatically into selections you can correct: the line-art mask "
            "becomes the document's selection, the reference mask a selection mask on the reference layer"
        )
        self.use_masks.hide()  # until a job's masks were found automatically
        self.background = QComboBox()
        for combo in (self.line_art, self.reference, self.sketch_mask, self.reference_mask, self.background):
            # long layer names must not widen the docker: the combo elides, its list shows them whole
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        # One control per panel parameter, built from the schema, starting at the saved values.
        self.controls: dict[str, Control] = {
            spec.name: make_control(spec, getattr(settings.params, spec.name), icon_for) for spec in PANEL_PARAMS
        }
        self.mode_help = QLabel()
        self.mode_help.setWordWrap(True)
        self.replace_previous = QCheckBox("Replace the previous result")
        self.replace_previous.setChecked(settings.replace_previous)
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.RightArrow)
        self.advanced = QWidget()
        self.colorize = QPushButton("Colorize")
        self.colorize.setObjectName("refcolor-colorize")
        # Animated line art: every keyframe in a range of frames, one after the other.
        self.colorize_frames = QPushButton("Colorize frames")
        self.colorize_frames.setObjectName("refcolor-colorize-frames")
        self.colorize_frames.setToolTip(
            "Colorize every keyframe of the animated line-art layer in the frames below, with one reference and "
            "one seed, each frame keeping the colours of the one before; the result is a new animated group"
        )
        self.frames = QWidget()
        self.frames_from = QSpinBox()
        self.frames_to = QSpinBox()
        for spin in (self.frames_from, self.frames_to):
            spin.setRange(0, 100_000)
        self.playback_range = QCheckBox("Playback range")
        self.playback_range.setToolTip("Follow the document's playback range; untick to choose the frames")
        self.playback_range.setChecked(settings.frames_playback)
        self.playback: tuple[int, int] | None = None  # the line art's playback range; None: not animated
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.hide()
        self.connection = QLabel("Not connected.")
        self.connection.setWordWrap(True)
        self.connection.setObjectName("refcolor-connection")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("refcolor-status")
        self.scroll = QScrollArea()
        self._build()
        self.control("mode").currentIndexChanged.connect(self._mode_help)
        for combo in (self.sketch_mask, self.reference_mask):
            combo.activated.connect(lambda _, c=combo: c.setProperty("user_pick", c.currentData()))
        self.advanced_toggle.toggled.connect(self.show_advanced)
        self.playback_range.toggled.connect(self._follow_playback)
        self.show_advanced(settings.show_advanced)
        self._mode_help()

    def _build(self) -> None:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("Line art", self.line_art)
        form.addRow("Reference", self.reference)
        form.addRow("", self.reference_thumb)
        form.addRow("Line-art mask", self.sketch_mask)
        form.addRow("Reference mask", self.reference_mask)
        form.addRow("", self.use_masks)
        form.addRow("Background", self.background)
        frames = QHBoxLayout(self.frames)
        frames.setContentsMargins(0, 0, 0, 0)
        frames.addWidget(self.frames_from, 1)
        frames.addWidget(QLabel("–"))
        frames.addWidget(self.frames_to, 1)
        frames.addWidget(self.playback_range)
        form.addRow("Frames", self.frames)
        self.frames_label = form.labelForField(self.frames)
        self.show_frames(None)
        advanced = QFormLayout(self.advanced)
        advanced.setContentsMargins(0, 0, 0, 0)
        advanced.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        for spec in PANEL_PARAMS:
            target = advanced if spec.name in ADVANCED else form
            target.addRow(spec.label, self.controls[spec.name])
            if spec.name == "mode":
                form.addRow("", self.mode_help)
        advanced.addRow("", self.replace_previous)
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addWidget(self.advanced_toggle)
        column.addWidget(self.advanced)
        column.addWidget(self.preview)
        column.addStretch(1)
        self.scroll.setWidget(inner)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Expanding)
        self.scroll.setMinimumHeight(120)
        buttons = QHBoxLayout()
        buttons.addWidget(self.colorize, 1)
        buttons.addWidget(self.cancel)
        buttons.addWidget(self.settings_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.colorize_frames)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.connection)

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a control's value changes (the docker saves them then)."""
        for control in self.controls.values():
            if isinstance(control, Choice):
                control.currentIndexChanged.connect(lambda *_: callback())
            elif isinstance(control, Count):
                control.spin.valueChanged.connect(lambda *_: callback())
            else:
                control.slider.valueChanged.connect(lambda *_: callback())
                if isinstance(control, OptionalStrength):
                    control.auto.toggled.connect(lambda *_: callback())
        self.replace_previous.toggled.connect(lambda *_: callback())
        self.advanced_toggle.toggled.connect(lambda *_: callback())
        self.playback_range.toggled.connect(lambda *_: callback())

    def show_advanced(self, shown: bool) -> None:
        self.advanced_toggle.setChecked(shown)
        self.advanced_toggle.setArrowType(Qt.DownArrow if shown else Qt.RightArrow)
        self.advanced.setVisible(shown)

    def control(self, name: str) -> Any:
        """The control of parameter ``name``."""
        return self.controls[name]

    def _mode_help(self, *_: object) -> None:
        self.mode_help.setText(MODE_HELP[Mode(self.control("mode").value())])

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

    def pick_file(self, title: str) -> str | None:
        """Ask for an image file; None when the dialog is cancelled."""
        path, _ = QFileDialog.getOpenFileName(self, title, "", "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)")
        return path or None

    def show_thumbnail(self, pixels: Pixels | None) -> None:
        if pixels is None:
            self.reference_thumb.clear()
            return
        small = thumbnail_rgba(pixels, THUMB)
        self.reference_thumb.setPixmap(QPixmap.fromImage(to_qimage(small)))

    def apply_capabilities(self, caps: Capabilities, own_model: bool) -> None:
        """Clamp the controls to what the backend offers: its modes and limits. ``own_model``: the
        job runs the backend's default model, so "auto" shows that model's own values."""
        for spec in PANEL_PARAMS:
            control = self.controls[spec.name]
            if isinstance(control, Choice) and spec.name == "mode":
                control.offer(caps.modes)
            if isinstance(control, Count) and spec.limit:
                control.set_high(spec.high_for(caps.limits) or 0)
            if isinstance(control, OptionalStrength) and own_model:
                control.set_default(getattr(caps.model, spec.name, None))

    def show_frames(self, playback: tuple[int, int] | None) -> None:
        """The frames row and "Colorize frames", for animated line art (``playback``: its document's
        playback range, which the row follows while "Playback range" is ticked); hidden for a still."""
        self.playback = playback
        for widget in (self.frames, self.frames_label, self.colorize_frames):
            if widget is not None:
                widget.setVisible(playback is not None)
        self._follow_playback()

    def _follow_playback(self, *_: object) -> None:
        following = self.playback_range.isChecked()
        for spin in (self.frames_from, self.frames_to):
            spin.setEnabled(not following)
        if self.playback is not None and following:
            self.frames_from.setValue(self.playback[0])
            self.frames_to.setValue(self.playback[1])

    # --- reading the controls -------------------------------------------------------------

    def frame_range(self) -> tuple[int, int]:
        """The frames "Colorize frames" colours, both ends included."""
        return self.frames_from.value(), self.frames_to.value()

    def params(self) -> ColorizeParams:
        """The controls' values; the parameters the panel does not show at their defaults."""
        return params_from({name: control.value() for name, control in self.controls.items()})

    # --- showing progress -----------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        """Buttons for the state; a finished job's bar and preview go away with it."""
        self.colorize.setEnabled(not running)
        self.colorize_frames.setEnabled(not running)
        self.cancel.setEnabled(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setRange(0, 0)  # busy until the first step says how many
        else:
            self.preview.clear()
            self.preview.hide()

    def set_progress(self, step: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)

    def set_busy(self) -> None:
        """A stage without steps (reading, encoding, upsampling, placing): a moving bar."""
        self.progress.setRange(0, 0)

    def set_preview(self, pixels: Pixels) -> None:
        image = to_qimage(pixels).scaled(self.scroll.viewport().width() or THUMB * 3, THUMB * 3, Qt.KeepAspectRatio)
        self.preview.setPixmap(QPixmap.fromImage(image))
        self.preview.show()

    def set_status(self, text: str, ok: bool = True) -> None:
        """The job's or the inputs' line: what runs, what came out, or what is wrong."""
        self.status.setText(text)
        self.status.setStyleSheet("" if ok else "color: #c0392b;")

    def set_connection(self, text: str, ok: bool) -> None:
        """The connection's line: always the current state of the backend connection."""
        self.connection.setText(text)
        self.connection.setStyleSheet("color: #2e7d32;" if ok else "color: #c0392b;")


class BackendDialog(QDialog):
    """The backend settings: how a backend is started when none answers, and where one is."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("refcolor backend")
        self.start_backend = QCheckBox("Start a backend when none answers (stopped again when Krita quits)")
        self.start_backend.setChecked(settings.start_backend)
        self.python = QLineEdit(settings.backend_python)
        self.python.setPlaceholderText("e.g. /home/me/refcolor/.venv/bin/python")
        self.python.setToolTip("A Python with refcolor installed; the backend runs as `<python> -m refcolor.cli serve`")
        self.command = QLineEdit(settings.backend_command)
        self.command.setPlaceholderText("empty: `refcolor serve` with the Python above, or from PATH")
        self.command.setToolTip("A whole command line that starts a backend; overrides the Python")
        self.model = QLineEdit(settings.model)
        self.model.setPlaceholderText("empty: the backend's default (nano)")
        self.connection_file = QLineEdit(settings.connection_file)
        self.connection_file.setPlaceholderText("empty: the default location")
        self.address = QLineEdit(settings.address)
        self.address.setPlaceholderText("e.g. tcp://192.168.1.20:5557 (overrides the connection file)")
        self.key = QLineEdit(settings.key)
        self.key.setEchoMode(QLineEdit.Password)
        form = QFormLayout()
        form.addRow(self.start_backend)
        form.addRow("Backend Python", self.python)
        form.addRow("Backend command", self.command)
        form.addRow("Model", self.model)
        form.addRow("Connection file", self.connection_file)
        form.addRow("Address", self.address)
        form.addRow("Key", self.key)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def settings(self, base: Settings) -> Settings:
        """``base`` with what the dialog shows."""
        return dataclasses.replace(
            base,
            start_backend=self.start_backend.isChecked(),
            backend_python=self.python.text().strip(),
            backend_command=self.command.text().strip(),
            model=self.model.text().strip(),
            connection_file=self.connection_file.text().strip(),
            address=self.address.text().strip(),
            key=self.key.text().strip(),
        )


def connect_clicked(button: QPushButton | QToolButton, slot: Callable[[], None]) -> None:
    button.clicked.connect(lambda *_: slot())
