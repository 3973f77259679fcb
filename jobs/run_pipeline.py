"""spark-submit entry point for the whole pipeline.

    spark-submit --py-files dist/customer360.zip jobs/run_pipeline.py --env prod --region all [--as-of YYYY-MM-DD] [--set key=value]

Exit code 0 when the job succeeded, 1 otherwise (the reason is on stderr).
"""
import sys

from customer360.jobs import run_pipeline_main


def main(argv=None) -> int:
    return run_pipeline_main(argv)


if __name__ == "__main__":
    sys.exit(main())
