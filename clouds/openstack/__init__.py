"""The `openstack` cloud driver: Nova images, Cinder snapshots, Heat stacks and Swift through openstacksdk."""
from clouds.openstack.driver import OpenStackDriver

__all__ = ["OpenStackDriver"]
