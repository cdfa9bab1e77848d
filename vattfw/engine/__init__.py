"""The training engine behind `vattfw run`: mesh and sharding plan (mesh.py), atomic
checkpoints (checkpoint.py), tracker wiring (tracking.py) and the trainer (trainer.py).
It reaches the accelerator only through :mod:`vattfw.backend`."""
