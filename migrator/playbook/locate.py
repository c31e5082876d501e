"""Line numbers of TOML tables and keys: tomllib gives values without positions, so a plan's errors find their
line in the text with this small line scanner (headers, `key =` lines, and `[[step]]` occurrences)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")
_MULTILINE = ('"""', "'''")


@dataclass
class Section:
    name: str  # "" for the top level
    line: int  # of the header (0 for the top level)
    keys: dict[str, int] = field(default_factory=dict)


class Locator:
    """Where each table, array-of-tables entry and key of one TOML text starts (1-based lines)."""

    def __init__(self, text: str) -> None:
        self.sections: list[Section] = [Section("", 0)]
        self._scan(text)

    def _scan(self, text: str) -> None:
        in_string: str | None = None  # inside a multi-line string, key-like lines are text, not keys
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            header = _HEADER.match(line)
            if header:
                self.sections.append(Section(header.group(2).strip(), number))
                continue
            key = _KEY.match(line)
            if key:
                self.sections[-1].keys.setdefault(key.group(1).strip("\"'"), number)
                rest = line[key.end():]
                opener = next((m for m in _MULTILINE if rest.count(m) % 2 == 1), None)
                in_string = opener

    def table(self, name: str, occurrence: int = 0) -> Section | None:
        """The `occurrence`-th (0-based) section called `name` ([name] or [[name]])."""
        found = [s for s in self.sections if s.name == name]
        return found[occurrence] if occurrence < len(found) else None

    def line_of(self, name: str, key: str | None = None, occurrence: int = 0) -> int:
        """The line of `key` in that section, else the section's header, else 1."""
        section = self.table(name, occurrence)
        if section is None:
            return 1
        if key is not None and key in section.keys:
            return section.keys[key]
        return max(section.line, 1)
