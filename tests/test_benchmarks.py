"""The benchmark harness's arithmetic and its scipy baseline (benchmarks/run.py), without Spark."""
from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, load_script


@pytest.fixture(scope="module")
def harness():
    return load_script(REPO / "benchmarks" / "run.py", "bench_run")


def test_cost_per_10x_is_the_fitted_growth_factor(harness):
    linear = [(1e5, 2.0), (1e6, 20.0), (1e7, 200.0)]
    assert harness.cost_per_10x(linear) == 10.0
    superlinear = [(r, 3.0 * (r / 1e5) ** 1.2) for r in (1e5, 3e5, 1e6, 3e6)]
    assert harness.cost_per_10x(superlinear) == round(10**1.2, 2) == 15.85
    # a fixed cost flattens the curve: 30 s + linear
    flat = [(r, 30 + r / 1e5) for r in (1e5, 1e6)]
    assert harness.cost_per_10x(flat) == round((30 + 10) / (30 + 1), 2)
    assert harness.cost_per_10x([(1e5, 2.0)]) is None
    assert harness.cost_per_10x([(1e5, 2.0), (1e5, 3.0)]) is None  # one size twice: no slope
    assert harness.cost_per_10x([(1e5, 0.0), (1e6, 3.0)]) is None


def _report(scale, rows, seconds, floor):
    return {"data": {"scale": scale, "raw_rows": rows}, "io_floor": {"seconds": floor},
            "ingest_to_gold": {"seconds": sum(seconds.values())},
            "stages": [{"stage": k, "seconds": v} for k, v in seconds.items()]}


def test_scaling_table_per_stage(harness):
    reports = [_report(1, 1_000_000, {"ingest": 10.0, "gold": 5.0}, 2.0), _report(0.1, 100_000, {"ingest": 2.0, "gold": 4.0}, 0.5)]
    result = harness.scaling(reports)
    assert result["scales"] == [0.1, 1]
    assert result["per_stage"]["ingest"] == {"seconds": [2.0, 10.0], "cost_per_10x": 5.0}
    assert result["per_stage"]["gold"]["cost_per_10x"] == 1.25
    assert result["per_stage"]["ingest_to_gold"] == {"seconds": [6.0, 15.0], "cost_per_10x": 2.5}
    assert result["per_stage"]["io_floor"]["cost_per_10x"] == 4.0
    text = harness.scaling_markdown(result, "python benchmarks/run.py --scale 0.1 --scale 1", None)
    assert "| ingest | 2.0 | 10.0 | 5.0x |" in text
    assert "| ingest_to_gold | 6.0 | 15.0 | 2.5x |" in text


def _graph(folder, vertices, edges, labels):
    folder.mkdir()
    pq.write_table(pa.table({"id": pa.array(vertices, pa.int64())}), folder / "vertices")
    pq.write_table(pa.table({"src": pa.array([e[0] for e in edges], pa.int64()), "dst": pa.array([e[1] for e in edges], pa.int64())}),
                   folder / "edges")
    pq.write_table(pa.table({"id": pa.array(list(labels), pa.int64()), "component": pa.array(list(labels.values()), pa.int64())}),
                   folder / "labels")


def test_scipy_baseline_agrees_with_a_right_partition(harness, tmp_path):
    # sparse, large ids as monotonically_increasing_id makes them; a self-loop and a duplicate edge
    a, b, c, d, e = 5, 8_589_934_592, 8_589_934_593, 17_179_869_184, 17_179_869_190
    _graph(tmp_path / "g", [a, b, c, d, e], [(a, b), (b, a), (c, c), (d, e)], {a: a, b: a, c: c, d: d, e: d})
    probe = harness.ComponentsProbe(tmp_path / "g")
    out = probe.scipy_baseline()
    assert out["components"] == 3
    assert out["same_partition"] is True


@pytest.mark.parametrize("labels", [
    {1: 1, 2: 1, 3: 1, 4: 4},  # 3 merged into 1's component although no edge joins them
    {1: 1, 2: 2, 3: 3, 4: 4},  # 1-2 split
])
def test_scipy_baseline_catches_a_wrong_partition(harness, tmp_path, labels):
    _graph(tmp_path / "g", [1, 2, 3, 4], [(1, 2), (3, 4)], labels)
    out = harness.ComponentsProbe(tmp_path / "g").scipy_baseline()
    assert out["components"] == 2
    assert out["same_partition"] is False


def test_markdown_row_set(harness):
    report = {
        "label": "after", "command": "python benchmarks/run.py --scale 0.1", "measured_at": "2026-12-02T14:00:00+00:00",
        "git_commit": "abc1234",
        "machine": {"cpus": 2, "cpu": "Some CPU", "memory_gib": 23.4, "java": 'openjdk version "17"', "python": "3.11.2", "pyspark": "4.1.1"},
        "engines": {"lakehouse": "delta-rs", "connected_components": "dataframe"},
        "spark_settings": {"spark.master": "local[2]"},
        "data": {"scale": 0.1, "people": 10_000, "raw_rows": 1_000_000},
        "io_floor": {"seconds": 20.0},
        "stages": [{"stage": "ingest", "seconds": 40.0, "rows_in": 1_000_000, "rows_out": 999_000, "rows_in_per_second": 25_000,
                    "ratio_to_floor": 2.0, "peak_driver_python_mb": 300, "driver_python_growth_mb": 12, "peak_jvm_heap_mb": 900},
                   {"stage": "identity", "seconds": 30.0, "rows_in": 300_000, "rows_out": 300_000, "rows_in_per_second": 10_000,
                    "ratio_to_floor": 1.5, "peak_driver_python_mb": 320, "driver_python_growth_mb": 20, "peak_jvm_heap_mb": 1_200,
                    "identity_records": 250_000, "identity_records_per_second": 8_333,
                    "matching": {"candidate_pairs": 120_000, "seconds": 6.0, "comparisons_per_second": 20_000}},
                   {"stage": "facts", "seconds": 10.0, "rows_in": None, "rows_out": 5, "rows_in_per_second": None,
                    "ratio_to_floor": 0.5, "peak_driver_python_mb": 320, "driver_python_growth_mb": 0, "peak_jvm_heap_mb": 1_000}],
        "ingest_to_gold": {"seconds": 70.0, "ratio_to_floor": 3.5},
        "connected_components": {"engine": "dataframe", "vertices": 300_000, "edges": 250_000, "rounds": 2, "spark_seconds": 8.0,
                                 "scipy_seconds": 0.2, "collect_seconds": 0.1, "ratio_to_scipy": 40.0, "components": 12_000,
                                 "same_partition": True},
    }
    text = harness.markdown(report)
    assert "### Scale 0.1 (after): 1,000,000 raw rows, 10,000 people" in text
    assert "| I/O floor (read each raw source, write Parquet) | 20.0 | 1,000,000 | 1,000,000 | 50,000 | 1.00 | | |" in text
    assert "| ingest | 40.0 | 1,000,000 | 999,000 | 25,000 | 2.00 | 300 (+12) | 900 |" in text
    assert "| **ingest → gold** | **70.0** | | | | **3.50** | | |" in text
    assert "**40.0x**" in text and "same partition: yes" in text and "(20,000 comparisons/s)" in text
    assert "Identity records: 250,000 (8,333 per second of the stage)" in text
    assert "| facts | 10.0 | ? | 5 | ? | 0.50 |" in text  # a version without statistics: unknown, not 0
    assert math.isclose(report["ingest_to_gold"]["seconds"] / report["io_floor"]["seconds"], 3.5)


def test_markdown_appends_under_one_heading(harness, tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nearlier text\n")
    harness.append_markdown(md, "### first\n")
    harness.append_markdown(md, "### second\n")
    text = md.read_text()
    assert text.count("## Harness runs (`benchmarks/run.py`)") == 1
    assert text.index("earlier text") < text.index("## Harness runs") < text.index("### first") < text.index("### second")


def _engine_report(engine, floor, seconds, components="dataframe"):
    return {"data": {"scale": 1.0, "raw_rows": 1000}, "io_floor": {"seconds": floor},
            "engines": {"lakehouse": engine, "connected_components": components},
            "measured_at": "2026-12-04T16:00:00+00:00", "git_commit": "abc1234",
            "ingest_to_gold": {"seconds": sum(seconds.values()), "ratio_to_floor": round(sum(seconds.values()) / floor, 2)},
            "stages": [{"stage": k, "seconds": v} for k, v in seconds.items()]}


def test_engine_comparison_table(harness):
    spark_run = _engine_report("delta-spark", 10.0, {"ingest": 30.0, "identity": 50.0})
    rs_run = _engine_report("delta-rs", 12.0, {"ingest": 45.0, "identity": 40.0})
    result = harness.engine_comparison([spark_run, rs_run])
    assert result["engines"] == ["delta-spark", "delta-rs"]
    assert result["per_stage"] == {"ingest": {"seconds": [30.0, 45.0], "ratio_to_first": [1.0, 1.5]},
                                   "identity": {"seconds": [50.0, 40.0], "ratio_to_first": [1.0, 0.8]}}
    assert result["ingest_to_gold_ratio_to_floor"] == [8.0, 7.08]
    text = harness.engines_markdown(result, [spark_run, rs_run], "python benchmarks/run.py --scale 1 --engines delta-spark,delta-rs")
    assert "| stage | delta-spark (s) | delta-rs (s) | delta-rs / delta-spark |" in text
    assert "| ingest | 30.0 | 45.0 | 1.50 |" in text
    assert "| **ingest → gold** | **80.0** | **85.0** | **1.06** |" in text
    assert "| × own I/O floor | 8.00 | 7.08 |" in text
    # a stage only one engine ran shows as missing, not as zero
    partial = harness.engine_comparison([spark_run, _engine_report("delta-rs", 12.0, {"ingest": 45.0})])
    assert partial["per_stage"]["identity"] == {"seconds": [50.0, None], "ratio_to_first": [1.0, None]}


@pytest.fixture(scope="module")
def splink_harness():
    return load_script(REPO / "benchmarks" / "identity_splink.py", "bench_identity_splink")


def test_splink_benchmark_pairwise_scores_count_pairs_by_hand(splink_harness):
    import pandas as pd

    # P1 = a1 a2 a3, P2 = b1 b2, P3 = c (not returned: a singleton). C1 holds a1 a2 b1 b2, C2 holds a3.
    truth = pd.Series({"a1": "P1", "a2": "P1", "a3": "P1", "b1": "P2", "b2": "P2", "c": "P3"})
    predicted = pd.Series({"a1": "C1", "a2": "C1", "b1": "C1", "b2": "C1", "a3": "C2"})
    scores = splink_harness.pairwise_metrics(predicted, truth)
    # predicted C(4,2) = 6; true C(3,2) + C(2,2) = 4; true positives (C1,P1) 1 + (C1,P2) 1 = 2
    assert {k: scores[k] for k in ("predicted_pairs", "true_pairs", "true_positive_pairs", "unresolved_records", "clusters")} == {
        "predicted_pairs": 6, "true_pairs": 4, "true_positive_pairs": 2, "unresolved_records": 1, "clusters": 3,
    }
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.33333, 0.5, 0.4)
    assert scores["over_merged_clusters"] == 1 and scores["under_merged_persons"] == 1


def test_splink_benchmark_error_analysis_per_corruption_and_household(splink_harness):
    import pandas as pd

    truth = pd.DataFrame(
        [
            ("o1", 1, 1, True, ""), ("d1", 1, 1, False, "typo:surname"), ("d2", 1, 1, False, "typo:surname;dob:digit"),
            ("o2", 2, 1, True, ""), ("o3", 3, None, True, ""), ("d3", 3, None, False, "swap_names"),
        ],
        columns=["rec_id", "person_id", "household_id", "original", "corruptions"],
    ).astype({"household_id": "Int64"})
    # d2 missed its original; relatives o1 and o2 merged (with d1): two false household pairs; d3 found
    predicted = pd.Series({"o1": "A", "d1": "A", "o2": "A", "d2": "B", "o3": "C", "d3": "C"})
    errors = splink_harness.error_analysis(predicted, truth)
    assert errors["duplicates"] == 3 and errors["duplicates_missed"] == 1
    assert errors["missed_by_corruption"] == {
        "dob:digit": {"duplicates": 1, "missed": 1, "missed_share": 1.0},
        "typo:surname": {"duplicates": 2, "missed": 1, "missed_share": 0.5},
        "swap_names": {"duplicates": 1, "missed": 0, "missed_share": 0.0},
    }
    assert errors["missed_by_corruption_count"] == {1: {"duplicates": 2, "missed": 0}, 2: {"duplicates": 1, "missed": 1}}
    assert errors["household_false_pairs"] == 2 and errors["households"] == 1


def test_splink_benchmark_stops_a_tool_at_the_time_limit(splink_harness, tmp_path):
    import sys

    # a child that starts a grandchild and would sleep for a minute: the whole group is killed
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    stopped = splink_harness.run_measured([sys.executable, "-c", script], cwd=tmp_path, log=tmp_path / "slow.log", time_limit=1.0)
    assert stopped["timed_out"] is True and stopped["time_limit_s"] == 1.0
    assert stopped["exit_code"] == -9 and 1.0 <= stopped["seconds"] < 10
    done = splink_harness.run_measured([sys.executable, "-c", "print('ok')"], cwd=tmp_path, log=tmp_path / "fast.log", time_limit=30.0)
    assert done["exit_code"] == 0 and "timed_out" not in done
    assert (tmp_path / "fast.log").read_text().strip() == "ok"
    row = splink_harness.markdown({
        "key": "k", "data": {"records": 10, "persons": 5, "true_pairs": 5},
        "tools": {"splink": {**stopped, "failed": True}},  # as main marks a tool that exited non-zero
    })
    assert "| splink | stopped at the time limit (1 s), no result |" in row
