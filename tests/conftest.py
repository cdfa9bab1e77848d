"""Shared fixtures live in tests/fixtures/, one module per concern (each owned by the
tests of one area); pytest loads them all here."""
import os

# The XLA runtime reads these once, at first use: set them before anything imports torch_xla.
os.environ.setdefault("PJRT_DEVICE", "CPU")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["fixtures.processes", "fixtures.s3", "fixtures.mlflow"]


def pytest_collection_modifyitems(config, items):
    """Start the XLA runtime before any test runs when an ``xla`` test was collected.  The
    autograd engine sizes its per-device queues at the first backward of the process: an
    in-process XLA training (a fine-tuning evaluator) after any CPU backward in an earlier test
    fails with "INTERNAL ASSERT FAILED ... device_ready_queues_"."""
    if any(item.get_closest_marker("xla") for item in items):
        import torch_xla
        torch_xla.device()
