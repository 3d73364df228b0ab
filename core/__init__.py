"""The domain: errors, interfaces and data of clouds, stores, DNS and the bus, typed deps, and the state."""
