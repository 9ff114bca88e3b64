"""A job's finished steps, as the demo shows them from the job's output."""

from __future__ import annotations

from lakehouse.platform.jobs import step_line, step_lines


def test_a_jobs_step_lines_are_read_back_from_its_output_and_nothing_else() -> None:
    output = "\n".join(
        [
            "07:01:02 INFO lakehouse.ingest: ingest drained (step: not this one)",
            step_line("ingest the history (bronze → silver)", 41.6),
            "features: 100,000 transactions (silver version 1)",
            step_line("build the features", 1234.4),
        ]
    )

    assert step_lines(output) == ["ingest the history (bronze → silver): 42 s", "build the features: 1,234 s"]
