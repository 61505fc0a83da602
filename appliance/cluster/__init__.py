"""Site-level pieces for several engines on one store: the Kamailio front door, node liveness, HA."""
