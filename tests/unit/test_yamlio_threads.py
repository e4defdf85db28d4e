"""`yamlio.parse` from several threads at once, as the daemon does when policies run side by side."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from gitbot import yamlio


def document(index: int) -> str:
    containers = "".join(
        f"        - name: c{i}\n          image: r.example.test/app{i}:1.{index}.{i}\n" for i in range(20)
    )
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app{index}, namespace: ns}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n{containers}---\nkind: ConfigMap\ndata: {{k: v{index}}}\n"
    )


def shape(text: str) -> list[str | None]:
    return [repr(doc.root) if doc.root is not None else None for doc in yamlio.parse(text, "threads.yaml")]


def test_parsing_in_several_threads_gives_what_parsing_in_one_gives() -> None:
    texts = [document(i) for i in range(8)]
    expected = [shape(text) for text in texts]
    previous = sys.getswitchinterval()
    # Switch threads often so that a parser shared between threads is caught mid-document.
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda i: shape(texts[i % 8]) == expected[i % 8], range(160)))
    finally:
        sys.setswitchinterval(previous)
    assert all(results)
