"""The loader gate: every layer refuses by name, and the session gets the bytes read."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("model_signing")

from tests._onnx_models import conv_sigmoid_model
from tests._trust import (
    TINY,
    custom_domain_model,
    flip_byte,
    isolate_registry,
    key_and_bundle,
    make_pki,
    sidecar_doc,
    single_op_model,
    write_json,
)
from vmafx_saliency._util import sha256_bytes
from vmafx_saliency.errors import (
    ContentRefused,
    ContractRefused,
    IdentityRefused,
    LoaderError,
    ModelTamperedError,
    PathRefused,
    SignatureRefused,
)
from vmafx_saliency.supply import loader
from vmafx_saliency.supply import registry as reg
from vmafx_saliency.supply.loader import (
    Policy,
)
from vmafx_saliency.supply.signing import generate_key_pair, sign_model

MIRROR_SOURCE = reg.Source(
    type="upstream-mirror",
    repo="https://github.com/xuebinqin/U-2-Net",
    commit="ac7e1c81",
    checkpoint_sha256="ab" * 32,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_registry(tmp_path, monkeypatch)
    monkeypatch.delenv(loader.JAIL_ENV, raising=False)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "tiny.onnx"
    path.parent.mkdir()
    path.write_bytes(TINY)
    # Its sidecar beside it, as entry_for writes it: signed with the model.
    write_json(path.with_name("tiny.sidecar.json"), sidecar_doc("tiny"))
    return path


def entry_for(
    onnx: Path,
    *,
    sha256: str | None = None,
    source: reg.Source | None = None,
    release_asset: bool = False,
    bundle: Path | None = None,
    verification: reg.Verification | None = None,
) -> reg.ModelEntry:
    """A registry entry for ``onnx`` as Registry.load returns one (its sidecar beside it)."""
    sidecar = write_json(onnx.with_name("tiny.sidecar.json"), sidecar_doc("tiny"))
    licence = onnx.with_name("LICENSE.txt")
    licence.write_text("licence text\n")
    return reg.ModelEntry(
        id="tiny",
        kind="nr",
        extractor="mobilesal",
        onnx=onnx,
        sha256=sha256 if sha256 is not None else sha256_bytes(onnx.read_bytes()),
        opset=17,
        params=28,
        license="BSD-3-Clause",
        license_file=licence,
        source=source or reg.Source(type="fork-trained"),
        sidecar=sidecar,
        sigstore_bundle=bundle,
        verification=verification,
        release_asset=release_asset,
        status="production",
        default=True,
        registry=onnx.parent / "registry.json",
        sidecar_sha256=sha256_bytes(sidecar.read_bytes()),
    )


def probe(height: int = 24, width: int = 40) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(1, 3, height, width)).astype(np.float32)


# --- the path layer ----------------------------------------------------------------


def test_symlink_out_of_the_jail_is_refused(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside" / "evil.onnx"
    outside.parent.mkdir()
    outside.write_bytes(TINY)
    link = model.parent / "link.onnx"
    link.symlink_to(outside)
    monkeypatch.setenv(loader.JAIL_ENV, str(model.parent))
    with pytest.raises(
        PathRefused,
        match=r"at the path check: it is outside the trusted model directory .*models "
        r"\(it resolves to .*outside/evil\.onnx\): move the model under",
    ):
        loader.load_ad_hoc(link)
    with pytest.raises(PathRefused, match="at the path check: it is outside"):
        loader.load_entry(entry_for(link))
    # The model itself is inside the jail and passes.
    assert loader.load_ad_hoc(model).path == model


def test_a_hard_link_from_outside_the_jail_is_refused(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second name outside: whoever can write there changes the model in the jail.
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(TINY)
    inside = model.parent / "linked.onnx"
    os.link(outside, inside)
    monkeypatch.setenv(loader.JAIL_ENV, str(model.parent))
    with pytest.raises(
        PathRefused,
        match=r"linked\.onnx at the path check: it has 2 hard links, and another name may lie "
        r"outside the trusted model directory .*: copy the file into .* \(cp, not ln\)",
    ):
        loader.load_ad_hoc(inside)
    assert loader.load_ad_hoc(model).path == model  # a file of one name passes
    monkeypatch.delenv(loader.JAIL_ENV)
    assert loader.load_ad_hoc(inside).path == inside  # no jail: nothing to escape


def test_a_folder_swapped_for_a_symlink_while_opening_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_NOFOLLOW guards the last component only; the opened file itself is checked."""
    jail = tmp_path / "jail"
    (jail / "sub").mkdir(parents=True)
    (jail / "sub" / "m.onnx").write_bytes(TINY)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.onnx").write_bytes(TINY)
    monkeypatch.setenv(loader.JAIL_ENV, str(jail))
    real_open = os.open

    def racing_open(path: Any, flags: int, *args: Any) -> int:
        # Between the resolve and the open, jail/sub becomes a symlink to outside/.
        (jail / "sub" / "m.onnx").unlink()
        (jail / "sub").rmdir()
        (jail / "sub").symlink_to(outside)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", racing_open)  # the loader calls os.open
    with pytest.raises(
        PathRefused,
        match=r"the file opened is .*outside/m\.onnx, outside the trusted model directory",
    ):
        loader.load_ad_hoc(jail / "sub" / "m.onnx")


def test_sibling_prefix_is_outside_the_jail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jail = tmp_path / "x" / "models"
    jail.mkdir(parents=True)
    evil = tmp_path / "x" / "models-evil" / "m.onnx"
    evil.parent.mkdir()
    evil.write_bytes(TINY)
    monkeypatch.setenv(loader.JAIL_ENV, str(jail))
    with pytest.raises(
        PathRefused,
        match=r"at the path check: it is outside the trusted model directory .*/x/models",
    ):
        loader.read_model_bytes(evil)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PathRefused, match=r"at the path check: a directory"):
        loader.load_ad_hoc(tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    outcome: list[LoaderError] = []

    def attempt() -> None:
        try:
            loader.read_model_bytes(fifo)
        except LoaderError as exc:
            outcome.append(exc)

    # No writer ever opens the FIFO: a blocking open would hang this thread.
    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "opening a FIFO blocked"
    assert len(outcome) == 1
    with pytest.raises(PathRefused, match=r"at the path check: a named pipe, not a regular file"):
        raise outcome[0]


def test_oversize_is_refused_before_reading(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = model.stat().st_size

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the loader read a file over the size cap")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fdopen", no_reading)
        with pytest.raises(
            PathRefused,
            match=rf"at the path check: it is {size:,} bytes, over the {size - 1:,}-byte cap, "
            "and was not read",
        ):
            loader.read_model_bytes(model, max_bytes=size - 1)
    # At the cap exactly, it is read.
    assert loader.read_model_bytes(model, max_bytes=size)[1] == TINY


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PathRefused, match=r"absent\.onnx at the path check: no such file"):
        loader.load_ad_hoc(tmp_path / "absent.onnx")
    with pytest.raises(PathRefused, match=r"at the path check: no such file"):
        loader.load_entry(entry_for(tmp_path / "absent.onnx", sha256="0" * 64))


# --- identity and signature ----------------------------------------------------------


def test_wrong_sha256_is_refused(model: Path) -> None:
    with pytest.raises(
        IdentityRefused,
        match=rf"at the identity check: its sha256 {sha256_bytes(TINY)} differs from the "
        rf"registry pin {'0' * 64} of 'tiny'",
    ):
        loader.load_entry(entry_for(model, sha256="0" * 64))


def test_tampered_after_signing_is_refused_at_the_signature(tmp_path: Path, model: Path) -> None:
    pair, bundle = key_and_bundle(model, tmp_path / "keys")
    flip_byte(model)
    # Re-pinned to the tampered bytes: the identity layer passes, the signature does not.
    entry = entry_for(
        model, bundle=bundle, verification=reg.Verification(public_key=pair.public_key)
    )
    with pytest.raises(
        SignatureRefused,
        match=r"at the signature check: .*the model's sha256 differs from the digest the "
        "bundle signs",
    ) as caught:
        loader.load_entry(entry, policy=Policy.SIGNED)
    assert isinstance(caught.value.__cause__, ModelTamperedError)


def test_signed_policy_needs_a_bundle(model: Path) -> None:
    with pytest.raises(
        SignatureRefused,
        match=r"at the signature check: the signed policy needs a Sigstore bundle and entry "
        r"'tiny' declares none: sign it",
    ):
        loader.load_entry(entry_for(model), policy=Policy.SIGNED)


def test_signed_load_with_a_public_key(tmp_path: Path, model: Path) -> None:
    pair, bundle = key_and_bundle(model, tmp_path / "keys")
    entry = entry_for(
        model, bundle=bundle, verification=reg.Verification(public_key=pair.public_key)
    )
    loaded = loader.load_entry(entry, policy=Policy.SIGNED)
    assert loaded.policy is Policy.SIGNED
    assert loaded.signature is not None
    assert (loaded.signature.method, loaded.signature.sha256) == ("public-key", sha256_bytes(TINY))


def test_wrong_key_is_refused(tmp_path: Path, model: Path) -> None:
    _, bundle = key_and_bundle(model, tmp_path / "keys")
    other = generate_key_pair(tmp_path / "other" / "signing.pem")
    entry = entry_for(
        model, bundle=bundle, verification=reg.Verification(public_key=other.public_key)
    )
    with pytest.raises(
        SignatureRefused, match=r"at the signature check: .*signature does not verify with"
    ):
        loader.load_entry(entry, policy=Policy.SIGNED)


def test_certificate_chain_verification(tmp_path: Path, model: Path) -> None:
    pki = make_pki(tmp_path / "pki", "Acme")
    bundle = sign_model(
        model,
        sidecar=model.with_name("tiny.sidecar.json"),
        private_key=pki.leaf_key,
        signing_certificate=pki.leaf,
        certificate_chain=[pki.intermediate],
    )
    entry = entry_for(
        model, bundle=bundle, verification=reg.Verification(certificate_chain=(pki.root,))
    )
    loaded = loader.load_entry(entry, policy=Policy.SIGNED)
    assert loaded.signature is not None
    assert loaded.signature.method == "certificate-chain"


def test_mirror_release_asset_is_always_signature_checked(tmp_path: Path, model: Path) -> None:
    unsigned = entry_for(model, source=MIRROR_SOURCE, release_asset=True)
    assert loader.needs_signature(unsigned, Policy.PINNED)
    with pytest.raises(
        SignatureRefused,
        match=r"at the signature check: a release asset \(always verified\) "
        r"needs a Sigstore bundle and entry 'tiny' declares none",
    ):
        loader.load_entry(unsigned, policy=Policy.PINNED)
    # Whoever trained it: a fork-trained release asset is fetched from elsewhere too.
    fork = entry_for(model, release_asset=True)
    assert fork.source.type != "upstream-mirror" and loader.needs_signature(fork, Policy.PINNED)
    with pytest.raises(SignatureRefused, match=r"a release asset \(always verified\) needs"):
        loader.load_entry(fork, policy=Policy.PINNED)

    pair, bundle = key_and_bundle(model, tmp_path / "keys")
    signed = entry_for(
        model,
        source=MIRROR_SOURCE,
        release_asset=True,
        bundle=bundle,
        verification=reg.Verification(public_key=pair.public_key),
    )
    loaded = loader.load_entry(signed, policy=Policy.PINNED)
    assert loaded.signature is not None
    assert loaded.policy is Policy.SIGNED

    # A mirror that is not a release asset is pinned only, as any registry model.
    local = entry_for(model, source=MIRROR_SOURCE)
    assert not loader.needs_signature(local, Policy.PINNED)
    assert loader.load_entry(local).signature is None


def test_verifier_for_entry_refuses_an_unusable_block(model: Path) -> None:
    with pytest.raises(
        SignatureRefused, match=r"at the signature check: registry entry 'tiny' names no key"
    ):
        loader.verifier_for_entry(entry_for(model))
    broken = [
        (reg.Verification(identity="release@example.org"), r"needs --oidc-issuer"),
        (
            reg.Verification(identity_regexp="(", oidc_issuer="https://issuer.example"),
            r"not a valid regular expression",
        ),
    ]
    for verification, why in broken:
        entry = entry_for(model, verification=verification)
        with pytest.raises(
            SignatureRefused,
            match=rf"at the signature check: the verification block of registry entry 'tiny' "
            rf"in .*registry\.json is unusable \(.*{why}.*\): fix the entry's 'verification'",
        ):
            loader.verifier_for_entry(entry)
        # The same refusal when loading, before any bundle is read.
        with pytest.raises(SignatureRefused, match="is unusable"):
            loader.load_entry(
                entry_for(model, bundle=model.with_suffix(".json"), verification=verification),
                policy=Policy.SIGNED,
            )


# --- content and contract --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (custom_domain_model(), r"custom op domain|com\.evil"),
        (single_op_model("Einsum"), r"Einsum"),
    ],
    ids=["custom-domain", "disallowed-op"],
)
def test_forbidden_op_is_refused(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(
        ContentRefused, match=rf"bad\.onnx at the content check: .*({why}).*allowlist"
    ):
        loader.load_entry(entry_for(path))  # pinned correctly: only the content is wrong


def test_a_file_that_is_not_onnx_is_not_said_to_use_ops_off_the_allowlist(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("hello\n")
    with pytest.raises(ContentRefused, match=r"not an ONNX model: .*do not use the file") as err:
        loader.load_ad_hoc(path)
    assert "allowlist" not in str(err.value)


def test_contract_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d0.onnx"
    path.write_bytes(conv_sigmoid_model(output_name="d0"))
    with pytest.raises(
        ContractRefused, match=r"at the contract check: .*'d0'.*deployment contract"
    ):
        loader.load_entry(entry_for(path))


def test_ad_hoc_warns_once_and_still_scans(
    tmp_path: Path, model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vmafx_saliency"):
        loaded = loader.load_ad_hoc(model)
    records = [r for r in caplog.records if r.name == "vmafx_saliency.supply.loader"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "\n" not in message
    assert "was given by path: loaded ad hoc" in message
    assert "not checked against a registry pin" in message
    assert sha256_bytes(TINY)[:16] in message
    assert "give its registry id instead of the path" in message  # --model, --teacher alike
    assert (loaded.policy, loaded.model_id, loaded.entry) == (Policy.AD_HOC, None, None)

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(custom_domain_model())
    caplog.clear()
    with pytest.raises(ContentRefused, match=r"at the content check"):
        loader.load_ad_hoc(bad)
    # A refused file was never "loaded ad hoc": no warning says it was.
    assert not [r for r in caplog.records if r.name == "vmafx_saliency.supply.loader"]


def test_registry_entry_is_never_loaded_ad_hoc(model: Path) -> None:
    with pytest.raises(LoaderError, match=r"a registry entry is always pinned"):
        loader.load_entry(entry_for(model), policy=Policy.AD_HOC)


# --- success, and the bytes the session sees -------------------------------------------------


def test_success_returns_a_working_session(model: Path) -> None:
    loaded = loader.load_entry(entry_for(model), threads=1)
    assert loaded.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert (loaded.size, loaded.path, loaded.model_id) == (len(TINY), model, "tiny")
    assert (loaded.policy, loaded.signature) == (Policy.PINNED, None)
    assert loaded.scan.allowed
    assert loaded.scan.ops == {"Conv": 1, "Identity": 1, "Sigmoid": 1}
    assert loaded.contract.input_shape[:2] == (1, 3)
    assert loaded.sidecar is not None
    assert loaded.sidecar.model_id == "tiny"
    (out,) = loaded.session.run(["saliency_map"], {"input": probe()})
    assert out.shape == (1, 1, 24, 40)
    assert 0.0 <= float(out.min()) <= float(out.max()) <= 1.0


def test_registered_model_loads_through_the_registry(tmp_path: Path, model: Path) -> None:
    pair, bundle = key_and_bundle(model, tmp_path / "keys")
    entry = entry_for(model)  # writes the sidecar and licence beside the model
    reg.add_model(
        onnx=model,
        model_id="tiny",
        sidecar=entry.sidecar,
        license="BSD-3-Clause",
        license_file=entry.license_file,
        source=reg.Source(type="fork-trained"),
        sigstore_bundle=bundle,
        verification=reg.Verification(public_key=pair.public_key),
    )
    registered = reg.Registry.load().get("tiny")
    loaded = loader.load_entry(registered, policy=Policy.SIGNED)
    assert loaded.path == registered.onnx != model
    assert loaded.signature is not None


def test_session_is_built_from_the_bytes_read(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    given: list[object] = []
    real_session = ort.InferenceSession

    def recording(source: object, *args: Any, **kwargs: Any) -> Any:
        given.append(source)
        return real_session(source, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    # Swap the file for a forbidden model right after the one read: nothing
    # reopens the path, so the check and the session both see the first bytes.
    real_read = loader.read_model_bytes

    def read_then_swap(path: Path, **kwargs: Any) -> tuple[Path, bytes]:
        result = real_read(path, **kwargs)
        model.write_bytes(custom_domain_model())
        return result

    monkeypatch.setattr(loader, "read_model_bytes", read_then_swap)
    loads: list[Callable[[], loader.LoadedModel]] = [
        lambda: loader.load_entry(entry_for(model)),
        lambda: loader.load_ad_hoc(model),
    ]
    for load in loads:
        model.write_bytes(TINY)
        given.clear()
        loaded = load()
        assert given and all(isinstance(g, bytes) and g == TINY for g in given)
        assert loaded.sha256 == sha256_bytes(TINY)
        assert model.read_bytes() == custom_domain_model()
        reference = real_session(TINY, providers=["CPUExecutionProvider"])
        (expected,) = reference.run(["saliency_map"], {"input": probe()})
        (actual,) = loaded.session.run(["saliency_map"], {"input": probe()})
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)


# --- the sidecar is pinned with its model ---------------------------------------------


def test_an_edited_sidecar_of_a_pinned_model_is_refused(model: Path) -> None:
    entry = entry_for(model)
    assert loader.load_entry(entry).sidecar is not None  # as registered, it loads
    doc = json.loads(entry.sidecar.read_text())
    doc["preprocessing"]["inference_size"] = [4096, 4096]  # the review's edit: 15x the time
    entry.sidecar.write_text(json.dumps(doc))
    with pytest.raises(
        IdentityRefused,
        match=r"tiny\.sidecar\.json at the identity check: sidecar .* has sha256 [0-9a-f]{64}, "
        r"but the entry pins [0-9a-f]{64}: it changed since the model was registered",
    ):
        loader.load_entry(entry)
    report = reg.validate_registry(_registry_of(entry), check_models=False)
    assert any("it changed since the model was registered" in f.message for f in report.errors)


def test_an_entry_that_pins_no_sidecar_is_refused_until_registered_again(model: Path) -> None:
    entry = dataclasses.replace(entry_for(model), sidecar_sha256=None)
    with pytest.raises(
        IdentityRefused,
        match=r"pins no sidecar_sha256 \(written before sidecars were pinned\): register the "
        r"model again with 'vmafx-saliency registry add \.\.\. --force'",
    ):
        loader.load_entry(entry)


def test_another_models_sidecar_is_refused_even_when_pinned(model: Path) -> None:
    entry = entry_for(model)
    entry.sidecar.write_text(json.dumps(sidecar_doc("other")))
    pinned = dataclasses.replace(entry, sidecar_sha256=sha256_bytes(entry.sidecar.read_bytes()))
    with pytest.raises(IdentityRefused, match=r"the sidecar is for model 'other', not 'tiny'"):
        loader.load_entry(pinned)


def test_a_sidecar_outside_the_jail_is_refused(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = entry_for(model)
    outside = tmp_path / "outside.sidecar.json"
    outside.write_bytes(entry.sidecar.read_bytes())
    entry.sidecar.unlink()
    entry.sidecar.symlink_to(outside)
    monkeypatch.setenv(loader.JAIL_ENV, str(model.parent))
    with pytest.raises(PathRefused, match=r"tiny\.sidecar\.json at the path check: it is outside"):
        loader.load_entry(entry)


def test_a_signed_models_edited_sidecar_is_refused_even_when_pinned_again(
    tmp_path: Path, model: Path
) -> None:
    """The review's attack on a signed model: the sidecar edited and its pin rewritten."""
    pair, bundle = key_and_bundle(model, tmp_path / "keys")
    verification = reg.Verification(public_key=pair.public_key)
    assert (
        loader.load_entry(
            entry_for(model, bundle=bundle, verification=verification), policy=Policy.SIGNED
        ).signature
        is not None
    )
    sidecar = model.with_name("tiny.sidecar.json")
    doc = json.loads(sidecar.read_text())
    doc["preprocessing"]["inference_size"] = [4096, 4096]
    edited = json.dumps(doc).encode()
    entry = dataclasses.replace(
        entry_for(model, bundle=bundle, verification=verification),
        sidecar_sha256=sha256_bytes(edited),
    )
    sidecar.write_bytes(edited)
    with pytest.raises(
        SignatureRefused,
        match=r"at the signature check: .*tiny\.sidecar\.json: the sidecar's sha256 differs "
        r"from the digest the bundle signs",
    ) as caught:
        loader.load_entry(entry, policy=Policy.SIGNED)
    assert isinstance(caught.value.__cause__, ModelTamperedError)


def test_a_bundle_that_signs_the_model_alone_is_refused_for_a_model_with_a_sidecar(
    tmp_path: Path, model: Path
) -> None:
    pair = generate_key_pair(tmp_path / "keys" / "signing.pem")
    bundle = sign_model(model, private_key=pair.private_key)  # no sidecar: an older bundle
    entry = entry_for(
        model, bundle=bundle, verification=reg.Verification(public_key=pair.public_key)
    )
    with pytest.raises(
        SignatureRefused,
        match=r"at the signature check: .*the bundle signs tiny\.onnx alone, not its sidecar "
        r".*re-sign the pair",
    ):
        loader.load_entry(entry, policy=Policy.SIGNED)
    report = reg.validate_registry(_registry_of(entry), check_models=False)
    assert any("signs the model alone, not its sidecar" in f.message for f in report.errors)


def _registry_of(entry: reg.ModelEntry) -> Path:
    """A registry file holding ``entry``, as Registry.load would read it."""
    root = entry.registry.parent
    raw = {
        "id": entry.id, "kind": "nr", "extractor": "mobilesal",
        "onnx": entry.onnx.name, "sha256": entry.sha256, "opset": 17, "params": 28,
        "license": "BSD-3-Clause", "license_file": entry.license_file.name,
        "source": {"type": "fork-trained"}, "sidecar": entry.sidecar.name,
        "sidecar_sha256": entry.sidecar_sha256, "verification": None,
        "sigstore_bundle": entry.sigstore_bundle and entry.sigstore_bundle.name,
        "release_asset": False, "status": "production", "default": True,
    }  # fmt: skip
    return write_json(
        root / "registry.json", {"schema": "vmafx-saliency/registry/v1", "models": [raw]}
    )
