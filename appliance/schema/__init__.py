"""The one validation layer: a pydantic model per record, shared by every boundary.

YAML import, web forms, control API bodies, hardware.yaml, headsets.yaml and IVR flows all check
a record with its model here (docs/ARCHITECTURE.md, "Validation"). Errors are data
(`FieldError`), never strings parsed back into field names.
"""
