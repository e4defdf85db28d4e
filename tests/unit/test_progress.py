"""The terminal status line of interactive commands, and the scanner's progress callback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gitbot.commands.progress import Progress
from gitbot.manifests import scan_paths

ERASE = "\r\x1b[K"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_is_written_unless_the_stream_is_a_terminal() -> None:
    plain = io.StringIO()
    with Progress(plain) as progress:
        progress.stage("scan")
        progress.count("files")(3, 3)
    assert not progress.enabled and plain.getvalue() == ""
    with Progress(Terminal(), enabled=False) as off:
        off.stage("scan")
    assert off.enabled is False


def test_a_terminal_line_is_redrawn_in_place_throttled_and_erased_at_the_end() -> None:
    now = [0.0]
    stream = Terminal()
    with Progress(stream, prefix="p: ", clock=lambda: now[0]) as progress:
        update = progress.count("files")
        update(0, 3)
        now[0] += 0.01
        update(1, 3)  # too soon after the last redraw
        now[0] += 0.5
        update(2, 3)
        now[0] += 0.01
        update(3, 3)  # the last one is always drawn
    assert stream.getvalue() == f"{ERASE}p: files 0/3{ERASE}p: files 2/3{ERASE}p: files 3/3{ERASE}"


def test_a_message_erases_the_line_first_and_an_error_still_erases_it() -> None:
    stream = Terminal()
    said: list[str] = []
    with pytest.raises(RuntimeError), Progress(stream) as progress:
        progress.stage("checkout")
        progress.around(said.append)("push rejected")
        assert stream.getvalue() == f"{ERASE}checkout...{ERASE}" and said == ["push rejected"]
        progress.stage("plan")
        raise RuntimeError("boom")
    assert stream.getvalue().endswith(f"{ERASE}plan...{ERASE}")


def test_scan_reports_every_file_then_the_total(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: ConfigMap\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("image: registry.example/app:1.0.0\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not scanned\n", encoding="utf-8")
    calls: list[tuple[int, int]] = []

    scan_paths(tmp_path, ["."], progress=lambda done, total: calls.append((done, total)))

    assert calls == [(0, 2), (1, 2), (2, 2)]
