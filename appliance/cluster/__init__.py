"""Site-level pieces of a Plateau cluster: the Kamailio front door, node liveness, HA."""
