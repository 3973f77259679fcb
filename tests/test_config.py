from __future__ import annotations

import textwrap

import pytest

from customer360.config import AppConfig, load_config, parse_overrides
from customer360.errors import ConfigError

from tests.conftest import CONF_DIR


def _write(path, text):
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_local_config_loads_every_region_with_its_variant():
    config = load_config("local", conf_dir=CONF_DIR)
    assert isinstance(config, AppConfig)
    assert config.env == "local"
    assert config.pipeline.regions == ("us", "gb", "de", "fr")
    assert {"us", "gb", "de", "fr"} <= set(config.regions)
    assert config.regions["gb"].currency == "GBP"
    assert config.regions["us"].consent_regime == "opt_out"
    assert config.regions["de"].consent_regime == "opt_in"
    # region_defaults from base.yaml, overridden per region
    assert config.regions["us"].churn_horizon_days == 90
    assert config.regions["de"].churn_horizon_days == 120
    assert config.regions["de"].segment_count.max == 6
    assert config.regions["us"].segment_count.max == 8


def test_precedence_base_env_region_set(conf_dir):
    _write(conf_dir / "base.yaml", (conf_dir / "base.yaml").read_text() + "\n")
    base = load_config("prod", conf_dir=conf_dir)
    assert base.spark.shuffle_partitions == 200  # prod.yaml beats base.yaml (8)
    assert base.spark.app_name == "customer360"  # only base sets it
    assert base.lakehouse.root == "/Volumes/main/customer360/lakehouse"
    assert load_config("prod", conf_dir=conf_dir, overrides=["lakehouse.root=s3://bucket/lh"]).lakehouse.root == "s3://bucket/lh"  # URIs kept

    _write(conf_dir / "prod.yaml", (conf_dir / "prod.yaml").read_text() + "region_defaults:\n  churn_horizon_days: 60\n")
    env_default = load_config("prod", conf_dir=conf_dir)
    assert env_default.regions["us"].churn_horizon_days == 60  # env beats base defaults
    assert env_default.regions["de"].churn_horizon_days == 120  # the region file beats the env

    overridden = load_config(
        "prod",
        conf_dir=conf_dir,
        overrides=[
            "regions.de.churn_horizon_days=30", "spark.shuffle_partitions=16", "regions.*.currency=CHF",
            "finance.fx_rates.CHF=[{valid_from: 2021-01-01, rate: 1.05}]",  # a currency needs rates
        ],
    )
    assert overridden.regions["de"].churn_horizon_days == 30  # --set beats the region file
    assert overridden.spark.shuffle_partitions == 16
    assert {r.currency for r in overridden.regions.values()} == {"CHF"}


def test_local_root_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("local", conf_dir=CONF_DIR)
    assert config.lakehouse.root == str(tmp_path / "lakehouse")


def test_config_is_frozen():
    config = load_config("local", conf_dir=CONF_DIR)
    with pytest.raises(Exception, match="frozen"):
        config.spark.shuffle_partitions = 3


def test_unknown_key_names_file_and_key(conf_dir):
    _write(conf_dir / "local.yaml", (conf_dir / "local.yaml").read_text() + "spark:\n  shuffle_partitons: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config("local", conf_dir=conf_dir)
    assert f"{conf_dir / 'local.yaml'}: spark.shuffle_partitons: unknown key" in str(err.value)


def test_wrong_type_in_region_file_names_that_file(conf_dir):
    _write(conf_dir / "regions" / "fr.yaml", (conf_dir / "regions" / "fr.yaml").read_text() + "churn_horizon_days: soon\n")
    with pytest.raises(ConfigError) as err:
        load_config("local", conf_dir=conf_dir)
    message = str(err.value)
    assert f"{conf_dir / 'regions' / 'fr.yaml'}: regions.fr.churn_horizon_days" in message
    assert "valid integer" in message


def test_missing_required_value_is_reported(conf_dir):
    text = (conf_dir / "regions" / "gb.yaml").read_text().replace("currency: GBP\n", "")
    _write(conf_dir / "regions" / "gb.yaml", text)
    with pytest.raises(ConfigError, match=r"regions\.gb\.currency: required value is missing"):
        load_config("local", conf_dir=conf_dir)


def test_region_code_must_match_file_name(conf_dir):
    _write(conf_dir / "regions" / "gb.yaml", (conf_dir / "regions" / "gb.yaml").read_text().replace("code: gb", "code: uk"))
    with pytest.raises(ConfigError, match=f"{conf_dir / 'regions' / 'gb.yaml'}: regions.gb.code: file for region 'gb' declares code 'uk'"):
        load_config("local", conf_dir=conf_dir)


def test_bad_values_fail_with_reason():
    with pytest.raises(ConfigError, match="unknown IANA time zone 'Mars/Olympus'"):
        load_config("local", conf_dir=CONF_DIR, overrides=["regions.us.time_zone=Mars/Olympus"])
    with pytest.raises(ConfigError, match=r"--set: lakehouse.engine: Input should be 'auto', 'delta-spark' or 'delta-rs'"):
        load_config("local", conf_dir=CONF_DIR, overrides=["lakehouse.engine=hive"])
    with pytest.raises(ConfigError, match=r"segment_count: Value error, min \(9\) must not exceed max \(8\)"):
        load_config("local", conf_dir=CONF_DIR, overrides=["regions.us.segment_count.min=9"])
    with pytest.raises(ConfigError, match="--set: pipeline.regions: names \\['xx'\\]"):
        load_config("local", conf_dir=CONF_DIR, overrides=["pipeline.regions=[us, xx]"])


def test_pipeline_stages_must_be_known_and_in_order():
    assert load_config("local", conf_dir=CONF_DIR).pipeline.stages == ("ingest", "identity", "facts", "quality", "gold", "ml", "monitoring")
    picked = load_config("local", conf_dir=CONF_DIR, overrides=["pipeline.stages=[ingest, identity]"])
    assert picked.pipeline.stages == ("ingest", "identity")
    with pytest.raises(ConfigError, match=r"pipeline.stages: .*unknown stage\(s\) \['silver'\]"):
        load_config("local", conf_dir=CONF_DIR, overrides=["pipeline.stages=[ingest, silver]"])
    with pytest.raises(ConfigError, match=r"stages run in pipeline order: write \['ingest', 'gold'\]"):
        load_config("local", conf_dir=CONF_DIR, overrides=["pipeline.stages=[gold, ingest]"])


def test_unknown_environment_and_missing_dir(tmp_path):
    with pytest.raises(ConfigError, match="unknown environment 'staging'.*known: local, prod"):
        load_config("staging", conf_dir=CONF_DIR)
    with pytest.raises(ConfigError, match="no base.yaml here"):
        load_config("local", conf_dir=tmp_path)


def test_invalid_yaml_names_the_file(conf_dir):
    _write(conf_dir / "local.yaml", "spark: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{conf_dir / 'local.yaml'}: not valid YAML"):
        load_config("local", conf_dir=conf_dir)


def test_sources_mapping_is_validated(conf_dir):
    text = (conf_dir / "sources.yaml").read_text().replace("device_id: device_id", "shoe_size: device_id")
    _write(conf_dir / "sources.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config("local", conf_dir=conf_dir)
    assert f"{conf_dir / 'sources.yaml'}: sources.web_events.attributes" in str(err.value)
    assert "unknown canonical attribute(s) ['shoe_size']" in str(err.value)


def test_set_parsing():
    assert parse_overrides(["a.b=4", "c=[x, y]", "d=true", "e="]) == [
        (("a", "b"), 4),
        (("c",), ["x", "y"]),
        (("d",), True),
        (("e",), ""),
    ]
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_overrides(["spark.shuffle_partitions"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_overrides(["bad key=1"])
    with pytest.raises(ConfigError, match="regions.<code>.<key>"):
        load_config("local", conf_dir=CONF_DIR, overrides=["region_defaults.churn_horizon_days=3"])


@pytest.mark.parametrize(
    "override",
    [
        "governance.roles.finance.pii=clear",
        "governance.roles.finance.tables=[bronze.*]",
        "governance.roles={}",
        "governance.pii_columns={}",
        "governance.sql.max_rows=100000000",
        "governance.erasure.tombstone_attributes=[]",
        "governance={}",
    ],
)
def test_the_access_policy_cannot_be_set_from_the_command_line(override):
    with pytest.raises(ConfigError, match="the access policy .* comes from the configuration files only"):
        load_config("local", conf_dir=CONF_DIR, overrides=[override])


def test_where_the_unity_catalog_statements_point_may_be_set():
    config = load_config("local", conf_dir=CONF_DIR, overrides=["governance.unity_catalog.catalog=dev", "lakehouse.catalog.name=dev"])
    assert config.governance.unity_catalog.catalog == "dev"
    assert config.governance.roles["finance"].pii == "drop"


def test_select_regions():
    config = load_config("local", conf_dir=CONF_DIR)
    assert config.select_regions(None) == ("us", "gb", "de", "fr")
    assert config.select_regions(["de,fr", "DE"]) == ("de", "fr")
    assert set(config.select_regions(["all"])) == set(config.regions)
    with pytest.raises(ConfigError, match="unknown region 'xx'; configured regions: de, es, fr, gb, nl, us"):
        config.select_regions(["us", "xx"])


def test_secret_only_from_environment(monkeypatch, conf_dir):
    monkeypatch.delenv("C360_PII_HASH_KEY", raising=False)
    prod = load_config("prod", conf_dir=CONF_DIR)
    with pytest.raises(ConfigError, match="environment variable C360_PII_HASH_KEY .* is not set"):
        prod.pii_hash_key()
    monkeypatch.setenv("C360_PII_HASH_KEY", "s3cret")
    assert prod.pii_hash_key() == b"s3cret"

    monkeypatch.delenv("C360_PII_HASH_KEY")
    local = load_config("local", conf_dir=CONF_DIR)
    assert local.pii_hash_key() == b"customer360-development-key-not-secret"

    # a key written into a file is rejected, not silently used
    _write(conf_dir / "prod.yaml", (conf_dir / "prod.yaml").read_text().replace("pii:\n", "pii:\n  hash_key: abc\n"))
    with pytest.raises(ConfigError, match="pii.hash_key: unknown key"):
        load_config("prod", conf_dir=conf_dir)


def test_dev_key_only_in_local(monkeypatch):
    with pytest.raises(ConfigError, match="--set: pii.allow_dev_key: only the local env may use the public development key"):
        load_config("prod", conf_dir=CONF_DIR, overrides=["pii.allow_dev_key=true"])


def test_spark_conf_and_storage_options_take_dotted_keys_and_any_scalar(conf_dir):
    config = load_config(
        "local",
        conf_dir=CONF_DIR,
        overrides=["spark.conf.spark.sql.ansi.enabled=false", "lakehouse.storage_options.timeout=30"],
    )
    assert config.spark.conf == {"spark.sql.ansi.enabled": "false"}
    assert config.lakehouse.storage_options == {"timeout": "30"}
    text = (conf_dir / "local.yaml").read_text().replace(
        "  driver_memory: 4g\n", "  driver_memory: 4g\n  conf: {spark.sql.ansi.enabled: false, spark.sql.files.maxRecordsPerFile: 1000}\n"
    )
    _write(conf_dir / "local.yaml", text)
    from_file = load_config("local", conf_dir=conf_dir)
    assert from_file.spark.conf == {"spark.sql.ansi.enabled": "false", "spark.sql.files.maxRecordsPerFile": "1000"}


def test_yaml_booleans_are_only_true_and_false(conf_dir):
    # 'NO' is Norway, not False (YAML 1.1 would turn it into a boolean)
    _write(conf_dir / "regions" / "no.yaml", "code: no\nname: Norway\ndefault_phone_country: NO\ncurrency: NOK\ntime_zone: Europe/Oslo\nconsent_regime: opt_in\n")
    config = load_config(
        "local", conf_dir=conf_dir, overrides=["regions.no.name=on", "finance.fx_rates.NOK=[{valid_from: 2021-01-01, rate: 0.086}]"]
    )
    assert (config.regions["no"].code, config.regions["no"].default_phone_country) == ("no", "NO")
    assert config.regions["no"].name == "on"


def test_percent_in_lakehouse_root_is_refused():
    with pytest.raises(ConfigError, match="'%' is not allowed in the lakehouse root"):
        load_config("local", conf_dir=CONF_DIR, overrides=["lakehouse.root=/tmp/a%20b"])


def test_gold_settings_load_with_dated_rates_and_region_timeouts():
    from datetime import date

    config = load_config("local", conf_dir=CONF_DIR)
    usd = config.finance.fx_rates["USD"]
    assert config.finance.reporting_currency == "EUR"
    assert (usd[0].valid_from, usd[0].rate) == (date(2021, 1, 1), 0.8455)
    assert [r.valid_from for r in usd] == sorted(r.valid_from for r in usd)
    assert config.features.as_of is None and config.features.outlier_z == 3.5
    assert config.features.bot.max_session_events == 300
    assert {code: r.session_timeout_minutes for code, r in config.regions.items()} == {c: 30 for c in config.regions}
    overridden = load_config("local", conf_dir=CONF_DIR, overrides=["features.as_of=2026-03-31", "regions.de.session_timeout_minutes=45"])
    assert overridden.features.as_of == date(2026, 3, 31) and overridden.regions["de"].session_timeout_minutes == 45


def test_a_region_currency_without_rates_fails_at_start(conf_dir):
    _write(conf_dir / "regions" / "es.yaml", (conf_dir / "regions" / "es.yaml").read_text().replace("currency: EUR", "currency: CHF"))
    with pytest.raises(ConfigError) as err:
        load_config("local", conf_dir=conf_dir)
    assert f"{conf_dir / 'gold.yaml'}: finance.fx_rates: region es uses CHF, which has no rates to EUR" in str(err.value)


def test_rates_must_be_dated_in_order_and_the_reporting_currency_converts_at_one(conf_dir):
    gold = (conf_dir / "gold.yaml").read_text()
    _write(conf_dir / "gold.yaml", gold.replace("{valid_from: 2022-01-01, rate: 0.9496}", "{valid_from: 2020-01-01, rate: 0.9496}"))
    with pytest.raises(ConfigError, match=r"gold.yaml: finance.fx_rates: .*USD: valid_from dates must be strictly increasing"):
        load_config("local", conf_dir=conf_dir)
    _write(conf_dir / "gold.yaml", gold.replace("EUR: [{valid_from: 2000-01-01, rate: 1.0}]", "EUR: [{valid_from: 2000-01-01, rate: 1.1}]"))
    with pytest.raises(ConfigError, match="the reporting currency converts at rate 1"):
        load_config("local", conf_dir=conf_dir)
