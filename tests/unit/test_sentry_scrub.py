from core.secrets import MASK, scrub, secret_values


def test_secret_values_come_from_secret_named_variables_and_url_passwords():
    env = {"DOPPEL_AMQP_URL": "amqp://doppel:s3cr3t-pw@127.0.0.1/", "DOPPEL_SWIFT_KEY": "swiftkey99",
           "HOME": "/root", "DOPPEL_DB_PASSWORD": "dbpass77"}
    values = secret_values(env)
    assert {"s3cr3t-pw", "swiftkey99", "dbpass77"} <= values
    assert "/root" not in values


def test_scrub_replaces_values_anywhere_and_masks_secret_named_fields():
    event = {"message": "login with dbpass77 failed", "extra": {"data": {"password": "other", "env": "x"}},
             "breadcrumbs": [{"message": "url amqp://doppel:s3cr3t-pw@h/"}]}
    cleaned = scrub(event, {"dbpass77", "s3cr3t-pw"})
    flat = repr(cleaned)
    assert "dbpass77" not in flat and "s3cr3t-pw" not in flat and "other" not in flat
    assert cleaned["extra"]["data"] == {"password": MASK, "env": "x"}
