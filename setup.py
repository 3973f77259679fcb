"""Packaging for the customer-360 lakehouse.

The package lives in lib/customer360; the YAML configuration in conf/ ships inside it as
``customer360.conf`` so an installed wheel (spark-submit, Databricks) carries its defaults.
"""
from setuptools import setup

INSTALL_REQUIRES = [
    # The JVM jars that go with these are pinned in infra/jvm/pom.xml (`make jars`):
    # pyspark 4.1.1 pairs with delta-spark 4.4.0, whose jar is io.delta:delta-spark_4.1_2.13:4.4.0
    # (4.4.1 is on PyPI but was not released for Spark 4.1), and graphframes-py 0.12.3 with
    # io.graphframes:graphframes-spark4_2.13:0.12.3. A session refuses a jar out of step.
    "pyspark==4.1.1",
    "delta-spark==4.4.0",
    "deltalake==1.6.6",
    "graphframes-py==0.12.3",
    "mlflow==3.17.2",
    "pydantic==2.13.4",
    "pyyaml==6.0.3",
    # pyspark.pandas (the pandas API on Spark, inside pyspark) needs pandas < 3.
    "pandas==2.3.3",
    "pyarrow==22.0.0",
    "numpy==2.4.6",
    # phone numbers to E.164 (Google's libphonenumber metadata), used in vectorized pandas UDFs
    "phonenumbers==9.0.43",
    # optimal matching of segment centroids between model versions (Hungarian algorithm)
    "scipy==1.17.1",
    # Spark SQL parsing for `c360 sql`: table names -> the role's views
    "sqlglot==30.30.0",
    # signed role tokens (HS256) for c360 sql and every other door to role SQL
    "PyJWT==2.15.1",
    # c360 sql-server speaks HiveServer2's Thrift protocol: the thrift runtime and the protocol's
    # generated code (the TCLIService package PyHive ships; PyHive is also a Python client of it)
    "thrift==0.25.0",
    "PyHive==0.7.0",
    # the concordance index of the time-to-churn model (ml/survival.py); the tests also compare the
    # Weibull AFT fit with its WeibullAFTFitter. autograd is its gradient library (pinned to the
    # release tested with numpy 2.4); the rest are its own requirements, pinned as installed
    "lifelines==0.30.0",
    "autograd==1.9.1",
    "autograd-gamma==0.5.0",
    "formulaic==1.2.2",
    "interface-meta==2.0.1",
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest==9.0.3",
        "pytest-spark==0.8.0",
        # make test runs the suite in two processes (tests/conftest.py groups what must share one)
        "pytest-xdist==3.8.0",
        "chispa==0.12.0",
        "networkx==3.6.1",
        # property-based fuzzing of the role SQL gate (tests/governance/test_sqlguard.py)
        "hypothesis==6.170.15",
        # an independent implementation the ML metric tests compare with
        "scikit-learn==1.9.1",
        # the reference implementation of BG/NBD and Gamma-Gamma that tests/ml/test_clv.py compares
        # ml/clv.py with (also the CDNOW data it ships); its autograd is pinned above
        "lifetimes==0.11.3",
        # PyHive's SASL PLAIN login, as the tests of c360 sql-server connect (beeline is the JDBC client)
        "thrift-sasl==0.4.3",
        "pure-sasl==0.6.2",
    ],
    # benchmarks/identity_splink.py only: Splink (DuckDB backend) as the reference for `c360 identity`;
    # never imported by the package. Installs beside the pins above without changing any of them.
    "bench": [
        "splink==5.0.0",
        "duckdb==2.0.1",
    ],
}

setup(
    name="customer360",
    version="0.1.0",
    description="Customer-360 lakehouse on Apache Spark and Delta Lake",
    python_requires=">=3.10",
    package_dir={"": "lib", "customer360.conf": "conf"},
    packages=[
        "customer360",
        "customer360.config",
        "customer360.generate",
        "customer360.lakehouse",
        "customer360.bronze",
        "customer360.identity",
        "customer360.facts",
        "customer360.features",
        "customer360.gold",
        "customer360.ml",
        "customer360.governance",
        "customer360.monitoring",
        "customer360.conf",
        "customer360.conf.regions",
    ],
    package_data={"customer360": ["*.properties"], "customer360.conf": ["*.yaml"], "customer360.conf.regions": ["*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={
        "console_scripts": [
            "c360=customer360.cli:main",
            "c360-run-pipeline=customer360.jobs:run_pipeline_main",
            "c360-ingest=customer360.jobs:ingest_main",
            "c360-identity=customer360.jobs:identity_main",
            "c360-facts=customer360.jobs:facts_main",
            "c360-quality=customer360.jobs:quality_main",
            "c360-gold=customer360.jobs:gold_main",
            "c360-ml=customer360.jobs:ml_main",
            "c360-train=customer360.jobs:train_main",
            "c360-score=customer360.jobs:score_main",
            "c360-monitoring=customer360.jobs:monitoring_main",
        ],
    },
)
