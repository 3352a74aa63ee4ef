"""How a bundle is to be verified: the :class:`Verifier` and its three methods.

``public-key``
    the bundle was signed with an EC private key; verify with the matching
    public key.
``certificate-chain``
    the bundle was signed with a private key plus a signing certificate from a
    private PKI; verify against the trusted root (and intermediate) certificates.
``keyless``
    Sigstore keyless signing: a short-lived Fulcio certificate for an OIDC
    identity, logged in Rekor; verify for an exact ``identity`` or an
    ``identity_regexp``, plus the ``oidc_issuer``.

A Verifier checks its arguments when it is built, so that a wrong combination
is a :class:`UsageError` naming the command-line flags before any file is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmafx_saliency.errors import UsageError
from vmafx_saliency.supply.signing.bundles import METHODS, Method


@dataclass(frozen=True, kw_only=True)
class Verifier:
    """How to verify a bundle; build it with one of the classmethods.

    ``keyless`` takes exactly one of ``identity`` (the certificate's SAN, e.g.
    an email or a CI workflow URI) and ``identity_regexp`` (a Python regular
    expression that must match a SAN in full), plus ``oidc_issuer``. The trust
    root comes from ``trust_config`` (a Sigstore client trust config JSON,
    offline) or is fetched over the network from the public-good instance, or
    from staging with ``use_staging``.
    """

    method: Method
    public_key: Path | None = None
    certificate_chain: tuple[Path, ...] = ()
    identity: str | None = None
    identity_regexp: str | None = None
    oidc_issuer: str | None = None
    trust_config: Path | None = None
    use_staging: bool = False
    _compiled_regexp: re.Pattern[str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Normalise what callers (the CLI passes lists and strings) hand in;
        # the dataclass is frozen, so go through object.__setattr__.
        object.__setattr__(
            self, "certificate_chain", tuple(Path(p) for p in self.certificate_chain)
        )
        if self.public_key is not None:
            object.__setattr__(self, "public_key", Path(self.public_key))
        if self.trust_config is not None:
            object.__setattr__(self, "trust_config", Path(self.trust_config))

        if self.method not in METHODS:
            raise UsageError(
                f"unknown verification method {self.method!r}: use one of {', '.join(METHODS)}"
            )
        given = {
            "--public-key": self.public_key is not None,
            "--certificate-chain": bool(self.certificate_chain),
            "--identity": self.identity is not None,
            "--identity-regexp": self.identity_regexp is not None,
            "--oidc-issuer": self.oidc_issuer is not None,
            "--trust-config": self.trust_config is not None,
            "--staging": self.use_staging,
        }
        allowed = {
            "public-key": {"--public-key"},
            "certificate-chain": {"--certificate-chain"},
            "keyless": {
                "--identity",
                "--identity-regexp",
                "--oidc-issuer",
                "--trust-config",
                "--staging",
            },
        }[self.method]
        extra = sorted(flag for flag, present in given.items() if present and flag not in allowed)
        if extra:
            raise UsageError(
                f"{self.method} verification does not take {', '.join(extra)}: "
                f"{_METHOD_FLAGS[self.method]}"
            )
        if self.method == "public-key" and self.public_key is None:
            raise UsageError(f"public-key verification needs a key: {_METHOD_FLAGS['public-key']}")
        if self.method == "certificate-chain" and not self.certificate_chain:
            # model_signing would fall back to the OS trust store: never what is meant.
            raise UsageError(
                "certificate-chain verification needs its roots: "
                + _METHOD_FLAGS["certificate-chain"]
            )
        if self.method == "keyless":
            self._check_keyless()

    def _check_keyless(self) -> None:
        if self.identity == "" or self.identity_regexp == "":
            raise UsageError("an empty --identity / --identity-regexp matches nothing useful")
        if (self.identity is None) == (self.identity_regexp is None):
            raise UsageError(
                "keyless verification takes exactly one of --identity ID and "
                "--identity-regexp REGEXP, plus --oidc-issuer URL"
            )
        if not self.oidc_issuer:
            raise UsageError(
                "keyless verification needs --oidc-issuer URL (e.g. "
                "https://token.actions.githubusercontent.com) besides the identity"
            )
        if self.trust_config is not None and self.use_staging:
            raise UsageError(
                "pass either --trust-config FILE or --staging: a trust config already "
                "names the Sigstore instance"
            )
        if self.identity_regexp is not None:
            try:
                compiled = re.compile(self.identity_regexp)
            except re.error as exc:
                raise UsageError(
                    f"--identity-regexp {self.identity_regexp!r} is not a valid regular "
                    f"expression: {exc}"
                ) from exc
            object.__setattr__(self, "_compiled_regexp", compiled)

    @classmethod
    def from_public_key(cls, path: Path) -> Verifier:
        return cls(method="public-key", public_key=Path(path))

    @classmethod
    def from_certificate_chain(cls, paths: Sequence[Path]) -> Verifier:
        return cls(method="certificate-chain", certificate_chain=tuple(Path(p) for p in paths))

    @classmethod
    def keyless(
        cls,
        *,
        identity: str | None = None,
        identity_regexp: str | None = None,
        oidc_issuer: str | None,
        trust_config: Path | None = None,
        use_staging: bool = False,
    ) -> Verifier:
        return cls(
            method="keyless",
            identity=identity,
            identity_regexp=identity_regexp,
            oidc_issuer=oidc_issuer,
            trust_config=Path(trust_config) if trust_config is not None else None,
            use_staging=use_staging,
        )

    def describe(self) -> str:
        """A few words for messages: what the bundle was checked against."""
        if self.method == "public-key":
            return f"public key {self.public_key}"
        if self.method == "certificate-chain":
            return "certificate chain " + ", ".join(str(p) for p in self.certificate_chain)
        who = self.identity if self.identity is not None else f"/{self.identity_regexp}/"
        return f"keyless identity {who} from {self.oidc_issuer}"


_METHOD_FLAGS: dict[str, str] = {
    "public-key": "pass --public-key KEY.pub",
    "certificate-chain": "pass --certificate-chain ROOT.pem (one or more PEM files)",
    "keyless": "pass --identity ID or --identity-regexp REGEXP, and --oidc-issuer URL",
}
