"""Writes of the registry, one module per concept.

- `datasets`: training data (imports, uploads) and dataset snapshots;
- `training`: registered models and training runs;
- `versions`: model versions (register, archive), loading and comparing them;
- `aliases`: the production/candidate aliases (set, roll back).

Keyword-only arguments, verb last. Views, admin actions, commands and tasks call these and stay
thin. Domain problems raise `registry.errors.RegistryError(code, message)`; the API maps them to
its error shape.
"""
