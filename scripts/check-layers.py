#!/usr/bin/env python3
"""Checks the shape of the Rust sources.

* No circle among the server's modules: every `crate::` path in a file of `crates/server/src` is an
  edge from that file's module to the module it names; the strongly connected components of that
  graph must all be single modules.
* No source file of a crate over 700 lines, no function of a product crate over 120 lines.

Prints what it finds and exits 1 when a rule is broken. `--graph` prints the edges.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PRODUCT = ["core", "store", "server", "cli"]
MAX_FILE = 700
MAX_FN = 120


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return "::".join(rel)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] if "//" in line and '"' not in line else line
                     for line in text.splitlines())


def crate_paths(text, module):
    """Every module path a file names: `crate::a::b`, `super::a` and `self::a`, including those
    inside `use crate::{a, b::c}` groups, as absolute paths (`a::b`)."""
    out = []
    here = module.split("::") if module else []
    for m in re.finditer(r"\b(crate|self|super)((?:::super)*)::(\{|[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*(?:::\{)?)", text):
        root, supers, rest = m.group(1), m.group(2), m.group(3)
        if m.start() > 0 and text[m.start() - 1] in "$":
            continue
        if root == "crate":
            base = []
        else:
            base = list(here)
            ups = (1 if root == "super" else 0) + supers.count("super")
            base = base[:len(base) - ups] if ups <= len(base) else []
        prefix = "::".join(base)
        if rest.endswith("{"):
            head = rest[:-1].rstrip(":")
            depth, i, start = 1, m.end(), m.end()
            while depth and i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            for part in split_group(text[start:i - 1]):
                out.append(join(prefix, head, part))
        else:
            out.append(join(prefix, rest))
    return out


def join(*parts):
    return "::".join(p for p in parts if p)


def split_group(group):
    parts, depth, cur = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    res = []
    for p in parts:
        p = re.sub(r"\s+", "", p)
        if not p:
            continue
        if "::{" in p:
            head, rest = p.split("::{", 1)
            res.extend(head + "::" + q for q in split_group(rest[:-1]))
        else:
            res.append(p)
    return res


def module_graph(src):
    files = {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(dirpath, n)
                files[module_of(src, p)] = p
    mods = set(files)
    module_of_file = {m: m for m in files}
    edges = {m: set() for m in mods}
    for m, p in files.items():
        with open(p, encoding="utf-8") as f:
            text = strip_comments(f.read())
        # Tests inside a module may reach anywhere.
        text = text.split("#[cfg(test)]")[0]
        for path in crate_paths(text, module_of_file[m]):
            parts = path.split("::")
            target = None
            for k in range(len(parts), 0, -1):
                cand = "::".join(parts[:k])
                if cand in mods:
                    target = cand
                    break
            if target is None:
                target = ""
            if target != m and target != "":
                edges[m].add(target)
            elif target == "" and m != "":
                edges[m].add("")
    return edges


def sccs(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
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
            visit(v)
    return out


def long_functions(path):
    found = []
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    i = 0
    fn_re = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
    while i < len(lines):
        m = fn_re.match(lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            code = lines[j].split("//")[0]
            if not started and ";" in code and "{" not in code:
                break
            depth += code.count("{") - code.count("}")
            if "{" in code:
                started = True
            if started and depth <= 0:
                break
            j += 1
        length = j - i + 1
        if started and length > MAX_FN:
            found.append((m.group(6), i + 1, length))
        i += 1
    return found


def main():
    failed = False
    server = os.path.join(ROOT, "crates", "server", "src")
    edges = module_graph(server)
    if "--graph" in sys.argv:
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f"{m or 'crate'} -> {t or 'crate'}")
    for comp in sccs(edges):
        if len(comp) > 1:
            failed = True
            print("circle among server modules:", ", ".join(sorted(c or "crate" for c in comp)))
    for crate in sorted(os.listdir(os.path.join(ROOT, "crates"))):
        src = os.path.join(ROOT, "crates", crate, "src")
        for dirpath, _, names in os.walk(src):
            for n in sorted(names):
                if not n.endswith(".rs"):
                    continue
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, ROOT)
                with open(p, encoding="utf-8") as f:
                    count = sum(1 for _ in f)
                if count > MAX_FILE:
                    failed = True
                    print(f"{rel}: {count} lines (at most {MAX_FILE})")
                if crate in PRODUCT:
                    for name, line, length in long_functions(p):
                        failed = True
                        print(f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_FN})")
    if failed:
        sys.exit(1)
    print("layers: no circle among server modules; files and functions within their limits")


if __name__ == "__main__":
    main()
