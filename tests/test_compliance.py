"""Protocol compliance through ``wsreplay record`` and ``wsreplay serve``: every case in
tests/compliance/cases.py, played by a frame-level driver against real servers on 127.0.0.1,
with its expected outcome asserted; the same run produces docs/compliance.md, which must equal
the committed file (``WSREPLAY_UPDATE_DOCS=1`` rewrites it).

A case that differs only where a known bug (``Case.known``) says it does is reported as
XFAIL with the bug's name, and every other column is still asserted; once the bug is fixed
the case fails until its ``known`` entry is removed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from .compliance.cases import CASES
from .compliance.doc import BUGS, render_doc
from .compliance.run import Case, Outcome, run_case
from .conftest import T

DOC = Path(__file__).resolve().parent.parent / "docs" / "compliance.md"
_outcomes: dict[str, Outcome] = {}  # by case id, shared by the case tests and the doc test


async def outcome(case: Case, folder: Path) -> Outcome:
    """``case``'s outcome (run once per session, bounded in time)."""
    if case.id not in _outcomes:
        _outcomes[case.id] = await asyncio.wait_for(run_case(case, folder), 4 * T)
    return _outcomes[case.id]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_case(case: Case, tmp_path):
    out = await outcome(case, tmp_path)
    diffs = out.differences(case)
    known = dict(case.known)
    unexpected = {column: diffs[column] for column in diffs if column not in known}
    assert not unexpected, f"{case.id} {case.title}:\n" + "\n".join(
        f"  {column}: {text}" for column, text in unexpected.items())
    fixed = sorted(set(known) - set(diffs))
    assert not fixed, (f"{case.id}: {fixed} now as expected: if bug(s) "
                       f"{sorted({known[c] for c in fixed})} are fixed, drop them from `known`")
    if known:
        bugs = sorted(set(known.values()))
        pytest.xfail(f"known bug {', '.join(bugs)} in {', '.join(sorted(diffs))}")


def test_every_known_bug_is_described_and_cases_are_well_formed():
    named = {bug for case in CASES for _, bug in case.known}
    assert named <= set(BUGS)
    for case in CASES:
        assert case.client and case.server and case.recorded[0].startswith("conn"), case.id
        assert case.actor in ("client", "server"), case.id


async def test_docs_compliance_md_is_what_the_suite_produced(tmp_path):
    for case in CASES:  # the cases not run yet (a -k selection) run here
        await outcome(case, tmp_path)
    text = render_doc(CASES, _outcomes)
    if os.environ.get("WSREPLAY_UPDATE_DOCS"):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file(), "docs/compliance.md is missing: run with WSREPLAY_UPDATE_DOCS=1"
    assert DOC.read_text(encoding="utf-8") == text, (
        "docs/compliance.md differs from what the suite produced: behaviour changed; "
        "regenerate with WSREPLAY_UPDATE_DOCS=1 and review the diff")
