"""spark-submit entry point for the batch scoring with the champion models.

    spark-submit jobs/score.py --env prod --region all [--as-of YYYY-MM-DD]   (with the customer360 wheel installed)
"""
import sys

from customer360.jobs import score_main


def main(argv=None) -> int:
    return score_main(argv)


if __name__ == "__main__":
    sys.exit(main())
