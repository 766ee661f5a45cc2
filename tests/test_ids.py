"""Identifiers sort in the order they were made, within a millisecond too."""

from __future__ import annotations

import threading

from riskctl.ids import new_id


def test_ids_made_one_after_another_sort_in_that_order() -> None:
    ids = [new_id("act") for _ in range(2000)]  # many in each millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == len("act_") + 26 for i in ids)


def test_ids_made_by_threads_at_once_are_unique_and_each_threads_are_ordered() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(k: int) -> None:
        made[k].extend(new_id("dec") for _ in range(1000))

    threads = [threading.Thread(target=make, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in made for i in ids]
    assert len(set(every)) == len(every)
    assert all(ids == sorted(ids) for ids in made)
