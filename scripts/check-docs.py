#!/usr/bin/env python3
"""Checks that the docs stay short where they must and true where they can be checked.

    python3 scripts/check-docs.py

1. README.md has at most README_MAX_LINES lines: depth belongs in docs/.
2. No tracked file names an internal work item (the pattern WORK_ITEM below, what
   `git grep -niE` would find): a comment, test or doc says what a thing is about, and
   an upstream project's tracker is cited by its URL.
3. Every phx-server or phx-protocol item a Markdown doc names still exists: README.md,
   SECURITY.md, docs/*.md, crates/*/README.md and crates/*/docs/*.md. The public items
   and their members (methods, variants, fields, associated constants) are read from
   the crates' rustdoc output, which the script builds first (`cargo doc`, with the
   flags of the test command so the build is shared). Checked, in inline code and in
   the Rust blocks that are not compiled as doctests:
   - paths from the crate, `phx_server::testing::TestSocket`, `phx_protocol::Serializer`;
   - `Type::member` and `Type::{a, b}` where `Type` is one of the crates' public types;
   - `ctx.method(`, `endpoint.method(`, `.pubsub().method(`, `.presence().method(`
     (a channel's context, an endpoint, its PubSub and presence);
   - a code span that is a single CamelCase name, or `Type::member` with an unknown
     `Type`: it must be a public item (or member) of the crates, a type defined in the
     workspace's sources (a private type, an example's struct), or listed in EXTERNAL
     (names from std, tokio, phoenix.js or Elixir). A renamed or removed public type is
     then reported, not mistaken for someone else's.

Exits 1 listing every problem, each with its file and line.
"""
import glob
import html
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

README_MAX_LINES = 250
# Internal work items: the word "issue" then a number, with an optional space and "#"
# between them, in any case. An upstream report is cited by its URL (…/issues/64), which
# this does not match.
WORK_ITEM = r"issue ?#?[0-9]+"
CRATES = {"phx_server": "phx-server", "phx_protocol": "phx-protocol"}
# Names the docs use that are neither the crates' nor defined in the workspace.
EXTERNAL = {
    # Rust std, tokio, bytes, serde, hyper
    "Self", "Ok", "Err", "None", "Some", "Duration", "Instant", "String", "Vec", "Arc",
    "Bytes", "TcpListener", "Task", "CancellationToken", "AtomicWaker", "Serialize",
    "StatusCode", "HeaderValue", "Request", "Response", "Value", "RawValue",
    # phoenix.js and the browser
    "ArrayBuffer", "LongPoll", "Socket",
    # Elixir and Phoenix
    "Logger", "MessageEncryptor", "FunctionClauseError", "Date", "Time", "DateTime",
    "NaiveDateTime", "Decimal",
    # Linux /proc/<pid>/status fields
    "VmHWM",
    # JWT algorithm names (RFC 7518, RFC 8037)
    "EdDSA",
}
MEMBER_KINDS = ("method", "tymethod", "associatedconstant", "variant", "structfield",
                "associatedtype")


def docs():
    files = ["README.md", "SECURITY.md"]
    for pattern in ("docs/*.md", "crates/*/README.md", "crates/*/docs/*.md"):
        files += sorted(glob.glob(pattern, root_dir=ROOT))
    return [f for f in files if os.path.exists(os.path.join(ROOT, f))]


def check_readme_length(problems):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        lines = f.read().count("\n")
    if lines > README_MAX_LINES:
        problems.append(
            f"README.md: {lines} lines, more than {README_MAX_LINES}: move depth into docs/"
        )
    return lines


def check_work_items(problems):
    found = subprocess.run(
        ["git", "grep", "-nIiE", WORK_ITEM],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if found.returncode > 1:
        sys.exit(f"git grep failed: {found.stderr.strip()}")
    for hit in found.stdout.splitlines():
        problems.append(f"{hit[:200]}: names an internal work item; say what it is about")


class Api:
    """The public items of the crates and their members, from rustdoc's HTML."""

    def __init__(self, doc_dir):
        self.items = {}  # crate -> {module path (tuple) -> set of names}
        self.members = {}  # simple type name -> set of member names
        self.opaque = set()  # re-exports and type aliases: their members are not listed
        for crate in CRATES:
            base = os.path.join(doc_dir, crate)
            if not os.path.exists(os.path.join(base, "all.html")):
                sys.exit(f"no rustdoc output in {base}: cargo doc did not run")
            modules = {}
            for path in glob.glob(os.path.join(base, "**", "*.html"), recursive=True):
                rel = os.path.relpath(path, base)
                parts = rel.split(os.sep)
                module, page = tuple(parts[:-1]), parts[-1]
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if 'http-equiv="refresh"' in text or page in ("all.html", "search.html"):
                    continue  # a redirect from a private path, or an index
                if page == "index.html":
                    modules.setdefault(module, set())
                    if module:
                        modules.setdefault(module[:-1], set()).add(module[-1])
                    for name in re.findall(r'id="reexport\.(\w+)"', text):
                        modules[module].add(name)
                        self.opaque.add(name)
                    continue
                m = re.fullmatch(r"(struct|enum|trait|fn|constant|type|macro|union|static)"
                                 r"\.(\w+)\.html", page)
                if not m:
                    continue
                name = m.group(2)
                modules.setdefault(module, set()).add(name)
                if m.group(1) == "type":
                    self.opaque.add(name)
                kinds = "|".join(MEMBER_KINDS)
                found = re.findall(r'id="(?:' + kinds + r')\.(\w+)"', text)
                self.members.setdefault(name, set()).update(found)
            self.items[crate] = modules
        self.types = {n for mods in self.items.values() for names in mods.values()
                      for n in names if n[:1].isupper()}
        self.all_members = {m for ms in self.members.values() for m in ms}

    def has_path(self, crate, segments):
        """Whether `crate::segments` names a module, an item, or an item's member."""
        modules = self.items[crate]
        module = ()
        for i, seg in enumerate(segments):
            if module + (seg,) in modules:
                module += (seg,)
                continue
            if seg in modules.get(module, set()):
                rest = segments[i + 1:]
                if not rest or (seg in self.opaque and seg not in self.members):
                    return True
                return len(rest) == 1 and rest[0] in self.members.get(seg, set())
            return False
        return True


def workspace_types():
    names = set()
    for pattern in ("crates/**/*.rs", "examples/**/*.rs"):
        for path in glob.glob(pattern, root_dir=ROOT, recursive=True):
            if "/target/" in path or "node_modules" in path:
                continue
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                names.update(re.findall(r"\b(?:struct|enum|trait|type|union)\s+([A-Z]\w*)",
                                        f.read()))
    return names


def snippets(path, text):
    """(line, text) of the inline code spans, and of the Rust blocks no doctest compiles."""
    # The guides and crate READMEs are doctests; the README's block is examples/hello.
    compiled = path.startswith("crates/") or path == "README.md"
    out = []
    fence = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
    last = 0
    prose = []
    for m in fence.finditer(text):
        prose.append((last, text[last:m.start()]))
        last = m.end()
        lang = m.group(1).strip()
        if lang.startswith("rust") and not compiled:
            out.append((text.count("\n", 0, m.start(2)) + 1, m.group(2)))
    prose.append((last, text[last:]))
    for start, chunk in prose:
        for m in re.finditer(r"(`+)(.+?)\1", chunk, re.S):
            out.append((text.count("\n", 0, start + m.start()) + 1, m.group(2)))
    return out


RECEIVERS = {
    r"\bctx\.": "ChannelContext",
    r"(?<![@\w])endpoint\.": "Endpoint",  # not Elixir's @endpoint
    r"\.pubsub\(\)\.": "PubSub",
    r"\.presence\(\)\.": "Presence",
}


def check_names(problems, api, defined, path, text):
    def report(line, what):
        problems.append(f"{path}:{line}: {what}")

    for line, code in snippets(path, text):
        code = html.unescape(code)
        for m in re.finditer(r"\b(phx_server|phx_protocol)((?:::\w+)+)", code):
            segments = [s for s in m.group(2).split("::") if s]
            if not api.has_path(m.group(1), segments):
                report(line, f"`{m.group(0)}` is not a public item of {CRATES[m.group(1)]}")
        for m in re.finditer(r"(?<![\w:])([A-Z]\w*)::(\{[^}]*\}|\w+)", code):
            owner, tail = m.group(1), m.group(2)
            names = re.findall(r"\w+", tail)
            if owner in api.types and (owner not in api.opaque or owner in api.members):
                known = api.members.get(owner, set())
                for name in names:
                    if name not in known:
                        report(line, f"`{owner}::{name}`: {owner} has no such member")
            elif owner not in defined and owner not in EXTERNAL:
                report(line, f"`{owner}::{tail}`: {owner} is not a known type "
                             "(removed? if it is another crate's, add it to EXTERNAL)")
        for receiver, owner in RECEIVERS.items():
            for m in re.finditer(receiver + r"([a-z_]\w*)\(", code):
                if m.group(1) not in api.members.get(owner, set()):
                    report(line, f"`{m.group(0)}`: {owner} has no method {m.group(1)}")
        single = re.fullmatch(r"\s*([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*)(?:\(\))?\s*", code)
        if single:
            name = single.group(1)
            known = (name in api.types or name in api.all_members or name in defined
                     or name in EXTERNAL)
            if not known and re.search(r"[a-z]", name):
                report(line, f"`{name}` is not a known type or member "
                             "(removed? if it is another crate's, add it to EXTERNAL)")


def build_docs():
    env = dict(os.environ, RUSTDOCFLAGS="-D warnings")
    args = ["cargo", "doc", "--no-deps", "--locked", "-q"]
    for crate in CRATES.values():
        args += ["-p", crate]
    built = subprocess.run(args, cwd=ROOT, env=env, check=False)
    if built.returncode != 0:
        sys.exit("cargo doc failed: fix the rustdoc errors above first")
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    target = re.search(r'"target_directory":"([^"]+)"', meta.stdout)
    return os.path.join(target.group(1) if target else os.path.join(ROOT, "target"), "doc")


def main():
    problems = []
    lines = check_readme_length(problems)
    check_work_items(problems)
    api = Api(build_docs())
    defined = workspace_types()
    checked = docs()
    for path in checked:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            check_names(problems, api, defined, path, f.read())
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(f"README.md: {lines} lines (at most {README_MAX_LINES}); no internal work items; "
          f"{len(checked)} docs name only items that exist")


if __name__ == "__main__":
    main()
