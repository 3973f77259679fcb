"""Entry points of the spark-submit jobs and Databricks ``python_wheel_task``s.

``jobs/<name>.py`` files call these; the same functions are console scripts in setup.py.
Each takes the CLI's options (``--env``, ``--region``, ``--set``, ``--conf-dir``).
"""
from __future__ import annotations

from collections.abc import Sequence

from customer360 import cli


def run_pipeline_main(argv: Sequence[str] | None = None) -> int:
    """The whole pipeline: ``spark-submit jobs/run_pipeline.py --env prod --region all``."""
    import sys

    return cli.main(["run", *(sys.argv[1:] if argv is None else argv)])


def train_main(argv: Sequence[str] | None = None) -> int:
    """Train segmentation and churn per region: ``spark-submit jobs/train.py --env prod --region all``."""
    import sys

    return cli.main(["train", *(sys.argv[1:] if argv is None else argv)])


def score_main(argv: Sequence[str] | None = None) -> int:
    """Score with the champion models: ``spark-submit jobs/score.py --env prod --region all``."""
    import sys

    return cli.main(["score", *(sys.argv[1:] if argv is None else argv)])
