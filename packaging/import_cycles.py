#!/usr/bin/env python3
"""Print the import cycles among Posta's modules (exit 1 if any).

Reads `src/`: a module is a file; an edge A -> B is a path in A (outside its `#[cfg(test)]`
module) naming B through `crate::`, `super::` or `self::`. A parent declaring its children
(`mod x;`) is not an edge; a parent re-exporting or calling a child is.
"""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
mods = {}
for d, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".rs"):
            continue
        rel = os.path.relpath(os.path.join(d, f), root)[:-3].split(os.sep)
        if rel[-1] == "mod":
            rel = rel[:-1]
        if rel in (["lib"], ["main"]):
            rel = [] if rel == ["lib"] else ["main"]
        mods[tuple(rel)] = os.path.join(d, f)

def resolve(base, parts):
    """The longest known module prefix of base + parts."""
    path = list(base)
    for p in parts:
        if p == "super":
            path = path[:-1]
        elif p == "self":
            pass
        else:
            path.append(p)
    while path and tuple(path) not in mods:
        path.pop()
    return tuple(path)

edges = {m: set() for m in mods}
for m, file in mods.items():
    with open(file) as fh:
        text = fh.read()
    text = text.split("#[cfg(test)]\nmod tests")[0]
    text = re.sub(r"//[^\n]*", "", text)
    # `use a::{b, c::{d}}` groups: expand one level of braces.
    for u in re.finditer(r"\buse\s+([^;]+);", text):
        body = re.sub(r"\s+", "", u.group(1))
        stack = [("", body)]
        while stack:
            prefix, b = stack.pop()
            mm = re.match(r"^(.*?)\{(.*)\}$", b)
            if mm:
                inner, depth, cur = mm.group(2), 0, ""
                items = []
                for ch in inner:
                    if ch == "," and depth == 0:
                        items.append(cur); cur = ""; continue
                    depth += ch == "{"; depth -= ch == "}"; cur += ch
                items.append(cur)
                for it in items:
                    if it:
                        stack.append((prefix + mm.group(1), it))
                continue
            full = prefix + b
            parts = full.split("::")
            if parts[0] not in ("crate", "super", "self") and tuple(m) + (parts[0],) in mods:
                edges[m].add(resolve(m, parts))
            elif parts[0] in ("crate", "super", "self"):
                base = () if parts[0] == "crate" else m
                t = resolve(base, parts[1:] if parts[0] == "crate" else parts)
                if t != m:
                    edges[m].add(t)
    # A child named by its bare name (`migrate::run`) from its parent.
    for p in re.finditer(r"(?<![\w:])(\w+)((?:::\w+)+)", text):
        if p.group(1) not in ("crate", "super", "self") and tuple(m) + (p.group(1),) in mods:
            edges[m].add(resolve(m, [p.group(1)] + p.group(2).split("::")[1:]))
    for p in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", text):
        parts = p.group(1).split("::")
        base = () if parts[0] == "crate" else m
        t = resolve(base, parts[1:] if parts[0] == "crate" else parts)
        if t != m:
            edges[m].add(t)

# Tarjan's strongly connected components.
index, low, on, st, sccs, n = {}, {}, set(), [], [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1:
            sccs.append(c)
sys.setrecursionlimit(10000)
for v in list(edges):
    if v not in index:
        visit(v)
name = lambda m: "::".join(m) or "crate"
for c in sccs:
    print("cycle:", ", ".join(sorted(name(m) for m in c)))
    for a in c:
        for b in sorted(edges[a]):
            if b in c:
                print(f"  {name(a)} -> {name(b)}")
sys.exit(1 if sccs else 0)
