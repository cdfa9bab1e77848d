"""vattfw's built-in plugins (import name ``vattfw_plugins``, folder ``plugins/``).

Each sub-package is one entry point of the ``vattfw`` group, declared in pyproject.toml
exactly as a third-party package would.  One file layout for every kind:

* ``<kind>/__init__.py`` declares the components (the ``vattfw_components`` hook);
* ``<kind>/<name>.py`` is one component: its pydantic ``Config`` and ``build(config, **deps)``,
  importing no torch at module level (listing and validating plugins stays fast);
* ``<kind>/_*.py`` hold the torch code and the config pieces several components share; they
  take plain values (the build passes the Config's fields) and never import a component
  module, so no two modules import each other.

What ``build`` receives and returns per kind is :mod:`vattfw.hookspec`.
"""
