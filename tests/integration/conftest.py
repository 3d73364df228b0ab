"""The cloud test beds' session fixtures, defined once for every directory that runs on them.

tests/integration/openstack, tests/integration/aws and tests/integration/clouds (the suite parametrised over
both drivers) share one control plane connection and one production per cloud for the whole session: a
fixture defined in each directory would make the production twice, under the same name.
"""
from __future__ import annotations

import pytest

from tests.integration.aws import conftest as aws
from tests.integration.openstack import conftest as openstack


@pytest.fixture(scope="session")
def openstack_cloud():
    yield from openstack.connect()


@pytest.fixture(scope="session")
def openstack_production_stack(openstack_cloud):
    yield from openstack.make_production(openstack_cloud)


@pytest.fixture(scope="session")
def moto_server():
    return aws.start_moto()


@pytest.fixture(scope="session")
def aws_production_stack(moto_server):
    yield from aws.make_production()
