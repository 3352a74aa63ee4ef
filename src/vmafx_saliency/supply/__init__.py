"""The model supply chain: export, scan, contract, registry, signing, the loader gate, release.

It imports the standard library plus numpy, onnxruntime and jsonschema (torch
and model_signing lazily), so it runs where torch is not installed.
"""
