from types import SimpleNamespace

from tests.support.dead_letters import dead_letter_headers
from worker.stream.dead_letter import DeadLetterReason, source_timestamp_ms


def _source() -> SimpleNamespace:
    return SimpleNamespace(
        headers=lambda: [("trace", b"abc")],
        topic=lambda: "events.raw",
        partition=lambda: 2,
        offset=lambda: 41,
        timestamp=lambda: (1, 1_700_000_000_123),
    )


def test_dead_letter_headers_keep_the_originals_first_and_add_the_reason() -> None:
    why = DeadLetterReason(
        stage="deliver",
        reason="invalid_token",
        message="renew the token",
        destination="shop",
        pixel_id="123",
        graph_code=190,
        fbtrace_id="AbC",
        attempts=1,
    )
    headers = dead_letter_headers(_source(), why, now=1_700_000_001.5)
    assert headers[0] == ("trace", b"abc")
    named = dict(headers[1:])
    assert named["capi.dlq.stage"] == b"deliver"
    assert named["capi.dlq.reason"] == b"invalid_token"
    assert named["capi.dlq.pixel_id"] == b"123"
    assert named["capi.dlq.graph_code"] == b"190"
    assert named["capi.dlq.source_topic"] == b"events.raw"
    assert named["capi.dlq.source_partition"] == b"2"
    assert named["capi.dlq.source_offset"] == b"41"
    assert named["capi.dlq.attempts"] == b"1"
    assert named["capi.dlq.time"] == b"1700000001.500"
    assert "capi.dlq.graph_subcode" not in named  # absent values are left out, not "None"


def test_source_timestamp_is_kept_when_the_record_has_one() -> None:
    assert source_timestamp_ms(_source()) == 1_700_000_000_123
    assert source_timestamp_ms(SimpleNamespace(timestamp=lambda: (0, -1))) is None
