"""Cloud drivers (local, openstack), object stores, DNS providers, backups, config rewriting and chat webhooks."""
