#!/usr/bin/env python3
"""List import cycles between modules of different folders.

Each top-level folder under a crate's `src/` (with everything below it) is one node, and
so is each file at the crate root; an edge A -> B means a file of A names a path
(`use crate::…`, `super::…`, or an inline `crate::…` path) that resolves into B. A cycle
among these nodes means the layering is broken (for instance store/ and tasks/ each
needing the other, or web/ and api/ calling each other). Cycles inside one folder (a
`mod.rs` and its children) are allowed.

Usage: .ci/import_cycles.py server/src agent/src   (exit 1 when a cycle is found)
"""
import os
import re
import sys

USE_RE = re.compile(r"\buse\s+((?:crate|super|self)\b[^;]*);", re.S)
PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"')


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def expand(tree):
    """Expand a use tree such as `crate::{a::b, c::{d, e}}` into flat paths."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, text):
        parts, depth, cur = [], 0, ""
        for ch in text:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        for part in filter(None, parts):
            if "{" in part:
                head, rest = part.split("{", 1)
                walk(prefix + [s for s in head.split("::") if s], rest[:-1])
            else:
                segs = [s for s in part.split(" as ")[0].split("::") if s]
                out.append(prefix + segs)

    walk([], tree)
    return out


def resolve(mods, here, is_mod_file, segs):
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    else:
        base = here if is_mod_file else here[:-1]
        rest = segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    best = None
    cur = base
    if cur in mods:
        best = cur
    for seg in rest:
        cur = cur + (seg,)
        if cur in mods:
            best = cur
        else:
            break
    return best


def scan(root):
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                files[module_of(root, path)] = path
    edges = {m: set() for m in files}
    for mod, path in files.items():
        is_mod_file = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        text = open(path, encoding="utf-8").read()
        text = STRING_RE.sub('""', COMMENT_RE.sub("", text))
        paths = []
        for m in USE_RE.finditer(text):
            paths.extend(expand(m.group(1)))
        for m in PATH_RE.finditer(text):
            paths.append([m.group(1)] + m.group(2).split("::")[1:])
        for segs in paths:
            target = resolve(files, mod, is_mod_file, segs)
            # A file's own children and its parents' declarations are not imports of
            # another subject; the crate root declares modules, it does not use them.
            if target is not None and target != mod and target != ():
                edges[mod].add(target)
    return files, edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
            out.append(comp)

    for v in edges:
        if v not in index:
            strong(v)
    return out


def node_of(root, path):
    rel = os.path.relpath(path, root).split(os.sep)
    return rel[0] + "/" if len(rel) > 1 else rel[0]


def main(roots):
    found = 0
    for root in roots:
        files, edges = scan(root)
        nodes = {}
        why = {}
        for mod, targets in edges.items():
            a = node_of(root, files[mod])
            nodes.setdefault(a, set())
            for t in targets:
                b = node_of(root, files[t])
                if a != b:
                    nodes[a].add(b)
                    nodes.setdefault(b, set())
                    why.setdefault((a, b), []).append(("::".join(mod), "::".join(t)))
        for comp in sccs(nodes):
            if len(comp) < 2:
                continue
            found += 1
            print(f"{root}: cycle between {sorted(comp)}:")
            for a in sorted(comp):
                for b in sorted(nodes[a] & set(comp)):
                    uses = "; ".join(f"{x} -> {y}" for x, y in sorted(why[(a, b)])[:4])
                    print(f"  {a} -> {b}: {uses}")
    if found:
        print(f"{found} import cycle(s) between folders")
        return 1
    print("no import cycle between modules of different folders in " + ", ".join(roots))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["server/src", "agent/src"]))
