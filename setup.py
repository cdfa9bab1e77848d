"""Package discovery only (everything else is in pyproject.toml): the folder plugins/
ships under the import name vattfw_plugins, so that no bare `plugins` module is installed."""
from setuptools import find_packages, setup

core = find_packages(include=["vattfw", "vattfw.*"])
builtins = ["vattfw_plugins" + name[len("plugins"):] for name in find_packages(include=["plugins", "plugins.*"])]
setup(packages=core + builtins)
