"""Image samples: which member of a sample is its image, and the one decoder of image shards
and image folders."""
from __future__ import annotations

IMAGE_EXTS = ("jpg", "jpeg", "png", "bmp", "webp")


def decode_image(data: bytes):
    """uint8 [H, W, 3] of an encoded image (its first frame), with PyAV: the one decoder of
    image shards and image folders, so both give the same pixels."""
    import io

    import av
    import torch
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return torch.from_numpy(frame.to_ndarray(format="rgb24"))


def image_member(members) -> str | None:
    """The extension of a sample's image member, if it has one."""
    return next((ext for ext in members if ext in IMAGE_EXTS), None)
