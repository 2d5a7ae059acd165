"""spadelab: an experiment suite for semantic image synthesis and its normalization layers."""

__version__ = "0.1.0"
