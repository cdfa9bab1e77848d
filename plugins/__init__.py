"""vattfw's built-in plugins (import name ``vattfw_plugins``, folder ``plugins/``).

Each sub-package is one entry point of the ``vattfw`` group, declared in pyproject.toml
exactly as a third-party package would; each component is one module holding a pydantic
``Config`` and a ``build(config, **deps)`` function.
"""
