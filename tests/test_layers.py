"""The package's import graph: layers that import only downward, and no circles.

    python tests/test_layers.py [PACKAGE_DIR]   # the layers, each module's level and size

Every `import` in charrnn/ counts, those inside functions too (a lazy import is still
a dependency, only a later one). A module may import modules of its own layer and of
the layers below; a circle between modules fails, whatever their layers.
"""
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "charrnn"
# Lowest first. The compiled kernels (charrnn._*) and errors/version are the floor; the
# top-level package only names the public API (imported lazily on first use).
LAYERS = [
    ("charrnn.errors", "charrnn.version", "charrnn._"),
    ("charrnn.data",),
    ("charrnn.nn",),
    ("charrnn.io",),
    ("charrnn.generate",),
    ("charrnn.model", "charrnn.classifier"),   # the objects a user loads: LM, classifier
    ("charrnn.inspect", "charrnn.export"),
    ("charrnn.training",),
    ("charrnn.serve",),
    ("charrnn.cli",),
    ("charrnn",),
]
MAX_LINES = 400


def modules():
    """module name -> path, for every .py file of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer(name):
    """The index in LAYERS of module `name` (longest matching prefix wins)."""
    best, index = -1, None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            hit = name == p or name.startswith(p + ".") or (p.endswith("_") and
                                                            name.startswith(p))
            if hit and len(p) > best:
                best, index = len(p), i
    return index


def imports(name, path, known):
    """The charrnn modules that module `name` imports (a name imported from a package
    counts as that submodule when one exists: `from charrnn.nn import cells`)."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                up = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                mod = ".".join(up + ([mod] if mod else []))
            # `from charrnn import _ops`: a compiled module, not a name of the package
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known
                       or (mod == "charrnn" and a.name.startswith("_")
                           and not a.name.startswith("__")) else mod
                       for a in node.names]
        else:
            continue
        for t in targets:
            if t == "charrnn" or t.startswith("charrnn."):
                while t not in known and "." in t:   # charrnn._ops (compiled) -> itself
                    if t.rpartition(".")[2].startswith("_") and t.count(".") == 1:
                        break
                    t = t.rpartition(".")[0]
                if t != name:
                    found.add(t)
    return found


def graph():
    known = modules()
    return known, {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def levels(edges):
    """module -> 1 + the longest chain of imports below it (0: imports nothing of ours)."""
    memo = {}

    def depth(v):
        if v not in memo:
            memo[v] = 0
            memo[v] = 1 + max((depth(w) for w in edges.get(v, ()) if w in edges), default=-1)
        return memo[v]

    return {v: depth(v) for v in edges}


def test_no_import_circles():
    _, edges = graph()
    assert cycles(edges) == []


def test_every_import_goes_down_the_layers():
    _, edges = graph()
    assert all(layer(m) is not None for m in edges), [m for m in edges if layer(m) is None]
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
              for m, targets in edges.items() for t in sorted(targets)
              if layer(t) is not None and layer(t) > layer(m)]
    assert upward == []


def test_modules_stay_small():
    known, _ = graph()
    big = {m: n for m, p in known.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_the_checker_sees_a_circle_and_an_upward_import():
    # the checker itself: a made-up graph with one of each
    edges = {"charrnn.nn.a": {"charrnn.nn.b"}, "charrnn.nn.b": {"charrnn.nn.a"},
             "charrnn.data.c": {"charrnn.training.loop"}, "charrnn.training.loop": set()}
    assert cycles(edges) == [["charrnn.nn.a", "charrnn.nn.b"]]
    assert layer("charrnn.data.c") < layer("charrnn.training.loop")
    assert layer("charrnn._ops") == 0 and layer("charrnn") == len(LAYERS) - 1


def test_the_command_line_imports_no_numpy_at_start_up():
    # `charrnn --help` must stay instant: the CLI's modules import Click, not NumPy
    import subprocess
    code = ("import sys, charrnn.cli; "
            "print(sorted(m for m in ('numpy', 'scipy', 'charrnn._ops') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


if __name__ == "__main__":
    if len(sys.argv) > 1:   # another checkout's package, e.g. an older one to compare
        PACKAGE = Path(sys.argv[1]).resolve()
    known, edges = graph()
    lv = levels(edges)
    print(f"{len(known)} modules, {max(lv.values()) + 1} levels, "
          f"circles: {cycles(edges) or 'none'}")
    for name in sorted(known, key=lambda m: (layer(m), m)):
        n = len(known[name].read_text().splitlines())
        print(f"  layer {layer(name)}  level {lv[name]:2d}  {n:4d}  {name}")
    upward = sum(1 for m, ts in edges.items() for t in ts
                 if None not in (layer(m), layer(t)) and layer(t) > layer(m))
    print(f"imports that go up the layers: {upward}")
