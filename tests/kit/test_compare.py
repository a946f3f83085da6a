"""compare.differences: the paths where a primary and a shadow answer disagree."""

import math

import pytest

from shims.compare import MAX_DIFFERENCES, differences


def test_equal_values_have_no_differences():
    value = {"result": {"id": 1, "runs": [{"d": 5000.0, "tags": ["a", "b"]}], "name": None}}
    assert differences(value, {"result": {"id": 1, "runs": [{"d": 5000.0, "tags": ["a", "b"]}],
                                          "name": None}}) == []


def test_nested_dict_difference_names_the_path():
    primary = {"result": {"user": {"profile": {"city": "Paris", "age": 30}}}}
    shadow = {"result": {"user": {"profile": {"city": "Lyon", "age": 30}}}}
    assert differences(primary, shadow) == ["$.result.user.profile.city"]


def test_missing_and_extra_keys_are_differences():
    assert differences({"a": 1, "b": 2}, {"a": 1, "c": 2}) == ["$.b", "$.c"]


def test_nested_list_difference_names_the_index():
    primary = {"runs": [{"id": 1, "laps": [1, 2, 3]}, {"id": 2, "laps": [4]}]}
    shadow = {"runs": [{"id": 1, "laps": [1, 9, 3]}, {"id": 2, "laps": [4]}]}
    assert differences(primary, shadow) == ["$.runs[0].laps[1]"]


def test_length_difference_is_reported_with_the_common_prefix_compared():
    assert differences([1, 2, 3], [1, 2]) == ["$.length"]
    assert differences([1, 2, 3], [1, 5]) == ["$.length", "$[1]"]
    assert differences({"xs": []}, {"xs": [1]}) == ["$.xs.length"]


def test_float_tolerance_absorbs_rounding_noise_only():
    assert differences(0.1 + 0.2, 0.3) == []
    assert differences(5000.0, 5000.000000001) == []
    assert differences(1, 1.0) == []  # JSON may carry 1.0 as 1
    assert differences(5000.0, 5000.01) == ["$"]
    assert differences(0.0, 1e-6) == ["$"]


def test_integers_compare_exactly_even_when_large():
    # ids are integers: a relative tolerance must not make neighbouring ids "equal"
    assert differences({"strava_id": 12_345_678_901}, {"strava_id": 12_345_678_902}) == [
        "$.strava_id"]
    assert differences(10**18, 10**18 + 1) == ["$"]


def test_non_finite_floats_never_equal_a_finite_number():
    assert differences(float("nan"), 1.0) == ["$"]
    assert differences(1.0, float("inf")) == ["$"]
    assert differences(float("inf"), float("-inf")) == ["$"]
    assert differences(float("inf"), float("inf")) == []
    assert differences(math.nan, math.nan) == []  # both sides said the same thing


@pytest.mark.parametrize(("a", "b"), [(True, 1), (False, 0), (1, True), (0.0, False)])
def test_bool_is_not_a_number(a, b):
    assert differences(a, b) == ["$"]


@pytest.mark.parametrize(("a", "b"), [
    ("1", 1), (None, 0), (None, ""), ({}, []), ([1], {"0": 1}), ("a", "b"),
])
def test_different_types_or_values_differ(a, b):
    assert differences({"v": a}, {"v": b}) == ["$.v"]


def test_ignored_fields_are_skipped_at_any_depth():
    primary = {"result": {"created_at": "2026-01-01", "runs": [
        {"id": 1, "created_at": "x", "meta": {"created_at": 1}}]}}
    shadow = {"result": {"created_at": "2026-02-02", "runs": [
        {"id": 1, "created_at": "y", "meta": {}}]}}
    assert differences(primary, shadow, frozenset({"created_at"})) == []
    assert differences(primary, shadow) == [
        "$.result.created_at", "$.result.runs[0].created_at", "$.result.runs[0].meta.created_at"]


def test_ignoring_one_field_still_reports_the_others():
    primary = {"created_at": 1, "name": "a"}
    shadow = {"created_at": 2, "name": "b"}
    assert differences(primary, shadow, frozenset({"created_at"})) == ["$.name"]


def test_outcomes_with_errors_compare_by_code():
    assert differences({"error": "not_found"}, {"error": "not_found"}) == []
    assert differences({"error": "not_found"}, {"result": {"id": 1}}) == ["$.error", "$.result"]
    assert differences({"error": "not_found"}, {"error": "forbidden"}) == ["$.error"]


def test_number_of_reported_differences_is_bounded():
    found = differences(list(range(100)), [n + 1 for n in range(100)])
    assert len(found) == MAX_DIFFERENCES
    assert found[0] == "$[0]"


def test_custom_root_path():
    assert differences({"a": 1}, {"a": 2}, path="answer") == ["answer.a"]
