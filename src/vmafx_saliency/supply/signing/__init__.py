"""Sigstore bundles for models (with their sidecars), made and checked through model_signing.

A model ``m.onnx`` is signed into a bundle ``m.onnx.sigstore.json`` beside it
(see ``bundles``): a Sigstore bundle whose DSSE envelope carries
model_signing's in-toto statement, in which the model file's plain sha256 is
the digest :attr:`SignatureReport.sha256` reports. The signature therefore does
not depend on where the file lies: a model and its bundle copied into another
directory (release staging) still verify, and so does a renamed copy.

One module per concept, as model-transparency and sigstore-python arrange it:
``keys`` (key pairs, keygen, loading keys and certificates), ``bundles`` (where
a bundle lies, reading and parsing it), ``sign`` (:func:`sign_model`),
``verifier`` (:class:`Verifier`: public-key, certificate-chain or keyless,
DESIGN section 4), ``verify`` (:func:`verify_model` through model_signing) and
``keyless`` (identity regexps through sigstore-python, the Sigstore trust
root).

model_signing, cryptography and sigstore come with the ``sign`` extra and are
imported lazily, so ``import vmafx_saliency.supply.signing`` works without them.
"""

from __future__ import annotations

from vmafx_saliency.supply.signing.bundles import (
    BUNDLE_SUFFIX,
    METHODS,
    Method,
    bundle_path_for,
    signed_digests,
    signed_names,
    signed_sha256,
    signed_sidecar_sha256,
)
from vmafx_saliency.supply.signing.keys import KeyPair, generate_key_pair
from vmafx_saliency.supply.signing.sign import sign_folder, sign_model
from vmafx_saliency.supply.signing.verifier import Verifier
from vmafx_saliency.supply.signing.verify import (
    SignatureReport,
    coverage_problem,
    verify_files,
    verify_model,
)

__all__ = [
    "BUNDLE_SUFFIX",
    "METHODS",
    "KeyPair",
    "Method",
    "SignatureReport",
    "Verifier",
    "bundle_path_for",
    "coverage_problem",
    "generate_key_pair",
    "sign_folder",
    "sign_model",
    "signed_digests",
    "signed_names",
    "signed_sha256",
    "signed_sidecar_sha256",
    "verify_files",
    "verify_model",
]
