"""The trust subcommands through cli.main: registry, keygen, sign, verify, load, release."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from tests._trust import (
    BSD_TEXT,
    COMMITTED,
    card_folder,
    flip_byte,
    isolate_registry,
    register_tiny,
    report_doc,
    write_json,
    write_model,
)
from vmafx_saliency.cli.main import main
from vmafx_saliency.supply import registry as reg

Capture = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The committed registry (empty) and the overlay in tmp; returns the overlay path."""
    monkeypatch.delenv("VMAFX_SALIENCY_MODEL_DIR", raising=False)
    return isolate_registry(tmp_path, monkeypatch)[1]


def run(capsys: Capture, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str) -> str:
    """The single stderr line of a refused command, without its prefix."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    prefix = f"vmafx-saliency {command}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


# --- keys, signing, verification ------------------------------------------------------


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


@pytest.fixture
def signed_model(tmp_path: Path, capsys: Capture) -> tuple[Path, Path]:
    """A tiny model signed through the CLI; returns (model, public key)."""
    write_model(tmp_path / "in", "tiny")
    model = tmp_path / "in" / "tiny" / "model.onnx"
    key = tmp_path / "keys" / "signing.pem"
    assert run(capsys, "keygen", "--private-key", key)[0] == 0
    code, out, _ = run(capsys, "sign", model, "--private-key", key)
    assert code == 0
    assert out.strip() == f"signed {model} -> {model}.sigstore.json"
    return model, Path(f"{key}.pub")


def test_sign_then_verify(signed_model: tuple[Path, Path], capsys: Capture) -> None:
    model, public_key = signed_model
    code, out, _ = run(capsys, "verify", model, "--public-key", public_key)
    assert code == 0
    assert re.fullmatch(
        rf"{re.escape(str(model))}: signature OK \(public-key; signer .*; sha256 [0-9a-f]{{64}}\)",
        out.strip(),
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


# --- the registry ---------------------------------------------------------------------------


def add_args(folder: Path, model_id: str, *extra: str | Path) -> list[str | Path]:
    inputs = folder / model_id
    return [
        "registry",
        "add",
        inputs / "model.onnx",
        "--id",
        model_id,
        "--sidecar",
        inputs / "sidecar.json",
        "--license",
        "BSD-3-Clause",
        "--license-file",
        inputs / "LICENSE.txt",
        *extra,
    ]


def test_registry_add_list_show_validate_promote(
    tmp_path: Path, isolated: Path, signed_model: tuple[Path, Path], capsys: Capture
) -> None:
    model, public_key = signed_model
    folder = tmp_path / "in"
    code, out, _ = run(
        capsys,
        *add_args(folder, "tiny", "--bundle", f"{model}.sigstore.json", "--public-key", public_key),
    )
    assert code == 0
    assert out.strip() == f"registered tiny (alternative) in {isolated}"

    code, out, _ = run(capsys, "registry", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["id", "extractor", "status", "default", "source", "file"]
    assert row.split() == [
        "tiny",
        "mobilesal",
        "alternative",
        "fork-trained",
        str(isolated.parent.resolve() / "models" / "tiny" / "model.onnx"),
    ]

    code, out, _ = run(capsys, "registry", "show", "tiny")
    assert code == 0
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert shown["id"] == "tiny"
    assert shown["status"] == "alternative"
    assert re.fullmatch(r"[0-9a-f]{64}", shown["sha256"])
    assert shown["source"] == '{"type": "fork-trained", "repo": null, "commit": null, ' + (
        '"checkpoint_sha256": null}'
    )
    assert "PosixPath" not in out
    assert shown["verification"].startswith('{"public_key": "/')

    code, out, _ = run(capsys, "registry", "validate", isolated)
    assert code == 0
    assert out.splitlines()[0] == f"{isolated}: OK (1 model, 0 errors, 0 warnings)"

    # No default yet: promotion needs only the candidate's figure.
    report = write_json(tmp_path / "r1.json", report_doc({"tiny": {"s_measure": 0.7}}))
    code, out, _ = run(
        capsys, "registry", "promote", "tiny", "--report", report, "--metric", "s_measure"
    )
    assert code == 0
    assert out.strip() == (
        "promoted tiny to default: s_measure (higher is better): tiny 0.7; "
        "no current default to compare with"
    )

    write_model(folder, "next")
    assert run(capsys, *add_args(folder, "next"))[0] == 0
    worse = write_json(
        tmp_path / "worse.json",
        report_doc({"tiny": {"s_measure": 0.7}, "next": {"s_measure": 0.6}}),
    )
    code, out, err = run(
        capsys, "registry", "promote", "next", "--report", worse, "--metric", "s_measure"
    )
    assert (code, out) == (2, "")
    assert one_line_error(err, "registry").startswith(
        "not promoting 'next': on s_measure (higher is better) it scores 0.6 against 0.7"
    )
    better = write_json(
        tmp_path / "better.json",
        report_doc({"tiny": {"s_measure": 0.7}, "next": {"s_measure": 0.8}}),
    )
    code, out, _ = run(
        capsys, "registry", "promote", "next", "--report", better, "--metric", "s_measure"
    )
    assert code == 0
    assert out.strip() == (
        "promoted next to default: s_measure (higher is better): next 0.8 vs tiny 0.7"
    )
    rows = {
        line.split()[0]: line.split()
        for line in run(capsys, "registry", "list")[1].splitlines()[1:]
    }
    assert rows["next"][2:4] == ["production", "yes"]
    assert rows["tiny"][2:4] == ["alternative", "fork-trained"]


def test_registry_show_unknown_id(capsys: Capture) -> None:
    code, out, err = run(capsys, "registry", "show", "nope")
    assert (code, out) == (2, "")
    assert "no model 'nope'" in one_line_error(err, "registry")


def test_registry_list_empty_and_no_action(capsys: Capture) -> None:
    assert run(capsys, "registry", "list")[:2] == (0, "no models registered\n")
    code, out, _ = run(capsys, "registry")
    assert code == 2
    assert "list, show, validate, add and promote" in out


def test_registry_add_takes_no_trust_root_flags(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "tiny")
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in add_args(tmp_path / "in", "tiny", "--staging")])
    assert exc.value.code == 2
    assert "unrecognized arguments: --staging" in capsys.readouterr().err


def test_registry_add_oidc_issuer_alone_is_refused(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "tiny")
    code, _, err = run(capsys, *add_args(tmp_path / "in", "tiny", "--oidc-issuer", "https://i"))
    assert code == 2
    assert "verification for 'tiny': give exactly one of" in one_line_error(err, "registry")
    assert not reg.overlay_registry_path().exists()


def test_registry_add_reads_the_id_from_the_manifest(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "tiny")
    inputs = tmp_path / "in" / "tiny"
    args = [a for a in add_args(tmp_path / "in", "tiny") if a not in ("--id", "tiny")]
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, *args, "--manifest", bad)
    assert code == 2
    assert one_line_error(err, "registry").startswith(
        f"{bad}: cannot read the model id from the export manifest"
    )
    code, _, err = run(capsys, *args)
    assert code == 2
    assert one_line_error(err, "registry") == (
        "give --id, or --manifest to take the model id from it"
    )
    assert (inputs / "model.onnx").is_file()
    assert not reg.overlay_registry_path().exists()


def test_registry_validate_the_committed_file(
    monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.delenv(reg.ENV_COMMITTED)
    code, out, _ = run(capsys, "registry", "validate", COMMITTED)
    assert code == 0, out
    assert out.splitlines()[0].startswith(f"{COMMITTED}: OK (")
    # With no path it validates the committed registry, too.
    assert run(capsys, "registry", "validate")[0] == 0


def test_registry_validate_an_invalid_file_exits_1(tmp_path: Path, capsys: Capture) -> None:
    bad = write_json(tmp_path / "bad.json", {"schema": "nope", "models": []})
    code, out, _ = run(capsys, "registry", "validate", bad)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{bad}: INVALID (")


# --- load -------------------------------------------------------------------------------------


def test_load_a_registered_model(tmp_path: Path, capsys: Capture) -> None:
    register_tiny(tmp_path)
    code, out, _ = run(capsys, "load", "--model", "tiny", "--size", "32")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "tiny: loaded (pinned; passed path, identity, content, contract)"
    assert re.fullmatch(r"  sha256 [0-9a-f]{64}", lines[1])
    assert re.fullmatch(r"  one inference at 32x32: mean saliency 0\.\d{4}", lines[2])

    code, out, _ = run(capsys, "load", "--model", "tiny", "--signed", "--size", "16")
    assert code == 0
    assert out.splitlines()[0] == (
        "tiny: loaded (signed; passed path, identity, signature, content, contract)"
    )


def test_load_refusal_is_one_line(tmp_path: Path, capsys: Capture) -> None:
    register_tiny(tmp_path)
    flip_byte(reg.Registry.load().get("tiny").onnx)
    code, out, err = run(capsys, "load", "--model", "tiny")
    assert (code, out) == (2, "")
    assert re.match(
        r"loader refused .*model\.onnx at the identity check: its sha256",
        one_line_error(err, "load"),
    )


def test_load_the_default(tmp_path: Path, capsys: Capture) -> None:
    code, _, err = run(capsys, "load")
    assert code == 2
    assert "no default model for extractor 'mobilesal'" in one_line_error(err, "load")


def test_load_ad_hoc(tmp_path: Path, capsys: Capture) -> None:
    write_model(tmp_path / "in", "loose")
    path = tmp_path / "in" / "loose" / "model.onnx"
    code, out, _ = run(capsys, "load", "--model-path", path, "--size", "24")
    assert code == 0
    assert out.splitlines()[0] == f"{path}: loaded (ad-hoc; passed path, content, contract)"

    code, out, err = run(capsys, "load", "--model-path", path, "--signed")
    assert (code, out) == (2, "")
    assert one_line_error(err, "load").startswith("--signed needs a registered model")

    assert run(capsys, "load", "--model-path", path, "--size", "0")[0] == 2
    with pytest.raises(SystemExit) as exc:
        main(["load", "--model", "tiny", "--model-path", str(path)])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


# --- release ------------------------------------------------------------------------------------


def test_release_stage_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    registered = register_tiny(tmp_path)
    card_folder(tmp_path, monkeypatch, "tiny")
    out_dir = tmp_path / "dist" / "tiny"
    code, out, _ = run(capsys, "release", "stage", "tiny", "--out", out_dir)
    assert code == 0
    assert out.splitlines() == [
        f"tiny: staged 6 files in {out_dir}",
        "  LICENSE.txt",
        "  SHA256SUMS",
        "  model.onnx",
        "  model.onnx.sigstore.json",
        "  release.json",
        "  tiny.md",
    ]
    assert (out_dir / "LICENSE.txt").read_text() == BSD_TEXT

    for flags in ([], ["--public-key", str(registered.public_key)]):
        code, out, _ = run(capsys, "release", "verify", out_dir, *flags)
        assert code == 0, out
        lines = out.splitlines()
        # 5 sums, signature, the registry's pin, scan, contract, licence, verdict
        assert len(lines) == 11
        assert any(line.startswith("OK    model.onnx (pin): ") for line in lines)
        assert all(line.startswith("OK  ") for line in lines[:-1])
        assert lines[-1] == f"{out_dir}: release verified"

    code, _, err = run(capsys, "release", "verify", out_dir, "--oidc-issuer", "https://i")
    assert code == 2
    assert one_line_error(err, "release").startswith(
        "keyless verification takes exactly one of --identity ID and --identity-regexp"
    )

    (out_dir / "extra.txt").write_text("x\n")
    code, out, _ = run(capsys, "release", "verify", out_dir)
    assert code == 1
    assert "FAIL  extra.txt (sum): not listed in SHA256SUMS: an unexpected file" in out
    assert out.splitlines()[-1] == f"{out_dir}: release NOT verified"

    code, out, err = run(capsys, "release", "stage", "tiny", "--out", tmp_path / "in")
    assert (code, out) == (2, "")
    assert one_line_error(err, "release").endswith(
        "exists and is not a staged release: choose an empty or new folder"
    )


def test_release_stage_with_the_binary_absent(tmp_path: Path, capsys: Capture) -> None:
    register_tiny(tmp_path)
    onnx = reg.Registry.load().get("tiny").onnx
    onnx.unlink()
    out_dir = tmp_path / "dist" / "tiny"
    code, out, err = run(capsys, "release", "stage", "tiny", "--out", out_dir)
    assert (code, err) == (0, "")
    assert out.strip() == (
        f"tiny: binary {onnx} is absent: nothing staged (export or fetch it first)"
    )
    assert not (tmp_path / "dist").exists()


def test_release_verify_of_a_plain_folder(tmp_path: Path, capsys: Capture) -> None:
    code, _, err = run(capsys, "release", "verify", tmp_path)
    assert code == 2
    assert "not a staged release" in one_line_error(err, "release")
