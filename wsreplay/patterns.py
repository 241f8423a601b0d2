"""Regular expressions from scenario files, on RE2: matching time linear in the text.

Every pattern a file brings -- ``regex`` lines, ``#regex`` markers, text templates (compiled to
one pattern) -- runs here, so no scenario can block the event loop with catastrophic
backtracking (``(a+)+b``): RE2 has no backtracking, hence no lookaround and no
backreferences. google-re2 is used through its public API only (``compile``, ``Options``,
``error``, a match's ``group``/``groupdict``); this module is the one place that knows it.

:func:`compiled` is the package's one compiled-pattern cache; it raises
:class:`PatternError` (a ``ValueError``) for a pattern RE2 refuses, saying why in RE2's words
and that patterns are RE2 syntax.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

RE2_SYNTAX = "patterns are RE2 syntax: no lookaround, no backreferences"


class PatternError(ValueError):
    """RE2 cannot compile the pattern; ``message`` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is our error to report, not RE2's to log
    options.dot_nl = True  # `.` matches newlines, as with re.DOTALL
    return options


_OPTIONS = _options()


class Pattern:
    """A compiled pattern; :meth:`fullmatch` is all a matcher needs."""

    __slots__ = ("pattern", "_regexp")

    def __init__(self, pattern: str, regexp: Any):
        self.pattern = pattern
        self._regexp = regexp

    @property
    def groupindex(self) -> dict[str, int]:
        """Named group -> group number, as ``re.Pattern.groupindex``."""
        return dict(self._regexp.groupindex)

    def starts(self, text: str):
        """Where each non-overlapping match of the pattern starts in ``text`` (character
        offsets), left to right; nothing for a text that is not valid Unicode."""
        try:
            return [hit.start() for hit in self._regexp.finditer(text)]
        except UnicodeEncodeError:
            return []

    def fullmatch(self, text: str):
        """The match (``group``, ``groupdict`` as with ``re``) when the whole ``text``
        matches, else None. A text that is not valid Unicode (a lone surrogate from a JSON
        escape) matches nothing: RE2 reads UTF-8."""
        try:
            return self._regexp.fullmatch(text)
        except UnicodeEncodeError:
            return None


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Pattern:
    """``pattern`` compiled (cached; ``.`` matches newlines). Raises :class:`PatternError`."""
    try:
        return Pattern(pattern, re2.compile(pattern, _OPTIONS))
    except re2.error as exc:
        raise PatternError(f"{_reason(exc)} ({RE2_SYNTAX})") from None
    except UnicodeEncodeError:
        raise PatternError("the pattern is not valid Unicode") from None


def _reason(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else exc
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
