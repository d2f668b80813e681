"""ShoeSeg: background removal for product photos.

    import shoeseg
    shoeseg.remove("shoe.jpg").save("cutout.png")                 # RGBA, the photo's own size
    remover = shoeseg.Remover()                                    # keep the model loaded for many calls
    png = remover.remove(open("shoe.jpg", "rb").read(), encoded=True, output="rgb", bg="#f0f0f0")

Subpackages: ``model`` (the ResUNet), ``pipeline`` (decode -> forward -> compose -> encode, used by every
door), ``handler`` (TorchServe), ``training``, ``client`` (REST / gRPC client, no torch needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["InvalidImageError", "OptionError", "Remover", "remove"]

if TYPE_CHECKING:
    from shoeseg.pipeline import InvalidImageError, OptionError, Remover, remove


def __getattr__(name: str) -> Any:
    # Imported on first use: `import shoeseg.client` stays free of torch.
    if name in __all__:
        from shoeseg import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'shoeseg' has no attribute {name!r}")
