#!/usr/bin/env python3
"""Fails when modules of the crate import each other in a cycle.

A module is a file (`src/a/b.rs` or `src/a/b/mod.rs` is `a::b`). Module A depends on module B
when A's code names B, or an item in B, through `crate::`, `super::` or `self::` paths (in `use`
statements, brace groups expanded, and in expressions), re-exports included. A cycle among the
modules under one of the folders given (default: the whole crate) is printed and fails the
check. Test code (`tests.rs` files and the `#[cfg(test)] mod tests { ... }` at a file's end) is
left out: it may look at anything.

    scripts/check-cycles.py [src] [PREFIX ...]   # e.g. runtime config
    EXPLAIN=1 scripts/check-cycles.py ...        # also the paths behind each edge of a cycle
"""

import os

import pathlib
import re
import sys


def module_of(root: pathlib.Path, file: pathlib.Path) -> tuple:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip(text: str) -> str:
    """Code without comments, string literals and the trailing test module."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r'r#*"(.|\n)*?"#*', '""', text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text, flags=re.S)
    text = re.sub(r"'(\\.|[^'\\\n])'", "' '", text)
    text = re.sub(r"//[^\n]*", "", text)
    test = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text)
    if test:
        text = text[: test.start()]
    return text


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = tree.strip()
    brace = tree.find("{")
    if brace < 0:
        return [re.sub(r"\s+as\s+\w+$", "", tree).strip()]
    head, body = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    items.append(current)
    paths = []
    for item in items:
        if item.strip():
            for sub in expand(item):
                paths.append(head + sub if sub != "self" else head.rstrip(":"))
    return paths


def paths_in(code: str) -> list:
    found = []
    for use in re.finditer(r"\buse\s+([^;]+);", code):
        found.extend(expand(use.group(1)))
    without_uses = re.sub(r"\buse\s+[^;]+;", " ", code)
    found.extend(
        m.group(0) for m in re.finditer(r"\b(?:crate|super|self)(?:\s*::\s*\w+)+", without_uses)
    )
    return found


def resolve(path: str, here: tuple, is_dir_module: bool, modules: set):
    segments = [s.strip() for s in path.split("::") if s.strip()]
    if not segments:
        return None
    first = segments[0]
    if first == "crate":
        current, rest = (), segments[1:]
    elif first in ("super", "self"):
        current = here
        rest = segments
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                current = current[:-1]
            rest = rest[1:]
    else:
        # A path from the module itself (`use child::x;` in a mod.rs, as in 2018+).
        current, rest = here, segments
        if (here + (first,)) not in modules:
            return None
    for segment in rest:
        if current + (segment,) in modules:
            current = current + (segment,)
        else:
            break
    return current


def main() -> int:
    args = sys.argv[1:]
    root = pathlib.Path(args[0] if args else "src")
    prefixes = [tuple(p.split("::")) for p in args[1:]] or [()]
    files = [f for f in root.rglob("*.rs") if f.name != "tests.rs"]
    modules = {module_of(root, f) for f in files}
    edges = {m: set() for m in modules}
    why = {}
    for file in files:
        here = module_of(root, file)
        code = strip(file.read_text())
        for path in paths_in(code):
            target = resolve(path, here, file.name == "mod.rs", modules)
            if target is not None and target != here:
                edges[here].add(target)
                why.setdefault((here, target), set()).add(re.sub(r"\s+", "", path))
    # Tarjan's strongly connected components.
    index, low, stack, on_stack, components = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    name = lambda m: "::".join(m) or "crate"
    failed = False
    for prefix in prefixes:
        inside = lambda m: m[: len(prefix)] == prefix
        for component in components:
            members = sorted(m for m in component if inside(m))
            if len(members) < 2:
                continue
            # Only the edges among this folder's modules count.
            sub = {m: {w for w in edges[m] if w in members} for m in members}
            cycle = find_cycle(sub)
            if cycle:
                failed = True
                print(f"import cycle under {name(prefix)}: " + " -> ".join(map(name, cycle)))
                print(f"  ({len(members)} modules depend on each other: {', '.join(map(name, members))})")
                if os.environ.get("EXPLAIN"):
                    for m in members:
                        for w in sorted(sub[m]):
                            shown = ", ".join(sorted(why[(m, w)])[:4])
                            print(f"    {name(m)} -> {name(w)}: {shown}")
    if failed:
        print("hint: move what both sides need into a module that imports neither", file=sys.stderr)
        return 1
    print(f"no import cycles ({len(modules)} modules)")
    return 0


def find_cycle(graph: dict):
    """One cycle in `graph`, as a list of nodes ending where it started, or None."""
    colour = {v: 0 for v in graph}
    parent = {}

    def dfs(v):
        colour[v] = 1
        for w in sorted(graph[v]):
            if colour[w] == 1:
                path = [w, v]
                while path[-1] != w:
                    path.append(parent[path[-1]])
                return list(reversed(path))
            if colour[w] == 0:
                parent[w] = v
                found = dfs(w)
                if found:
                    return found
        colour[v] = 2
        return None

    for v in sorted(graph):
        if colour[v] == 0:
            found = dfs(v)
            if found:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
