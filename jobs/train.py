"""spark-submit entry point for the training of the segmentation and churn models (MLflow).

    spark-submit jobs/train.py --env prod --region all [--as-of YYYY-MM-DD]   (with the customer360 wheel installed)
"""
import sys

from customer360.jobs import train_main


def main(argv=None) -> int:
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
