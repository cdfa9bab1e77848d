"""`zero_shot_retrieval`: text->video retrieval with the FAC head's S_vt embeddings (A.3.3).

The pool is the whole test split (no dropped remainder, unlike the released code).  Each
video is seen through ``clips`` uniformly spaced clips (centre crop); each clip with text is a
query with its first caption candidate.  Two variants (facts §8): ``embd`` (the paper: average
the clip embeddings, then cosine) reported as ``<tag>/R1``, ``<tag>/R5``, ..., and ``cosine``
(average the clip cosines) reported as ``<tag>/cosine/R1``, ...  Metrics: R@1, R@5, R@10 (named
R1, R5, R10: mlflow rejects "@" in metric names) and the median rank (MedianR).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._common import EvaluatorConfig, Sources, need_sources, sources_field


class Config(EvaluatorConfig):
    data: Sources = sources_field("retrieval pool (the test split)")
    clips: int = Field(4, ge=1, description="Uniformly spaced clips per video (A.3.3: 4).")
    variants: list[Literal["embd", "cosine"]] = Field(
        default_factory=lambda: ["embd", "cosine"],
        description="embd: average clip embeddings then cosine (paper); cosine: average clip cosines (code).")
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10], description="Recall cut-offs R@K.")


class ZeroShotRetrieval:
    def __init__(self, config: Config):
        self.config = config
        self.prefix = config.tag or "zero_shot_retrieval"

    def embeddings(self, model, spec, host):
        from vattfw.eval import collect, loader, projected
        where = f"evaluator {self.prefix}"
        need_sources(self.config.data, "data", where)
        batches = loader(spec, self.config.data, host, batch_size=self.config.batch_size,
                         clips=self.config.clips, crops=1)
        video_vt, text_vt = projected("video", "vt"), projected("text", "vt")
        got = collect(model, batches, {"video": [video_vt], "text": [text_vt]}, self.config.clips, where, keep=())
        import torch
        n = len(got[text_vt])
        has = {m: got[f"{m}_mask"] > 0 if f"{m}_mask" in got else torch.ones(n, dtype=torch.bool)
               for m in ("text", "video")}
        pool = has["video"].nonzero().flatten()  # a sample without frames is no candidate
        position = torch.full((n,), -1, dtype=torch.long)
        position[pool] = torch.arange(len(pool))
        queries = (has["text"] & has["video"]).nonzero().flatten()
        text = got[text_vt][:, 0]  # the first caption candidate: [N, d]
        return text[queries], got[video_vt][pool], position[queries]  # video: [P, clips, d]

    def run(self, model, spec, host=None) -> dict[str, float]:
        from vattfw.eval import text_to_video
        text, video, gt = self.embeddings(model, spec, host)
        results = text_to_video(text, video, gt, tuple(self.config.variants), tuple(self.config.ks))
        out = {}
        for variant, metrics in results.items():
            sub = "" if variant == "embd" else f"{variant}/"
            out.update({f"{self.prefix}/{sub}{name}": value for name, value in metrics.items()})
        out[f"{self.prefix}/queries"] = float(len(text))
        out[f"{self.prefix}/pool"] = float(len(video))
        return out


def build(config: Config, **_: object) -> ZeroShotRetrieval:
    return ZeroShotRetrieval(config)
