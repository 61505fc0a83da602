"""Site-level pieces for several engines on one store: the front door, node liveness, HA."""
