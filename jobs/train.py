"""spark-submit entry point for the training of the segmentation and churn models (MLflow).

    spark-submit --py-files dist/customer360.zip jobs/train.py --env prod --region all [--as-of YYYY-MM-DD] [--set key=value]

Exit code 0 when the job succeeded, 1 otherwise (the reason is on stderr).
"""
import sys

from customer360.jobs import train_main


def main(argv=None) -> int:
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
