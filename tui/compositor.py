"""A Textual compositor that renders, for a partial update, only the widgets under it."""

from __future__ import annotations

from collections.abc import Iterator

from textual._compositor import Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip


class PartialCompositor(Compositor):
    """Textual's compositor, but a partial update renders only the widgets it touches.

    Textual 8 picks the widgets to render for a partial update by their clip, which is the
    region of their container: a new value of the big weight digits rendered every widget of
    the weighbridge pane, the tables included, four to ten times a second. This one also
    skips a widget whose visible part lies outside the update. Such a widget adds nothing to
    the cells the update writes, so the screen is the same (tests/tui/test_redraw.py compares
    the two). Everything else is Textual's.
    """

    def _get_renders(
        self, crop: Region | None = None
    ) -> Iterator[tuple[Region, Region, list[Strip]]]:
        if crop is None:
            yield from super()._get_renders(crop)
            return
        overlaps = crop.overlaps
        for widget, (region, clip) in self.visible_widgets.items():
            shown = region.intersection(clip)
            if not (shown.width and shown.height and overlaps(shown)):
                continue
            part = Region(shown.x - region.x, shown.y - region.y, shown.width, shown.height)
            yield region, clip, widget.render_lines(part)


def partial_screen(screen: Screen[object]) -> Screen[object]:
    """`screen` with a PartialCompositor (before it is mounted); returned for chaining."""
    screen._compositor = PartialCompositor()
    return screen
