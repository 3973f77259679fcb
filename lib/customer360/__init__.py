"""Customer-360 lakehouse on Apache Spark: bronze, silver (identity resolution) and gold Delta tables."""

__version__ = "0.1.0"
