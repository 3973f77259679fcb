"""spark-submit entry point of the monitoring stage (`c360 monitor`).

    spark-submit --py-files dist/customer360.zip jobs/monitoring.py --env prod --region all [--as-of YYYY-MM-DD] [--set key=value]

Exit code 0 when the stage succeeded, 1 otherwise (the reason is on stderr).
"""
import sys

from customer360.jobs import monitoring_main


def main(argv=None) -> int:
    return monitoring_main(argv)


if __name__ == "__main__":
    sys.exit(main())
