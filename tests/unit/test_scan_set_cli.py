"""`gitbot scan` and `gitbot set` from the command line: output, atomic replace and refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gitbot.cli import main
from gitbot.commands.set import replace_atomically
from gitbot.errors import EditError

DEMO = Path(__file__).resolve().parents[2] / "gitbot" / "demo_data" / "clusters" / "staging" / "podinfo.yaml"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "podinfo.yaml"
    path.write_bytes(DEMO.read_bytes().replace(b"\n", b"\r\n"))
    path.chmod(0o640)
    return path


def test_scan_json_has_the_documented_fields(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["scan", str(manifest), "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 4
    first = rows[0]
    for key in (
        "file",
        "document",
        "pointer",
        "line",
        "column",
        "kind",
        "resource",
        "value",
        "container",
        "marker",
    ):
        assert key in first
    assert (first["marker"], first["container"], first["line"]) == ("test:podinfo-ga", "podinfod", 16)
    assert rows[3]["destination"] == "host=podinfo,subset=canary" and rows[3]["route"] == 0


def test_scan_table_is_readable(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["scan", str(manifest)], capsys)
    assert code == 0
    assert "2:/spec/http/0/route/1/weight" in out and "4 target(s) in 1 file(s)" in out


def test_set_replaces_atomically_keeping_mode_and_crlf(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = manifest.read_bytes()
    code, _, _ = run(
        ["set", str(manifest), "2:/spec/http/0/route/0/weight=60", "2:/spec/http/0/route/1/weight=40"], capsys
    )
    assert code == 0
    after = manifest.read_bytes()
    assert after == before.replace(b"weight: 100 ", b"weight: 60 ").replace(b"weight: 0\r", b"weight: 40\r")
    assert manifest.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in manifest.parent.iterdir()) == ["podinfo.yaml"]


def test_set_stdout_leaves_file_alone(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = manifest.read_bytes()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gitbot",
            "set",
            str(manifest),
            "1:/spec/template/spec/containers/0/image=x:1.10",
            "--stdout",
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == before.replace(b'"ghcr.io/stefanprodan/podinfo:0.2.0"', b'"x:1.10"')
    assert manifest.read_bytes() == before


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("2:/spec/http/0/route/0/weight=90", "would sum to 90, not 100"),
        ("2:/spec/http/0/route/0=90", "not a scalar"),
        ("2:/spec/nope=1", "no value at this pointer"),
        ("9:/a=1", "no document 9"),
        ("/spec=1", "expected DOCUMENT:POINTER=VALUE"),
    ],
)
def test_set_refusals_exit_2_with_one_line(
    manifest: Path, assignment: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = manifest.read_bytes()
    code, _, err = run(["set", str(manifest), assignment], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1
    assert manifest.read_bytes() == before


def test_set_refuses_symlinks_and_missing_files(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = manifest.parent / "link.yaml"
    link.symlink_to(manifest)
    code, _, err = run(["set", str(link), "2:/spec/http/0/route/0/weight=100"], capsys)
    assert code == 2 and "symlink" in err
    code, _, err = run(["set", str(manifest.parent / "missing.yaml"), "0:/a=1"], capsys)
    assert code == 2 and "no such file" in err


def test_set_refuses_a_read_only_file_but_prints_its_edit(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest.chmod(0o444)
    before = manifest.read_bytes()
    code, _, err = run(["set", str(manifest), "2:/spec/http/0/route/0/weight=100"], capsys)
    assert code == 2 and "read-only" in err and err.count("\n") == 1
    assert manifest.read_bytes() == before
    code, out, _ = run(["set", str(manifest), "2:/spec/http/0/route/0/weight=100", "--stdout"], capsys)
    assert code == 0 and out


def test_set_edits_a_file_with_a_name_near_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ("m" * 245 + ".yaml")
    path.write_text("image: nginx:1.25\n")
    code, _, err = run(["set", str(path), "0:/image=nginx:1.26"], capsys)
    assert (code, err) == (0, "")
    assert path.read_text() == "image: nginx:1.26\n"


def test_a_failed_write_is_one_error_naming_the_file(tmp_path: Path) -> None:

    target = tmp_path / "gone" / "f.yaml"
    with pytest.raises(EditError, match="cannot write") as info:
        replace_atomically(target, "a: 1\n", 0o644)
    assert info.value.where == str(target)


def test_scan_table_escapes_line_breaks_and_terminal_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text(
        'kind: Pod\nmetadata: {name: "a\\nb"}\nspec:\n  containers:\n'
        '  - {name: "c\\td", image: "nginx\\n\\u001b[31mRED:1"}\n'
    )
    code, out, _ = run(["scan", str(path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3 and "\x1b" not in out and "\t" not in out
    assert "Pod//a\\nb" in lines[1] and "nginx\\n\\x1b[31mRED:1" in lines[1] and "container=c\\td" in lines[1]


def test_set_counts_a_locator_given_twice_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("image: nginx:1.25\n")
    code, out, _ = run(["set", str(path), "0:/image=nginx:1.26", "0:/image=nginx:1.26"], capsys)
    assert code == 0 and out == f"{path}: 1 value(s) set\n"


def test_scan_skips_and_reports_a_file_over_the_size_limit(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("kind: ConfigMap\ndata:\n" + "".join(f"  k{i}: image\n" for i in range(200)))
    code, out, _ = run(["scan", str(tmp_path), "--max-file-size", "2Ki"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert f"problem: {big}: larger than the 2 KiB limit for a manifest; not read" in out
    assert lines[-1] == "4 target(s) in 1 file(s); 1 file(s) not read"

    code, out, err = run(["scan", str(tmp_path), "--json", "--max-file-size", "2Ki"], capsys)
    assert code == 0
    assert len(json.loads(out)) == 4
    assert err.startswith(f"gitbot: problem: {big}: larger than the 2 KiB limit")


def test_scan_refuses_a_size_it_cannot_read(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["scan", str(manifest), "--max-file-size", "lots"], capsys)
    assert code == 2
    assert "--max-file-size" in err and "expected a size" in err and len(err.splitlines()) == 1
