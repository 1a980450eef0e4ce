"""The restore benchmark's pure helpers: which blobs its subset selects, and how it pairs rounds into ratios."""
from __future__ import annotations

import pytest

from bench.restore_bench import BLOB_NAME, report, subset_prefix


@pytest.mark.parametrize("subset", [1, 10, 100, 1000])
def test_subset_prefix_selects_exactly_the_first_blobs(subset: int) -> None:
    """The one-by-one restore behind the round trip runs on the names the prefix selects: exactly `subset` of them."""
    names = [BLOB_NAME.format(i) for i in range(10_000)]
    prefix = subset_prefix(subset, len(names))
    assert [n for n in names if n.startswith(prefix)] == names[:subset]


@pytest.mark.parametrize("subset", [0, 20, 300, 100_000])
def test_subset_prefix_refuses_what_no_prefix_selects(subset: int) -> None:
    with pytest.raises(SystemExit):
        subset_prefix(subset, 10_000)


def test_report_pairs_rounds_run_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    """Ratios are judged per round (neighbouring measurements), not only as the ratio of the medians."""
    results = {
        "n": 100, "containers": 2, "pool": 16, "subset": 10, "subset_prefix": "data/part-000000", "rtt_ms": 10.0,
        "restore 10, pool of 16": {"seconds": 2.0, "requests": 102, "rounds": [1.0, 2.0, 4.0]},
        "restore 10, one by one": {"seconds": 6.0, "requests": 102, "rounds": [5.0, 6.0, 6.0]},
    }
    report(results)
    assert results["ratios"] == {"one by one / pool (10, loopback)": 3.0}
    assert results["ratios, paired by round"]["one by one / pool (10, loopback)"] == {"median": 3.0,
                                                                                  "rounds": [5.0, 3.0, 1.5]}
    assert "restore 10, one by one" in capsys.readouterr().out
