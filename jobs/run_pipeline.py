"""spark-submit entry point for the whole pipeline.

    spark-submit jobs/run_pipeline.py --env prod --region all   (with the customer360 wheel installed)
"""
import sys

from customer360.jobs import run_pipeline_main


def main(argv=None) -> int:
    return run_pipeline_main(argv)


if __name__ == "__main__":
    sys.exit(main())
