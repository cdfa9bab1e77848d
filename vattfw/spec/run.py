"""Run-level sections: run, mesh, train, checkpoint, tracking, eval."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section, check_regex, plugin


class RunSection(Section):
    name: str = Field("vatt", description="Run name: the run folder and the mlflow run are named after it "
                                          "(one folder name: no '/', '\\', '..' or control characters).")
    seed: int = Field(0, ge=0, description="Seed for parameters, data order, augmentation and DropToken.")
    output_dir: str = Field("runs", description="Folder under which the run folder <output_dir>/<name> is created.")
    backend: Literal["xla", "torch"] = Field(
        "xla", description="Accelerator runtime behind vattfw.backend. xla: torch_xla/PJRT, the step compiled as one "
                           "SPMD program per host (CPU, TPU). torch: eager PyTorch with torch.distributed, one process "
                           "per device under torchrun (CUDA + NCCL, or CPU + gloo; FSDP2 / replicate / DTensor over "
                           "the mesh, torch.distributed.checkpoint); the GPU path. See README 'GPU cluster'.")
    demo_data: str | None = Field(
        None, description="Build the demo data set (`vattfw data demo`) into this folder before training if it has "
                          "no demo.json yet (the quickstart); relative to the working directory.")
    compile: Literal["auto", "optimized", "fast", "eager"] = Field(
        "auto", description="How the train step is compiled. auto: the backend's default (xla: optimized; torch: "
                            "eager). optimized: xla with XLA's full backend optimisation; torch with torch.compile "
                            "(inductor) on the model. fast: xla at optimisation level 0, which compiles ~3x faster "
                            "on the CPU and runs slower (tiny models, smoke tests); torch eager. eager: torch only "
                            "(no compilation).")

    compile_cache: Literal["auto", "on", "off"] = Field(
        "auto", description="XLA's persistent compile cache in compile_cache_dir, so a later run of the same step "
                            "skips compiling it. auto: on where torch_xla can reload its cache (TPU, GPU), off on "
                            "the CPU, whose torch_xla 2.9 client fails to deserialize every entry and compiles "
                            "again. on: also on the CPU (the run summary counts the entries it could not reload). "
                            "The torch backend ignores it: torch.compile keeps its own on-disk cache.")
    compile_cache_dir: str = Field(
        "~/.cache/vattfw/xla", description="Folder of the compile cache (one subfolder per torch_xla version; "
                                           "on a pod, a local disk of each host).")

    @field_validator("compile_cache", mode="before")
    @classmethod
    def _yaml_switch(cls, v):
        # YAML 1.1 reads a bare on / off as a boolean
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("name")
    @classmethod
    def _one_folder(cls, v: str) -> str:
        # The name becomes <output_dir>/<name>: a path in it would write (and prune checkpoints) elsewhere.
        if v.strip() in ("", ".", "..") or any(c in v for c in "/\\") or any(ord(c) < 32 for c in v):
            raise ValueError("a run name is one folder name: not empty, '.' or '..', no '/', '\\' or "
                             "control characters (e.g. 'pretrain-b32')")
        return v


class MeshSection(Section):
    data: int = Field(-1, ge=-1, description="Size of the data-parallel axis; -1 = the devices left over.")
    fsdp: int = Field(1, ge=-1, description="Size of the FSDP axis (parameters sharded); -1 = the devices left over.")
    tensor: int = Field(1, ge=-1, description="Size of the tensor-parallel axis (attention/MLP weights split); -1 = the rest.")

    @model_validator(mode="after")
    def _one_wildcard(self) -> "MeshSection":
        sizes = {"data": self.data, "fsdp": self.fsdp, "tensor": self.tensor}
        if 0 in sizes.values():
            raise ValueError(f"axis sizes must be >= 1 or -1, got {sizes}")
        if list(sizes.values()).count(-1) > 1:
            raise ValueError(f"at most one axis may be -1 (the rest of the devices), got {sizes}")
        return self

    column_parallel: list[str] = Field(
        default_factory=lambda: [r"(^|\.)attn\.(q|k|v)$", r"(^|\.)mlp\.fc1$"],
        description="Regexes (re.search) on Linear module names split by output over 'tensor' (column-parallel).")
    row_parallel: list[str] = Field(
        default_factory=lambda: [r"(^|\.)attn\.o$", r"(^|\.)mlp\.fc2$"],
        description="Regexes on Linear module names split by input over 'tensor' (row-parallel, after a column one).")

    def fixed_batch_axes(self) -> int | None:
        """data x fsdp when both are fixed, else None (known only once devices are counted)."""
        return None if -1 in (self.data, self.fsdp) else self.data * self.fsdp


class TrainSection(Section):
    global_batch_size: int = Field(2048, ge=1, description="Clips per optimiser step, summed over all devices.")
    steps: int = Field(500_000, ge=1, description="Optimiser steps to train for.")
    grad_accumulation: int = Field(1, ge=1, description="Micro-batches per optimiser step; global_batch_size must divide by it.")
    accumulation: Literal["cached", "independent"] = Field(
        "cached", description="How grad_accumulation > 1 splits the step. cached: features of every micro-batch "
                              "first (no autograd), heads and losses over the whole batch (all global_batch_size "
                              "clips are contrastive negatives, BatchNorm sees the whole batch), then each "
                              "micro-batch re-run with its cached gradient: the same loss and gradients as one pass "
                              "(GradCache). independent: each micro-batch its own loss, gradients averaged "
                              "(fewer negatives: a different objective; about 1/3 less compute).")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 matmuls with fp32 parameters.")
    log_every: int = Field(10, ge=1, description="Steps between metric logs (read in a step closure).")
    nan_policy: Literal["stop", "skip"] = Field(
        "stop", description="On a NaN/inf loss: stop (keeping the last good checkpoint) or skip the step and count it.")
    peak_tflops_per_device: float | None = Field(
        None, gt=0, description="Peak TFLOP/s of one device for MFU; none = measured (CPU matmul) or MFU not logged.")
    max_skipped_steps: int = Field(100, ge=0, description="With nan_policy skip: stop once this many steps were skipped.")
    lr_scale: dict[str, float] = Field(
        default_factory=dict,
        description="Per-parameter learning-rate multipliers: {regex: factor}, each regex re.match-ed against the "
                    "parameter names (tokenizers.audio.proj.weight, backbones.audio.*, heads.fac.*, losses.*; "
                    "`vattfw summary` lists the components); the first match wins, others train at 1x. The "
                    "schedule's rate times the factor, every step. Not in the paper (one rate); e.g. "
                    "{'tokenizers.audio|backbones.audio': 3.0}. Resume with the same mapping.")

    @field_validator("lr_scale")
    @classmethod
    def _scales(cls, value: dict[str, float]) -> dict[str, float]:
        for pattern, scale in value.items():
            check_regex(pattern)
            if not scale > 0:
                raise ValueError(f"{pattern!r}: the factor must be > 0, got {scale} (freeze a part with a "
                                 f"tiny factor, or leave it out for 1x)")
        return value


class CheckpointSection(Section):
    every_steps: int = Field(1000, ge=1, description="Steps between checkpoints (one is also written at the end and on SIGTERM/SIGINT).")
    keep_last: int = Field(3, ge=1, description="Checkpoints kept; older ones are deleted after a new one is complete.")
    resume: str = Field("auto", description="'auto' = continue from the newest valid checkpoint of this run, 'never', or a checkpoint path.")
    dir: str | None = Field(None, description="Checkpoint folder; none = <output_dir>/<run name>/checkpoints.")


class TrackingSection(Section):
    trackers: list[plugin("tracker")] = Field(  # type: ignore[valid-type]
        default_factory=lambda: [{"name": "mlflow"}],
        description="Tracker plugins that receive the lifecycle hooks (default: mlflow).")


class EvalSection(Section):
    every_steps: int = Field(0, ge=0, description="Evaluate every N training steps during `vattfw run`; 0 = only at the end.")
    evaluators: list[plugin("evaluator")] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Evaluator plugins run by `vattfw eval` and by `vattfw run`.")
