"""IdMap: raw ids (ints or strings) <-> dense indices, round trips and lookups."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.data.idmap import IdMap, UserItemMaps
from deepmf.errors import DataError, UnknownIdError

int_ids = st.lists(st.integers(min_value=-(2**40), max_value=2**40), min_size=1, max_size=60)
str_ids = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(values=st.one_of(int_ids, str_ids))
def test_build_round_trips_raw_ids(values: list) -> None:
    id_map, codes = IdMap.build(values, name="user")
    assert codes.dtype == np.int32
    assert len(id_map) == len(set(values))
    back = id_map.raw(codes)
    assert [v for v in back] == values
    np.testing.assert_array_equal(id_map.indices(values), codes)
    rebuilt = IdMap.from_list(id_map.to_list(), id_map.kind, "user")
    np.testing.assert_array_equal(rebuilt.indices(values), codes)
    assert all(v in id_map for v in values)


@settings(max_examples=40, deadline=None)
@given(values=int_ids)
def test_order_is_sorted_and_independent_of_input_order(values: list) -> None:
    id_map, _ = IdMap.build(values)
    other, _ = IdMap.build(list(reversed(values)))
    assert id_map.to_list() == sorted(set(values)) == other.to_list()


def test_lookups_and_unknown_ids() -> None:
    id_map, codes = IdMap.build([30, 10, 20, 10], name="item")
    assert codes.tolist() == [2, 0, 1, 0]
    assert id_map.index(20) == 1
    assert id_map.index("20") == 1  # typed on a command line
    assert id_map.raw(2) == 30
    with pytest.raises(UnknownIdError, match="unknown item id 99"):
        id_map.index(99)
    with pytest.raises(UnknownIdError, match="unknown item id 99"):  # names the first unknown id
        id_map.indices([20, 10, 99, 98])
    assert id_map.indices([10, 99, 30], missing="none").tolist() == [0, -1, 2]
    assert id_map.indices(["10", " 30"]).tolist() == [0, 2]  # ids read as text (a CSV column, a command line)
    assert id_map.indices(np.array([30.0, 10.0])).tolist() == [2, 0]
    assert "abc" not in id_map
    # A bool is not an id, even where True == 1 (a typed flag must not select user 1).
    ones, _ = IdMap.build([1, 2])
    assert True not in ones
    with pytest.raises(UnknownIdError):
        ones.index(True)


def test_user_item_maps_sizes_come_from_the_maps() -> None:
    class Holder(UserItemMaps):
        def __init__(self) -> None:
            self.user_ids, _ = IdMap.build([5, 6], name="user")
            self.item_ids, _ = IdMap.build(["a", "b", "c"], name="item")

    assert (Holder().n_users, Holder().n_items) == (2, 3)


def test_string_ids_and_duplicates_refused() -> None:
    id_map, codes = IdMap.build(["b", "a", "c", "a"])
    assert id_map.kind == "str" and codes.tolist() == [1, 0, 2, 0]
    assert id_map.raw(0) == "a"
    with pytest.raises(DataError, match="duplicate"):
        IdMap.from_list([1, 1], "int")
    with pytest.raises(DataError, match="unknown id kind"):
        IdMap.from_list([1], "float")  # type: ignore[arg-type]


def test_ids_no_int64_can_hold_are_missing_not_a_crash() -> None:
    """JSON clients send any integer: beyond int64, or with a fraction, it is simply no id of the map."""
    ids = IdMap.from_list([1, 2, 3], "int", name="user")
    codes = ids.indices([2**63, 3, 2**70, 2.5, 2.0, -(2**64), "x"], missing="none")
    assert codes.tolist() == [-1, 2, -1, -1, 1, -1, -1]
    assert ids.indices([0, 2**63, 1], missing="none").tolist() == [-1, -1, 0]
