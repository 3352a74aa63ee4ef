"""The signing commands through cli.main: keygen, sign, verify."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

pytest.importorskip("model_signing")


from tests.cli._commands import Capture, one_line_error, run
from vmafx_saliency._util import sha256_bytes

pytestmark = pytest.mark.usefixtures("isolated")


def test_keygen_writes_0600_and_never_overwrites(tmp_path: Path, capsys: Capture) -> None:
    key = tmp_path / "keys" / "signing.pem"
    code, out, _ = run(capsys, "keygen", "--private-key", key)
    assert code == 0
    assert out.splitlines() == [
        f"private key {key} (mode 0600)",
        f"public key  {key}.pub",
    ]
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    code, out, err = run(capsys, "keygen", "--private-key", key)
    assert (code, out) == (2, "")
    assert re.fullmatch(
        rf"{re.escape(str(key))} already exists: key files are never overwritten; .*",
        one_line_error(err, "keygen"),
    )
    assert key.read_bytes() == before


def test_sign_then_verify(signed_model: tuple[Path, Path], capsys: Capture) -> None:
    model, public_key = signed_model
    sidecar = model.with_name("sidecar.json")
    code, out, _ = run(capsys, "verify", model, "--sidecar", sidecar, "--public-key", public_key)
    assert code == 0
    first, second = out.strip().splitlines()
    assert re.fullmatch(
        rf"{re.escape(str(model))}: signature OK \(public-key; signer .*; sha256 [0-9a-f]{{64}}\)",
        first,
    )
    assert (
        second == f"{sidecar}: signed with the model (sha256 {sha256_bytes(sidecar.read_bytes())})"
    )
    # The sidecar is part of what is signed: an edited one fails verification.
    sidecar.write_text(sidecar.read_text().replace('"model_id"', '"notes": "x", "model_id"'))
    code, out, err = run(capsys, "verify", model, "--sidecar", sidecar, "--public-key", public_key)
    assert (code, out) == (2, "")
    assert one_line_error(err, "verify").startswith(
        f"{sidecar}: the sidecar's sha256 differs from the digest the bundle signs"
    )
    # Without --sidecar, the sidecar must lie beside the model under its conventional name.
    code, out, err = run(capsys, "verify", model, "--public-key", public_key)
    assert (code, out) == (2, "")
    assert one_line_error(err, "verify").endswith("pass the sidecar (--sidecar)")


def test_a_model_signed_alone_says_so_and_refuses_a_sidecar(
    tmp_path: Path, signed_model: tuple[Path, Path], capsys: Capture
) -> None:
    model, public_key = signed_model
    key = tmp_path / "keys" / "signing.pem"
    code, out, _ = run(capsys, "sign", model, "--model-only", "--force", "--private-key", key)
    assert (code, out.strip()) == (0, f"signed {model} (model alone) -> {model}.sigstore.json")
    code, out, _ = run(capsys, "verify", model, "--public-key", public_key)
    assert code == 0
    assert out.strip().splitlines()[1] == (
        f"{model}: the bundle signs the model alone, without a sidecar"
    )
    sidecar = model.with_name("sidecar.json")
    code, out, err = run(capsys, "verify", model, "--sidecar", sidecar, "--public-key", public_key)
    assert (code, out) == (2, "")
    assert f"the bundle signs model.onnx alone, not its sidecar {sidecar}" in one_line_error(
        err, "verify"
    )


def test_verify_with_a_wrong_key(
    tmp_path: Path, signed_model: tuple[Path, Path], capsys: Capture
) -> None:
    model, _ = signed_model
    other = tmp_path / "other.pem"
    run(capsys, "keygen", "--private-key", other)
    code, out, err = run(capsys, "verify", model, "--public-key", f"{other}.pub")
    assert (code, out) == (2, "")
    assert "signature does not verify with" in one_line_error(err, "verify")


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--public-key", "k.pub", "--identity", "a@example.org", "--oidc-issuer", "https://i"],
        ["--oidc-issuer", "https://issuer.example", "--certificate-chain", "root.pem"],
    ],
    ids=["none", "key-and-identity", "chain-and-issuer"],
)
def test_verify_needs_exactly_one_way(
    signed_model: tuple[Path, Path], capsys: Capture, flags: list[str]
) -> None:
    model, _ = signed_model
    code, out, err = run(capsys, "verify", model, *flags)
    assert (code, out) == (2, "")
    assert one_line_error(err, "verify").startswith(
        "verify with exactly one of --public-key, --certificate-chain, or --identity"
    )


def test_a_model_only_bundle_fails_when_a_sidecar_lies_beside_the_model(
    tmp_path: Path, signed_model: tuple[Path, Path], capsys: Capture
) -> None:
    model, public_key = signed_model
    key = tmp_path / "keys" / "signing.pem"
    assert run(capsys, "sign", model, "--model-only", "--force", "--private-key", key)[0] == 0
    model.with_name("model.sidecar.json").write_text("{}")  # some sidecar, unsigned
    code, out, err = run(capsys, "verify", model, "--public-key", public_key)
    assert (code, out) == (2, "")
    assert "signs model.onnx alone, not its sidecar" in one_line_error(err, "verify")
    code, out, _ = run(capsys, "verify", model, "--model-only", "--public-key", public_key)
    assert code == 0 and "signs the model alone" in out


@pytest.mark.parametrize("victim", ["key", "sidecar"])
def test_sign_never_writes_its_bundle_over_its_inputs(
    tmp_path: Path, signed_model: tuple[Path, Path], capsys: Capture, victim: str
) -> None:
    model, _ = signed_model
    key = tmp_path / "keys" / "signing.pem"
    sidecar = model.with_name("sidecar.json")
    target = key if victim == "key" else sidecar
    before = target.read_bytes()
    code, _, err = run(
        capsys, "sign", model, "--sidecar", sidecar, "--private-key", key, "--bundle", target,
        "--force",
    )  # fmt: skip
    assert code == 2
    what = "the private key" if victim == "key" else "the sidecar"
    assert one_line_error(err, "sign").endswith(
        f"the bundle would overwrite {what}: pass another --bundle"
    )
    assert target.read_bytes() == before
