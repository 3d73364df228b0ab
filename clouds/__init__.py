"""Cloud drivers behind one interface (local, openstack, aws), object stores and DNS providers."""
