"""The pitch probe of the demo data (issue 16): real freepats notes rendered by timidity, labelled
by pitch, instruments held out, three loudness levels."""
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from vattfw.data.demo import INSTRUMENTS, PITCH_PEAKS, PITCHES, SR, make_pitches, pitch_splits

pytestmark = pytest.mark.skipif(not (shutil.which("timidity") and Path("/etc/timidity/freepats.cfg").is_file()),
                                reason="needs timidity + freepats")


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as f:
        assert f.getframerate() == SR and f.getnchannels() == 1
        return np.frombuffer(f.readframes(f.getnframes()), "<i2") / 32768.0


def test_pitch_probe_classes_splits_levels_and_pitch(tmp_path):
    make_pitches(tmp_path)
    split_of = {}
    for split in ("train", "eval"):
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == [f"midi{p}" for p in PITCHES]
        for wav in (tmp_path / split).rglob("*.wav"):
            split_of.setdefault(wav.name.split("_v")[0], set()).add(split)
    assert len(split_of) == 60 and set(INSTRUMENTS) <= set(split_of)
    assert all(len(s) == 1 for s in split_of.values())  # no instrument in both splits
    assert sum(s == {"eval"} for s in split_of.values()) == 20
    # the instrument probe's 18 keep the split of the first version (6 held out: every third)
    assert [n for n in INSTRUMENTS if split_of[n] == {"eval"}] == list(INSTRUMENTS)[2::3]
    assert len({program for program, _ in pitch_splits().values()}) == 60  # 60 distinct patches
    # three loudness levels of one rendering: the same waveform at the given peaks
    levels = [_read(tmp_path / "train" / "midi57" / f"piano_v110_l{k}.wav") for k in range(3)]
    for x, peak in zip(levels, PITCH_PEAKS):
        assert abs(np.abs(x).max() - peak) < 1e-3
        np.testing.assert_allclose(x / peak, levels[-1] / PITCH_PEAKS[-1], atol=2e-3)
    # the label is the pitch that sounds: the spectral peak of a note is a harmonic (within a
    # quarter tone) of 440 * 2 ** ((p - 69) / 12) Hz, an independent formula for MIDI pitch
    # (freepats' flute peaks at the 2nd harmonic), and the pitches differ
    peaks = {}
    for pitch in (PITCHES[0], PITCHES[-1]):
        x = _read(tmp_path / "train" / f"midi{pitch}" / "flute_v110_l2.wav")
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        peaks[pitch] = np.fft.rfftfreq(x.size, 1 / SR)[spec.argmax()]
        harmonic = peaks[pitch] / (440 * 2 ** ((pitch - 69) / 12))
        assert round(harmonic) >= 1 and abs(12 * np.log2(harmonic / round(harmonic))) < 0.5, (pitch, peaks)
    assert peaks[PITCHES[-1]] > peaks[PITCHES[0]]
