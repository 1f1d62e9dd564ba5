#!/usr/bin/env python3
"""Prints which top-level modules of `src/` refer to which (`crate::<module>` paths and
`use crate::{..}` lists, comments and tests excluded), and any cycle among the modules named
on the command line (default: engine config error idp login token).

    python3 scripts/module-deps.py [MODULE ...]

Exit status 1 when a cycle exists among them."""
import pathlib, re, sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
watched = sys.argv[1:] or ["engine", "config", "error", "idp", "login", "token"]

def module_of(path):
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs") if rel.parts[0] != "lib.rs" else None

def strip(text):
    # drop comments and `#[cfg(test)]` modules (their uses do not make dependencies)
    text = re.sub(r"//[^\n]*", "", text)
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
    return text[: cut.start()] if cut else text

deps = {}
for path in SRC.rglob("*.rs"):
    if "tests" in path.stem or path.name == "tests.rs":
        continue
    here = module_of(path)
    if here is None:
        continue
    text = strip(path.read_text())
    found = set(re.findall(r"crate::(\w+)", text))
    for group in re.findall(r"use crate::\{([^;]*)\};", text, re.S):
        found |= set(re.findall(r"(?:^|[\s,{])(\w+)::", group))
        found |= set(w for w in re.findall(r"(?:^|[\s,{])(\w+)\s*(?:,|\}|$)", group))
    deps.setdefault(here, set()).update(m for m in found if m != here)

mods = sorted(d for d in deps if (SRC / f"{d}.rs").exists() or (SRC / d).is_dir())
for m in mods:
    print(f"{m:10s} -> {', '.join(sorted(x for x in deps[m] if x in mods))}")

def cycles(nodes):
    graph = {n: {d for d in deps.get(n, ()) if d in nodes} for n in nodes}
    out = []
    def walk(start, node, path):
        for nxt in graph[node]:
            if nxt == start:
                out.append(path + [start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])
    for n in sorted(nodes):
        walk(n, n, [n])
    return out

found = cycles(set(watched))
print()
if found:
    print("cycles among", " ".join(watched) + ":")
    for c in found:
        print("  " + " -> ".join(c))
    sys.exit(1)
print("no cycles among", " ".join(watched))
