"""The proxy's aiohttp path (wsreplay/pumps.py), used only when the fast path cannot take the
sockets over: the transparency tests of test_record_proxy.py run again on it (``fast=False``),
so the fallback stays as good as it was."""

from __future__ import annotations

import pytest

from .record_helpers import recording_proxies
from .test_record_proxy import (  # noqa: F401  (collected again here, on this module's fixture)
    test_a_burst_keeps_its_order_on_the_wire_and_in_the_file,
    test_a_client_that_stops_reading_holds_the_server_back,
    test_a_dropped_client_gets_the_upstream_leg_closed_promptly,
    test_a_dropped_upstream_gives_the_client_1011_promptly,
    test_client_close_code_and_reason_reach_the_server_and_back,
    test_empty_close_frames_are_forwarded_without_a_code,
    test_every_payload_kind_is_byte_exact_both_ways_and_in_the_file,
    test_invalid_utf8_from_the_client_closes_it_1007_and_upstream_1011,
    test_ping_and_pong_payloads_are_forwarded_both_ways,
    test_server_close_code_and_reason_reach_the_client_and_back,
    test_stopping_the_proxy_closes_both_legs_with_1001,
)


@pytest.fixture
async def record(tmp_path):
    """As tests/record_helpers.py's, with the fast path off."""
    async with recording_proxies(tmp_path, fast=False) as start:
        yield start


async def test_this_module_really_runs_the_aiohttp_path(record):
    proxy = await record("ws://127.0.0.1:9")
    assert proxy._fast is False
