"""`vattfw data demo OUT`: a small real data set, built offline and deterministically.

============  ==========================================  =======================  ===========
subset        what                                        role in the paper        modalities
============  ==========================================  =======================  ===========
bbb           Big Buck Bunny (CC-BY 3.0) cut in 4 s clips  AudioSet (no text)       video, audio
synth/train   shape x colour x motion clips, narrated      HowTo100M                video, audio, text
synth/eval    held-out shape x colour x motion triples     zero-shot retrieval      video, audio, text
instruments   freepats notes via timidity, 18 classes      ESC-50 (labels)          audio
pitches       60 instruments x 6 pitches x 3 loudnesses,   what pretraining can     audio
              20 instruments held out                     teach (pitch = colour)
============  ==========================================  =======================  ===========

plus ``vocab.txt`` / ``vectors.npy``: the first 65,536 GloVe 6B words and their 50-d vectors
(row i of the vectors belongs to id i + 1; id 0 is padding).

The film comes from the moviepy 2.2.1 source distribution (``pip download``), cached in
``OUT/cache``; without network and without a cached copy the bbb subset is left out and the
summary says so.  Every other part needs only ffmpeg, espeak-ng, timidity + freepats.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import wave
import zipfile
from pathlib import Path

import numpy as np

from ..errors import Problem, UserError
from .builder import build

BBB_MD5 = "e1e40d4a2a4234deed91839ad0122643"
BBB_IN_SDIST = "docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip"
BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"]

SHAPES = ["circle", "square", "triangle", "cross"]
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 235),
           "yellow": (235, 220, 40), "white": (240, 240, 240), "purple": (160, 60, 200)}
MOTIONS = ["moving left", "moving right", "moving up", "moving down", "growing", "shrinking", "bouncing", "blinking"]
SYN_SIZE, SYN_FRAMES, SYN_FPS, SR = 64, 16, 8, 16_000

NOTE_PEAK = 0.5  # the synthetic clips' audio peaks at 0.3-0.65
INSTRUMENTS = {"piano": 0, "harpsichord": 6, "glockenspiel": 9, "organ": 19, "accordion": 21, "nylon_guitar": 24,
               "distortion_guitar": 30, "acoustic_bass": 32, "violin": 40, "cello": 42, "harp": 46,
               "trumpet": 56, "trombone": 57, "alto_sax": 65, "clarinet": 71, "flute": 73, "pan_flute": 75,
               "sitar": 104}


def held_out(si: int, ci: int, mi: int) -> bool:
    """32 of the 192 triples go to synth/eval; every shape, colour and motion stays in training."""
    return (si + 2 * ci + 3 * mi) % 6 == 0


def _run(cmd: list[str], **kw) -> None:
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    except FileNotFoundError:
        raise UserError(Problem(f"`{cmd[0]}` is not installed (the demo needs ffmpeg, espeak-ng, timidity, "
                                "freepats)")) from None
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {exc.stderr.decode(errors='replace')[-500:]}") from None


# -- synth ---------------------------------------------------------------------
def _mask(shape: str, cx: float, cy: float, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (abs(xx - cx) <= r * 0.85) & (abs(yy - cy) <= r * 0.85)
    if shape == "triangle":
        return (yy <= cy + r * 0.8) & (yy - (cy - r) >= 1.8 * abs(xx - cx))
    return ((abs(xx - cx) <= r) & (abs(yy - cy) <= r * 0.3)) | ((abs(yy - cy) <= r) & (abs(xx - cx) <= r * 0.3))


def _track(motion: str, t: float) -> tuple[float, float, float, bool]:
    cx, cy, r, visible = 32.0, 32.0, 10.0, True
    if motion == "moving left":
        cx = 50 - 36 * t
    elif motion == "moving right":
        cx = 14 + 36 * t
    elif motion == "moving up":
        cy = 50 - 36 * t
    elif motion == "moving down":
        cy = 14 + 36 * t
    elif motion == "growing":
        r = 4 + 14 * t
    elif motion == "shrinking":
        r = 18 - 14 * t
    elif motion == "bouncing":
        cy = 48 - 30 * abs(np.sin(2 * np.pi * 1.5 * t))
    elif motion == "blinking":
        visible = int(t * 8) % 2 == 0
    return cx, cy, r, visible


def _sound(shape: str, ci: int, motion: str, rng: np.random.Generator, note: np.ndarray | None = None) -> np.ndarray:
    """Timbre follows the shape, pitch the colour, envelope or glide the motion.  ``note``: an
    instrument note rendered at the colour's pitch, played instead of the synthetic waveform (a
    glide reads it faster or slower)."""
    n = SR * SYN_FRAMES // SYN_FPS
    u = np.arange(n) / (n - 1)
    f0 = 220 * 2 ** (ci / 6)
    f = f0 * 2 ** u if motion == "moving up" else f0 * 2 ** (1 - u) if motion == "moving down" else np.full(n, f0)
    ph = 2 * np.pi * np.cumsum(f) / SR
    if note is not None:
        at = np.concatenate([[0.0], np.cumsum(f[:-1] / f0)])  # source sample read at each output sample
        x = np.interp(at, np.arange(note.size), note, right=0.0)
    else:
        x = {"circle": np.sin(ph), "square": np.sign(np.sin(ph)) * 0.5,
             "triangle": 2 / np.pi * np.arcsin(np.sin(ph))}.get(shape)
    if x is None:
        x = rng.standard_normal(n) * 0.3 * (0.5 + 0.5 * np.sin(ph))
    env = {"growing": 0.1 + 0.9 * u, "shrinking": 1 - 0.9 * u, "moving left": 1 - 0.5 * u,
           "moving right": 0.5 + 0.5 * u, "bouncing": np.abs(np.sin(2 * np.pi * 1.5 * u)) ** 0.5,
           "blinking": ((u * 8).astype(int) % 2 == 0).astype(float)}.get(motion, np.ones(n))
    return 0.4 * env * x


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        raw = w.readframes(w.getnframes())
        x = np.frombuffer(raw, np.int16).astype(np.float64) / 32768.0
        return x.reshape(-1, w.getnchannels()).mean(axis=1), w.getframerate()


def _synth_clip(job: tuple[int, int, int, int, str, str]) -> None:
    i, si, ci, mi, folder, notes = job
    shape, (cname, rgb), motion = SHAPES[si], list(COLOURS.items())[ci], MOTIONS[mi]
    out = Path(folder)
    key = f"syn_{i:04d}"
    yy, xx = np.mgrid[0:SYN_SIZE, 0:SYN_SIZE].astype(np.float32)
    rng = np.random.default_rng(i)
    bg = np.full((SYN_SIZE, SYN_SIZE, 3), 20 + (i * 7) % 40, np.uint8)
    frames = np.empty((SYN_FRAMES, SYN_SIZE, SYN_SIZE, 3), np.uint8)
    for k in range(SYN_FRAMES):
        cx, cy, r, visible = _track(motion, k / (SYN_FRAMES - 1))
        frames[k] = bg
        if visible:
            frames[k][_mask(shape, cx, cy, r, yy, xx)] = rgb
    caption = f"a {cname} {shape} {motion}"
    # The narration is mixed into the sound track, as speech is in HowTo100M's audio.
    speech_wav = out / f"{key}.speech.wav"
    _run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(speech_wav), caption])
    speech, rate = _read_wav(speech_wav)
    speech_wav.unlink()
    note = None
    if notes:  # timbre "instruments": one of the shape's instruments, chosen per clip
        group = PRETRAIN_INSTRUMENTS[si::len(SHAPES)]
        name = group[int(rng.integers(len(group)))]
        note, _ = _read_wav(Path(notes) / f"{name}_{PITCHES[ci]}.wav")
        # the synthetic waveforms' loudness (RMS ~0.5, peak <= 2), so the narration keeps its share
        rms, peak = float(np.sqrt((note[:3 * SR] ** 2).mean())), float(np.abs(note).max())
        note = note * min(0.5 / max(rms, 1e-6), 2.0 / max(peak, 1e-6))
    sound = _sound(shape, ci, motion, rng, note)
    t_out = np.arange(sound.size) / SR
    speech = np.interp(t_out, np.arange(speech.size) / rate, speech, right=0.0)
    audio = np.clip(0.7 * sound + 0.6 * speech, -1, 1).astype(np.float32)
    raw_audio = out / f"{key}.f32"
    audio.tofile(raw_audio)
    _run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SYN_SIZE}x{SYN_SIZE}",
          "-r", str(SYN_FPS), "-i", "-", "-f", "f32le", "-ar", str(SR), "-ac", "1", "-i", str(raw_audio),
          "-c:v", "libx264", "-threads", "1", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
          "-c:a", "aac", "-b:a", "48k", *BITEXACT, "-shortest", str(out / f"{key}.mp4")], input=frames.tobytes())
    raw_audio.unlink()
    meta = {"captions": [caption], "label": mi, "shape": shape, "colour": cname, "motion": motion,
            "triple": [si, ci, mi]}
    (out / f"{key}.json").write_text(json.dumps(meta, sort_keys=True))


def make_synth(media: Path, workers: int, timbre: str = "synth") -> None:
    """The narrated shape clips; ``timbre``: ``synth`` (one waveform per shape) or ``instruments``
    (freepats instruments, a group of them per shape: :data:`PRETRAIN_INSTRUMENTS`)."""
    if timbre not in TIMBRES:
        raise UserError(Problem(f"timbre {timbre!r}: expected one of {', '.join(TIMBRES)}"))
    notes = ""
    if timbre == "instruments":
        notes = str(media / "notes")
        make_notes(Path(notes))
    jobs = []
    for si in range(len(SHAPES)):
        for ci in range(len(COLOURS)):
            for mi in range(len(MOTIONS)):
                i = len(jobs)
                split = "eval" if held_out(si, ci, mi) else "train"
                (media / split).mkdir(parents=True, exist_ok=True)
                jobs.append((i, si, ci, mi, str(media / split), notes))
    with mp.get_context("forkserver").Pool(workers) as pool:
        list(pool.imap_unordered(_synth_clip, jobs))
    if notes:
        shutil.rmtree(notes)


# -- instruments -----------------------------------------------------------------
def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.insert(0, (n & 0x7F) | 0x80)
        n >>= 7
    return bytes(out)


def _note_midi(path: Path, program: int, pitch: int, velocity: int, ticks: int = 480) -> None:
    """One note held ``ticks`` (480 = 0.5 s at the default tempo), then 0.25 s of release."""
    track = (_vlq(0) + bytes([0xC0, program]) + _vlq(0) + bytes([0x90, pitch, velocity]) + _vlq(ticks)
             + bytes([0x80, pitch, 0]) + _vlq(240) + b"\xff\x2f\x00")
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track)


def make_instruments(media: Path) -> None:
    """18 instruments x 18 pitches x 2 velocities; every other pitch is held out (eval)."""
    mids = []
    for name, program in INSTRUMENTS.items():
        for n, pitch in enumerate(range(45, 81, 2)):
            split = "eval" if n % 2 else "train"
            for velocity in (70, 110):
                folder = media / split / name
                folder.mkdir(parents=True, exist_ok=True)
                mid = folder / f"{name}_n{pitch}_v{velocity}.mid"
                _note_midi(mid, program, pitch, velocity)
                (folder / f"{name}_n{pitch}_v{velocity}.json").write_text(
                    json.dumps({"pitch": pitch, "velocity": velocity, "program": program}, sort_keys=True))
                mids.append(mid)
    for wav in _render(mids):
        _peak_normalize(wav, NOTE_PEAK)


def _render(mids: list[Path]) -> list[Path]:
    """The MIDI files rendered by timidity with the freepats bank, each to a mono .wav beside it
    (the .mid removed); returns the .wav paths."""
    cfg = "/etc/timidity/freepats.cfg"
    if not Path(cfg).is_file():
        raise UserError(Problem(f"{cfg} not found: apt-get install timidity freepats"))
    _run(["timidity", "-c", cfg, "-Ow", "-s", str(SR), "--output-mono", *map(str, mids)])
    for mid in mids:
        mid.unlink()
    return [mid.with_suffix(".wav") for mid in mids]


PITCHES = (57, 59, 61, 63, 65, 67)  # A3 + whole tones = the synthetic clips' colour pitches, 220 * 2 ** (c / 6) Hz
PITCH_PEAKS = (0.1, 0.25, 0.5)      # three loudness levels: -14, -6, 0 dB re NOTE_PEAK
# The pitch probe's other instruments: every clearly pitched freepats patch beyond INSTRUMENTS (no
# drums, effects or noises).  With 36 held-out notes (6 instruments) one note moved a probe by 0.028,
# as much as the differences it had to resolve; these add 14 held-out instruments (120 notes in all).
MORE_PITCHED = {"bright_piano": 1, "electric_grand": 2, "rhodes": 4, "dx_piano": 5, "clavinet": 7, "celesta": 8,
                "xylophone": 13, "dulcimer": 15, "hammond_organ": 16, "tango_accordion": 23, "steel_guitar": 25,
                "jazz_guitar": 26, "clean_guitar": 27, "muted_guitar": 28, "overdriven_guitar": 29,
                "finger_bass": 33, "pick_bass": 34, "fretless_bass": 35, "slap_bass_1": 36, "slap_bass_2": 37,
                "synth_bass": 38, "tremolo_strings": 44, "pizzicato_strings": 45, "string_ensemble": 48,
                "voice_oohs": 53, "tuba": 58, "muted_trumpet": 59, "french_horn": 60, "brass_section": 61,
                "soprano_sax": 64, "tenor_sax": 66, "baritone_sax": 67, "oboe": 68, "english_horn": 69,
                "bassoon": 70, "piccolo": 72, "recorder": 74, "bottle_blow": 76, "ocarina": 79, "square_wave": 80,
                "charang": 84, "steel_drums": 114}
PITCH_VERSION = 2  # 1: INSTRUMENTS only (18 instruments, 6 held out)


def pitch_splits() -> dict[str, tuple[int, str]]:
    """name -> (GM program, split): every third instrument of each list held out, so the
    instrument probe's 18 keep the split they had in version 1."""
    out = {}
    for table in (INSTRUMENTS, MORE_PITCHED):
        for k, (name, program) in enumerate(table.items()):
            out[name] = (program, "eval" if k % 3 == 2 else "train")
    return out


def make_pitches(media: Path) -> None:
    """The pitch probe: 6 classes (the pitches the pretraining clips tie to colour), labelled by
    folder; 60 instruments, 20 held out (eval; :func:`pitch_splits`), each note at 2 velocities x
    3 loudnesses."""
    mids = []
    for name, (program, split) in pitch_splits().items():
        for pitch in PITCHES:
            folder = media / split / f"midi{pitch}"
            folder.mkdir(parents=True, exist_ok=True)
            for velocity in (70, 110):
                mid = folder / f"{name}_v{velocity}.mid"
                _note_midi(mid, program, pitch, velocity)
                mids.append(mid)
    for wav in _render(mids):
        for level, peak in enumerate(PITCH_PEAKS):
            out = wav.with_name(f"{wav.stem}_l{level}.wav")
            shutil.copyfile(wav, out)
            _peak_normalize(out, peak)
        wav.unlink()


# Timbre "instruments" of the pretraining clips: the pitch probe's training instruments that are
# neither held out by it nor in the instrument probe, so no probe test sound is heard in pretraining.
PRETRAIN_INSTRUMENTS = [name for name, (_, split) in pitch_splits().items()
                        if split == "train" and name not in INSTRUMENTS]
TIMBRES = ("synth", "instruments")


def make_notes(folder: Path) -> None:
    """Every :data:`PRETRAIN_INSTRUMENTS` at every colour pitch, held 3 s (a glide over an octave
    reads 2.9 s of it): ``folder/<name>_<midi pitch>.wav``."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pitch_splits()
    mids = []
    for name in PRETRAIN_INSTRUMENTS:
        for pitch in PITCHES:
            mids.append(folder / f"{name}_{pitch}.mid")
            _note_midi(mids[-1], table[name][0], pitch, 100, ticks=2880)
    _render(mids)


def pitches_current(summary: dict) -> bool:
    """Whether a demo folder's summary holds this version's pitch probe."""
    return summary["subsets"].get("pitches/eval", {}).get("version", 1) == PITCH_VERSION


def add_pitches(root: Path, workers: int = 2, progress: bool = False) -> dict:
    """Build the pitches/{train,eval} subsets into an existing demo folder and record them in demo.json."""
    summary = json.loads((root / "demo.json").read_text())
    media = root / "media-pitches"
    shutil.rmtree(media, ignore_errors=True)
    make_pitches(media)
    for split in ("train", "eval"):
        name, dest = f"pitches/{split}", root / "pitches" / split
        shutil.rmtree(dest, ignore_errors=True)
        index = build(str(media / split), str(dest), max_count=64, workers=workers, progress=progress,
                      source=name, label_from_folder=True)
        summary["subsets"][name] = {"urls": f"{name}/{index['urls']}", "samples": index["samples"],
                                    "classes": index.get("classes", []), "skipped": index.get("skipped", {}),
                                    "version": PITCH_VERSION}
    shutil.rmtree(media, ignore_errors=True)
    (root / "demo.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def _peak_normalize(path: Path, peak: float) -> None:
    """timidity renders notes 15-25 dB below the synthetic clips' audio the model trains on; an
    out-of-range probe set would measure loudness, not timbre (the velocity stays in the sound)."""
    with wave.open(str(path)) as f:
        params, pcm = f.getparams(), np.frombuffer(f.readframes(f.getnframes()), "<i2")
    top = int(np.abs(pcm.astype(np.int32)).max())
    if top:
        pcm = np.round(pcm * (peak * 32767 / top)).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setparams(params)
        f.writeframes(pcm.tobytes())


# -- Big Buck Bunny ---------------------------------------------------------------
def fetch_bbb(cache: Path) -> tuple[Path | None, str]:
    """The film, from the cache or the moviepy sdist; (None, why) when it cannot be had."""
    cache.mkdir(parents=True, exist_ok=True)
    film = cache / "bbb.mp4"
    if film.is_file() and _md5(film) == BBB_MD5:
        return film, "cached"
    sdist = cache / "moviepy-2.2.1.tar.gz"
    if not sdist.is_file():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(cache),
               "-q", "moviepy==2.2.1"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode or not sdist.is_file():
            return None, "pip download moviepy==2.2.1 failed (no network?): " + proc.stderr.strip()[-300:]
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(f"moviepy-2.2.1/{BBB_IN_SDIST}")
        with zipfile.ZipFile(member) as z:
            film.write_bytes(z.read("moviepy_10_minutes/resources/bbb.mp4"))
    if _md5(film) != BBB_MD5:
        return None, f"bbb.mp4 from the sdist has md5 {_md5(film)}, expected {BBB_MD5}"
    return film, "downloaded"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_bbb(film: Path, media: Path, clips: int) -> None:
    media.mkdir(parents=True, exist_ok=True)
    _run(["ffmpeg", "-v", "error", "-y", "-threads", "2", "-i", str(film), "-t", str(4 * clips),
          "-vf", "fps=10,scale=-2:128:flags=bicubic", "-c:v", "libx264", "-threads", "2", "-preset", "veryfast",
          "-crf", "28", "-g", "40", "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac",
          "-b:a", "48k", "-ar", str(SR), "-ac", "1", *BITEXACT, "-f", "segment", "-segment_time", "4",
          "-reset_timestamps", "1", "-map", "0:v:0", "-map", "0:a:0", str(media / "bbb_%04d.mp4")])


# -- vocabulary --------------------------------------------------------------------
def write_vocabulary(out: Path) -> str:
    from .text import GLOVE_WORDS, glove_vectors, glove_words
    try:
        words = glove_words(GLOVE_WORDS)
    except UserError as exc:
        return str(exc)
    (out / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    np.save(out / "vectors.npy", glove_vectors(GLOVE_WORDS))
    return "ok"


def build_demo(out: str, workers: int = 2, bbb_clips: int = 149, progress: bool = True,
               timbre: str = "synth") -> dict:
    """Build everything into ``out``; returns the summary also written to ``out/demo.json``."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    media = root / "media"
    shutil.rmtree(media, ignore_errors=True)
    summary: dict = {"subsets": {}, "notes": []}
    t0 = time.time()

    def shards(name: str, src: Path, **kw) -> None:
        dest = root / name
        shutil.rmtree(dest, ignore_errors=True)
        index = build(str(src), str(dest), max_count=64, workers=workers, progress=progress, source=name, **kw)
        summary["subsets"][name] = {"urls": f"{name}/{index['urls']}", "samples": index["samples"],
                                    "classes": index.get("classes", []), "skipped": index.get("skipped", {})}

    make_synth(media / "synth", workers, timbre)
    summary["timbre"] = timbre
    for split in ("train", "eval"):
        shards(f"synth/{split}", media / "synth" / split)
    make_instruments(media / "instruments")
    for split in ("train", "eval"):
        shards(f"instruments/{split}", media / "instruments" / split, label_from_folder=True)
    make_pitches(media / "pitches")
    for split in ("train", "eval"):
        shards(f"pitches/{split}", media / "pitches" / split, label_from_folder=True)
        summary["subsets"][f"pitches/{split}"]["version"] = PITCH_VERSION
    film, how = fetch_bbb(root / "cache")
    if film is None:
        summary["notes"].append(f"bbb left out: {how}")
    else:
        make_bbb(film, media / "bbb", bbb_clips)
        shards("bbb", media / "bbb")
    vocab = write_vocabulary(root)
    if vocab != "ok":
        summary["notes"].append(f"vocabulary left out: {vocab}")
    else:
        summary["vocabulary"] = {"words": "vocab.txt", "vectors": "vectors.npy", "note": "row i <-> id i+1"}
    shutil.rmtree(media, ignore_errors=True)
    summary["seconds"] = round(time.time() - t0, 1)
    (root / "demo.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
