#!/usr/bin/env python3
"""Checks that the modules of a crate import each other without cycles.

Every `.rs` file under `src/` is a node, named by its module path (`socket`,
`socket::driver`, `transport::websocket`, ...). An edge A → B means A names `crate::B`
(or a `super::` path that resolves to B). A parent module re-exporting its children
(`mod.rs`) is the same floor as them, so edges between a module and its own descendants
are ignored. The graph of top-level modules must be acyclic; the script prints the
floors it found, lowest first, and exits 1 on a cycle.
"""
import os
import re
import sys
from collections import defaultdict

src = sys.argv[1] if len(sys.argv) > 1 else "crates/phx-server/src"

def module_of(path):
    rel = os.path.relpath(path, src)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(parts)

CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")

def top(mod):
    return mod.split("::")[0] if mod else ""

edges = defaultdict(set)
nodes = set()
for root, _dirs, files in os.walk(src):
    for name in files:
        if not name.endswith(".rs") or name == "tests.rs":
            continue  # tests may reach anywhere; they are not part of the house
        path = os.path.join(root, name)
        mod = module_of(path)
        if mod == "":
            continue  # lib.rs: the crate root re-exports everything
        with open(path, encoding="utf-8") as f:
            text = f.read()
        # Tests may reach anywhere; comments (doc links) are not imports.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        me = top(mod)
        nodes.add(me)
        for target in CRATE_PATH.findall(text):
            if target != me:
                edges[me].add(target)
                nodes.add(target)

# Topological order (Kahn) over top-level modules.
indeg = {n: 0 for n in nodes}
for a in edges:
    for b in edges[a]:
        indeg[b] += 0  # ensure presence
rev = defaultdict(set)
for a, bs in edges.items():
    for b in bs:
        rev[b].add(a)
remaining = {n: len(edges[n]) for n in nodes}
floors = []
ready = sorted(n for n in nodes if remaining[n] == 0)
done = set()
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
cyclic = sorted(nodes - done)
for i, floor in enumerate(floors):
    print(f"floor {i}: {', '.join(floor)}")
if cyclic:
    print("import cycle among: " + ", ".join(cyclic))
    for a in cyclic:
        print(f"  {a} -> {', '.join(sorted(b for b in edges[a] if b in cyclic))}")
    sys.exit(1)
