from pathlib import Path

import pytest

from worker.config import ConfigError, load_settings, parse_settings

ISSUE_EXAMPLE = """
kafka:
  bootstrap_servers: 127.0.0.1:9092
  group_id: capi-worker
  topics: [events.raw]
  dead_letter_topic: events.dlq
graph:
  url: http://127.0.0.1:8089        # default https://graph.facebook.com
  api_version: v25.0
batching:
  max_events: 1000
  linger_ms: 200
destinations:
  - name: shop
    pixel_id: "1234567890"
    access_token: ${SHOP_CAPI_TOKEN}
"""


def _minimal(**destination: object) -> dict[str, object]:
    return {
        "kafka": {"bootstrap_servers": "b:9092", "topics": ["t"], "dead_letter_topic": "d"},
        "destinations": [{"name": "shop", "pixel_id": "123", "access_token": "tok", **destination}],
    }


def test_the_documented_example_is_accepted_with_its_token_from_the_environment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text(ISSUE_EXAMPLE)
    settings = load_settings(path, env={"SHOP_CAPI_TOKEN": "EAAB-secret"})
    assert settings.graph.url == "http://127.0.0.1:8089"
    assert settings.destinations[0].access_token.get_secret_value() == "EAAB-secret"
    assert "EAAB-secret" not in repr(settings)


def test_unset_environment_variable_names_the_key_and_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text(ISSUE_EXAMPLE)
    with pytest.raises(ConfigError, match=r"destinations\.0\.access_token: .*SHOP_CAPI_TOKEN"):
        load_settings(path, env={})


def test_env_default_is_used_when_the_variable_is_unset() -> None:
    raw = _minimal(access_token="${TOKEN:-fallback}")
    settings = parse_settings(raw, env={})
    assert settings.destinations[0].access_token.get_secret_value() == "fallback"


def test_unknown_key_is_named() -> None:
    raw = _minimal()
    raw["batching"] = {"max_event": 10}
    with pytest.raises(ConfigError, match=r"batching\.max_event: unknown key"):
        parse_settings(raw, env={})


def test_missing_pixel_id_is_named() -> None:
    raw = _minimal()
    del raw["destinations"][0]["pixel_id"]  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"destinations\.0\.pixel_id: Field required"):
        parse_settings(raw, env={})


def test_a_token_or_app_secret_from_a_variable_loses_its_surrounding_line_breaks() -> None:
    # `kubectl create secret --from-file` keeps the file's final newline in the variable.
    settings = parse_settings(_minimal(access_token=" EAAB-secret\n", app_secret="app\r\n"))
    [shop] = settings.destinations
    assert shop.access_token.get_secret_value() == "EAAB-secret"
    assert shop.app_secret is not None and shop.app_secret.get_secret_value() == "app"


@pytest.mark.parametrize("key", ["access_token", "app_secret"])
@pytest.mark.parametrize("value", ["EAAB-secret\nsecond-line", "EAAB secret", "EAAB\x00secret"])
def test_a_token_or_app_secret_with_a_space_or_line_break_inside_is_refused_unquoted(
    key: str, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_minimal(**{key: value}))
    text = str(caught.value)
    assert f"destinations.0.{key}: Value error, holds a space or a line break inside" in text
    assert "EAAB" not in text


def test_missing_token_is_named() -> None:
    raw = _minimal()
    del raw["destinations"][0]["access_token"]  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"destinations\.0\.access_token: Field required"):
        parse_settings(raw, env={})


def test_bad_type_is_named() -> None:
    raw = _minimal()
    raw["batching"] = {"linger_ms": "soon"}
    with pytest.raises(ConfigError, match=r"batching\.linger_ms: .*integer"):
        parse_settings(raw, env={})


def test_more_than_1000_events_per_batch_is_refused() -> None:
    raw = _minimal()
    raw["batching"] = {"max_events": 1001}
    with pytest.raises(ConfigError, match=r"batching\.max_events"):
        parse_settings(raw, env={})


def test_non_numeric_pixel_id_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"destinations\.0\.pixel_id: .*numeric"):
        parse_settings(_minimal(pixel_id="my-pixel"), env={})


def test_unknown_match_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"destinations\.0\.match\.event_type: unknown key"):
        parse_settings(_minimal(match={"event_type": ["track"]}), env={})


def test_duplicate_destination_names_are_refused() -> None:
    raw = _minimal()
    raw["destinations"] = [raw["destinations"][0], raw["destinations"][0]]  # type: ignore[index]
    with pytest.raises(ConfigError, match="unique"):
        parse_settings(raw, env={})


def test_librdkafka_settings_pass_through_for_consumer_and_producer() -> None:
    from worker.kafka_config import consumer_config, producer_config

    raw = _minimal()
    raw["kafka"] = {
        **raw["kafka"],  # type: ignore[dict-item]
        "client": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"},
        "consumer": {"fetch.min.bytes": 1024},
        "producer": {"compression.type": "zstd"},
    }
    settings = parse_settings(raw, env={})
    consumer, producer = consumer_config(settings), producer_config(settings)
    assert consumer["security.protocol"] == producer["security.protocol"] == "SASL_SSL"
    assert consumer["fetch.min.bytes"] == 1024 and "fetch.min.bytes" not in producer
    assert producer["compression.type"] == "zstd" and "compression.type" not in consumer
    assert consumer["enable.auto.commit"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(path, env={})


def test_settings_the_worker_owns_cannot_be_overridden_through_passthrough() -> None:
    raw = _minimal()
    raw["kafka"] = {**raw["kafka"], "consumer": {"enable.auto.commit": True}}  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match=r"kafka\.consumer: .*enable\.auto\.commit"):
        parse_settings(raw, env={})
