#!/usr/bin/env bash
# Lists the import edges between the top-level modules of src/ (`crate::X` paths in code,
# comments and test-only code left out) and reports every cycle among them (strongly connected
# components of more than one module), with one file:line per edge inside each cycle.
# A parent and its children are one node here, so parent <-> child re-exports never count.
#
# Usage: scripts/module-cycles.sh [-v] [SRC_DIR]   (-v: also print every edge)
# Exit status: 0 when there is no cycle, 1 when there is one.
set -euo pipefail
verbose=0
if [[ "${1:-}" == "-v" ]]; then
    verbose=1
    shift
fi
src="${1:-$(dirname "$0")/../src}"
exec python3 - "$src" "$verbose" <<'PY'
import os, re, sys

src, verbose = sys.argv[1], sys.argv[2] == "1"
path_re = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups.
group_re = re.compile(r"\bcrate::\{([^}]*)\}", re.S)

def top_module(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first

def product_code(text):
    """The file without its test-only tail (`#[cfg(test)] mod …` to the end) and comments."""
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+", text, re.M)
    if m:
        text = text[: m.start()]
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())

edges = {}  # (a, b) -> first "file:line"
modules = set()
for root, _, files in os.walk(src):
    for f in sorted(files):
        if not f.endswith(".rs"):
            continue
        full = os.path.join(root, f)
        rel = os.path.relpath(full, src)
        if rel in ("lib.rs", "main.rs") or f == "tests.rs" or f.endswith("_tests.rs"):
            continue
        a = top_module(rel)
        modules.add(a)
        code = product_code(open(full, encoding="utf-8").read())
        for lineno, line in enumerate(code.splitlines(), 1):
            targets = path_re.findall(line)
            for g in group_re.findall(line):
                targets += [t.strip().split("::")[0] for t in g.split(",") if t.strip()]
            for b in targets:
                if b != a and b not in ("self", "super", "crate"):
                    edges.setdefault((a, b), f"src/{rel}:{lineno}")
        # multi-line `use crate::{` groups
        for g in group_re.findall(code):
            for t in g.split(","):
                b = t.strip().split("::")[0]
                if b and b != a and re.fullmatch(r"[a-z_][a-z0-9_]*", b):
                    edges.setdefault((a, b), f"src/{rel}")

graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)

# Tarjan's strongly connected components.
index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(graph.get(v, ())):
        if w not in index:
            strong(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(set(graph) | {b for bs in graph.values() for b in bs}):
    if v not in index:
        strong(v)

if verbose:
    for (a, b), where in sorted(edges.items()):
        print(f"{a} -> {b}    ({where})")
    print()
cycles = [c for c in sccs if len(c) > 1]
print(f"{len(modules)} modules, {len(edges)} edges, {len(cycles)} cycle(s)")
for c in sorted(cycles, key=len, reverse=True):
    print(f"cycle of {len(c)}: {' '.join(c)}")
    for (a, b), where in sorted(edges.items()):
        if a in c and b in c:
            print(f"    {a} -> {b}    ({where})")
sys.exit(1 if cycles else 0)
PY
