"""Saliency put to use: encoder ROI maps and feature-table columns."""
