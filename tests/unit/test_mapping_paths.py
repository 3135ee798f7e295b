"""Dotted path lookup used by external_id_field, value_field_identifier and source id fields."""

from __future__ import annotations

from worker.mapping.paths import first_present, lookup, split_path


def test_dotted_path_reads_nested_objects() -> None:
    assert lookup({"context": {"traits": {"email": "a@b.c"}}}, "context.traits.email") == "a@b.c"


def test_missing_step_gives_none() -> None:
    assert lookup({"context": {}}, "context.traits.email") is None
    assert lookup({"context": "web"}, "context.traits") is None


def test_digit_segment_indexes_a_list() -> None:
    message = {"properties": {"products": [{"id": "p0"}, {"id": "p1"}]}}
    assert lookup(message, "properties.products.1.id") == "p1"
    assert lookup(message, "properties.products.5.id") is None


def test_a_segment_of_non_ascii_digits_does_not_index_a_list() -> None:
    # "²".isdigit() is True but int("²") raises: such a segment is a missing step.
    assert lookup({"products": [{"id": "p0"}]}, "products.\u00b2.id") is None
    assert lookup({"products": [{"id": "p0"}]}, "products.\u0660.id") is None


def test_split_path_ignores_empty_segments() -> None:
    assert split_path(" properties..externalId ") == ("properties", "externalId")


def test_first_present_skips_none_and_blank_strings() -> None:
    assert first_present({"a": None, "b": "  ", "c": 0}, ("a", "b", "c")) == 0
    assert first_present({}, ("a",)) is None
