"""Splink (DuckDB) against ``c360 identity`` on the same FEBRL-like records, scored against the truth.

    .venv/bin/python benchmarks/identity_splink.py --originals 2000 --duplicates 2000 \\
        [--seed 42] [--mode dedupe|link] [--national-id | --no-national-id] [--threshold 0.99] \\
        [--skip-c360] [--c360-set KEY=VALUE ...] [--time-limit SECONDS] [--work-dir DIR] [--out benchmarks/results/identity_splink.json]

Splink is a benchmark dependency only (``pip install -e '.[bench]'``), never imported by the package.

1. ``customer360.identity.synthetic.febrl_like`` writes the records (and the truth, which neither
   tool reads) as CSV under the work folder (a new temporary folder unless ``--work-dir``).
2. Splink runs in a child process (this script with ``--run-splink``) with the setup of Splink's
   own FEBRL3/FEBRL4 examples: NameComparison on both names, DateOfBirthComparison,
   DamerauLevenshtein on soc_sec_id and postcode, exact street_number, term-frequency adjustments;
   the FEBRL4 blocking rules; the match share from deterministic rules; u from random pairs; EM
   sessions blocked on date_of_birth and on postcode; predict, then clusters at ``--threshold``.
   In link mode it links ``left`` to ``right`` (link_only). Before it, untimed, Splink's own
   ``count_comparisons_from_blocking_rules`` counts the pairs its rules will score (estimated from
   a 5% sample above 200,000 records).
3. ``c360 identity --input CSV --format csv --mapping MAPPING --output DIR`` runs in a child
   process from the repository root (conf/ as it is, its own threshold from conf/identity.yaml;
   ``--threshold`` is Splink's). It has no link mode: it resolves left and right as one file.
   ``DIR/customer_xref`` (Delta) gives rec_id -> customer_id.

Each child's wall time is measured around the process (interpreter and JVM start included);
with ``--time-limit`` a child still running after that many seconds is killed (``timed_out``).
Memory is reported twice: ``peak_rss_mb`` is the kernel's high-water mark of the largest single
process (``os.wait4`` rusage: the child and the descendants it waited for, e.g. Spark's JVM when
pyspark reaps it), ``tree_peak_rss_mb`` the largest sum over the child's process tree, sampled
every 0.2 s (catches a JVM that is not reaped by the child).

Scores are pairwise over all records: predicted pairs are sum C(n,2) over clusters, true pairs sum
C(n,2) over persons, true positives sum C(n,2) over (cluster, person) cells: sizes of groups, no
pair is enumerated. A record a tool did not return counts as a singleton. Recall is broken down by
corruption kind (is each duplicate in its original's cluster?), and false pairs inside households
(distinct relatives at one address) are counted.

Results are merged into the JSON (one entry per mode, size, seed, national id and threshold) and
printed as a markdown table.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py, also for a test loading this file
from common import REPO, arguments, git_state, measured_at, table_head, table_row, work_dir, write_json  # noqa: E402

from customer360.identity.synthetic import febrl_like, to_identity_mapping  # noqa: E402 - the checkout's lib/, put on sys.path by common

MAX_RECORDS = 1_000_000  # the largest size; above it neither tool has been tried here
SAMPLE_SECONDS = 0.2


# --- scoring -------------------------------------------------------------------------------------

def _pairs(sizes: pd.Series) -> int:
    sizes = sizes.astype("int64")
    return int((sizes * (sizes - 1) // 2).sum())


def pairwise_metrics(predicted: pd.Series, truth: pd.Series) -> dict:
    """``predicted``: rec_id -> cluster; ``truth``: rec_id -> person. Scores over truth's records."""
    frame = pd.DataFrame({"person": truth})
    frame["cluster"] = predicted.reindex(frame.index)
    unresolved = int(frame["cluster"].isna().sum())
    # a record the tool did not return is its own cluster
    frame["cluster"] = frame["cluster"].astype(object).where(frame["cluster"].notna(), "unresolved:" + frame.index.astype(str))
    frame["cluster"] = frame["cluster"].astype(str)
    predicted_pairs = _pairs(frame.groupby("cluster").size())
    true_pairs = _pairs(frame.groupby("person").size())
    true_positive_pairs = _pairs(frame.groupby(["cluster", "person"]).size())
    precision = true_positive_pairs / predicted_pairs if predicted_pairs else 1.0
    recall = true_positive_pairs / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    persons_per_cluster = frame.groupby("cluster")["person"].nunique()
    clusters_per_person = frame.groupby("person")["cluster"].nunique()
    return {
        "records": len(frame),
        "unresolved_records": unresolved,
        "persons": int(frame["person"].nunique()),
        "clusters": int(frame["cluster"].nunique()),
        "predicted_pairs": predicted_pairs,
        "true_pairs": true_pairs,
        "true_positive_pairs": true_positive_pairs,
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "over_merged_clusters": int((persons_per_cluster > 1).sum()),
        "under_merged_persons": int((clusters_per_person > 1).sum()),
    }


def error_analysis(predicted: pd.Series, truth: pd.DataFrame) -> dict:
    """Duplicates not in their original's cluster, per corruption kind; false pairs in households."""
    frame = truth.set_index("rec_id").copy()
    frame["cluster"] = predicted.reindex(frame.index).astype(object)
    frame["cluster"] = frame["cluster"].where(frame["cluster"].notna(), "unresolved:" + frame.index.astype(str)).astype(str)
    original_cluster = frame[frame["original"]].set_index("person_id")["cluster"]
    dups = frame[~frame["original"]].copy()
    dups["linked"] = dups["cluster"].to_numpy() == original_cluster.reindex(dups["person_id"]).to_numpy()
    kinds = dups.assign(kind=dups["corruptions"].str.split(";")).explode("kind")
    by_kind = (
        kinds.groupby("kind")["linked"].agg(duplicates="size", missed=lambda s: int((~s).sum()))
        .assign(missed_share=lambda d: (d["missed"] / d["duplicates"]).round(4))
        .sort_values("missed_share", ascending=False)
    )
    by_count = dups.groupby(dups["corruptions"].str.count(";") + 1)["linked"].agg(
        duplicates="size", missed=lambda s: int((~s).sum())
    )
    households = frame[frame["household_id"].notna()]
    household_false_pairs = _pairs(households.groupby(["cluster", "household_id"]).size()) - _pairs(
        households.groupby(["cluster", "person_id"]).size()
    )
    return {
        "duplicates": len(dups),
        "duplicates_missed": int((~dups["linked"]).sum()),
        "missed_by_corruption": {k: {c: (int(v) if c != "missed_share" else float(v)) for c, v in row.items()} for k, row in by_kind.iterrows()},
        "missed_by_corruption_count": {int(k): {c: int(v) for c, v in row.items()} for k, row in by_count.iterrows()},
        "household_false_pairs": household_false_pairs,
        "households": int(households["household_id"].nunique()),
    }


# --- child processes ----------------------------------------------------------------------------

def _tree_rss_bytes(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: fields after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        parents[int(entry)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            continue
    return total


def run_measured(command: list[str], *, cwd: Path, log: Path, time_limit: float | None = None) -> dict:
    """Runs ``command``; its wall time, exit code and peak memory (see the module docstring).
    Past ``time_limit`` seconds its whole process group is killed and ``timed_out`` is true."""
    started = time.perf_counter()
    timed_out = False
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        tree_peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss_bytes(proc.pid))
            if time_limit is not None and time.perf_counter() - started > time_limit and not timed_out:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(SAMPLE_SECONDS)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return {
        "command": " ".join(command),
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kilobytes
        "tree_peak_rss_mb": round(tree_peak / 2**20, 1),
        "log": str(log),
        **({"timed_out": True, "time_limit_s": time_limit} if timed_out else {}),
    }


def _read_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return frame.astype(object).where(frame.notna(), None)


SWAPPED = "l.given_name = r.surname and l.surname = r.given_name"


def _splink_blocking_rules(national_id: bool) -> list:
    """The FEBRL4 example's rules for generating predictions (with a swapped-names rule)."""
    from splink import block_on

    return [
        block_on("given_name", "surname"),
        SWAPPED,
        block_on("date_of_birth"),
        *([block_on("soc_sec_id")] if national_id else []),
        block_on("state", "address_1"),
        block_on("street_number", "address_1"),
        block_on("postcode"),
    ]


def _splink_inputs(work: Path, mode: str, db_api) -> tuple[object, str]:
    if mode == "link":
        return [
            # not "left"/"right": Splink uses the display name as a table name, and those are SQL keywords
            db_api.register(_read_csv(work / "left.csv"), dataset_display_name="records_a"),
            db_api.register(_read_csv(work / "right.csv"), dataset_display_name="records_b"),
        ], "link_only"
    return db_api.register(_read_csv(work / "records.csv"), dataset_display_name="records"), "dedupe_only"


#: up to this many records Splink counts its comparisons exactly; above, from a 5% sample of each side
EXACT_COUNT_RECORDS = 200_000


def count_splink_comparisons(work: Path) -> None:
    """The child (untimed): the pairs Splink's blocking rules will score, by Splink's own count
    (exact, or estimated from a sample above ``EXACT_COUNT_RECORDS``), written before Splink runs,
    so that a run stopped at the time limit still says how much work it faced."""
    from splink import DuckDBAPI
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    params = json.loads((work / "params.json").read_text())
    inputs, link_type = _splink_inputs(work, params["mode"], DuckDBAPI())
    with open(work / "all.csv", encoding="utf-8") as f:
        records = sum(1 for _ in f) - 1
    sample = 1.0 if records <= EXACT_COUNT_RECORDS else 0.05
    counted = count_comparisons_from_blocking_rules(
        inputs, blocking_rules=_splink_blocking_rules(params["national_id"]), link_type=link_type,
        unique_id_column_name="rec_id", record_sample_proportion=sample,
    )
    rows = [
        {"rule": r["blocking_rule"], "marginal": int(r["marginal_comparison_count"]), "cumulative": int(r["cumulative_comparison_count"])}
        for r in counted
    ]
    (work / "splink_comparisons.json").write_text(json.dumps({"record_sample_proportion": sample, "rules": rows}))


def run_splink(work: Path) -> None:
    """The child: Splink on the work folder's input, clusters to splink_clusters.csv."""
    import logging

    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    params = json.loads((work / "params.json").read_text())
    national_id = params["national_id"]
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[name] = round(now - clock, 2)
        clock = now

    inputs, link_type = _splink_inputs(work, params["mode"], DuckDBAPI())
    phase("load")

    swapped = SWAPPED
    blocking_rules = _splink_blocking_rules(national_id)
    comparisons = [
        cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
        cl.NameComparison("surname").configure(term_frequency_adjustments=True),
        cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d", invalid_dates_as_null=True),
        *([cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2])] if national_id else []),
        cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
        cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(term_frequency_adjustments=True),
    ]
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type=link_type,
        blocking_rules_to_generate_predictions=blocking_rules,
        comparisons=comparisons,
    )
    linker = Linker(inputs, settings, log_level=logging.WARNING)
    deterministic = [
        *([block_on("soc_sec_id")] if national_id else []),
        block_on("given_name", "surname", "date_of_birth"),
        f"{swapped} and l.date_of_birth = r.date_of_birth",
    ]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=params["seed"])
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"), estimate_without_term_frequencies=True)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"), estimate_without_term_frequencies=True)
    phase("train")
    predictions = linker.inference.predict(threshold_match_probability=min(0.2, params["threshold"]))
    pairs_scored = len(predictions.as_pandas_dataframe())
    phase("predict")
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold_match_probability=params["threshold"])
    frame = clusters.as_pandas_dataframe()[["rec_id", "cluster_id"]]
    phase("cluster")
    frame.to_csv(work / "splink_clusters.csv", index=False)
    (work / "splink_phases.json").write_text(json.dumps({"phases_seconds": phases, "pairs_scored_above_0.2": int(pairs_scored)}))


# --- the parent ---------------------------------------------------------------------------------

def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("splink", "duckdb", "pyspark", "delta-spark", "deltalake", "pandas", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _working_tree() -> dict:
    """The commit, and the files under lib/ and conf/ that differ from it: c360's figures depend on both."""
    commit, changed = git_state("lib", "conf")
    return {"commit": commit, "changed": changed}


def _write_inputs(work: Path, args) -> pd.DataFrame:
    data = febrl_like(
        originals=args.originals, duplicates=args.duplicates, seed=args.seed, mode=args.mode,
        max_duplicates_per_original=args.max_duplicates_per_original, with_national_id=args.national_id,
    )
    if args.mode == "link":
        data.left.to_csv(work / "left.csv", index=False)
        data.right.to_csv(work / "right.csv", index=False)
    else:
        data.records.to_csv(work / "records.csv", index=False)
    # c360 has no link mode: it resolves everything as one file
    data.all_records().to_csv(work / "all.csv", index=False)
    data.truth.to_csv(work / "truth.csv", index=False)
    (work / "mapping.yaml").write_text(yaml.safe_dump(to_identity_mapping(args.national_id), sort_keys=False))
    (work / "params.json").write_text(json.dumps({
        "mode": args.mode, "national_id": args.national_id, "threshold": args.threshold, "seed": args.seed,
    }))
    return data.truth


def _score(tool: dict, predicted: pd.Series, truth: pd.DataFrame) -> None:
    tool.update(pairwise_metrics(predicted, truth.set_index("rec_id")["person_id"]))
    tool["errors"] = error_analysis(predicted, truth)


def _run_splink_tool(work: Path, time_limit: float | None) -> dict:
    me = [sys.executable, str(Path(__file__).resolve())]
    # the work folder as the current one: DuckDB spills to ./.tmp, which must not land in the checkout
    counted = subprocess.run([*me, "--count-splink", str(work)], cwd=work, capture_output=True, text=True)
    comparisons = json.loads((work / "splink_comparisons.json").read_text()) if counted.returncode == 0 else None
    result = run_measured([*me, "--run-splink", str(work)], cwd=work, log=work / "splink.log", time_limit=time_limit)
    if comparisons is not None:
        result["comparisons_estimated"] = comparisons
    if result["exit_code"] != 0:
        result["failed"] = True
        return result
    result.update(json.loads((work / "splink_phases.json").read_text()))
    return result


def _run_c360_tool(work: Path, time_limit: float | None, settings: list[str]) -> dict:
    output = work / "c360_out"
    shutil.rmtree(output, ignore_errors=True)
    c360 = Path(sys.executable).parent / "c360"
    command = [str(c360), "identity", "--input", str(work / "all.csv"), "--format", "csv",
               "--mapping", str(work / "mapping.yaml"), "--output", str(output), *(a for kv in settings for a in ("--set", kv))]
    result = run_measured(command, cwd=REPO, log=work / "c360.log", time_limit=time_limit)
    # its report: "matching: 319,722 distinct candidate pairs scored; ..."
    reported = re.search(r"matching: ([0-9,]+) distinct candidate pairs scored", (work / "c360.log").read_text(errors="replace"))
    if reported:
        result["candidate_pairs"] = int(reported.group(1).replace(",", ""))
    return result


def _read_xref(output: Path) -> pd.Series:
    from deltalake import DeltaTable

    xref = DeltaTable(str(output / "customer_xref")).to_pandas(columns=["source_record_id", "customer_id"])
    return xref.set_index("source_record_id")["customer_id"]


def _run_key(args) -> str:
    return f"{args.mode} {args.originals}+{args.duplicates} seed {args.seed} " \
           f"{'with' if args.national_id else 'without'} national id, threshold {args.threshold}"


def markdown(entry: dict) -> str:
    lines = [
        f"### {entry['key']}",
        "",
        f"{entry['data']['records']:,} records, {entry['data']['persons']:,} persons, {entry['data']['true_pairs']:,} true pairs",
        "",
        *table_head("tool", "precision", "recall", "F1", "predicted pairs", "clusters", "missed duplicates",
                    "household false pairs", "seconds", "peak RSS MB (process / tree)"),
    ]
    for name, tool in entry["tools"].items():
        if tool.get("timed_out"):
            lines.append(f"| {name} | stopped at the time limit ({tool['time_limit_s']:,.0f} s), no result ||||||| "
                         f"{tool['seconds']:.1f} | {tool['peak_rss_mb']:,.0f} / {tool['tree_peak_rss_mb']:,.0f} |")
            continue
        if tool.get("failed"):
            lines.append(f"| {name} | failed (exit {tool['exit_code']}, see {tool['log']}) |||||||||")
            continue
        errors = tool["errors"]
        lines.append(table_row(
            name, f"{tool['precision']:.4f}", f"{tool['recall']:.4f}", f"{tool['f1']:.4f}", f"{tool['predicted_pairs']:,}",
            f"{tool['clusters']:,}", f"{errors['duplicates_missed']:,} / {errors['duplicates']:,}", f"{errors['household_false_pairs']:,}",
            f"{tool['seconds']:.1f}", f"{tool['peak_rss_mb']:,.0f} / {tool['tree_peak_rss_mb']:,.0f}",
        ))
    scored = []
    counted = entry["tools"].get("splink", {}).get("comparisons_estimated")
    if counted and counted["rules"]:
        how = "Splink's exact count" if counted["record_sample_proportion"] >= 1 else "Splink's estimate from a 5% sample of each side"
        scored.append(f"splink {counted['rules'][-1]['cumulative']:,} ({how})")
    if entry["tools"].get("c360", {}).get("candidate_pairs") is not None:
        scored.append(f"c360 {entry['tools']['c360']['candidate_pairs']:,} (its report)")
    if scored:
        lines += ["", "Pairs scored: " + "; ".join(scored) + "."]
    kinds = sorted({k for tool in entry["tools"].values() if not tool.get("failed") for k in tool["errors"]["missed_by_corruption"]})
    if kinds:
        names = [n for n, t in entry["tools"].items() if not t.get("failed")]
        lines += ["", "Duplicates not in their original's cluster, by corruption kind (missed / duplicates):", "",
                  *table_head("corruption", *names)]
        for kind in kinds:
            cells = []
            for name in names:
                row = entry["tools"][name]["errors"]["missed_by_corruption"].get(kind)
                cells.append(f"{row['missed']} / {row['duplicates']} ({row['missed_share']:.0%})" if row else "")
            lines.append(table_row(kind, *cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = arguments(__doc__, out="identity_splink.json")
    parser.add_argument("--originals", type=int, default=2000)
    parser.add_argument("--duplicates", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--mode", choices=("dedupe", "link"), default="dedupe")
    parser.add_argument("--max-duplicates-per-original", type=int, default=5)
    parser.add_argument("--national-id", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threshold", type=float, default=0.99, help="Splink's clustering threshold (match probability)")
    parser.add_argument("--skip-c360", action="store_true")
    parser.add_argument("--work-dir", help="folder for the inputs, logs and outputs (default: a new temporary folder)")
    parser.add_argument("--c360-set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to c360 as --set (e.g. spark.driver_memory=12g for a million records)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="each tool's process group is killed after this long (recorded as timed_out)")
    parser.add_argument("--run-splink", metavar="WORK", help=argparse.SUPPRESS)
    parser.add_argument("--count-splink", metavar="WORK", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_splink:
        run_splink(Path(args.run_splink))
        return 0
    if args.count_splink:
        count_splink_comparisons(Path(args.count_splink))
        return 0
    if args.originals + args.duplicates > MAX_RECORDS:
        parser.error(f"at most {MAX_RECORDS:,} records here (--originals + --duplicates)")
    if not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if importlib.util.find_spec("splink") is None:  # the child imports it
        parser.error("splink is not installed: pip install -e '.[bench]'")

    work = work_dir("splink-bench", args.work_dir)
    truth = _write_inputs(work, args)
    print(f"inputs under {work}", flush=True)

    tools: dict[str, dict] = {}
    print("splink ...", flush=True)
    tools["splink"] = _run_splink_tool(work, args.time_limit)
    if not tools["splink"].get("failed"):
        clusters = pd.read_csv(work / "splink_clusters.csv", dtype=str)
        _score(tools["splink"], clusters.set_index("rec_id")["cluster_id"], truth)
    if not args.skip_c360:
        print("c360 identity ...", flush=True)
        tools["c360"] = _run_c360_tool(work, args.time_limit, args.c360_set)
        if tools["c360"]["exit_code"] != 0:
            tools["c360"]["failed"] = True
        else:
            _score(tools["c360"], _read_xref(work / "c360_out"), truth)

    entry = {
        "key": _run_key(args),
        "measured_at": measured_at(),
        "params": {"originals": args.originals, "duplicates": args.duplicates, "seed": args.seed, "mode": args.mode,
                   "max_duplicates_per_original": args.max_duplicates_per_original, "national_id": args.national_id,
                   "splink_threshold": args.threshold, "c360_set": args.c360_set, "time_limit_s": args.time_limit},
        "data": {"records": len(truth), "persons": int(truth["person_id"].nunique()),
                 "true_pairs": _pairs(truth.groupby("person_id").size())},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "versions": _versions(),
        "working_tree": _working_tree(),
        "tools": tools,
    }
    out = Path(args.out)
    runs = json.loads(out.read_text())["runs"] if out.exists() else []
    runs = [r for r in runs if r["key"] != entry["key"]] + [entry]
    write_json(out, {"runs": runs})
    print(markdown(entry))
    print(f"\nwrote {out}")
    return 1 if any(t.get("failed") for t in tools.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
