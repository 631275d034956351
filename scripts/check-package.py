#!/usr/bin/env python3
"""What `cargo publish`'s verification build would catch, without its two-minute build.

The packaged crates are the workspace's own sources, which the test command builds and
tests anyway; what can differ in a package is the set of files in it. So: every file a
crate's sources read at compile time (`include_str!`, `include_bytes!`, `#[path]`, the
manifest's `readme`) must lie inside the crate and be in `cargo package --list`.

    python3 scripts/check-package.py phx-protocol phx-server
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)|#\[path\s*=\s*"([^"]+)"\]')


def packaged(crate: str) -> set[str]:
    out = subprocess.run(
        ["cargo", "package", "--list", "--allow-dirty", "--locked", "-p", crate],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def main(crates: list[str]) -> int:
    problems = []
    for crate in crates:
        base = ROOT / "crates" / crate
        files = packaged(crate)
        needed = {"Cargo.toml", "src/lib.rs"}
        readme = re.search(r'^readme\s*=\s*"([^"]+)"', (base / "Cargo.toml").read_text(), re.M)
        if readme:
            needed.add(readme.group(1))
        for source in sorted((base / "src").rglob("*.rs")):
            for match in INCLUDE.finditer(source.read_text()):
                target = (source.parent / (match.group(1) or match.group(2))).resolve()
                try:
                    needed.add(str(target.relative_to(base)))
                except ValueError:
                    problems.append(f"{crate}: {source.relative_to(ROOT)} reads {target}, outside the crate")
        for path in sorted(needed - files):
            problems.append(f"{crate}: {path} is read when building but is not in the package")
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"packages complete: {', '.join(crates)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["phx-protocol", "phx-server"]))
