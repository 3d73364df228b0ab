"""The domain: errors, the interfaces and data of clouds, stores, DNS and the bus, typed deps, registry, DR state, catalogue, audit, ids, secrets, db."""
