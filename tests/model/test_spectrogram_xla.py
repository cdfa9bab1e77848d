"""The ``spectrogram`` tokenizer's STFT-as-matmul log-mel equals torchaudio's MelSpectrogram, and
it traces into one XLA graph: eager == XLA forward, and a train step with it compiles once."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

import vattfw
from fixtures.processes import run_python

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from enginekit import write_spec  # noqa: E402

# (sample rate, samples): paper 48 kHz clip; 48 kHz with 40 frames (40 % 16 != 0, the last
# patch is not filled); the 8192 Hz demo profile, full and with 30 frames (30 % 16 != 0).
CASES = [(48_000, 153_600), (48_000, 40_000), (8192, 16_384), (8192, 5000)]


def reference(sr: int, x: torch.Tensor) -> torch.Tensor:
    """torchaudio's MelSpectrogram with the tokenizer's settings, in float64: ``[B, frames, 80]`` power."""
    import torchaudio
    win, hop = round(sr * 0.042), round(sr * 0.021)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sr, n_fft=win, win_length=win, hop_length=hop, n_mels=80, window_fn=torch.hann_window,
        power=2.0, center=True, pad_mode="reflect", norm=None, mel_scale="htk").double()
    return mel(x.double()).transpose(1, 2)


def sines(sr: int, samples: int) -> torch.Tensor:
    t = torch.arange(samples, dtype=torch.float64) / sr
    a = 0.7 * torch.sin(2 * math.pi * 440 * t)
    b = 0.3 * torch.sin(2 * math.pi * 1234.5 * t) + 0.1 * torch.sin(2 * math.pi * 3000 * t + 1.0)
    return torch.stack([a, b]).float()


@pytest.mark.parametrize("sr,samples", CASES)
def test_log_mel_matches_torchaudio_on_random_audio(sr, samples):
    tok = vattfw.build("tokenizer", {"name": "spectrogram", "sample_rate": sr, "samples": samples}, dim=8).eval()
    x = torch.rand(2, samples, generator=torch.Generator().manual_seed(sr + samples)) * 2 - 1
    ref = torch.log(reference(sr, x) + 1e-6)
    got = tok.mel(x)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert (got.double() - ref).abs().max() <= 1e-4 * ref.abs().max()
    frames = ref.shape[1]
    tokens, _ = tok(x)
    assert tokens.shape == (2, (frames // 16) * (80 // 5), 8)   # the last, partial patch is dropped


@pytest.mark.parametrize("sr,samples", CASES)
def test_log_mel_matches_torchaudio_on_sines(sr, samples):
    """Pure tones span ~11 decades of power; float32 resolves ~7 below the peak.  Power agrees
    to 1e-5 of the peak everywhere, the log-mel to 1e-4 of its range wherever the power is
    within float32 resolution of the peak, and nowhere worse than torchaudio's own float32 run."""
    import torchaudio
    tok = vattfw.build("tokenizer", {"name": "spectrogram", "sample_rate": sr, "samples": samples}, dim=8)
    x = sines(sr, samples)
    ref = reference(sr, x)
    got = tok.mel(x).double()
    assert (got.exp() - 1e-6 - ref).abs().max() <= 1e-5 * ref.max()
    log_ref = torch.log(ref + 1e-6)
    resolved = ref > 1e-6 * ref.max()
    assert (got - log_ref)[resolved].abs().max() <= 1e-4 * log_ref.abs().max()
    win, hop = round(sr * 0.042), round(sr * 0.021)
    ta32 = torchaudio.transforms.MelSpectrogram(sample_rate=sr, n_fft=win, win_length=win, hop_length=hop, n_mels=80)
    ta_err = (torch.log(ta32(x) + 1e-6).transpose(1, 2).double() - log_ref).abs().max()
    assert (got - log_ref).abs().max() <= 2 * ta_err + 1e-4 * log_ref.abs().max()


def test_buffers_are_not_checkpointed_and_legacy_checkpoints_load():
    tok = vattfw.build("tokenizer", {"name": "spectrogram", "sample_rate": 8192, "samples": 16_384}, dim=8)
    keys = set(tok.state_dict())
    assert not any(k.startswith("mel.") for k in keys), keys
    assert tok.mel.basis.dtype == tok.mel.fbank.dtype == torch.float32
    legacy = {**tok.state_dict(), "mel.spectrogram.window": torch.ones(344), "mel.mel_scale.fb": torch.ones(173, 80)}
    tok.load_state_dict(legacy)   # strict: the torchaudio-era buffers are dropped, nothing else differs


def test_too_short_audio_is_a_user_error():
    tok = vattfw.build("tokenizer", {"name": "spectrogram", "sample_rate": 8192, "samples": 16_384,
                                     "patch": [1, 5]}, dim=8)
    with pytest.raises(vattfw.UserError, match="spectrogram"):
        tok(torch.zeros(1, 100))   # shorter than the 172-sample reflect padding


XLA_FORWARD = r'''
import json, torch, torch_xla
import torch_xla.debug.metrics as met
import vattfw
out = {}
for sr, samples in [(48000, 40000), (8192, 5000)]:
    torch.manual_seed(0)
    tok = vattfw.build("tokenizer", {"name": "spectrogram", "sample_rate": sr, "samples": samples}, dim=16).eval()
    x = torch.rand(2, samples, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        eager, _ = tok(x)
        dev = torch_xla.device()
        tok.to(dev)
        step = torch_xla.compile(lambda a: tok(a)[0], full_graph=True)   # a host fallback raises here
        lazy = step(x.to(dev)).cpu()
    out[f"{sr}/{samples}"] = [(eager - lazy).abs().max().item(), eager.abs().max().item(), list(lazy.shape)]
out["fallbacks"] = [c for c in met.counter_names() if c.startswith("aten::")]
print("RESULT" + json.dumps(out))
'''


@pytest.mark.xla
def test_xla_forward_matches_eager_in_one_graph():
    r = run_python(XLA_FORWARD, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    assert res.pop("fallbacks") == []
    for key, (diff, scale, shape) in res.items():
        assert diff <= 1e-4 * max(1.0, scale), (key, diff, scale)
    assert res["48000/40000"][2] == [2, (40 // 16) * 16, 16]
    assert res["8192/5000"][2] == [2, (30 // 16) * 16, 16]


TRAIN = r'''
import json, math, sys
sys.path.insert(0, "tests/engine")
import vattfw
from enginekit import Batches
from vattfw.engine.trainer import Trainer
spec = vattfw.load_spec({path!r}, [
    "model.tokenizers.audio={{name: spectrogram, sample_rate: 8192, samples: 1024, patch: [2, 10]}}",
    "train.steps=5", "mesh.data=1"])
t = Trainer(spec, loader=Batches(), resume="never", progress=False)
r = t.run()
print("RESULT" + json.dumps({{"status": r.status, "losses": [l for _, l in r.losses],
                             "compiles": r.summary["compiles"]}}))
'''


@pytest.mark.xla
def test_train_step_with_spectrogram_compiles_once(tmp_path):
    """Tiny VATT whose audio tower reads log-mel patches (8192 Hz, 1024 samples -> 6 frames ->
    3 x 8 patches) trains five steps under the engine's full-graph compiled step (torch.stft
    would fail there).  The engine compiles the step once (the optimiser state exists before
    the first trace; see test_engine_compile): steps 2-5 reuse it."""
    r = run_python(TRAIN.format(path=str(write_spec(tmp_path))), devices=1, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")][-1][len("RESULT"):])
    assert res["status"] == "finished", res
    assert len(res["losses"]) == 5 and all(math.isfinite(v) for v in res["losses"]), res
    assert res["compiles"] == 1, res
