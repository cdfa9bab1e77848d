"""Decoding encoded clips into frames and waveforms: PyAV (default) or torchcodec.

Both backends answer the same questions: the duration, which streams exist, the frames
*shown* at given times (the last frame whose timestamp is <= t), and the mono waveform of
a time range at the stream's own rate.  Resampling to the target rate is torchaudio's
job (``resample``), the same for both.  ``benchmarks/data.py`` measures the two.
"""
from __future__ import annotations

import io
import os
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch

VIDEO_EXTS = ("mp4", "mkv", "webm", "avi", "mov")
AUDIO_EXTS = ("flac", "wav", "mp3", "ogg", "m4a")


class DecodeError(Exception):
    """The bytes are not decodable media (counted as ``undecodable``)."""


class _PyAVClip:
    # Timestamps are pts * num / den in float: the exact rational rounded once, as
    # float(Fraction) would give, without a Fraction per frame (they cost more than decoding).
    def __init__(self, blob: bytes):
        import av
        try:
            self.container = av.open(io.BytesIO(blob), mode="r")
        except Exception as exc:
            raise DecodeError(f"cannot open: {exc}") from None
        self.vstream = next((s for s in self.container.streams.video), None)
        self.astream = next((s for s in self.container.streams.audio), None)
        for s in (self.vstream, self.astream):
            if s is not None:  # one decoding thread: see _rgb
                s.thread_type, s.codec_context.thread_count = "NONE", 1
        self.duration = self._duration()
        self._fresh = True  # nothing demuxed yet: no seek needed for t = 0

    def _seek(self, stream, t: float) -> None:
        if t > 0.5 or not self._fresh:
            self.container.seek(int(max(0.0, t) / stream.time_base), stream=stream, backward=True)
        self._fresh = False

    def _duration(self) -> float:
        found = []
        for s in (self.vstream, self.astream):
            if s is not None and s.duration is not None and s.time_base is not None:
                found.append(float(s.duration * s.time_base))
        if found:
            return max(found)
        if self.container.duration:
            return self.container.duration / 1_000_000
        return 0.0

    @property
    def has_video(self) -> bool:
        return self.vstream is not None

    @property
    def has_audio(self) -> bool:
        return self.astream is not None

    def frames_at(self, times: list[float]) -> np.ndarray:
        """uint8 [len(times), H, W, 3]; ``times`` ascending."""
        s = self.vstream
        num, den = s.time_base.numerator, s.time_base.denominator
        first = min(times)
        self._seek(s, first - 0.25)
        out: list[np.ndarray | None] = [None] * len(times)
        i, prev, prev_img = 0, None, None
        try:
            for frame in self.container.decode(s):
                if frame.pts is None:
                    continue
                t = frame.pts * num / den
                while i < len(times) and prev is not None and times[i] < t:
                    out[i] = prev_img if prev_img is not None else _rgb(prev)
                    prev_img = out[i]
                    i += 1
                if i >= len(times):
                    break
                prev, prev_img = frame, None
        except Exception as exc:
            if prev is None:
                raise DecodeError(f"video: {exc}") from None
        if prev is None:
            raise DecodeError("video stream has no frames")
        last = prev_img if prev_img is not None else _rgb(prev)
        for j in range(i, len(times)):
            out[j] = last
        return np.stack(out)

    def audio(self, start: float, duration: float) -> tuple[np.ndarray, int]:
        """Mono float32 samples of [start, start + duration) and the stream's rate."""
        s = self.astream
        rate = s.codec_context.sample_rate or s.rate
        self._seek(s, start - 0.5)
        num, den = s.time_base.numerator, s.time_base.denominator
        chunks, first_t, first = [], None, None
        stop = start + duration
        try:
            for frame in self.container.decode(s):
                if frame.pts is None:
                    continue
                t = frame.pts * num / den
                if t >= stop:
                    break
                if first is None:
                    first_t, first = t, frame
                chunks.append(_samples(frame))
        except Exception as exc:
            if not chunks:
                raise DecodeError(f"audio: {exc}") from None
        if not chunks:
            return np.zeros(0, np.float32), rate
        wave = _mono(np.concatenate(chunks, axis=-1), first)
        lo = max(0, int(round((start - first_t) * rate)))
        return wave[lo:lo + int(round(duration * rate))], rate


_SAMPLE_TYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "flt": np.float32, "dbl": np.float64}


def _samples(frame) -> np.ndarray:
    """[planes, n] samples of one audio frame, as ``to_ndarray`` gives them, read straight from
    the planes (``to_ndarray`` goes through ``np.vstack``: a third of the audio decode time)."""
    fmt = frame.format
    dtype = _SAMPLE_TYPES.get(fmt.name.rstrip("p"))
    if dtype is None:
        return frame.to_ndarray()
    n = frame.samples * (1 if fmt.is_planar else len(frame.layout.channels))
    planes = frame.planes
    if len(planes) == 1:  # mono or packed: a view; the clip's concatenate copies once
        return np.frombuffer(planes[0], dtype, count=n)[None]
    return np.stack([np.frombuffer(p, dtype, count=n) for p in planes])


def _mono(x: np.ndarray, frame) -> np.ndarray:
    """float32 mono of one stream's concatenated samples: planar [channels, n] or packed
    [1, n * channels]; converted and downmixed once per clip rather than per frame."""
    x = _as_float(x, frame.format.name)
    if frame.format.is_planar:
        return x[0] if x.shape[0] == 1 else x.mean(axis=0)
    channels = len(frame.layout.channels)
    return x.reshape(-1) if channels == 1 else x.reshape(-1, channels).mean(axis=1)


def _rgb(frame) -> np.ndarray:
    """uint8 [H, W, 3].  One scaler thread: PyAV's default (0 = one per core) starts a
    thread pool on every call, which costs more than converting a clip-sized frame, and the
    loader already runs one decoding worker per core.  The pixels are the same either way.
    FFmpeg's decoders default to a thread pool per opened stream too (h264 frame threads):
    on a 64x64 demo clip that made decoding 1.6x slower than one thread."""
    return frame.to_ndarray(format="rgb24", threads=1)


def _as_float(x: np.ndarray, fmt: str) -> np.ndarray:
    if x.dtype.kind == "f":
        return x.astype(np.float32)
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if x.dtype == np.int32:
        return x.astype(np.float32) / 2147483648.0
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    raise DecodeError(f"unsupported sample format {fmt}")


class _TorchCodecClip:
    def __init__(self, blob: bytes):
        from torchcodec.decoders import AudioDecoder, VideoDecoder
        self.blob = blob
        self.video = self.audio_dec = None
        try:
            self.video = VideoDecoder(blob, seek_mode="approximate", dimension_order="NHWC")
        except Exception:
            self.video = None
        try:
            self.audio_dec = AudioDecoder(blob)
        except Exception:
            self.audio_dec = None
        if self.video is None and self.audio_dec is None:
            raise DecodeError("torchcodec cannot open the bytes")
        durations = [m.duration_seconds for m in (self._meta(self.video), self._meta(self.audio_dec))
                     if m is not None and m.duration_seconds]
        self.duration = float(max(durations)) if durations else 0.0

    @staticmethod
    def _meta(dec):
        return None if dec is None else dec.metadata

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_dec is not None

    def frames_at(self, times: list[float]) -> np.ndarray:
        end = self.video.metadata.end_stream_seconds or self.duration
        clamped = [min(t, max(0.0, end - 1e-3)) for t in times]
        try:
            return self.video.get_frames_played_at(seconds=clamped).data.numpy()
        except Exception as exc:
            raise DecodeError(f"video: {exc}") from None

    def audio(self, start: float, duration: float) -> tuple[np.ndarray, int]:
        try:
            s = self.audio_dec.get_samples_played_in_range(start, start + duration)
        except Exception as exc:
            raise DecodeError(f"audio: {exc}") from None
        return s.data.mean(dim=0).numpy().astype(np.float32), int(s.sample_rate)


@contextmanager
def one_torch_thread():
    """torch's CPU ops (resampling, augmentation) on one thread while a batch is made.

    Decoding runs in one worker process per core, or (``num_workers: 0``) in the device loader's
    thread next to the training step: more threads per decoder only contend for the same
    cores.  DataLoader workers already run with one; this covers the in-process case.  With
    torch's OpenMP runtime the count is per calling thread, and it is restored afterwards."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def default_workers() -> int:
    """``data.num_workers: auto``: one decoding worker process per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


def open_clip(blob: bytes, decoder: str = "pyav"):
    if not blob:
        raise DecodeError("empty member")
    return _PyAVClip(blob) if decoder == "pyav" else _TorchCodecClip(blob)


@lru_cache(maxsize=16)
def _resampler(orig: int, new: int):
    import torchaudio
    return torchaudio.transforms.Resample(orig, new)


def resample(wave: np.ndarray, orig: int, new: int) -> torch.Tensor:
    """Mono float32 waveform at ``new`` Hz (torchaudio's windowed-sinc resampler)."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if orig == new or x.numel() == 0:
        return x
    with torch.no_grad():
        return _resampler(orig, new)(x)
