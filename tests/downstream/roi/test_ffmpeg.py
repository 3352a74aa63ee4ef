"""ffmpeg for roi encode: bitrates, encode settings, the commands, the ffmpeg checks."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vmafx_saliency.downstream import roi
from vmafx_saliency.errors import EncodeError, MissingDependencyError, UsageError

# --- bitrate, encode settings, commands ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "bps"), [("300k", 300_000), ("1.5M", 1_500_000), ("250000", 250_000)]
)
def test_parse_bitrate(text: str, bps: int) -> None:
    assert roi.parse_bitrate(text) == bps


@pytest.mark.parametrize("text", ["fast", "300kb", "-3k", "0.5k"])
def test_parse_bitrate_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--bitrate"):
        roi.parse_bitrate(text)


def test_parse_bitrate_refuses_a_lowercase_m() -> None:
    with pytest.raises(
        UsageError, match=r"--bitrate '300m'.*\(M is mega; ffmpeg reads m as milli\)"
    ):
        roi.parse_bitrate("300m")


def test_encode_settings_refuse_unknown_encoder() -> None:
    bad = roi.EncodeSettings(encoder="libsvtav1", bitrate=300_000)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"unknown encoder 'libsvtav1'.*libx264, libx265"):
        bad.validate()


def test_encode_commands_two_passes_same_settings(tmp_path: Path) -> None:
    from vmafx_saliency.video.frames import VideoInfo

    info = VideoInfo(tmp_path / "in.mp4", "av", 64, 48, "yuv420p", 8, 25.0, 10, None)
    for encoder in ("libx264", "libx265"):
        settings = roi.EncodeSettings(encoder=encoder, bitrate=300_000, threads=1)
        first, second = roi.encode_commands(
            ffmpeg="ffmpeg",
            source=roi.EncodeInput(info=info, start=2, frame_count=8),
            settings=settings,
            roi_chain="addroi=x=0:y=0:w=16:h=16:qoffset=-6/51",
            stats=tmp_path / "stats",
            output=tmp_path / "out.mp4",
        )
        assert first[-3:] == ("-f", "null", "-") and second[-1] == str(tmp_path / "out.mp4")
        chain = "trim=start_frame=2,setpts=PTS-STARTPTS,addroi=x=0:y=0:w=16:h=16:qoffset=-6/51"
        for command in (first, second):
            assert command[command.index("-vf") + 1] == chain
            assert command[command.index("-b:v") + 1] == "300000"
            assert command[command.index("-frames:v") + 1] == "8"
    assert "pass=2" in second[second.index("-x265-params") + 1]


# --- error paths: ffmpeg ----------------------------------------------------------


def test_missing_ffmpeg_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no ffmpeg anywhere
    with pytest.raises(MissingDependencyError, match=r"apt-get install ffmpeg"):
        roi.find_ffmpeg()


def test_an_ffmpeg_path_that_is_not_there_or_does_not_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match=r"^--ffmpeg .*/absent/ffmpeg: no executable"):
        roi.find_ffmpeg(str(tmp_path / "absent" / "ffmpeg"))
    failing = tmp_path / "ffmpeg"
    failing.write_text("#!/bin/sh\necho 'segfault-ish' >&2\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(
        MissingDependencyError, match=r"ffmpeg -encoders failed \(exit 3: segfault-ish\): is it"
    ):
        roi.check_ffmpeg(str(failing), "libx264")


def test_a_preset_the_encoders_lack_is_refused_before_any_work() -> None:
    settings = roi.EncodeSettings(encoder="libx264", bitrate=300_000, preset="bogus")
    with pytest.raises(UsageError, match=r"^--preset 'bogus': give one of ultrafast, .*placebo$"):
        settings.validate()
    assert roi.EncodeSettings(encoder="libx265", bitrate=300_000, preset="veryslow").validate()


def _fake_ffmpeg(folder: Path, encoders: str) -> None:
    script = folder / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "-encoders" ]; then printf "%s\\n" '
        f"'{encoders}'; fi\n"
        'if [ "$2" = "-filters" ]; then echo " ... addroi V->V Add region of interest"; fi\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_missing_encoder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_ffmpeg(tmp_path, " V....D libx264  libx264 H.264")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert roi.check_ffmpeg("ffmpeg", "libx264") == str(tmp_path / "ffmpeg")
    with pytest.raises(MissingDependencyError, match=r"no libx265 encoder \(see '.*-encoders'\)"):
        roi.check_ffmpeg("ffmpeg", "libx265")


def test_a_bitrate_the_encoder_cannot_reach_says_what_to_change(tmp_path: Path) -> None:
    from vmafx_saliency.downstream.roi.ffmpeg import _run

    said = "[libx264 @ 0x1] requested bitrate is too low. estimated minimum is 179 kbps"
    command = ["sh", "-c", f"echo '{said}' >&2; exit 1"]
    hint = r"raise --bitrate, encode more frames, or pass --passes 1; the command was: sh -c"
    with pytest.raises(EncodeError, match=r"estimated minimum is 179 kbps\); " + hint):
        _run(command, cwd=tmp_path, what="plain encode pass 2 (libx264)")
