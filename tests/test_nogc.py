"""The collector paused for an analysis, and what the analysis kept moved out of the young
generation when it ends."""

from __future__ import annotations

import gc

from opscope.nogc import paused_gc


def test_the_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block found it off: it stays off
    assert gc.isenabled()


def test_what_the_block_kept_is_not_left_young() -> None:
    """Left young, the first collection after the block would walk all of it (a tenth of
    a second after a million task tries): it goes to the oldest generation at once."""
    gc.collect()  # every generation's count at zero: the exit below collects gen 0 at most
    with paused_gc():
        kept = [[i] for i in range(5000)]
    gc.disable()
    try:
        oldest = {id(o) for o in gc.get_objects(generation=2)}
    finally:
        gc.enable()
    assert all(id(o) in oldest for o in kept)
