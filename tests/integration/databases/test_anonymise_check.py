"""`doppel anonymise check PRODUCTION` against a real PostgreSQL or MariaDB production: personal columns without a
rule, and columns new since the rules were reviewed."""
from __future__ import annotations

import pytest
import yaml

from doppel.cli import main
from tests.integration.databases import rental_shop

ENGINES = [pytest.param("pg_shop", marks=pytest.mark.postgresql, id="postgresql"),
           pytest.param("maria_shop", marks=pytest.mark.mariadb, id="mariadb")]


@pytest.mark.parametrize("shops", ENGINES)
def test_check_lists_personal_columns_without_rules_and_new_columns_since_reviewed(shops, request, tmp_path, capsys):
    shop = request.getfixturevalue(shops)([r for r in rental_shop.RULES
                                           if (r["table"], r["column"]) != ("address", "phone")])
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(shop.document))
    shop.query("ALTER TABLE store ADD COLUMN contact text")  # named like nothing personal, holds emails
    shop.query("UPDATE store SET contact = 'owner@high-street.example.org'")

    assert main(["--config", str(config), "anonymise", "check", "shop", "--accept"]) == 1
    out = capsys.readouterr().out
    assert "no rule, looks personal: address.phone (phone)" in out
    assert "no rule, looks personal: store.contact (email values)" in out
    assert "rental.customer_email" not in out  # covered through its foreign key

    shop.query("ALTER TABLE customer ADD COLUMN loyalty_points int")
    assert main(["--config", str(config), "anonymise", "check", "shop"]) == 1
    out = capsys.readouterr().out
    assert "new since reviewed:      customer.loyalty_points" in out
    assert "address.phone" in out


@pytest.mark.postgresql
def test_check_of_an_unknown_production_says_which_exist(pg_shop, tmp_path, capsys):
    shop = pg_shop()
    config = tmp_path / "doppel.yaml"
    config.write_text(yaml.safe_dump(shop.document))

    assert main(["--config", str(config), "anonymise", "check", "nope"]) == 2
    assert "no production 'nope' in the configuration (known: shop)" in capsys.readouterr().err
