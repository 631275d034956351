#!/usr/bin/env python3
"""Checks that the README and docs/phoenix.md cannot drift from examples/hello.

- The fenced Rust block after the `<!-- readme-example: examples/hello/src/main.rs ...`
  marker in README.md must be examples/hello/src/main.rs, byte for byte.
- The line counts docs/phoenix.md states (non-blank lines that are not comments) must
  be those of main.rs, of its socket-and-channel part, and of the Elixir block after
  its `<!-- hello-phoenix-equivalent -->` marker.

Exits 1 with a diff or the right numbers otherwise.
"""
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMPARISON_PATH = "docs/phoenix.md"
COMPARISON = (ROOT / COMPARISON_PATH).read_text(encoding="utf-8")
MAIN_PATH = "examples/hello/src/main.rs"
MAIN = (ROOT / MAIN_PATH).read_text(encoding="utf-8")

failures = []


def fenced_block_after(text, name, marker, lang):
    at = text.find(marker)
    if at < 0:
        sys.exit(f"{name} has no {marker!r} marker")
    block = re.compile(r"^```" + lang + r"\n(.*?)^```$", re.S | re.M).search(text, at)
    if not block:
        sys.exit(f"{name} has no ```{lang} block after {marker!r}")
    return block.group(1)


def code_lines(text, comment):
    """Non-blank lines that are not comments (doc comments included)."""
    return [l for l in text.splitlines() if l.strip() and not l.strip().startswith(comment)]


def stated(label):
    """The number in docs/phoenix.md's line-count table row starting with `label`."""
    row = re.search(r"^\| " + re.escape(label) + r" \| (\d+) \|$", COMPARISON, re.M)
    if not row:
        sys.exit(f"{COMPARISON_PATH} has no line-count row {label!r}")
    return int(row.group(1))


shown = fenced_block_after(README, "README.md", "<!-- readme-example: " + MAIN_PATH, "rust")
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
elixir = fenced_block_after(COMPARISON, COMPARISON_PATH, "<!-- hello-phoenix-equivalent -->", "elixir")
elixir = code_lines(elixir, "#")

for label, actual in [
    ("phx-rs, `examples/hello/src/main.rs`", len(rust)),
    ("… of which the socket and the channel", page - first),
    ("Phoenix, the same socket and channel (below)", len(elixir)),
]:
    if stated(label) != actual:
        failures.append(
            f"{COMPARISON_PATH} says {stated(label)} lines for {label!r}; it is {actual}"
        )

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"README shows {MAIN_PATH} verbatim; {COMPARISON_PATH} counts {len(rust)} lines "
      f"(socket and channel {page - first}), Phoenix {len(elixir)}")
