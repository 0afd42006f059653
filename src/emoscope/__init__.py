"""emoscope: recognise emotions from faces."""

from .labels import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "__version__"]
