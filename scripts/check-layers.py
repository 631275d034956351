#!/usr/bin/env python3
"""Checks that the modules of a crate import each other one way.

    python3 scripts/check-layers.py [--files-only] SRC_DIR...

Two checks per crate source directory (default: phx-server's `src`):

- Floors (skipped with `--files-only`): each top-level module (`socket`, `transport`, ...)
  is a node; A -> B when a file of A names `crate::B`, or a `super::`/`self::` path that
  resolves into B. The graph must be acyclic. The floors found are printed, lowest first.
- Files: every `.rs` file is a node (`socket::driver`, `presence::replica`, ...); A -> B
  when A names an item that B defines, following `use` declarations (`pub use` in a
  `mod.rs`, say) to the file that defines the item. This graph must be acyclic too: two
  files that import each other (or a longer circle of files) are refused, whatever
  their floors.

A module and its own descendants are one floor (a `mod.rs` re-exports its children, the
children use what their parent defines), so edges between them are ignored. Tests
(`tests.rs`, `#[cfg(test)] mod tests { ... }`) may reach anywhere and are not read;
comments (doc links) are not imports. A binary's `main.rs` next to a `lib.rs` is a
crate of its own (it names the library by its crate name) and is not read either.

Exits 1 on a floor cycle or a circle of files, naming the files and the paths that make
the circle. The test command runs it on phx-server (both checks) and on the chat app
(files only: its top-level modules are not on floors yet).
"""
import os
import re
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def code_of(text):
    """The text without tests, comments and string literals."""
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("//"):
            continue
        lines.append(re.sub(r"\s//\s.*$", "", line))
    text = "\n".join(lines)
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)


def use_trees(code):
    """`use` declarations: (their text between `use` and `;`, start, end)."""
    for m in re.finditer(r"\buse\s+([^;]*);", code):
        yield m.group(1), m.start(), m.end()


def expand(tree):
    """`a::{b, c::{d as e}, self}` -> [(['a','b'], 'b'), (['a','c','d'], 'e'), (['a'], 'a')]."""
    tree = re.sub(r"\s+", " ", tree).strip()
    out = []

    def walk(prefix, text):
        text = text.strip()
        if not text:
            return
        if text.endswith("}"):
            head, _, body = text.partition("{")
            head = head.rstrip(": ").strip()
            segs = prefix + [s for s in head.split("::") if s]
            depth, part, parts = 0, "", []
            for ch in body[:-1]:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    parts.append(part)
                    part = ""
                else:
                    part += ch
            parts.append(part)
            for p in parts:
                walk(segs, p)
            return
        path, _, alias = text.partition(" as ")
        segs = prefix + [s.strip() for s in path.split("::") if s.strip()]
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        if not segs:
            return
        out.append((segs, alias.strip() or segs[-1]))

    walk([], tree)
    return out


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}
        for root, _dirs, names in os.walk(src):
            for name in names:
                if not name.endswith(".rs") or name == "tests.rs":
                    continue
                path = os.path.join(root, name)
                if name == "main.rs" and os.path.exists(os.path.join(root, "lib.rs")):
                    continue
                mod = module_of(src, path)
                with open(path, encoding="utf-8") as f:
                    self.files[mod] = (path, code_of(f.read()))
        # Every name each file brings into scope with `use`, as an absolute path.
        self.imports = {}
        for mod, (_path, code) in self.files.items():
            names = {}
            for tree, _s, _e in use_trees(code):
                for segs, alias in expand(tree):
                    absolute = self.absolute(mod, segs)
                    if absolute is not None and alias not in ("*", "_"):
                        names[alias] = absolute
            self.imports[mod] = names

    def absolute(self, mod, segs):
        """`segs` as written in `mod`, from the crate root; None if it is another crate."""
        first, rest = segs[0], segs[1:]
        if first == "crate":
            return tuple(rest)
        if first in ("super", "self"):
            base = list(mod)
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    if not base:
                        return None
                    base.pop()
                segs = segs[1:]
            return tuple(base + list(segs))
        if mod + (first,) in self.files:  # a child module, named without `self::`
            return mod + tuple(segs)
        return None

    def resolve(self, path, depth=0):
        """The file (module) that defines the item at the absolute `path`."""
        cur, i = (), 0
        while i < len(path) and cur + (path[i],) in self.files:
            cur += (path[i],)
            i += 1
        if i < len(path) and depth < 16:
            target = self.imports.get(cur, {}).get(path[i])
            if target is not None and target != path:
                return self.resolve(target + tuple(path[i + 1 :]), depth + 1)
        return cur

    def references(self, mod):
        """Every absolute path `mod` names: its `use` declarations and inline paths."""
        code = self.files[mod][1]
        paths = []
        for tree, _s, _e in use_trees(code):
            for segs, _alias in expand(tree):
                absolute = self.absolute(mod, segs)
                if absolute:
                    paths.append((absolute, "::".join(segs)))
        no_uses = re.sub(r"\buse\s+[^;]*;", "", code)
        pattern = r"\b(crate|super|self)((?:::" + IDENT + r")+)"
        for m in re.finditer(pattern, no_uses):
            segs = [m.group(1)] + [s for s in m.group(2).split("::") if s]
            absolute = self.absolute(mod, segs)
            if absolute:
                paths.append((absolute, "::".join(segs)))
        return paths

    def file_edges(self):
        """mod -> {target: [how it is named]}, ancestors and descendants left out."""
        edges = defaultdict(lambda: defaultdict(list))
        for mod in self.files:
            for absolute, written in self.references(mod):
                target = self.resolve(absolute)
                related = target[: len(mod)] == mod or mod[: len(target)] == target
                if target != mod and not related:
                    edges[mod][target].append(written)
        return edges


def name(mod):
    return "::".join(mod) or "crate"


def check_floors(crate, edges):
    top = defaultdict(set)
    nodes = set()
    for mod, targets in edges.items():
        if not mod:
            continue
        nodes.add(mod[0])
        for target in targets:
            if target and target[0] != mod[0]:
                top[mod[0]].add(target[0])
                nodes.add(target[0])
    for mod in crate.files:
        if mod:
            nodes.add(mod[0])
    rev = defaultdict(set)
    for a, bs in top.items():
        for b in bs:
            rev[b].add(a)
    remaining = {n: len(top[n]) for n in nodes}
    floors, done = [], set()
    ready = sorted(n for n in nodes if remaining[n] == 0)
    while ready:
        floors.append(ready)
        done.update(ready)
        nxt = set()
        for b in ready:
            for a in rev[b]:
                remaining[a] -= 1
                if remaining[a] == 0:
                    nxt.add(a)
        ready = sorted(nxt - done)
    for i, floor in enumerate(floors):
        print(f"floor {i}: {', '.join(floor)}")
    cyclic = sorted(nodes - done)
    if cyclic:
        print("import cycle among: " + ", ".join(cyclic))
        for a in cyclic:
            print(f"  {a} -> {', '.join(sorted(b for b in top[a] if b in cyclic))}")
    return not cyclic


def cycles(edges, nodes):
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check_circles(crate, edges):
    """No two files import each other, and no longer circle of files either."""
    found = cycles(edges, set(crate.files))
    for component in found:
        members = set(component)
        kind = "two-file circle" if len(component) == 2 else "import circle"
        print(f"{kind}: {', '.join(crate.files[m][0] for m in component)}")
        for a in component:
            for b in sorted(t for t in edges[a] if t in members):
                print(f"  {name(a)} -> {name(b)}: names {', '.join(sorted(set(edges[a][b])))}")
    return not found


def main(argv):
    files_only = "--files-only" in argv
    dirs = [a for a in argv if not a.startswith("--")] or ["crates/phx-server/src"]
    ok = True
    for src in dirs:
        if not os.path.isdir(src):
            print(f"{src}: no such directory")
            return 1
        crate = Crate(src)
        edges = crate.file_edges()
        print(f"{src}: {len(crate.files)} files")
        if not files_only:
            ok &= check_floors(crate, edges)
        if check_circles(crate, edges):
            print("files: no import circles")
        else:
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
