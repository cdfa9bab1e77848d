"""`finetune_image`: end-to-end fine-tuning of the video branch on images (paper A.3.1, ImageNet).

"No modification to our architecture or the tokenization pipeline": an image becomes a clip by
repeating it over the temporal patch (``frames`` = the voxel tokenizer's patch depth, so one
temporal token), then the unchanged voxel tokenizer and video Transformer see it.  384x384
inputs give a 1x24x24 token grid; the positional tables are interpolated to those buckets
(``interpolate_positions``).  The paper's recipe: SGD with momentum 0.9, cosine decay from
8e-2 (no warmup given: ``warmup_steps: 0``), label smoothing 0.1, no weight decay, 50 epochs at
batch 512.  Training crops: random area [0.08, 1], aspect [3/4, 4/3], flip; test: the shorter
side resized to size/0.875, centre crop (the usual ImageNet protocol; the paper does not say).
Trained by the engine's Trainer with the ``cross_entropy`` loss plugin (see _finetune.py).

Data: ``train`` / ``test`` are each one of
* an image folder laid out one sub-folder per class (ImageNet style; classes sorted by name);
* a ``.csv`` / ``.jsonl`` manifest with ``path`` (relative to the manifest) and ``label`` (an
  id, or a class name: names are sorted into ids);
* image shards made from either by ``vattfw data build`` (docs/data.md): the output folder, a
  shard URL pattern (``s3://b/in1k/train/shard-{000000..001281}.tar``), or a list of datasource
  specs as the other evaluators take (``[{name: webdataset, urls: ...}]``; their ``weight`` and
  ``require`` do not apply: every sample is used, in shard order).
Images are decoded from their bytes with PyAV (jpg, png, webp, bmp ...) by the same function for
files and shards, read by ``workers`` processes: the same images in the same order give the same
batches either way (a folder build keeps the folder's order: it sorts by path).
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from pydantic import Field

from vattfw import Problem, UserError

from ._common import EvaluatorConfig, Sources, need_sources
from ._finetune import Optimizer, Schedule

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class Config(EvaluatorConfig):
    train: str | Sources = Field(  # type: ignore[valid-type]
        description="Training images: a folder with one sub-folder per class, a .csv/.jsonl manifest with path "
                    "and label columns, or image shards from `vattfw data build` (its output folder, a shard URL "
                    "pattern ending in .tar, or datasource specs [{name: webdataset, urls: ...}]).")
    test: str | Sources = Field(description="Test images, given as `train`.")  # type: ignore[valid-type]
    num_classes: int = Field(ge=2, description="Number of classes (ImageNet: 1000).")
    size: int = Field(384, ge=8, description="Input height and width (the paper: 384 -> 24x24 patches of 16).")
    epochs: float = Field(50, gt=0, description="Passes over the training images (the paper: 50).")
    steps: int | None = Field(None, ge=1, description="SGD steps; none = epochs x ceil(images / train_batch_size).")
    train_batch_size: int = Field(512, ge=1, description="Images per SGD step (the paper: 512).")
    optimizer: Optimizer = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "sgd", "lr": 0.08, "momentum": 0.9, "weight_decay": 0.0},
        description="Optimizer plugin (the paper: SGD, momentum 0.9, lr 8e-2, no weight decay).")
    schedule: Schedule = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "warmup_cosine", "warmup_steps": 0, "end_lr": 0.0, "period": "half"},
        description="Schedule plugin (the paper: cosine decay from the initial rate; no warmup given).")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="α of y·(1-α) + α/C (the paper: 0.1).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the classifier (the paper does not say).")
    drop_token: bool = Field(False, description="Keep DropToken on while fine-tuning (off: the paper drops no "
                                                "tokens when fine-tuning).")
    interpolate_positions: bool = Field(True, description="New positional tables sized to the image grid "
                                                          "(1 x size/16 x size/16), interpolated from the "
                                                          "pretrained ones; false resamples them at run time.")
    area: tuple[float, float] = Field((0.08, 1.0), description="Random crop area range (training).")
    aspect: tuple[float, float] = Field((0.75, 4 / 3), description="Random crop aspect range (training).")
    flip: float = Field(0.5, ge=0, le=1, description="Horizontal flip probability (training).")
    crop_fraction: float = Field(0.875, gt=0, le=1, description="Test: centre crop of size/crop_fraction.")
    workers: int = Field(2, ge=0, description="Image decoding processes.")
    seed: int = Field(0, ge=0, description="Seed of the classifier initialisation, data order and crops.")
    top_k: list[int] = Field(default_factory=lambda: [1, 5], description="Accuracies reported: top-k for each k.")


# -- reading -------------------------------------------------------------------------------
def list_images(src: str, where: str) -> tuple[list[str], list[int], list[str]]:
    """(paths, label ids, class names) of an image folder or manifest."""
    path = Path(src)
    if path.is_dir():
        classes = sorted(p.name for p in path.iterdir() if p.is_dir())
        items = [(str(f), c) for c in classes for f in sorted((path / c).rglob("*"))
                 if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
    elif path.is_file() and path.suffix in (".csv", ".jsonl"):
        rows = list(csv.DictReader(path.open(newline=""))) if path.suffix == ".csv" else \
            [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        missing = [i + 1 for i, r in enumerate(rows) if not r.get("path") or r.get("label") in (None, "")]
        if missing:
            raise UserError(Problem(f"{where}: {src} row {missing[0]} has no path or label "
                                    f"(expected columns path, label)"))
        named = sorted({str(r["label"]) for r in rows if not str(r["label"]).lstrip("-").isdigit()})
        classes = named
        items = [(str(path.parent / r["path"]), str(r["label"])) for r in rows]
    else:
        raise UserError(Problem(f"{where}: {src} is neither a folder of class sub-folders nor a .csv/.jsonl "
                                f"manifest"))
    if not items:
        raise UserError(Problem(f"{where}: no images ({', '.join(IMAGE_EXTS)}) under {src}"))
    ids = [classes.index(c) if c in classes else int(c) for _, c in items]
    return [p for p, _ in items], ids, classes


def decode(data: bytes, name: str):
    """uint8 [H, W, 3]: the data layer's image decoder, so files and shards give the same pixels."""
    from vattfw.data.images import decode_image
    try:
        return decode_image(data)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the same user problem
        raise UserError(Problem(f"finetune_image: cannot decode image {name}: {type(exc).__name__}: {exc}")) \
            from None


class _Files:
    """Images of a folder or manifest: ``read(i)`` -> (uint8 image, label id)."""

    def __init__(self, src: str, where: str):
        self.paths, self.labels, _ = list_images(src, where)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int):
        return decode(Path(self.paths[i]).read_bytes(), self.paths[i]), self.labels[i]


class _Shards:
    """Images of image shards (``vattfw data build``): one range read per sample, label from
    its json (-1 when it has none, refused by the label check)."""

    def __init__(self, sources: list, where: str):
        from vattfw.data.loader import resolve
        self.where = where
        self.refs = []
        for source in sources:
            shards = resolve(source)
            self.refs += [(url, ref) for url, refs in zip(shards.urls, shards.samples) for ref in refs]
        if not self.refs:
            raise UserError(Problem(f"{where}: the image shards hold no samples"))

    def __len__(self) -> int:
        return len(self.refs)

    def read(self, i: int):
        from vattfw.data import tarindex, urls
        from vattfw.data.images import image_member
        url, ref = self.refs[i]
        members = tarindex.members(ref, urls.read_range(url, ref.start, ref.end))
        ext = image_member(members)
        if ext is None:
            raise UserError(Problem(f"{self.where}: sample {ref.key} of {urls.redact(url)} has no image (members: "
                                    f"{', '.join(sorted(members))}); build image shards with `vattfw data build "
                                    f"IMAGES OUT --label-from-folder`"))
        label = json.loads(members["json"]).get("label") if "json" in members else None
        return decode(members[ext], f"{ref.key}.{ext} of {urls.redact(url)}"), -1 if label is None else int(label)


def open_split(src, field: str, where: str, host=None):
    """The reader of the split in ``field``: a folder/manifest of image files, or image shards."""
    import vattfw
    from vattfw.data.shards import built_pattern
    from vattfw.data.loader import Source
    if not isinstance(src, str):
        need_sources(src, field, where)
        return _Shards([vattfw.build("datasource", s, host) for s in src], where)
    pattern = built_pattern(src) if Path(src).is_dir() else None
    if pattern or "://" in src or src.endswith(".tar"):
        return _Shards([Source((pattern or src,), name=where)], where)
    return _Files(src, where)


def _resize(x, h: int, w: int):
    import torch.nn.functional as F
    return F.interpolate(x[None], size=(h, w), mode="bilinear", antialias=True, align_corners=False)[0]


def transform(img, cfg: Config, frames: int, rng=None):
    """uint8 [H, W, 3] -> float32 [frames, size, size, 3] in [-1, 1]; ``rng`` (numpy) = training."""
    x = img.permute(2, 0, 1).float()
    h, w = x.shape[1:]
    if rng is None:
        side = round(cfg.size / cfg.crop_fraction)
        scale = side / min(h, w)
        x = _resize(x, max(side, round(h * scale)), max(side, round(w * scale)))
        top, left = (x.shape[1] - cfg.size) // 2, (x.shape[2] - cfg.size) // 2
        x = x[:, top:top + cfg.size, left:left + cfg.size]
    else:
        ch, cw = _random_crop(h, w, cfg, rng)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        x = _resize(x[:, top:top + ch, left:left + cw], cfg.size, cfg.size)
        if rng.random() < cfg.flip:
            x = x.flip(2)
    x = (x.clamp(0, 255) / 127.5 - 1.0).permute(1, 2, 0)
    return x.unsqueeze(0).expand(frames, -1, -1, -1).contiguous()


def _random_crop(h: int, w: int, cfg: Config, rng) -> tuple[int, int]:
    for _ in range(10):
        area = h * w * rng.uniform(*cfg.area)
        ratio = math.exp(rng.uniform(math.log(cfg.aspect[0]), math.log(cfg.aspect[1])))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            return ch, cw
    side = min(h, w)
    return side, side


class _Images:
    """A torch Dataset of (clip, label, index); training samples draw their crop from (seed, epoch, index)."""

    def __init__(self, split, cfg: Config, frames: int, train: bool):
        self.split, self.cfg, self.frames, self.train = split, cfg, frames, train
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        import numpy as np
        rng = np.random.default_rng([self.cfg.seed, self.epoch, i]) if self.train else None
        img, label = self.split.read(i)
        return transform(img, self.cfg, self.frames, rng), label, i


def _loader(ds: _Images, batch: int, shuffle: bool, drop_last: bool, workers: int, seed: int):
    import torch
    from torch.utils.data import DataLoader
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, drop_last=drop_last, num_workers=workers,
                      generator=gen, persistent_workers=False)


def _train_batches(ds: _Images, cfg: Config, where: str):
    """Endless batches, epoch after epoch (a batch never spans two epochs).  Labels are checked
    as they arrive: shards carry them inside the samples."""
    from ._common import class_labels
    batch = min(cfg.train_batch_size, len(ds))
    while True:
        for x, y, i in _loader(ds, batch, True, True, cfg.workers, cfg.seed + ds.epoch):
            yield {"video": x, "label": class_labels(y, cfg.num_classes, where, sample=i)}
        ds.epoch += 1


def _test_logits(ft, ds: _Images, cfg: Config, where: str):
    import torch
    from vattfw.eval import LOGITS, forward
    from ._common import class_labels
    scores, ys, idx = [], [], []
    with torch.no_grad():
        for x, y, i in _loader(ds, cfg.batch_size, False, False, cfg.workers, cfg.seed):
            scores.append(forward(ft, "video", x, [LOGITS], where)[LOGITS])  # (on the model's device)
            ys.append(y)
            idx.append(i)
    return torch.cat(scores), class_labels(torch.cat(ys), cfg.num_classes, where, sample=torch.cat(idx))


# -- the evaluator ---------------------------------------------------------------------------
class FinetuneImage:
    def __init__(self, config: Config):
        self.config = config
        self.prefix = config.tag or "finetune_image"

    def patch(self, spec) -> tuple[int, int, int]:
        tok = spec.model.tokenizers.get("video")
        patch = getattr(getattr(tok, "config", None), "patch", None)
        if tok is None or patch is None:
            raise UserError(Problem(f"evaluator {self.prefix}: images go through the video branch, but the "
                                    f"spec's model has no voxel video tokenizer", "model.tokenizers.video"))
        if self.config.size % patch[1] or self.config.size % patch[2]:
            raise UserError(Problem(f"evaluator {self.prefix}: size {self.config.size} is not a multiple of the "
                                    f"video patch {patch[1]}x{patch[2]}", "eval.evaluators"))
        return tuple(patch)

    def steps(self, n: int) -> int:
        cfg = self.config
        return cfg.steps or max(1, math.ceil(cfg.epochs * (n // min(cfg.train_batch_size, n))))

    def run(self, model, spec, host=None) -> dict[str, float]:
        from vattfw.eval import topk_accuracy
        from ._finetune import build_finetune_model, checked_batches, train
        cfg, where = self.config, f"evaluator {self.prefix}"
        patch = self.patch(spec)
        grid = (1, cfg.size // patch[1], cfg.size // patch[2]) if cfg.interpolate_positions else None
        train_set = _Images(open_split(cfg.train, "train", f"{where} (train)", host), cfg, patch[0], train=True)
        test_set = _Images(open_split(cfg.test, "test", f"{where} (test)", host), cfg, patch[0], train=False)
        ft = build_finetune_model(model, spec, "video", cfg, host, grid=grid)
        batches = checked_batches(_train_batches(train_set, cfg, f"{where} (train)"), "video", "label", None, where)
        loss = {"name": "cross_entropy", "label_smoothing": cfg.label_smoothing}
        ft, last = train(ft, batches, spec, cfg, self.steps(len(train_set)),
                         min(cfg.train_batch_size, len(train_set)), loss, "label", where, host)
        logits, y = _test_logits(ft, test_set, cfg, f"{where} (test)")
        out = {f"{self.prefix}/top{k}": topk_accuracy(logits, y, k) for k in cfg.top_k if k <= cfg.num_classes}
        out[f"{self.prefix}/train_loss"] = last
        return out


def build(config: Config, **_: object) -> FinetuneImage:
    return FinetuneImage(config)
