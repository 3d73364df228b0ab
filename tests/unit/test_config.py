import pytest

from core.errors import ConfigError
from doppel.config import load_config, parse_config


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DOPPEL_CONFIG", raising=False)
    config = load_config()
    assert config["bus"]["retry"]["attempts"] == 5 and config.path is None


def test_errors_name_the_key_and_the_fix():
    with pytest.raises(ConfigError) as caught:
        parse_config({"bus": {"retry": {"attempts": 0, "first_delay": "soon"}, "prefech": 3}}, None)
    text = str(caught.value)
    assert "bus.retry.attempts: Must be greater than or equal to 1" in text
    assert "bus.retry.first_delay: 'soon' is not a duration; write e.g. 30s" in text
    assert "bus.prefech: unknown key; remove it or correct its spelling" in text


def test_a_secret_written_in_the_file_is_refused_with_the_fix():
    with pytest.raises(ConfigError,
                       match=r"notify.slack_token: looks like a secret; put it in an environment variable"):
        parse_config({"notify": {"slack_token": "xoxb-123456"}}, None)


def test_naming_the_variable_that_holds_a_secret_is_fine():
    config = parse_config({"notify": {"slack_token_env": "DOPPEL_SLACK_TOKEN"}}, None)
    assert config["notify"]["slack_token_env"] == "DOPPEL_SLACK_TOKEN"


def test_missing_explicit_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="pass --config PATH or set DOPPEL_CONFIG"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    file = tmp_path / "doppel.yaml"
    file.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(file)


def test_a_production_on_a_driver_that_does_not_exist_yet_is_refused_naming_those_that_do():
    shop = {"driver": "azure", "base_url": "https://shop.example.com", "components": [{"kind": "files", "path": "app"}]}

    with pytest.raises(ConfigError) as caught:
        parse_config({"productions": {"shop": shop}}, None)

    wanted = "productions.shop.driver: there is no azure driver; Doppel has these: local, openstack, aws"
    assert wanted in str(caught.value)


def _dr_config(target: dict, driver: str = "openstack") -> dict:
    production = {"driver": driver, "cloud": "c", "stack": "s", "template": "/t.yaml"} if driver == "openstack" \
        else {"driver": "aws", "region": "eu-west-1", "stack": "s", "template": "/t.json"} if driver == "aws" \
        else {"components": []}
    return {"productions": {"shop": production}, "dr": {"shop": {"target": target}}}


def test_an_openstack_dr_target_names_its_cloud_region_template_parameters_and_container():
    config = parse_config(_dr_config({"driver": "openstack", "env": "shop-dr", "cloud": "dr-cloud",
                                      "region": "RegionTwo", "parameters": {"flavor": "m1.small"}}), None)
    target = config["dr"]["shop"]["target"]
    assert target["driver"] == "openstack" and target["cloud"] == "dr-cloud" and target["region"] == "RegionTwo"
    assert target["parameters"] == {"flavor": "m1.small"}


def test_a_local_dr_target_with_cloud_keys_or_a_cloud_target_of_a_local_production_is_refused():
    with pytest.raises(ConfigError, match="target.cloud: only a cloud target"):
        parse_config(_dr_config({"env": "shop-dr", "cloud": "dr-cloud"}), None)
    with pytest.raises(ConfigError, match="target.driver: openstack needs a production on openstack"):
        parse_config(_dr_config({"driver": "openstack", "env": "shop-dr"}, driver="local"), None)
    with pytest.raises(ConfigError, match="target.driver: Must be one of: local, openstack, aws"):
        parse_config(_dr_config({"driver": "gce", "env": "shop-dr"}), None)


def test_an_aws_dr_target_names_its_region_bucket_and_profile_and_is_refused_for_a_production_not_on_aws():
    config = parse_config(_dr_config({"driver": "aws", "env": "shop-dr", "region": "eu-central-1",
                                      "bucket": "shop-dr-backups", "profile": "dr",
                                      "parameters": {"InstanceType": "t3.small"}}, driver="aws"), None)
    target = config["dr"]["shop"]["target"]
    assert (target["region"], target["bucket"], target["profile"]) == ("eu-central-1", "shop-dr-backups", "dr")
    with pytest.raises(ConfigError, match="dr.shop.target.driver: aws needs a production on aws, and shop is "
                                          "openstack"):
        parse_config(_dr_config({"driver": "aws", "env": "shop-dr", "region": "eu-central-1"}), None)
    with pytest.raises(ConfigError, match="target.container: only a target with driver: openstack has container"):
        parse_config(_dr_config({"driver": "aws", "env": "shop-dr", "container": "x"}, driver="aws"), None)
    with pytest.raises(ConfigError, match="target.bucket: only a cloud target"):
        parse_config(_dr_config({"env": "shop-dr", "bucket": "shop-dr-backups"}), None)
