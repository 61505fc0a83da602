"""Site-level pieces of a cluster: the Kamailio front door, node liveness, HA, the local cluster."""
