"""Shared fixtures live in tests/fixtures/, one module per concern (each owned by the
tests of one area); pytest loads them all here."""
import os

# The XLA runtime reads these once, at first use: set them before anything imports torch_xla.
os.environ.setdefault("PJRT_DEVICE", "CPU")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["fixtures.processes", "fixtures.s3", "fixtures.mlflow"]
