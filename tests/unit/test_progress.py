"""Progress of long work: the counted part, and the steps after it that count no events."""

from __future__ import annotations

import io

from replay.progress import ProgressReporter


def test_plain_lines_name_each_step_after_the_events_even_once_closed() -> None:
    out = io.StringIO()
    reporter = ProgressReporter(10, bar=False, label="rebuild", every=0.0, stream=out)
    reporter.advance(4)
    reporter.stage("summing the marks")
    reporter.advance(6)
    reporter.close()
    reporter.stage("creating the indexes")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("rebuild: 4/10 events, ")
    assert lines[1] == "rebuild: summing the marks"
    assert lines[2].startswith("rebuild: 10/10 events, ")
    assert lines[3] == "rebuild: creating the indexes"


def test_short_work_names_no_step() -> None:
    out = io.StringIO()
    reporter = ProgressReporter(10, bar=False, stream=out, every=60.0)
    reporter.advance(10)
    reporter.stage("creating the indexes")
    reporter.close()
    assert out.getvalue() == ""


def test_a_bar_may_be_closed_twice_and_still_name_a_step(capsys) -> None:
    reporter = ProgressReporter(3, bar=True, label="verify", every=0.0)
    reporter.advance(3)
    reporter.stage("comparing the tables")
    reporter.close()
    reporter.close()
    reporter.stage("done with the bar")
    captured = capsys.readouterr()
    # The bar and its steps go to standard error: standard output may carry an answer.
    assert "verify: comparing the tables" in captured.err
    assert "verify: done with the bar" in captured.err
    assert captured.out == ""
