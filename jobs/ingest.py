"""spark-submit entry point of the ingest stage (`c360 ingest`).

    spark-submit --py-files dist/customer360.zip jobs/ingest.py --env prod --region all [--as-of YYYY-MM-DD] [--set key=value]

Exit code 0 when the stage succeeded, 1 otherwise (the reason is on stderr).
"""
import sys

from customer360.jobs import ingest_main


def main(argv=None) -> int:
    return ingest_main(argv)


if __name__ == "__main__":
    sys.exit(main())
