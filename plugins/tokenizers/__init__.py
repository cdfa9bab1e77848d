"""Built-in tokenizer components: voxel (video), waveform and spectrogram (audio), word_embedding (text).

A tokenizer is ``build(config, dim=D) -> nn.Module`` whose ``forward(x)`` returns ``(tokens [N, S, D],
mask [N, S] or None)`` and whose ``provides_agg`` says whether position 0 already is an aggregation token.
"""
from vattfw import Component, hookimpl

from . import spectrogram, voxel, waveform, word_embedding


@hookimpl
def vattfw_components() -> list[Component]:
    return [
        Component("tokenizer", "voxel", voxel.Config, voxel.build),
        Component("tokenizer", "waveform", waveform.Config, waveform.build),
        Component("tokenizer", "spectrogram", spectrogram.Config, spectrogram.build),
        Component("tokenizer", "word_embedding", word_embedding.Config, word_embedding.build),
    ]
