"""jobs/*.py: one spark-submit entry point per stage, all with the same options, exit code 0 or 1."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from customer360 import cli, jobs

from tests.conftest import CONF_DIR, REPO, load_script


def _load(path):
    return load_script(path, f"job_{path.stem}")


def test_every_stage_has_a_job_file_and_a_console_script():
    files = {p.stem for p in (REPO / "jobs").glob("*.py")}
    assert files == set(jobs.JOBS)
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for name in jobs.JOBS:
        assert scripts[f"c360-{name.replace('_', '-')}"] == f"customer360.jobs:{name}_main"


@pytest.mark.parametrize("name", sorted(jobs.JOBS))
def test_job_files_call_their_own_job(name, monkeypatch):
    calls = []
    monkeypatch.setattr(jobs, "run_job", lambda job, argv=None: calls.append((job, argv)) or 0)
    module = _load(REPO / "jobs" / f"{name}.py")
    assert module.main(["--region", "us"]) == 0
    assert calls == [(name, ["--region", "us"])]


def test_job_arguments_map_to_the_cli_command(capsys):
    assert jobs.job_argv("monitoring", ["--env", "prod", "--as-of", "2026-06-30"]) == ["monitor", "--env", "prod", "--as-of", "2026-06-30"]
    assert jobs.job_argv("gold", ["--as-of=2026-06-30", "--region", "us"]) == ["gold", "--as-of", "2026-06-30", "--region", "us"]
    # an orchestrator's unset parameter: the default date
    assert jobs.job_argv("ml", ["--as-of", "", "--region", "us"]) == ["ml", "--region", "us"]
    assert capsys.readouterr().err == ""
    # stages before gold take no date: dropped, and said so
    assert jobs.job_argv("ingest", ["--region", "us", "--as-of", "2026-06-30"]) == ["ingest", "--region", "us"]
    assert "c360-ingest: --as-of 2026-06-30 does not apply to ingest" in capsys.readouterr().err
    with pytest.raises(KeyError, match="unknown job 'nope'"):
        jobs.job_argv("nope", [])


def test_every_job_parses_the_common_options():
    parser = cli.build_parser()
    common = ["--env", "prod", "--region", "us", "--as-of", "2026-06-30", "--set", "lakehouse.root=/tmp/x", "--conf-dir", str(CONF_DIR)]
    for name in jobs.JOBS:
        args = parser.parse_args(jobs.job_argv(name, common))
        assert (args.env, args.region, args.overrides) == ("prod", ["us"], ["lakehouse.root=/tmp/x"])
        if args.command in {"run", "gold", "ml", "train", "score", "monitor"}:
            assert str(args.as_of) == "2026-06-30"


def test_failures_exit_1_with_the_reason_on_stderr(capsys, monkeypatch):
    # a configuration error (c360 exits 2): the job exits 1, before any Spark session starts
    assert jobs.run_job("ingest", ["--conf-dir", str(CONF_DIR), "--region", "zz"]) == 1
    err = capsys.readouterr().err
    assert "unknown region 'zz'" in err and "c360-ingest: failed (c360 ingest exited 2" in err
    # bad options (argparse exits 2)
    assert jobs.run_job("gold", ["--no-such-option"]) == 1
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    # anything unexpected
    def boom(argv):
        raise RuntimeError("driver lost")
    monkeypatch.setattr(cli, "main", boom)
    assert jobs.run_job("facts", []) == 1
    assert "c360-facts: failed: RuntimeError: driver lost" in capsys.readouterr().err
    monkeypatch.setattr(cli, "main", lambda argv: 0)
    assert jobs.run_job("facts", []) == 0


def test_entry_points_raise_on_failure_for_databricks(capsys):
    """A Databricks wheel task ignores return values: a failed job must raise to fail the task."""
    with pytest.raises(SystemExit) as failed:
        jobs.ingest_main(["--conf-dir", str(CONF_DIR), "--region", "zz"])
    assert failed.value.code == 1
    assert "unknown region 'zz'" in capsys.readouterr().err
