"""The house's one-way flow: contract -> data -> methods -> models -> export -> pipelines ->
benchmarks. No module imports one of a higher layer, and no two modules import each other (even
through others, even inside a function)."""
import ast
import pathlib

from tests import helpers

PACKAGES = ("tfrs_seqcompress", "pipelines", "benchmarks")
# Module-name prefixes by layer, lowest first (the longest matching prefix decides).
LAYERS = [
    ("tfrs_seqcompress", "tfrs_seqcompress.features", "tfrs_seqcompress.registry", "tfrs_seqcompress.hisac.codebook",
     "tfrs_seqcompress.losses", "tfrs_seqcompress.metrics"),
    ("tfrs_seqcompress.data",),
    ("tfrs_seqcompress.layers", "tfrs_seqcompress.iat", "tfrs_seqcompress.hisac"),
    ("tfrs_seqcompress.models", "tfrs_seqcompress.agent_model"),
    ("tfrs_seqcompress.serving", "tfrs_seqcompress.serving_client", "tfrs_seqcompress.agent_table",
     "tfrs_seqcompress.model_push", "tfrs_seqcompress.raw_id_lookup", "tfrs_seqcompress.testing"),
    ("pipelines",),
    ("benchmarks",),
]


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for package in PACKAGES:
        for path in (helpers.REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(helpers.REPO_ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(path: pathlib.Path, modules: dict) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def _layer(module: str) -> int:
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1]


def test_no_module_imports_a_higher_layer_and_there_is_no_cycle():
    modules = _modules()
    graph = {module: _imports(path, modules) - {module} for module, path in modules.items()}
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                    if _layer(target) > _layer(module))
    assert not upward, upward
    # A cycle: a module reachable from itself (depth-first search with an explicit stack).
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            module, trail = stack.pop()
            for target in graph[module]:
                if target == start:
                    cycles.append(" -> ".join(trail + [start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
    assert not cycles, cycles[:5]
