"""vmafx-saliency: saliency models for video-quality work."""

from __future__ import annotations

__version__ = "0.1.0"
