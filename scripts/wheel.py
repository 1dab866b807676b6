#!/usr/bin/env python3
"""Writes the `meanwhile` wheel around a built binary: the Python package from
python/meanwhile, the binary as the wheel's one script, and the metadata from
python/pyproject.toml's [project] table, with the workspace's version.

    scripts/wheel.py --bin PATH --version VERSION --out DIR

The layout is the one `bindings = "bin"` gives (maturin, which pyproject.toml names
for builds from source): the binary under `meanwhile-VERSION.data/scripts/`, which
pip installs next to the environment's Python. The platform tag is the manylinux
one the binary's glibc symbol versions allow, so pip refuses it where it cannot run.
Only the standard library: scripts/dist runs it with the system's python3.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / "python"


def glibc_floor(binary: bytes) -> tuple[int, int]:
    """The newest glibc symbol version the binary asks for (2.17 at least, the oldest
    manylinux tag pip still knows)."""
    found = [(2, 17)]
    for m in re.finditer(rb"GLIBC_2\.(\d+)(?:\.\d+)?\x00", binary):
        found.append((2, int(m.group(1))))
    return max(found)


def machine(binary: bytes) -> str:
    """The binary's architecture, from its ELF header."""
    if binary[:4] != b"\x7fELF":
        sys.exit("scripts/wheel.py: the binary is not an ELF executable; wheels are built on Linux")
    e_machine = int.from_bytes(binary[18:20], "little")
    arch = {0x3E: "x86_64", 0xB7: "aarch64"}.get(e_machine)
    if arch is None:
        sys.exit(f"scripts/wheel.py: no wheel tag for ELF machine {e_machine:#x}")
    return arch


def metadata(project: dict, version: str, readme: str, licences: list[str]) -> str:
    """METADATA (core metadata 2.4) from pyproject's [project] table."""
    lines = [
        "Metadata-Version: 2.4",
        f"Name: {project['name']}",
        f"Version: {version}",
        f"Summary: {project['description']}",
        f"License-Expression: {project['license']}",
        f"Requires-Python: {project['requires-python']}",
    ]
    lines += [f"License-File: {name}" for name in licences]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Project-URL: {k}, {v}" for k, v in project.get("urls", {}).items()]
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + readme


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, type=Path, help="the meanwhile binary to ship")
    parser.add_argument("--version", required=True, help="the workspace's version")
    parser.add_argument("--out", required=True, type=Path, help="the directory to write into")
    args = parser.parse_args()

    pyproject = tomllib.loads((PYTHON / "pyproject.toml").read_text())
    project = pyproject["project"]
    name = project["name"]
    binary = args.bin.read_bytes()
    major, minor = glibc_floor(binary)
    tag = f"py3-none-manylinux_{major}_{minor}_{machine(binary)}"
    dist = f"{name}-{args.version}"
    wheel = args.out / f"{dist}-{tag}.whl"

    # (name in the wheel, bytes, unix mode)
    files: list[tuple[str, bytes, int]] = []
    package = PYTHON / name
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed"):
            files.append((f"{name}/{path.relative_to(package).as_posix()}", path.read_bytes(), 0o644))
    files.append((f"{dist}.data/scripts/meanwhile", binary, 0o755))
    info = f"{dist}.dist-info"
    readme = (PYTHON / project["readme"]).read_text()
    licences = sorted(ROOT.glob("LICENSE-*"))
    about = metadata(project, args.version, readme, [p.name for p in licences])
    files.append((f"{info}/METADATA", about.encode(), 0o644))
    wheel_file = f"Wheel-Version: 1.0\nGenerator: meanwhile scripts/wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
    files.append((f"{info}/WHEEL", wheel_file.encode(), 0o644))
    for licence in licences:
        files.append((f"{info}/licenses/{licence.name}", licence.read_bytes(), 0o644))
    record = [record_line(n, d) for n, d, _ in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode(), 0o644))

    args.out.mkdir(parents=True, exist_ok=True)
    partial = wheel.with_suffix(".whl.partial")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for n, data, mode in files:
            entry = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, data)
    partial.write_bytes(buffer.getvalue())
    partial.replace(wheel)
    print(wheel)


if __name__ == "__main__":
    main()
