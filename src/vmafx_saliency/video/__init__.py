"""The runtime: frame sources, resize, the mobilesal extractor and vmaf-format output."""
