"""The provisioning YAML import (appliance.store.config_yaml), as ``plateau config import`` and
the web's import page run it, into a real store.

Contract: ``parse_config`` and ``import_config`` raise only ConfigError (naming the field); a
file they accept is in the store, and the store's export parses again.
"""

from __future__ import annotations


from fuzz.harness import Target, instrumented, main, scratch, text

with instrumented():
    from appliance.store import config_yaml
    from appliance.store.db import Store
    from appliance.store.errors import ConfigError

_dir = scratch("plateau-fuzz-config-")
_store = Store(_dir / "plateau.db")


def one_input(data: bytes) -> None:
    doc = text(data)
    config_yaml.parse_config(doc)  # the cheap part first: most inputs stop here
    config_yaml.import_config(_store, doc)
    config_yaml.parse_config(config_yaml.export_config(_store))


TARGET = Target("config_import", __doc__ or "", one_input, (ConfigError,))

if __name__ == "__main__":
    main(TARGET)
