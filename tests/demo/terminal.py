"""A terminal for tests: what a screen of ``columns`` x ``lines`` shows after the text written to it.

pyte emulates the terminal, so escape sequences take effect as they would on a real one (a "clear
screen" clears it, a cursor move moves): assertions read the visible rows, not the bytes. A line
feed also returns the carriage, as a tty's output processing does (ONLCR). Write to it through a
rich ``console()`` and, for prompt_toolkit, through ``output()``.
"""

from __future__ import annotations

import pyte
from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output
from rich.console import Console


class Terminal:
    encoding = "utf-8"

    def __init__(self, columns: int = 100, lines: int = 60) -> None:
        self.columns, self.lines = columns, lines
        self.screen = pyte.Screen(columns, lines)
        self.screen.set_mode(pyte.modes.LNM)
        self._stream = pyte.Stream(self.screen)

    # the file interface rich and prompt_toolkit write to
    def write(self, data: str) -> int:
        self._stream.feed(data)
        return len(data)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True

    def console(self) -> Console:
        """A rich console in full colour writing here (the escape codes reach the emulator)."""
        return Console(file=self, force_terminal=True, color_system="truecolor", width=self.columns, height=self.lines)

    def output(self) -> Vt100_Output:
        return Vt100_Output(self, lambda: Size(rows=self.lines, columns=self.columns), enable_cpr=False)

    @property
    def rows(self) -> list[str]:
        """The visible rows, without trailing spaces, up to the last row that shows something."""
        rows = [row.rstrip() for row in self.screen.display]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    @property
    def text(self) -> str:
        return "\n".join(self.rows)

    def cells(self) -> list[list[str]]:
        """Each row split at table borders (│ ┃), cells stripped: a row of side-by-side tables is one list."""
        rows = (row.replace("┃", "│") for row in self.rows)
        return [[cell.strip() for cell in row.split("│")[1:-1]] for row in rows if "│" in row]

    def has_cells(self, *expected: str) -> bool:
        """Some row has ``expected`` as consecutive cells."""
        n = len(expected)
        return any(row[i : i + n] == list(expected) for row in self.cells() for i in range(len(row) - n + 1))
