"""The helpers both directions of a transfer share: how ids are cut into steps (every id once, in order, the edges
small), and the cycle collector run less often while moving, its thresholds put back after."""
from __future__ import annotations

import gc

import pytest

from migrator.transfer.values import chunks, fewer_collections


@pytest.mark.parametrize("n", [0, 1, 999, 2000, 6999, 7000, 7001, 20000, 21500, 100003])
def test_every_id_is_in_one_step_in_order_and_no_step_is_empty_or_over_the_size(n):
    ids = [f"id-{i}" for i in range(n)]
    steps = [list(step) for step in chunks(ids, 5000, edge=1000)]
    assert [i for step in steps for i in step] == ids
    assert all(0 < len(step) <= 5000 for step in steps)


def test_the_first_and_the_last_steps_are_the_edges_and_the_middle_is_cut_evenly():
    sizes = [len(step) for step in chunks(list(range(20000)), 5000, edge=1000)]
    assert sizes == [1000, 4500, 4500, 4500, 4500, 1000]
    sizes = [len(step) for step in chunks(list(range(7001)), 5000, edge=1000)]
    assert sizes == [1000, 2500, 2501, 1000]  # not a step of one id left over


def test_without_an_edge_or_with_too_few_ids_the_steps_are_plain():
    assert [len(s) for s in chunks(list(range(12000)), 5000)] == [5000, 5000, 2000]
    assert [len(s) for s in chunks(list(range(6999)), 5000, edge=1000)] == [5000, 1999]


def test_fewer_collections_raises_the_young_threshold_and_puts_every_threshold_back_even_after_an_error():
    before = gc.get_threshold()
    with fewer_collections(young=123_456):
        assert gc.get_threshold() == (123_456, *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), fewer_collections(young=200_000):
        raise RuntimeError("a transfer that failed")
    assert gc.get_threshold() == before
