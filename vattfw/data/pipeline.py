"""One webdataset sample (its tar members) -> fixed-shape tensors, or a :class:`Skip`.

Time window: ``frames`` frames ``stride / fps`` seconds apart starting at ``t0``; the audio
covers the same window, ``round(frames * stride / fps * sample_rate)`` samples.  Training
draws ``t0`` uniformly in [0, duration - window]; eval views place ``clips`` windows evenly
from the start to the end of the video.  A clip shorter than its window follows
``data.audio.short_clip`` (loop / pad / skip).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from . import transforms as tf
from .decode import AUDIO_EXTS, VIDEO_EXTS, DecodeError, open_clip, resample
from .text import Tokenizer

REASONS = ("unreadable", "corrupt_tar", "truncated", "undecodable", "missing_modality", "too_short", "empty",
           "empty_shard")  # empty_shard: a shard (tar or index) with no sample, counted once per shard
# Samples used, but changed on the way: a short clip looped or padded to the window, a missing
# video or audio stream given zeros (mask 0).  Counted per reason, like the skips.
ADJUSTMENTS = ("looped", "padded", "zero_video", "zero_audio")


class Skip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        assert reason in REASONS, reason
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Shapes:
    frames: int
    size: int
    audio: int
    candidates: int
    words: int
    classes: int


class Sampler:
    """Decode, sample and augment with the settings of a ``DataSection``."""

    def __init__(self, data, split: str = "train"):
        self.data = data
        self.train = split == "train"
        self.video = data.video if (self.train or data.eval.video is None) else data.eval.video
        self.window = self.video.frames * self.video.stride / self.video.fps
        sr = data.audio.sample_rate
        self.shapes = Shapes(self.video.frames, self.video.size, int(round(self.window * sr)),
                             data.text.candidates, data.text.max_words, data.num_classes)
        self._tok: Tokenizer | None = None
        self.adjusted = np.zeros(len(ADJUSTMENTS), np.int64)  # per reason, samples returned so far

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tok is None:  # lazily: loading a 65k vocabulary is wasted on text-less sources
            t = self.data.text
            self._tok = Tokenizer(t.vocabulary, t.max_words, t.lowercase)
        return self._tok

    def views(self) -> int:
        return 1 if self.train else self.data.eval.clips * self.data.eval.crops

    # -- one sample ------------------------------------------------------------
    def __call__(self, members: dict[str, bytes], require: tuple[str, ...],
                 rng: np.random.Generator | None) -> list[dict[str, torch.Tensor]]:
        """Training: one dict (augmented with ``rng``); eval: clips x crops dicts."""
        meta = _meta(members)
        vext = next((e for e in VIDEO_EXTS if e in members), None)
        aext = next((e for e in AUDIO_EXTS if e in members), None)
        if vext is None and aext is None:
            raise Skip("missing_modality", "no video or audio member")
        if "video" in require and vext is None:
            raise Skip("missing_modality", "no video member")
        try:
            vclip = open_clip(members[vext], self.data.decoder) if vext else None
            aclip = open_clip(members[aext], self.data.decoder) if aext else None
        except DecodeError as exc:
            raise Skip("undecodable", str(exc)) from None
        has_video = vclip is not None and vclip.has_video
        audio_src = aclip if aclip is not None and aclip.has_audio else (
            vclip if vclip is not None and vclip.has_audio else None)
        for need, ok in (("video", has_video), ("audio", audio_src is not None)):
            if need in require and not ok:
                raise Skip("missing_modality", f"no {need} stream")
        duration = (vclip.duration if has_video else audio_src.duration) or float(meta.get("duration") or 0)
        if duration <= 0:
            raise Skip("empty", "zero duration")
        short = duration < self.window
        if short and self.data.audio.short_clip == "skip":
            raise Skip("too_short", f"{duration:.2f} s < window {self.window:.2f} s")
        starts = self._starts(duration, rng)
        text, text_mask = self._text(meta, require)
        out = []
        for t0 in starts:
            frames = self._frames(vclip, t0, duration) if has_video else None
            audio, amask = self._audio(audio_src, t0, duration)
            if frames is not None and frames.size == 0:
                raise Skip("empty", "no frames")
            for video, vmask in self._pixels(frames, rng):
                out.append(self._pack(video, vmask, self._equalize(audio, rng), amask, text, text_mask, meta))
        self._count(short, has_video, audio_src is not None)
        return out

    def _count(self, short: bool, has_video: bool, has_audio: bool) -> None:
        for reason, hit in (("looped", short and self.data.audio.short_clip == "loop"),
                            ("padded", short and self.data.audio.short_clip == "pad"),
                            ("zero_video", not has_video), ("zero_audio", not has_audio)):
            self.adjusted[ADJUSTMENTS.index(reason)] += hit

    def _starts(self, duration: float, rng) -> list[float]:
        spare = max(0.0, duration - self.window)
        if self.train:
            return [float(rng.uniform(0, spare)) if rng is not None else spare / 2]
        n = self.data.eval.clips
        return [spare / 2] if n == 1 else [spare * i / (n - 1) for i in range(n)]

    def _times(self, t0: float, duration: float) -> tuple[list[float], list[int]]:
        step = self.video.stride / self.video.fps
        times = [t0 + i * step for i in range(self.video.frames)]
        if self.data.audio.short_clip == "loop":
            times = [t % duration for t in times]
        else:
            times = [min(t, duration) for t in times]
        order = sorted(range(len(times)), key=times.__getitem__)
        return [times[i] for i in order], order

    def _frames(self, clip, t0: float, duration: float) -> np.ndarray:
        times, order = self._times(t0, duration)
        try:
            got = clip.frames_at(times)
        except DecodeError as exc:
            raise Skip("undecodable", str(exc)) from None
        out = np.empty_like(got)
        out[order] = got
        return out

    def _audio(self, clip, t0: float, duration: float) -> tuple[torch.Tensor, float]:
        n = self.shapes.audio
        if clip is None:
            return torch.zeros(n), 0.0
        length = min(self.window, max(0.0, duration - t0))
        try:
            wave, rate = clip.audio(t0, length)
        except DecodeError as exc:
            raise Skip("undecodable", str(exc)) from None
        if wave.size == 0:
            return torch.zeros(n), 0.0
        x = resample(wave, rate, self.data.audio.sample_rate)
        mode = "loop" if self.data.audio.short_clip == "loop" else "pad"
        return tf.fit_length(x, n, mode), 1.0

    def _pixels(self, frames: np.ndarray | None, rng):
        s = self.shapes
        if frames is None:
            n = 1 if self.train else self.data.eval.crops
            return [(torch.zeros(s.frames, s.size, s.size, 3), 0.0)] * n
        if not self.train:
            return [(tf.to_model(x), 1.0) for x in tf.eval_crops(frames, s.size, self.data.eval.crops)]
        a = self.data.augment
        if not a.enabled or rng is None:
            return [(tf.to_model(tf.eval_crops(frames, s.size, 1)[0]), 1.0)]
        crop = tf.draw_crop(rng, frames.shape[1], frames.shape[2], a.area, a.aspect, a.flip)
        colour = tf.draw_colour(rng, a.color_prob, a.brightness, a.saturation, a.contrast, a.hue)
        x = tf.colour_jitter(tf.crop_resize(frames, crop, s.size), colour)
        return [(tf.to_model(x), 1.0)]

    def _equalize(self, audio: torch.Tensor, rng) -> torch.Tensor:
        a = self.data.augment
        if not (self.train and a.enabled and rng is not None):
            return audio
        rate = self.data.audio.sample_rate
        return tf.equalize(audio, rate, tf.draw_eq(rng, a.audio_eq_prob, a.audio_eq_bands, a.audio_eq_db,
                                                   a.audio_eq_q, rate))

    def _text(self, meta: dict, require) -> tuple[torch.Tensor, float]:
        captions = meta.get("captions") or []
        if isinstance(captions, str):
            captions = [captions]
        if "text" in require and not captions:
            raise Skip("missing_modality", "no captions")
        if not captions:
            return torch.zeros(self.shapes.candidates, self.shapes.words, dtype=torch.int64), 0.0
        ids, mask = self.tokenizer.encode([str(c) for c in captions], self.shapes.candidates)
        return torch.from_numpy(ids), mask

    def _pack(self, video, vmask, audio, amask, text, tmask, meta) -> dict[str, torch.Tensor]:
        label = meta.get("label")
        out = {"video": video, "audio": audio, "text": text,
               "text_mask": torch.tensor(tmask), "audio_mask": torch.tensor(amask),
               "video_mask": torch.tensor(vmask),
               "label": torch.tensor(int(label) if isinstance(label, (int, float)) and not
                                     isinstance(label, bool) else -1, dtype=torch.int64)}
        if self.shapes.classes:
            hot = torch.zeros(self.shapes.classes)
            for c in meta.get("labels") or ([label] if isinstance(label, int) else []):
                if isinstance(c, int) and 0 <= c < self.shapes.classes:
                    hot[c] = 1.0
            out["labels"] = hot
        return out

    def blank(self) -> dict[str, torch.Tensor]:
        """A padding row (eval batches): zeros everywhere, every mask 0, label -1."""
        s = self.shapes
        out = {"video": torch.zeros(s.frames, s.size, s.size, 3), "audio": torch.zeros(s.audio),
               "text": torch.zeros(s.candidates, s.words, dtype=torch.int64),
               "text_mask": torch.tensor(0.0), "audio_mask": torch.tensor(0.0),
               "video_mask": torch.tensor(0.0), "label": torch.tensor(-1)}
        if s.classes:
            out["labels"] = torch.zeros(s.classes)
        return out


def _meta(members: dict[str, bytes]) -> dict:
    raw = members.get("json")
    if not raw:
        txt = members.get("txt")
        return {"captions": txt.decode("utf-8", "replace").splitlines()} if txt else {}
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Skip("undecodable", "metadata json is not valid") from None
    return meta if isinstance(meta, dict) else {}
