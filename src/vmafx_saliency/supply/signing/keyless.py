"""Keyless verification through sigstore-python, and the Sigstore trust root.

model_signing verifies keyless bundles for an exact identity only; an
``identity_regexp`` is verified here with sigstore-python's verifier directly
and a policy that requires the regexp to match a certificate identity *in
full*, after which the model's digest is checked against the authenticated
payload. The trust root is a local client trust config (``trust_config``) or is
fetched over the network (TUF) from the public-good instance, or from staging.
sigstore comes with the ``sign`` extra and is imported inside the functions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from vmafx_saliency._util import read_capped
from vmafx_saliency.errors import InputFileError, SignatureMismatchError, TrustRootError
from vmafx_saliency.supply.signing.bundles import (
    _IN_TOTO_PAYLOAD_TYPE,
    _invalid,
    _parse_statement,
    _ParsedBundle,
)
from vmafx_saliency.supply.signing.verifier import Verifier

# A trust config is a few kilobytes of JSON.
_MAX_TRUST_CONFIG_BYTES = 1 << 20

if TYPE_CHECKING:
    from cryptography import x509
    from sigstore.models import ClientTrustConfig

# Sigstore's "other name" SAN type (used for non-email, non-URI identities).
_SIGSTORE_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"


def _trust_root_error(exc: Exception) -> TrustRootError:
    return TrustRootError(
        f"cannot load the Sigstore trust root ({exc}): keyless verification fetches it "
        "from the Sigstore TUF repository over the network; connect, or pass "
        "--trust-config FILE"
    )


def _load_trust_config(path: Path) -> ClientTrustConfig:
    from sigstore.models import ClientTrustConfig

    raw = read_capped(path, cap=_MAX_TRUST_CONFIG_BYTES, what="Sigstore trust config")
    try:
        return ClientTrustConfig.from_json(raw.decode("utf-8"))
    except ValueError as exc:  # pydantic.ValidationError and UnicodeDecodeError are ValueErrors
        raise InputFileError(
            f"{path}: not a Sigstore client trust config ({exc}): pass a "
            "ClientTrustConfig JSON file (media type "
            "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json)"
        ) from exc


def _client_trust_config(verifier: Verifier) -> ClientTrustConfig:
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    if verifier.trust_config is not None:
        return _load_trust_config(verifier.trust_config)
    try:
        if verifier.use_staging:
            return ClientTrustConfig.staging()
        return ClientTrustConfig.production()
    except SigstoreError as exc:
        raise _trust_root_error(exc) from exc


def _certificate_identities(cert: x509.Certificate) -> set[str]:
    """The SAN values Sigstore treats as identities (as sigstore's Identity policy)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    identities: set[str] = set(san.get_values_for_type(x509.RFC822Name))
    identities.update(san.get_values_for_type(x509.UniformResourceIdentifier))
    identities.update(
        other.value.decode()
        for other in san.get_values_for_type(x509.OtherName)
        if other.type_id.dotted_string == _SIGSTORE_OTHERNAME_OID
    )
    return identities


class _IdentityRegexpPolicy:
    """sigstore-python verification policy: issuer equal, identity matching a regexp.

    The certificate's OIDC issuer extension must equal ``issuer`` and one of
    its identities must match ``regexp`` in full (``re.fullmatch``: an
    unanchored search would let ``https://evil.example/?https://github.com/org/``
    pass a pattern meant for ``https://github.com/org/``).
    """

    def __init__(self, *, regexp: re.Pattern[str], issuer: str) -> None:
        self._regexp = regexp
        self._issuer = issuer
        self.matched: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify.policy import OIDCIssuer

        OIDCIssuer(self._issuer).verify(cert)
        identities = _certificate_identities(cert)
        for identity in sorted(identities):
            if self._regexp.fullmatch(identity):
                self.matched = identity
                return
        raise VerificationError(
            f"no certificate identity matches {self._regexp.pattern!r} in full; "
            f"identities: {sorted(identities)}"
        )


def _sigstore_verify_dsse(
    raw: bytes, *, bundle: Path, verifier: Verifier, policy: _IdentityRegexpPolicy
) -> tuple[str, bytes]:
    """Verify a keyless bundle with sigstore-python; return (payload type, payload)."""
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle as SigstoreBundle
    from sigstore.models import InvalidBundle
    from sigstore.verify import Verifier as SigstoreVerifier

    # Parse before fetching the trust root: a broken bundle fails offline.
    try:
        sigstore_bundle = SigstoreBundle.from_json(raw)
    except InvalidBundle as exc:
        raise _invalid(bundle, f"not a Sigstore keyless bundle ({exc})") from exc
    trust = _client_trust_config(verifier)
    try:
        return SigstoreVerifier(trusted_root=trust.trusted_root).verify_dsse(
            bundle=sigstore_bundle, policy=policy
        )
    except VerificationError as exc:
        raise SignatureMismatchError(
            f"{bundle}: keyless signature does not verify for {verifier.describe()}: {exc}"
        ) from exc


def _verify_keyless_regexp(
    bundle: Path,
    raw: bytes,
    parsed: _ParsedBundle,
    verifier: Verifier,
) -> str:
    """Keyless with an identity regexp: sigstore-python; the caller checks the digests."""
    assert verifier._compiled_regexp is not None  # set by Verifier.__post_init__
    assert verifier.oidc_issuer is not None
    policy = _IdentityRegexpPolicy(regexp=verifier._compiled_regexp, issuer=verifier.oidc_issuer)
    payload_type, payload = _sigstore_verify_dsse(
        raw, bundle=bundle, verifier=verifier, policy=policy
    )
    if payload_type != _IN_TOTO_PAYLOAD_TYPE:
        raise _invalid(bundle, f"payloadType {payload_type!r} is not in-toto")
    # Re-read the digests from the verified payload rather than trusting the
    # pre-parse (they are the same bytes, but this is the authenticated copy).
    signed_files, _ = _parse_statement(bundle, payload)
    if signed_files != parsed.files:
        raise _invalid(bundle, "the verified payload differs from the envelope read")
    return f"{policy.matched} (OIDC issuer {verifier.oidc_issuer})"
