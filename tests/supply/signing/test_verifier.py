"""The Verifier's arguments: what each verification method takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("model_signing")

from tests.supply.signing._common import ISSUER
from vmafx_saliency.errors import UsageError
from vmafx_saliency.supply.signing import Verifier


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "public-key"}, "public-key verification needs a key: pass --public-key"),
        ({"method": "certificate-chain"}, "needs its roots: pass --certificate-chain ROOT.pem"),
        (
            {"method": "public-key", "public_key": Path("k.pub"), "identity": "x"},
            "public-key verification does not take --identity",
        ),
        (
            {
                "method": "keyless",
                "public_key": Path("k.pub"),
                "identity": "x",
                "oidc_issuer": ISSUER,
            },
            "keyless verification does not take --public-key",
        ),
        ({"method": "keyless", "oidc_issuer": ISSUER}, "exactly one of --identity ID and"),
        (
            {"method": "keyless", "identity": "a", "identity_regexp": "b", "oidc_issuer": ISSUER},
            "exactly one of --identity ID and --identity-regexp REGEXP",
        ),
        ({"method": "keyless", "identity": "a"}, "needs --oidc-issuer URL"),
        (
            {"method": "keyless", "identity_regexp": "(", "oidc_issuer": ISSUER},
            "is not a valid regular expression",
        ),
        (
            {
                "method": "keyless",
                "identity": "a",
                "oidc_issuer": ISSUER,
                "trust_config": Path("t.json"),
                "use_staging": True,
            },
            "either --trust-config FILE or --staging",
        ),
        ({"method": "gpg"}, "unknown verification method 'gpg'"),
    ],
)
def test_verifier_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Verifier(**kwargs)


def test_verifier_constructors() -> None:
    assert Verifier.from_public_key(Path("k.pub")).public_key == Path("k.pub")
    chain = Verifier.from_certificate_chain([Path("a.crt"), Path("b.crt")])
    assert chain.certificate_chain == (Path("a.crt"), Path("b.crt"))
    keyless = Verifier.keyless(identity_regexp=r"https://github\.com/org/.*", oidc_issuer=ISSUER)
    assert keyless.method == "keyless" and keyless.identity is None
    with pytest.raises(UsageError, match="needs --oidc-issuer"):
        Verifier.keyless(identity="me@example.com", oidc_issuer=None)
