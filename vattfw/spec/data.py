"""The data section: sources (datasource plugins) and the sampling pipeline.

Defaults follow the paper's pretraining inputs (appendix A.2.1): 32 frames at 10 fps,
224x224 Inception-style crops, flip and colour jitter, 48 kHz mono audio in sync with
the frames, 16 word ids per caption.  Fine-tuning (A.2.5) sets ``video.fps: 25``,
``video.stride: 2`` and ``video.size: 320``.  Where the official code differs, the
field's description says so.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Section, plugin


class VideoSampling(Section):
    frames: int = Field(32, ge=1, description="Frames per clip (paper: 32).")
    fps: float = Field(10.0, gt=0, description="Frame rate the clip is resampled to before striding "
                                                "(paper: 10 in pretraining, 25 for fine-tuning/eval).")
    stride: int = Field(1, ge=1, description="Temporal stride over the resampled frames (paper: 1 in "
                                             "pretraining, 2 for fine-tuning/eval: 32 frames span 2.56 s).")
    size: int = Field(224, ge=8, description="Output height and width in pixels (paper: 224, 320 for fine-tuning).")


class AudioSampling(Section):
    sample_rate: int = Field(48_000, ge=1000, description="Audio is resampled (torchaudio) to this rate, mono.")
    short_clip: Literal["loop", "pad", "skip"] = Field(
        "loop", description="A clip shorter than the window: 'loop' repeats it (frames and audio, in sync), "
                            "'pad' repeats the last frame and pads audio with silence, 'skip' drops it "
                            "(counted as too_short). The paper does not say; loop keeps every clip usable.")


class AugmentSettings(Section):
    enabled: bool = Field(True, description="Training augmentation on (eval/inference never augments).")
    area: tuple[float, float] = Field((0.08, 1.0), description="Relative crop area range (A.2.1).")
    aspect: tuple[float, float] = Field((0.5, 2.0), description="Crop aspect-ratio range, width/height (A.2.1).")
    flip: float = Field(0.5, ge=0, le=1, description="Probability of a horizontal flip of the whole clip.")
    color_prob: float = Field(1.0, ge=0, le=1, description="Probability of colour jitter (paper: always; "
                                                             "official code: 0.8).")
    brightness: float = Field(32 / 255, ge=0, description="Max brightness delta, added (A.2.1: 32/255).")
    saturation: float = Field(0.4, ge=0, le=1, description="Max saturation delta: factor in [1-d, 1+d].")
    contrast: float = Field(0.4, ge=0, le=1, description="Max contrast delta: factor in [1-d, 1+d].")
    hue: float = Field(0.2, ge=0, le=0.5, description="Max hue delta as a fraction of the colour circle.")
    audio_eq_prob: float = Field(
        0.0, ge=0, le=1, description="Probability of a random equaliser on a training clip's audio (not in the "
                                     "paper, which augments video only): it changes the spectral envelope "
                                     "(timbre) and keeps the pitch. 0 draws nothing, so the RNG stream and every "
                                     "sample stay the paper pipeline's.")
    audio_eq_bands: int = Field(3, ge=1, le=16, description="Peaking filters per equalised clip, each at a centre "
                                                             "frequency log-uniform in [50 Hz, 0.45 x sample rate].")
    audio_eq_db: float = Field(12.0, ge=0, le=40, description="Max gain of one filter in dB: uniform in +-this.")
    audio_eq_q: float = Field(0.7, gt=0, le=20, description="Quality factor of each filter (0.7: about two octaves "
                                                             "wide).")

    @model_validator(mode="after")
    def _ranges(self) -> "AugmentSettings":
        for name in ("area", "aspect"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be 0 < low <= high, got {(lo, hi)}")
        return self


class TextSettings(Section):
    vocabulary: str | None = Field(
        None, description="Vocabulary file, one word per line; the word on line i gets id i+1 (0 = padding). "
                          "None = the first 65,536 words of GloVe 6B (the `demo` extra). The paper uses a "
                          "2^16-word HowTo100M/word2vec vocabulary.", json_schema_extra={"path": True})
    max_words: int = Field(16, ge=1, description="Word ids per caption: clipped or padded with 0 (paper: 16).")
    candidates: int = Field(5, ge=1, description="L caption candidates per clip (MIL-NCE); paper silent, "
                                                 "official code uses 5 (max_context_sentences + 1).")
    lowercase: bool = Field(True, description="Lower-case captions before lookup.")


class EvalViews(Section):
    clips: int = Field(4, ge=1, description="Uniformly spaced clips per video (A.2.5: 4).")
    crops: Literal[1, 3] = Field(3, description="Spatial crops per clip: 3 (left/centre/right or top/centre/"
                                                "bottom after resizing the shorter side) or 1 (centre only).")
    video: VideoSampling | None = Field(None, description="Sampling for eval views; None = the same as data.video.")


class DataSection(Section):
    sources: list[plugin("datasource")] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Datasource plugins, mixed per batch by their weights.")
    eval_sources: list[plugin("datasource")] = Field(  # type: ignore[valid-type]
        default_factory=list, description="Datasources read by build_loader(split='eval').")
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto", description="Loader worker processes per host: auto = one per CPU core the process may use; "
                            "0 = decode in the device loader's thread.")
    prefetch: int = Field(2, ge=1, description="Batches each worker prepares ahead.")
    decoder: Literal["pyav", "torchcodec"] = Field("pyav", description="Video/audio decoder (PyAV measured faster).")
    shuffle: bool = Field(True, description="Shuffle shards and samples per epoch (training split).")
    video: VideoSampling = Field(default_factory=VideoSampling, description="Frame sampling (A.2.1).")
    audio: AudioSampling = Field(default_factory=AudioSampling, description="Audio sampling, in sync with the frames.")
    augment: AugmentSettings = Field(default_factory=AugmentSettings, description="Training augmentation (A.2.1).")
    text: TextSettings = Field(default_factory=TextSettings, description="Caption tokenization.")
    eval: EvalViews = Field(default_factory=EvalViews, description="Eval views: clips x crops (A.2.5).")
    num_classes: int = Field(0, ge=0, description="> 0 adds a multi-hot `labels` [B, C] tensor from each clip's labels.")
    io_retries: int = Field(5, ge=0, description="Retries of a failed read from object storage / http, with backoff.")
    io_backoff_s: float = Field(0.5, ge=0, description="First retry delay; doubles on each retry.")
    max_bad_in_a_row: int = Field(32, ge=1, description="Replacement tries for one batch slot before the loader "
                                                        "stops with an error (every sample bad).")

    @model_validator(mode="before")
    @classmethod
    def _sources_given(cls, data):
        # Left out, sources default to none (a spec only evaluated, a test's own loader); written
        # out as an empty list it is a spec that cannot train, which is better said now than at step 0.
        if isinstance(data, dict) and data.get("sources") == []:
            raise ValueError("sources: an empty list; at least one datasource is needed, e.g. "
                             "[{name: webdataset, urls: 'shards/shard-{000000..000009}.tar'}] "
                             "(leave the key out for a spec used only for evaluation)")
        return data

