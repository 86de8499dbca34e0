"""The import roots on disk, and a small sample data set to import."""

from __future__ import annotations

import json
from pathlib import Path

from project.imports.importer import import_roots

SAMPLE = "sample"


def create_roots() -> tuple[Path, ...]:
    """Create every configured import root that does not exist yet; return them all."""
    roots = import_roots()
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    return roots


def create_sample(root: Path, name: str = SAMPLE) -> Path:
    """Write the sample data set under ``root/name`` (files already there are kept)."""
    folder = root / name
    for relative, content in sample_files().items():
        path = folder / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    return folder


def sample_files() -> dict[str, bytes]:
    """Return the sample data set: a few plates, an image and their metadata."""
    files = {
        "README.txt": b"A small data set for trying Kew's reference application.\n",
        "metadata.json": json.dumps(
            {"experiment": "demo", "plates": 2, "wells": 8}, indent=2
        ).encode(),
        "images/cell-001.pgm": _image(32, 32),
    }
    for plate in (1, 2):
        rows = ["well,intensity"] + [
            f"{chr(64 + w)}{plate},{(w * 37 + plate) % 100}" for w in range(1, 9)
        ]
        files[f"plates/plate-{plate:02d}.csv"] = ("\n".join(rows) + "\n").encode()
    return files


def _image(width: int, height: int) -> bytes:
    """Return a greyscale gradient as a binary PGM image."""
    pixels = bytes((x * 7 + y * 3) % 256 for y in range(height) for x in range(width))
    return f"P5 {width} {height} 255\n".encode() + pixels
