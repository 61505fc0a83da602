"""Storage: SQLite (WAL) database, migrations, records and the YAML provisioning file."""

from appliance.store.config_yaml import (
    ConfigData,
    ImportReport,
    export_config,
    import_config,
    parse_config,
)
from appliance.store.db import Store
from appliance.store.demo import seed_demo
from appliance.store.errors import ConfigError, StoreError
from appliance.store.models import (
    BlockedAddress,
    Cdr,
    Extension,
    InboundRoute,
    OutboundRoute,
    Registration,
    Trunk,
)
from appliance.store.patterns import pattern_to_regex, validate_pattern

__all__ = [
    "BlockedAddress",
    "Cdr",
    "ConfigData",
    "ConfigError",
    "Extension",
    "ImportReport",
    "InboundRoute",
    "OutboundRoute",
    "Registration",
    "Store",
    "StoreError",
    "Trunk",
    "export_config",
    "import_config",
    "parse_config",
    "pattern_to_regex",
    "seed_demo",
    "validate_pattern",
]
