"""databricks.yml and infra/databricks/jobs.yml: every task runs a real entry point with options the
CLI accepts, every variable is defined, the stages run in pipeline order once per region."""
from __future__ import annotations

import json
import re
from importlib import import_module
from importlib.metadata import entry_points

import yaml

from customer360 import cli, jobs
from customer360.config import load_config

from tests.conftest import CONF_DIR, REPO

BUNDLE = yaml.safe_load((REPO / "databricks.yml").read_text())
JOBS_TEXT = (REPO / "infra" / "databricks" / "jobs.yml").read_text()
BUNDLE_JOBS = yaml.safe_load(JOBS_TEXT)["resources"]["jobs"]
VARIABLE = re.compile(r"\$\{var\.([A-Za-z_][A-Za-z0-9_]*)\}")


def _wheel_tasks(job):
    """(outer task, the task that runs) of a job: for_each tasks run their inner task."""
    for task in job["tasks"]:
        yield task, task["for_each_task"]["task"] if "for_each_task" in task else task


def _substitute(value: str, variables: dict[str, str]) -> str:
    value = VARIABLE.sub(lambda m: str(variables[m.group(1)]), value).replace("${bundle.target}", "dev")
    return value.replace("{{input}}", "us").replace("{{job.parameters.as_of}}", "")


def test_targets_and_variables():
    assert BUNDLE["include"] == ["infra/databricks/*.yml"]
    assert {t: BUNDLE["targets"][t]["mode"] for t in ("dev", "prod")} == {"dev": "development", "prod": "production"}
    defined = BUNDLE["variables"]
    assert {"catalog", "schema", "lakehouse_root"} <= set(defined)
    assert all(v.get("description") and "default" in v for v in defined.values())
    used = set(VARIABLE.findall(JOBS_TEXT)) | set(VARIABLE.findall((REPO / "databricks.yml").read_text()))
    assert used <= set(defined), f"undefined variables: {used - set(defined)}"
    for target in BUNDLE["targets"].values():
        assert set(target.get("variables", {})) <= set(defined)
    assert BUNDLE["artifacts"]["customer360_wheel"]["type"] == "whl"


def test_every_task_calls_an_entry_point_that_exists():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for job in BUNDLE_JOBS.values():
        assert job["name"].startswith("${bundle.target}_")
        for _, task in _wheel_tasks(job):
            wheel_task = task["python_wheel_task"]
            assert wheel_task["package_name"] == "customer360"
            module, _, function = scripts[wheel_task["entry_point"]].partition(":")
            assert callable(getattr(import_module(module), function))
            assert {"whl": "../../dist/*.whl"} in task["libraries"]
    assert scripts["c360"] == "customer360.cli:main"


def test_the_pipeline_runs_every_stage_in_order_once_per_region():
    job = BUNDLE_JOBS["customer360_pipeline"]
    order = [t["task_key"] for t in job["tasks"]]
    assert order == ["ingest", "identity", "facts", "quality", "gold", "ml", "monitoring"]
    for before, task in zip(order, job["tasks"][1:]):
        assert task["depends_on"] == [{"task_key": before}]
    regions = json.loads(BUNDLE["variables"]["regions"]["default"])
    assert set(regions) == set(load_config("local", conf_dir=CONF_DIR).regions)
    for outer, task in _wheel_tasks(job):
        assert outer["for_each_task"]["inputs"] == "${var.regions}"
        assert task["python_wheel_task"]["entry_point"] == f"c360-{outer['task_key']}"
        parameters = task["python_wheel_task"]["parameters"]
        assert parameters[parameters.index("--region") + 1] == "{{input}}"


def test_jobs_define_the_job_parameters_they_use_and_prod_deploys_to_a_shared_root():
    for name, job in BUNDLE_JOBS.items():
        defined = {p["name"] for p in job.get("parameters", [])}
        used = set(re.findall(r"\{\{job\.parameters\.(\w+)\}\}", yaml.safe_dump(job)))
        assert used <= defined, f"{name} uses undefined job parameters {used - defined}"
    assert BUNDLE["targets"]["prod"]["workspace"]["root_path"].startswith("/Workspace/Shared/")
    # the first run creates the tables: regions one at a time unless raised deliberately
    assert BUNDLE["variables"]["region_concurrency"]["default"] == 1


def test_task_parameters_parse_and_their_settings_are_valid_config():
    defaults = {name: v["default"] for name, v in BUNDLE["variables"].items()}
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for job in BUNDLE_JOBS.values():
        for _, task in _wheel_tasks(job):
            name = scripts[task["python_wheel_task"]["entry_point"]].rpartition(":")[2].removesuffix("_main")
            argv = [_substitute(p, defaults) for p in task["python_wheel_task"]["parameters"]]
            args = cli.build_parser().parse_args(jobs.job_argv(name, [*argv, "--conf-dir", str(CONF_DIR)]))
            config = load_config("local", conf_dir=CONF_DIR, overrides=args.overrides)
            assert config.lakehouse.root == defaults["lakehouse_root"]
            assert config.ingest.landing_root == defaults["landing_root"]
            assert config.mlflow.registered_model_prefix == f"c360_{defaults['schema']}"
            assert config.mlflow.experiment_prefix == "/Shared/customer360/dev"  # ${bundle.target}, here dev
            assert config.governance.unity_catalog.catalog == defaults["catalog"]
            assert config.select_regions(args.region) == ("us",)


def test_graphframes_library_matches_the_python_package():
    pinned = re.search(r'"graphframes-py==([\d.]+)"', (REPO / "setup.py").read_text()).group(1)
    for job in BUNDLE_JOBS.values():
        for _, task in _wheel_tasks(job):
            maven = [lib["maven"]["coordinates"] for lib in task["libraries"] if "maven" in lib]
            assert maven == [f"io.graphframes:graphframes-spark4_2.13:{pinned}"]
