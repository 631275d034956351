#!/usr/bin/env python3
"""Checks that the README cannot drift from examples/hello.

- The fenced Rust block after the `<!-- readme-example: examples/hello/src/main.rs ...`
  marker must be examples/hello/src/main.rs, byte for byte.
- The line counts the README states (non-blank lines that are not comments) must be
  those of main.rs, of its socket-and-channel part, and of the Elixir block after the
  `<!-- readme-phoenix-equivalent -->` marker.

Exits 1 with a diff or the right numbers otherwise.
"""
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAIN_PATH = "examples/hello/src/main.rs"
MAIN = (ROOT / MAIN_PATH).read_text(encoding="utf-8")

failures = []


def fenced_block_after(marker, lang):
    at = README.find(marker)
    if at < 0:
        sys.exit(f"README.md has no {marker!r} marker")
    block = re.compile(r"^```" + lang + r"\n(.*?)^```$", re.S | re.M).search(README, at)
    if not block:
        sys.exit(f"README.md has no ```{lang} block after {marker!r}")
    return block.group(1)


def code_lines(text, comment):
    """Non-blank lines that are not comments (doc comments included)."""
    return [l for l in text.splitlines() if l.strip() and not l.strip().startswith(comment)]


def stated(label):
    """The number in the README's line-count table row starting with `label`."""
    row = re.search(r"^\| " + re.escape(label) + r" \| (\d+) \|$", README, re.M)
    if not row:
        sys.exit(f"README.md has no line-count row {label!r}")
    return int(row.group(1))


shown = fenced_block_after("<!-- readme-example: " + MAIN_PATH, "rust")
if shown != MAIN:
    diff = difflib.unified_diff(
        MAIN.splitlines(keepends=True),
        shown.splitlines(keepends=True),
        fromfile=MAIN_PATH,
        tofile="README.md",
    )
    failures.append("README.md does not show " + MAIN_PATH + " verbatim:\n" + "".join(diff))

rust = code_lines(MAIN, "//")
# The socket and the channel: from the first item after the imports up to the page's
# HTTP handler (the `PHOENIX_JS` constant opens it).
first = next((i for i, l in enumerate(rust) if not re.match(r"(use |    |\};)", l)), None)
page = next((i for i, l in enumerate(rust) if "PHOENIX_JS" in l), None)
if first is None or page is None:
    sys.exit(f"cannot find the socket and channel part of {MAIN_PATH} (it ends at PHOENIX_JS)")
elixir = code_lines(fenced_block_after("<!-- readme-phoenix-equivalent -->", "elixir"), "#")

for label, actual in [
    ("phx-rs, `examples/hello/src/main.rs`", len(rust)),
    ("… of which the socket and the channel", page - first),
    ("Phoenix, the same socket and channel (below)", len(elixir)),
]:
    if stated(label) != actual:
        failures.append(f"README.md says {stated(label)} lines for {label!r}; it is {actual}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"README shows {MAIN_PATH} verbatim; {len(rust)} lines (socket and channel "
      f"{page - first}), Phoenix {len(elixir)}")
