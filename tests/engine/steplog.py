"""A test plugin (``vattfw -p steplog``): every process appends each logged step's loss to
``$VATTFW_STEPLOG.<rank>`` (JSON lines), and ``VATTFW_KILL_AT=RANK:STEP`` makes that
process SIGKILL itself in that step's log hook (a deterministic crash mid-run)."""
import json
import os
import signal

import vattfw


@vattfw.hookimpl
def vattfw_step_end(step, metrics):
    rank = int(os.environ.get("RANK", "0"))
    path = os.environ.get("VATTFW_STEPLOG")
    if path:
        with open(f"{path}.{rank}", "a") as f:
            f.write(json.dumps({"step": step, "loss": metrics["loss"]}) + "\n")
    kill = os.environ.get("VATTFW_KILL_AT")
    if kill and kill == f"{rank}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)
