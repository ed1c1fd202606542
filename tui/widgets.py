"""Widgets that render views: tables that keep their cursor, the weight display, forms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self
from weakref import WeakKeyDictionary

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    DataTable,
    Digits,
    Input,
    Label,
    OptionList,
    Select,
    Static,
)
from textual.widgets.option_list import Option

from tui.forms import Field
from tui.i18n import Words
from tui.views import Cell, Row

TONES = {"ok": "green", "warn": "bold yellow", "bad": "bold red", "dim": "dim", "": ""}


# what each widget shows, and its extent (measured once, when it was put there)
_SHOWN: WeakKeyDictionary[Static, tuple[Any, tuple[int, int] | None]] = WeakKeyDictionary()


def extent(content: Any) -> tuple[int, int] | None:
    """The lines and the widest line's cells of text content; None for anything else (a
    renderable, or a string with markup)."""
    if isinstance(content, Text):
        plain = content.plain
    elif isinstance(content, str) and "[" not in content:  # no markup to measure through
        plain = content
    else:
        return None
    lines = plain.split("\n")
    return len(lines), max(cell_len(ln) for ln in lines)


def show(widget: Static, content: Any) -> None:
    """Put `content` on `widget` unless it shows it already: the weighbridge pane redraws up to
    ten times a second.

    Content of as many lines as before, that fits the widget unwrapped as the old one did, takes
    the same room (the same width too, for a widget as wide as its text): the widget is
    repainted without laying out the screen again. A layout renders every widget; the top
    bar's clock alone asked for one a second."""
    shown = _SHOWN.get(widget)
    if shown is not None and shown[0] == content:
        return
    before = shown[1] if shown is not None else None
    after = extent(content)
    _SHOWN[widget] = (content, after)
    room = widget.content_size.width
    width = widget.styles.width
    same = (
        after is not None
        and before is not None
        and after[0] == before[0]
        and max(after[1], before[1]) <= room
        and (after[1] == before[1] or width is None or not width.is_auto)
    )
    widget.update(content, layout=not same)


class WeightDigits(Digits):
    """The live weight in big digits, in a box of fixed width (`#weight` in tally.tcss).

    Digits asks for a layout of the whole screen whenever the number of digits changes, as
    a truck drives on: in a box of fixed width nothing moves, so it is only repainted."""

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        """Repaint (or recompose); never lay out the screen for a new value."""
        return super().refresh(*regions, repaint=repaint, recompose=recompose)


def styled(cell: Cell) -> Text:
    """A cell as rich Text in its tone's colour."""
    return Text(cell.text, style=TONES.get(cell.tone, ""))


def line(cells: Sequence[Cell], sep: str = "  ") -> Text:
    """Cells side by side on one line."""
    out = Text()
    for i, cell in enumerate(cells):
        if i:
            out.append(sep)
        out.append_text(styled(cell))
    return out


class RowTable(DataTable[Text]):
    """A table of view rows that keeps the cursor on the same key across updates."""

    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = list(columns)
        self._shown: tuple[Row, ...] | None = None

    def on_mount(self) -> None:
        """Add the columns once."""
        self.add_columns(*self._columns)

    def show(self, rows: tuple[Row, ...]) -> None:
        """Replace the rows unless they are unchanged; the cursor follows its row's key.

        The same rows in the same order with some cells changed (a wait that grew a minute)
        are changed cell by cell: clearing the table lays out the whole screen again."""
        if rows == self._shown:
            return
        shown = self._shown
        if shown is not None and [(r.key, len(r.cells)) for r in rows] == [
            (r.key, len(r.cells)) for r in shown
        ]:
            for y, (new, old) in enumerate(zip(rows, shown, strict=True)):
                for x, (cell, was) in enumerate(zip(new.cells, old.cells, strict=True)):
                    if cell != was:
                        self.update_cell_at(Coordinate(y, x), styled(cell), update_width=True)
            self._shown = rows
            return
        selected = self.selected_key()
        scroll_y = self.scroll_y
        self.clear()
        for row in rows:
            self.add_row(*(styled(c) for c in row.cells), key=row.key)
        self._shown = rows
        keys = [r.key for r in rows]
        if selected in keys:
            self.move_cursor(row=keys.index(selected), animate=False, scroll=False)
            self.scroll_y = scroll_y

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= len(self._shown):
            return None
        return self._shown[self.cursor_row].key


class FormScreen(ModalScreen[dict[str, str | int] | None]):
    """A small modal form; returns the entered values, or None when cancelled.

    The title is given in words; field and choice labels are i18n keys, looked up here.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", show=False)]

    def __init__(self, title: str, fields: Sequence[Field], words: Words) -> None:
        super().__init__()
        self.title_text = title
        self.fields = list(fields)
        self.w = words

    def compose(self) -> ComposeResult:
        """The title, one labelled input per field, the problem line and the buttons."""
        with Vertical(id="form"):
            yield Label(self.title_text, id="form-title")
            for f in self.fields:
                with Horizontal(classes="form-row"):
                    yield Label(self.w(f.label), classes="form-label")
                    if f.kind == "choice":
                        yield Select(
                            tuple((self.w(label), value) for label, value in f.choices),
                            value=f.default or f.choices[0][1],
                            allow_blank=False,
                            id=f"f-{f.name}",
                        )
                    else:
                        yield Input(
                            value=f.default,
                            id=f"f-{f.name}",
                            type="integer" if f.kind == "int" else "text",
                        )
            yield Static("", id="form-problem")
            with Horizontal(id="form-buttons"):
                yield Button(self.w("form.ok"), variant="primary", id="form-ok")
                yield Button(self.w("form.cancel"), id="form-cancel")

    def values(self) -> dict[str, str | int] | str:
        """The entered values, or the sentence naming the first problem."""
        out: dict[str, str | int] = {}
        for f in self.fields:
            widget = self.query_one(f"#f-{f.name}")
            raw = str(widget.value).strip() if isinstance(widget, Input | Select) else ""
            if not raw:
                if f.required:
                    return self.w("form.required", field=self.w(f.label))
                continue
            if f.kind == "int":
                try:
                    out[f.name] = int(raw)
                except ValueError:
                    return self.w("form.number", field=self.w(f.label))
            else:
                out[f.name] = raw
        return out

    @on(Input.Submitted)
    @on(Button.Pressed, "#form-ok")
    def submit(self) -> None:
        """Return the values, or say what is missing."""
        values = self.values()
        if isinstance(values, str):
            self.query_one("#form-problem", Static).update(Text(values, style="bold red"))
            return
        self.dismiss(values)

    @on(Button.Pressed, "#form-cancel")
    def action_cancel(self) -> None:
        """Close without sending anything."""
        self.dismiss(None)


class PickScreen(ModalScreen[str | None]):
    """Pick one item from a list (e.g. the truck that joins the scale queue)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", show=False)]

    def __init__(self, title: str, items: Sequence[tuple[str, str]], empty: str) -> None:
        super().__init__()
        self.title_text = title
        self.items = list(items)
        self.empty = empty

    def compose(self) -> ComposeResult:
        """The title and the list."""
        with Vertical(id="form"):
            yield Label(self.title_text, id="form-title")
            if self.items:
                yield OptionList(*(Option(label, id=key) for key, label in self.items), id="pick")
            else:
                yield Static(self.empty, id="form-problem")

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        """Return the chosen key."""
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without choosing."""
        self.dismiss(None)
