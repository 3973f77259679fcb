"""Entry points of the spark-submit jobs and Databricks ``python_wheel_task``s.

``jobs/<name>.py`` files call these, and the same functions are the wheel's console scripts
(``c360-<name>`` in setup.py). Every job takes the same options: ``--env``, ``--region``,
``--as-of YYYY-MM-DD``, ``--set key=value`` (repeatable) and ``--conf-dir``, so one parameter
list drives every task of a multi-task job. A job exits 0 when it succeeded and 1 otherwise, with
the reason on stderr (an orchestrator needs no more than that; ``c360`` itself keeps 2 for
usage and configuration errors): ``run_job`` returns the code, the entry points raise
``SystemExit(1)``, since a Databricks wheel task ignores a return value.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from customer360 import cli

#: job name -> the ``c360`` command it runs. Stages before gold take no as-of date (they process
#: every new file); their jobs accept ``--as-of`` anyway and say so on stderr when it is given.
JOBS: dict[str, str] = {
    "run_pipeline": "run",
    "ingest": "ingest",
    "identity": "identity",
    "facts": "facts",
    "quality": "quality",
    "gold": "gold",
    "ml": "ml",
    "train": "train",
    "score": "score",
    "monitoring": "monitor",
}

#: commands whose own parser has ``--as-of``
_WITH_AS_OF = {"run", "gold", "ml", "train", "score", "monitor"}


def job_argv(name: str, argv: Sequence[str]) -> list[str]:
    """The ``c360`` arguments of job ``name`` called with ``argv``.

    An empty ``--as-of`` (an orchestrator's unset parameter, e.g. ``{{job.parameters.as_of}}``)
    means the default date. Stages that take no date drop ``--as-of`` and say so on stderr.
    """
    if name not in JOBS:
        raise KeyError(f"unknown job {name!r}; jobs: {', '.join(JOBS)}")
    command = JOBS[name]
    args: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--as-of" or arg.startswith("--as-of="):
            value = arg.partition("=")[2] if "=" in arg else (rest.pop(0) if rest else "")
            if not value.strip():
                continue
            if command not in _WITH_AS_OF:
                print(f"c360-{name}: --as-of {value} does not apply to {name} (it processes every new input); ignored",
                      file=sys.stderr)
                continue
            args += ["--as-of", value]
        else:
            args.append(arg)
    return [command, *args]


def run_job(name: str, argv: Sequence[str] | None = None) -> int:
    """Run job ``name``: 0 on success, 1 on any failure (the reason is on stderr)."""
    args = job_argv(name, sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse: bad options (its message is on stderr already)
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # noqa: BLE001 - an orchestrator gets the reason and exit code 1
        print(f"c360-{name}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if code:
        print(f"c360-{name}: failed (c360 {args[0]} exited {code}; see the messages above)", file=sys.stderr)
        return 1
    return 0


def _main(name: str) -> Callable[[Sequence[str] | None], int]:
    def main(argv: Sequence[str] | None = None) -> int:
        code = run_job(name, argv)
        if code:
            # Databricks runs a python_wheel_task's entry point and ignores what it returns: only
            # an exception (SystemExit here) fails the task and stops the stages after it
            raise SystemExit(code)
        return 0

    main.__name__ = f"{name}_main"
    main.__doc__ = f"``spark-submit jobs/{name}.py --env prod --region all``: runs ``c360 {JOBS[name]}``."
    return main


run_pipeline_main = _main("run_pipeline")
ingest_main = _main("ingest")
identity_main = _main("identity")
facts_main = _main("facts")
quality_main = _main("quality")
gold_main = _main("gold")
ml_main = _main("ml")
train_main = _main("train")
score_main = _main("score")
monitoring_main = _main("monitoring")
