"""The shipped default model(s): weights live beside this file, with their model card."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).parent
#: The default FER-2013 model (state_dict + config, fp16 weights); see MODEL_CARD.md.
DEFAULT_WEIGHTS = WEIGHTS_DIR / "emovgg_m_fer2013.pt"
#: The same model exported to ONNX (fp32), used by the ONNX Runtime backend.
DEFAULT_ONNX = WEIGHTS_DIR / "emovgg_m_fer2013.onnx"


def default_weights_path() -> Path:
    """Path of the shipped PyTorch weights; a clear error if the package was installed without them."""
    if not DEFAULT_WEIGHTS.is_file():
        raise FileNotFoundError(
            f"the shipped model is missing ({DEFAULT_WEIGHTS}); reinstall emoscope or pass --weights PATH"
        )
    return DEFAULT_WEIGHTS
