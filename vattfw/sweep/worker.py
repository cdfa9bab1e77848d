"""One sweep point in its own process: ``python -m vattfw.sweep.worker JOB.json``.

Training runs through the engine (:class:`vattfw.engine.trainer.Trainer`, resuming from the
point's newest checkpoint), evaluation through :func:`vattfw.engine.evaluate.evaluate_checkpoint`
on the final checkpoint: the code path of `vattfw eval`, so the results reach the point's trackers
exactly as `vattfw eval` sends them.  A fresh process per point keeps XLA's process-wide state (device count, compile
cache, SPMD mode) from leaking between points.  Writes ``{"step", "checkpoint", "results"}``
to the job's ``results`` file (the evaluators' metrics plus ``train/<key>`` for the numbers of
the engine's run summary: final_loss, wall_s, clips_per_s, ...); exit 0 only when that file was written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def run_point(job: dict) -> int:
    from ..engine.evaluate import evaluate_checkpoint, print_results
    from ..engine.weights import read_checkpoint
    from ..host import PluginHost
    from ..spec.loader import load_spec
    host = PluginHost.load(requested=job.get("plugins", []))
    spec = load_spec(job["spec"], job["overrides"], host=host)
    checkpoint = job.get("checkpoint")
    results: dict[str, float] = {}
    if not checkpoint:
        from ..engine.paths import run_dir_of
        from ..engine.trainer import Trainer
        # evaluate=False: the evaluators run once, below, on the final checkpoint (also for a point
        # whose training had finished before an interruption)
        result = Trainer(spec, host, resume="auto", progress=False, evaluate=False).run()
        from ..engine.progress import print_summary
        print_summary(spec.run.name, result)  # the worker log says how the training ended, as vattfw run does
        if result.exit_code:
            return result.exit_code
        checkpoint = result.summary.get("checkpoint") or str(run_dir_of(spec) / "checkpoints")
        results.update({f"train/{k}": float(v) for k, v in result.summary.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if spec.eval.evaluators:
        done = evaluate_checkpoint(spec, host, checkpoint)
        print_results(done)
        step, where = done.step, done.checkpoint
        results.update(done.results)
    else:
        _, step, where = read_checkpoint(checkpoint)
    out = Path(job["results"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"step": int(step or 0), "checkpoint": str(where), "results": results}, indent=1))
    tmp.replace(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..errors import UserError
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text())
    try:
        return run_point(job)
    except UserError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
