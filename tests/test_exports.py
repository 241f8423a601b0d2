"""``wsreplay.__all__`` is honest: everything listed exists, everything public is listed."""

from __future__ import annotations

import types

import wsreplay


def test_all_names_exist_and_are_sorted():
    for name in wsreplay.__all__:
        assert hasattr(wsreplay, name), name
    assert wsreplay.__all__ == sorted(wsreplay.__all__, key=lambda n: (n[0].islower(), n))


def test_every_public_member_is_exported():
    public = {name for name, value in vars(wsreplay).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(wsreplay.__all__)
