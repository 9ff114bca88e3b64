"""The poison-pill guard's search and its failure counts, without Spark."""

from __future__ import annotations

import pytest

from lakehouse.ingest.poison import FAILURES_FILE, FailureCounts, bisect_failures, error_reason, records_to_blame


@pytest.mark.parametrize("poison", [set(), {0}, {39}, {3, 17}, {10, 11, 12}])
def test_bisection_finds_exactly_the_records_that_fail_alone(poison) -> None:
    calls = []

    def failure(lo: int, hi: int) -> str | None:
        calls.append((lo, hi))
        bad = sorted(poison & set(range(lo, hi)))
        return f"boom {bad[0]}" if bad else None

    found = bisect_failures(40, failure)

    assert found == [(i, f"boom {i}") for i in sorted(poison)]
    assert len(calls) <= 1 + 2 * max(1, len(poison)) * 6  # about 2 k log2 n dry runs, not n


def test_a_record_is_blamed_only_when_it_fails_again_and_others_pass() -> None:
    alone = []

    def passing_fault(lo: int, hi: int) -> str | None:  # row 3 fails alone once only
        if (lo, hi) == (3, 4):
            alone.append(lo)
            return "boom" if len(alone) == 1 else None
        return "boom" if lo <= 3 < hi else None

    assert records_to_blame(8, lambda lo, hi: "boom" if lo <= 5 < hi else None) == [(5, "boom")]
    assert records_to_blame(8, passing_fault) == [] and len(alone) == 2
    assert records_to_blame(8, lambda lo, hi: "broken model" if hi > lo else None) == []  # every row: not theirs
    assert records_to_blame(1, lambda lo, hi: "boom" if hi > lo else None) == [(0, "boom")]


def test_failures_are_counted_per_batch_beside_the_checkpoint_and_survive_a_restart(tmp_path) -> None:
    counts = FailureCounts(str(tmp_path))
    assert [counts.add(7), counts.add(7), counts.add(8)] == [1, 2, 1]
    assert FailureCounts(f"file:{tmp_path}").add(7) == 3  # another process, the same checkpoint
    counts.clear(7)
    assert FailureCounts(str(tmp_path)).add(7) == 1
    assert (tmp_path / FAILURES_FILE).is_file()


def test_the_reason_names_the_error_and_stays_short() -> None:
    reason = error_reason(ValueError("bad thing\nat line 2" + "x" * 500))
    assert reason.startswith("poison_record:ValueError: bad thing") and len(reason) <= 160
