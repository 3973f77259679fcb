"""The latest version of a bronze record: by change sequence where a source delivers changes
(change data capture), whatever order they arrived in, else by arrival."""
from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality
import pyspark.sql.functions as F

from customer360.bronze.versions import VERSION_COLUMN, deleted, with_version_rank

SCHEMA = "crm_id string, change_op string, change_seq long, _ingested_at timestamp, _source_file string, _row_number long"
DAY1, DAY2 = datetime(2026, 7, 1, 12), datetime(2026, 7, 2, 12)


def _ranked(spark, rows):
    df = spark.createDataFrame(rows, SCHEMA)
    return with_version_rank(df, ["crm_id"]).select("crm_id", "change_op", "change_seq", "_source_file", VERSION_COLUMN,
                                                    deleted(df).alias("deleted"))


def test_the_highest_sequence_wins_whatever_arrived_last(spark):
    got = _ranked(spark, [
        ("A", "insert", 1, DAY1, "a1.csv", 0),
        ("A", "update", 3, DAY1, "a1.csv", 1),
        ("A", "update", 2, DAY2, "a2.csv", 0),   # arrives later, is older
        ("B", "delete", 5, DAY1, "b1.csv", 0),
        ("B", "update", 4, DAY2, "b2.csv", 0),   # a late update of a deleted record: it stays deleted
        ("C", "update", 7, DAY1, "c1.csv", 0),
        ("C", None, None, DAY2, "c2.csv", 0),    # a full export after the change feed began: older than any change
    ])
    expected = spark.createDataFrame([
        ("A", "update", 3, "a1.csv", 1, False),
        ("A", "update", 2, "a2.csv", 2, False),
        ("A", "insert", 1, "a1.csv", 3, False),
        ("B", "delete", 5, "b1.csv", 1, True),
        ("B", "update", 4, "b2.csv", 2, False),
        ("C", "update", 7, "c1.csv", 1, False),
        ("C", None, None, "c2.csv", 2, False),
    ], f"crm_id string, change_op string, change_seq long, _source_file string, {VERSION_COLUMN} int, deleted boolean")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_without_sequences_the_latest_load_wins(spark):
    df = spark.createDataFrame([("D", DAY1, "d1.csv", 0), ("D", DAY2, "d0.csv", 0), ("D", DAY2, "d0.csv", 5)],
                               "crm_id string, _ingested_at timestamp, _source_file string, _row_number long")
    got = with_version_rank(df, ["crm_id"]).orderBy(VERSION_COLUMN).select("_row_number", VERSION_COLUMN, deleted(df).alias("d"))
    assert [tuple(r) for r in got.collect()] == [(5, 1, False), (0, 2, False), (0, 3, False)]


def test_a_sequence_tie_goes_to_the_later_load(spark):
    got = _ranked(spark, [("E", "update", 9, DAY1, "e1.csv", 0), ("E", "delete", 9, DAY2, "e2.csv", 0)])
    assert got.where(F.col(VERSION_COLUMN) == 1).select("change_op", "deleted").first() == ("delete", True)


def test_folding_increments_in_any_grouping_ends_at_the_latest_versions(spark):
    """A current-state table that takes each increment in with ``apply_changes`` (upserting what it
    returns, tombstones included) holds, live, what ``latest_versions`` finds over everything at
    once: whatever order and grouping the changes arrive in, stale ones and deletes included."""
    import random

    from customer360.bronze.versions import apply_changes, latest_versions

    rng = random.Random(7)
    rows = []
    for k in range(12):
        for _ in range(rng.randint(1, 5)):
            seq = rng.choice([None, rng.randint(1, 20)])
            op = None if seq is None else rng.choice(["insert", "update", "update", "delete"])
            day = datetime(2026, 7, 1 + rng.randint(0, 3), 12)
            rows.append((f"K{k}", op, seq, day, f"f{day.day}.csv", len(rows)))
    expected, _, removed = latest_versions(spark.createDataFrame(rows, SCHEMA), ["crm_id"])
    assert removed > 0  # the data has keys whose latest change is a delete
    for trial in range(3):
        shuffled = rows[:]
        rng.shuffle(shuffled)
        cuts = sorted(rng.sample(range(1, len(shuffled)), trial + 1))
        batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)])]
        current = None
        for batch in batches:
            upserts = apply_changes(current, spark.createDataFrame(batch, SCHEMA), ["crm_id"])
            current = upserts if current is None else current.join(upserts.select("crm_id"), "crm_id", "left_anti").unionByName(upserts)
            current = current.localCheckpoint(eager=True)
        assert current.groupBy("crm_id").count().where("count > 1").count() == 0
        assert_df_equality(current.where(~deleted(current)), expected, ignore_row_order=True, ignore_nullable=True)
