"""The progress watch (processor/ops/stall.py): a partition behind its end that stops moving is
reported once after ``ready_after`` and ends the worker after ``exit_after``."""

from __future__ import annotations

import pytest

from processor.ops.stall import ProgressWatch, Watched


def test_when_a_partition_is_behind_and_does_not_move_then_it_stalls_after_ready_after() -> None:
    watch = ProgressWatch(ready_after=30, exit_after=120)
    assert watch.observe(0, {"raw[0]": Watched(10, 500)}) == []
    assert watch.observe(29, {"raw[0]": Watched(10, 600)}) == []
    (stall,) = watch.observe(30, {"raw[0]": Watched(10, 700)})
    assert (stall.name, stall.behind, stall.seconds) == ("raw[0]", 690, 30)
    assert not watch.should_exit
    assert [s.name for s in watch.newly_stalled()] == ["raw[0]"]
    watch.observe(60, {"raw[0]": Watched(10, 700)})
    assert watch.newly_stalled() == []  # reported once
    watch.observe(120, {"raw[0]": Watched(10, 700)})
    assert watch.should_exit


def test_when_a_partition_moves_then_its_clock_starts_again() -> None:
    watch = ProgressWatch(ready_after=30, exit_after=0)
    watch.observe(0, {"raw[0]": Watched(10, 500)})
    watch.observe(29, {"raw[0]": Watched(11, 500)})  # slow, but moving
    assert watch.observe(58, {"raw[0]": Watched(11, 500)}) == []
    assert len(watch.observe(59, {"raw[0]": Watched(11, 500)})) == 1
    assert not watch.should_exit  # 0 = never exit


def test_when_a_partition_is_caught_up_then_it_never_stalls() -> None:
    watch = ProgressWatch(ready_after=1, exit_after=2)
    for now in range(10):
        # a transactional producer's commit marker: one offset that is never handed on
        assert watch.observe(now, {"raw[0]": Watched(99, 100, tolerance=1)}) == []
        assert watch.observe(now, {"raw[0]": Watched(100, 100)}) == []
    assert not watch.should_exit


def test_when_a_stalled_partition_is_revoked_then_it_is_forgotten() -> None:
    watch = ProgressWatch(ready_after=5, exit_after=10)
    watch.observe(0, {"raw[0]": Watched(0, 9), "raw[1]": Watched(0, 9)})
    assert len(watch.observe(5, {"raw[0]": Watched(0, 9), "raw[1]": Watched(0, 9)})) == 2
    assert watch.observe(6, {"raw[1]": Watched(9, 9)}) == []
    assert watch.newly_stalled() == []
    # assigned again later: a new clock
    assert watch.observe(7, {"raw[0]": Watched(0, 9)}) == []


def test_when_a_recovery_stops_short_of_its_highwater_then_it_stalls() -> None:
    watch = ProgressWatch(ready_after=3, exit_after=3)
    # faust's recovery offsets: the last offset read against the high-water mark minus one
    name = "recovery app-ad-stats-changelog[1]"
    watch.observe(0, {name: Watched(0, 19_309)})
    assert watch.observe(3, {name: Watched(0, 19_309)})[0].behind == 19_309
    assert watch.should_exit


@pytest.mark.parametrize(("ready", "exit_"), [(0, 10), (-1, 0), (30, 10)])
def test_when_the_timeouts_make_no_sense_then_the_watch_refuses_them(
    ready: float, exit_: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        ProgressWatch(ready, exit_)
