"""The protocol compliance suite: a frame-level WebSocket driver (:mod:`.frames`,
:mod:`.peers`), Autobahn-style cases (:mod:`.cases`) and the runner that plays them through
``wsreplay record`` and ``wsreplay serve`` (:mod:`.run`). tests/test_compliance.py runs them
and writes docs/compliance.md."""
