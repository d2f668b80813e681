"""The cutout pipeline, pure functions and one ``Remover``: what the library, the command and the server share."""

from shoeseg.pipeline.image_io import InvalidImageError
from shoeseg.pipeline.options import OptionError, Options, parse_options
from shoeseg.pipeline.remover import Remover, remove

__all__ = ["InvalidImageError", "OptionError", "Options", "Remover", "parse_options", "remove"]
