"""The shape of the package, read from its source with ``ast`` (nothing is imported): imports run one way (no cycle,
library code never imports the CLI), no private names cross modules, functions stay short and no block is written
twice. Each failure names the files and lines to change."""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "hf_spectralkd"
PACKAGE_DIR = os.path.join(ROOT, PACKAGE)
CLI_MODULES = (f"{PACKAGE}.cli", f"{PACKAGE}.commands")
MAX_FUNCTION_LINES = 80
DUPLICATE_BLOCK_LINES = 6


@dataclass(frozen=True)
class Import:
    """One import statement of a module, resolved to the package modules it loads."""

    line: int
    targets: tuple  # module names inside the package
    names: tuple  # the names taken by ``from ... import`` (empty for ``import x``)
    source: str  # the module written in the statement, absolute


def module_name(path: str) -> str:
    relative = os.path.relpath(path, ROOT)[: -len(".py")].split(os.sep)
    if relative[-1] == "__init__":
        relative = relative[:-1]
    return ".".join(relative)


def package_files() -> dict:
    """``{module name: path}`` of every ``.py`` file under the package."""
    files = {}
    for folder, _, names in os.walk(PACKAGE_DIR):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                files[module_name(path)] = path
    return dict(sorted(files.items()))


MODULES = package_files()


def parse(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read(), filename=path)


def is_package(module: str) -> bool:
    return MODULES[module].endswith("__init__.py")


def absolute_source(module: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads (``from ..x import y`` in ``a.b.c`` reads ``a.x``)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def existing(name: str) -> str | None:
    """``name`` if it is a module of the package, else the nearest enclosing one that is."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def type_checking_lines(tree: ast.Module) -> set:
    """Lines under ``if TYPE_CHECKING:``: never executed, so they cannot close an import cycle."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, child.end_lineno + 1))
    return lines


def imports_of(module: str) -> list:
    """Every import of ``module`` into the package (module level and inside functions), resolved to what it loads:
    ``from . import x`` with ``x`` a submodule loads that submodule, ``from .pkg import name`` loads ``pkg``'s
    ``__init__``, ``import a.b.c`` loads ``a.b.c``."""
    tree = parse(MODULES[module])
    skipped = type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = existing(alias.name) if alias.name.startswith(PACKAGE) else None
                if target:
                    found.append(Import(node.lineno, (target,), (), alias.name))
        elif isinstance(node, ast.ImportFrom):
            source = absolute_source(module, node)
            if not (source == PACKAGE or source.startswith(PACKAGE + ".")):
                continue
            targets = set()
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in MODULES else existing(source))
            found.append(Import(node.lineno, tuple(sorted(t for t in targets if t)), tuple(a.name for a in node.names),
                                source))
    return found


def module_constants(tree: ast.Module) -> dict:
    """Module-level ``NAME = {"key": "string", ...}`` dicts: the tables dynamic imports read their targets from."""
    tables = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict):
            values = [v.value for v in node.value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    tables[target.id] = values
    return tables


def dynamic_import_names(call: ast.Call, tables: dict) -> list:
    """The module names an ``importlib.import_module(name, package)`` call can load: a literal, the fixed prefix
    of an f-string (``f".commands.{name}"`` -> ``.commands``), or every value of a module-level table."""
    if not call.args:
        return []
    name = call.args[0]
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        return [name.value]
    if isinstance(name, ast.JoinedStr):
        prefix = ""
        for part in name.values:
            if not isinstance(part, ast.Constant):
                break
            prefix += part.value
        return [prefix.rstrip(".")] if prefix.rstrip(".") else []
    if isinstance(name, ast.Subscript) and isinstance(name.value, ast.Name):
        return tables.get(name.value.id, [])
    return []


def dynamic_imports_of(module: str, tree: ast.Module) -> list:
    """``importlib.import_module`` calls resolved like import statements (relative names against the package)."""
    tables, found = module_constants(tree), []
    for node in tree.body:  # tables imported from another module of the package
        if isinstance(node, ast.ImportFrom) and absolute_source(module, node) in MODULES:
            imported = module_constants(parse(MODULES[absolute_source(module, node)]))
            tables.update({alias.asname or alias.name: imported[alias.name]
                           for alias in node.names if alias.name in imported})
    package = module if is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)) and (
                getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == "import_module":
            for name in dynamic_import_names(node, tables):
                level = len(name) - len(name.lstrip("."))
                source = absolute_source(module, ast.ImportFrom(module=name.lstrip(".") or None, level=level)) \
                    if level else name
                if package and source.startswith(PACKAGE) and existing(source):
                    found.append(Import(node.lineno, (existing(source),), (), source))
    return found


IMPORTS = {module: imports_of(module) + dynamic_imports_of(module, parse(path)) for module, path in MODULES.items()}


def import_graph() -> dict:
    """``{module: {imported module: first line importing it}}`` without self-edges."""
    graph = {module: {} for module in MODULES}
    for module, imports in IMPORTS.items():
        for statement in imports:
            for target in statement.targets:
                if target != module:
                    graph[module].setdefault(target, statement.line)
    return graph


def find_cycles(graph: dict) -> list:
    """One cycle (a list of modules, first == last) per strongly connected component of more than one module."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(node):  # Tarjan's algorithm; the graph has ~70 nodes, so recursion depth is no concern
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return [cycle_through(graph, component) for component in components]


def cycle_through(graph: dict, component: set) -> list:
    """A shortest cycle inside ``component``, found by breadth-first search from its first module."""
    start = min(component)
    parents, frontier = {start: None}, [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if child in component and child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def describe_cycle(graph: dict, cycle: list) -> str:
    steps = [f"{a} (line {graph[a][b]} of {os.path.relpath(MODULES[a], ROOT)}) -> {b}"
             for a, b in zip(cycle, cycle[1:], strict=False)]
    return "\n    ".join(steps)


def test_import_graph_resolves_relative_and_function_level_imports():
    # the resolver itself: a guard that the cycle test below reads the imports it should
    graph = import_graph()
    assert f"{PACKAGE}.spectral" in graph[f"{PACKAGE}.distillation_trainer"]
    assert f"{PACKAGE}.adapters.base" in graph[f"{PACKAGE}.adapters.hf"]
    # ``from . import processing`` is the submodule; ``from ..base import Task`` the sibling module
    assert {f"{PACKAGE}.tasks.text.processing", f"{PACKAGE}.tasks.base"} <= set(graph[f"{PACKAGE}.tasks.text"])
    # ``from ..adapters import get_adapter`` (inside a method) is the adapters package's __init__
    assert f"{PACKAGE}.adapters" in graph[f"{PACKAGE}.tasks.base"]
    # importlib.import_module: the CLI's f".commands.{name}" and the task table's ".text" / ".image"
    assert f"{PACKAGE}.commands" in graph[f"{PACKAGE}.cli"]
    assert {f"{PACKAGE}.tasks.text", f"{PACKAGE}.tasks.image"} <= set(graph[f"{PACKAGE}.tasks"])
    # function-level: the CLI reads __version__ from the package inside build_parser
    assert f"{PACKAGE}" in graph[f"{PACKAGE}.cli"]
    assert sum(len(edges) for edges in graph.values()) > len(MODULES)


def test_find_cycles_reports_the_cycle_path():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def test_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = find_cycles(graph)
    message = "\n".join(f"  cycle {i + 1}:\n    {describe_cycle(graph, c)}" for i, c in enumerate(cycles))
    assert not cycles, (
        f"import cycles in {PACKAGE}/ (module-level and function-level imports):\n{message}\n"
        "Break each by moving the shared function into a module both can import (constants, utils, errors, "
        "paper, results, loading), or by making the lower-level module stop importing the higher-level one.")


def is_cli(module: str) -> bool:
    return any(module == cli or module.startswith(cli + ".") for cli in CLI_MODULES)


def test_library_code_never_imports_the_cli():
    offenders = []
    for module, imports in IMPORTS.items():
        if is_cli(module):
            continue
        for statement in imports:
            cli_targets = [t for t in statement.targets if is_cli(t)]
            if cli_targets:
                offenders.append(f"{os.path.relpath(MODULES[module], ROOT)}:{statement.line} imports "
                                 f"{', '.join(cli_targets)}")
    assert not offenders, (
        "library code imports the CLI (only hf_spectralkd/commands/ and hf_spectralkd/cli.py may):\n  "
        + "\n  ".join(offenders)
        + "\nMove what it needs into the library (errors.UserError, loading, pipeline) and import it from there.")


def private_cross_module_imports() -> list:
    """``from .x import _name`` (or ``import`` of a ``_module``) between different modules of the package."""
    offenders = []
    for module, imports in IMPORTS.items():
        for statement in imports:
            private = [n for n in statement.names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in statement.source.split(".") if p.startswith("_") and not p.startswith("__")]
            if private and statement.source != module:
                offenders.append(f"{os.path.relpath(MODULES[module], ROOT)}:{statement.line} imports "
                                 f"{', '.join(private)} from {statement.source}")
    return offenders


def test_no_private_names_imported_across_modules():
    offenders = private_cross_module_imports()
    assert not offenders, (
        "private names imported from another module:\n  " + "\n  ".join(offenders)
        + "\nGive the name a public home (drop the underscore, or move it to the module that uses it).")


def test_functions_are_short():
    offenders = []
    for path in MODULES.values():
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name} is {length} lines")
    assert not offenders, (
        f"functions longer than {MAX_FUNCTION_LINES} lines:\n  " + "\n  ".join(offenders)
        + "\nSplit each into steps of a screen each (one helper per step).")


BRACKETS_ONLY = re.compile(r"^[()\[\]{},:;]+$")
STRING_ONLY = re.compile(r"""^[rbuf]*("{3}|'{3}|"|').*\1$""", re.I)


def ignored_lines(tree: ast.Module) -> set:
    """Lines that may repeat: imports and argparse ``add_argument`` calls (boilerplate by nature)."""
    lines = set()
    for node in ast.walk(tree):
        boilerplate = isinstance(node, (ast.Import, ast.ImportFrom)) or (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument")
        if boilerplate:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def significant_lines(path: str) -> list:
    """``[(line number, whitespace-normalised text)]`` of the lines that count for duplication: not blank, not a
    comment, not a one-line docstring, not a line of brackets only, not an import or ``add_argument`` call."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    skipped = ignored_lines(ast.parse(text))
    kept = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = " ".join(raw.split())
        if (not line or line.startswith("#") or number in skipped or BRACKETS_ONLY.match(line)
                or STRING_ONLY.match(line)):
            continue
        kept.append((number, line))
    return kept


def duplicate_blocks(files: dict, size: int = DUPLICATE_BLOCK_LINES) -> list:
    """Blocks of ``size`` consecutive significant lines that occur at two or more places (non-overlapping), as
    ``[[(path, first line), ...], ...]``, one entry per maximal run of duplication."""
    windows = defaultdict(list)
    lines = {path: significant_lines(path) for path in files.values()}
    for path, kept in lines.items():
        for start in range(len(kept) - size + 1):
            block = "\n".join(text for _, text in kept[start:start + size])
            windows[hashlib.sha1(block.encode()).hexdigest()].append((path, start))
    reported, found = set(), []
    for places in windows.values():
        places = [p for i, p in enumerate(places)
                  if all(p[0] != q[0] or abs(p[1] - q[1]) >= size for q in places[:i])]
        if len(places) < 2:
            continue
        # a run of duplication shows once: skip the window if the one before it was also duplicated at all places
        if all((path, start - 1) in reported for path, start in places):
            reported.update(places)
            continue
        reported.update(places)
        found.append([(path, lines[path][start][0]) for path, start in places])
    return found


def test_duplicate_block_finder():
    import tempfile

    body = "\n".join(f"value_{i} = compute({i}) + offset" for i in range(DUPLICATE_BLOCK_LINES))
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for name, text in {"a": f"import os\n\n{body}\n", "b": f"# head\nx = 1\n{body}\nx = 2\n",
                           "c": "\n".join(body.splitlines()[:-1]) + "\n"}.items():
            paths[name] = os.path.join(folder, f"{name}.py")
            with open(paths[name], "w", encoding="utf-8") as handle:
                handle.write(text)
        assert duplicate_blocks(paths) == [[(paths["a"], 3), (paths["b"], 3)]]


def test_no_block_written_twice():
    found = duplicate_blocks(MODULES)
    message = "\n".join("  " + " and ".join(f"{os.path.relpath(path, ROOT)}:{line}" for path, line in places)
                        for places in found)
    assert not found, (
        f"blocks of {DUPLICATE_BLOCK_LINES}+ identical lines (whitespace, comments, imports and add_argument calls "
        f"aside) written more than once in {PACKAGE}/:\n{message}\n"
        "Move the block into one helper (utils, or the module both callers already import) and call it from both.")



# ---------------------------------------------------------------------------------------------- one home per rule
LAYER_RULE_MODULE = f"{PACKAGE}.layer_map"
# the copies of the layer rule that layer_map.py replaced: no module may define them again
RETIRED_LAYER_FUNCTIONS = {"alignment_layers", "_selects_layers", "aligned_count", "selects_layers"}
# the selection fields only the rule (and the config that declares them) reads as attributes
SELECTION_ATTRIBUTES = {"num_aligned_layers", "include_embeddings"}
SPECTRAL_MODULE = f"{PACKAGE}.spectral"
# who else may read them: the config validates its own fields; `hf-spectralkd analyze` has its own
# --include-embeddings option (a standalone analysis, no distillation), passed on to analysis.analyze
SELECTION_ATTRIBUTE_READERS = {"num_aligned_layers": (f"{PACKAGE}.distillation_config",),
                               "include_embeddings": (f"{PACKAGE}.distillation_config", f"{PACKAGE}.commands.analyze")}


def layer_rule_functions() -> set:
    """The functions layer_map.py defines at module level: the selection and pairing rule."""
    tree = parse(MODULES[LAYER_RULE_MODULE])
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def called_name(node: ast.Call) -> str | None:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", None)


def layer_rule_offenders() -> list:
    """Definitions of the rule's functions outside layer_map.py, calls of ``select_layers`` (the strategies the rule
    applies) outside it and spectral.py (which defines them), reads of the selection fields outside it and the
    config."""
    names = layer_rule_functions() | RETIRED_LAYER_FUNCTIONS
    offenders = []
    for module, path in MODULES.items():
        if module == LAYER_RULE_MODULE:
            continue
        where = os.path.relpath(path, ROOT)
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
                offenders.append(f"{where}:{node.lineno} defines {node.name}")
            elif isinstance(node, ast.Call) and called_name(node) == "select_layers" and module != SPECTRAL_MODULE:
                offenders.append(f"{where}:{node.lineno} calls select_layers")
            elif (isinstance(node, ast.Attribute) and node.attr in SELECTION_ATTRIBUTES
                  and module not in SELECTION_ATTRIBUTE_READERS.get(node.attr, ())):
                offenders.append(f"{where}:{node.lineno} reads .{node.attr}")
    return offenders


def test_only_layer_map_defines_the_layer_rule():
    import importlib

    for module in MODULES:  # every module imports (an optional extra missing aside)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if "timm" not in str(exc):
                raise
    from hf_spectralkd import layer_map

    assert {"pair_layers", "choose_init_layers", "aligned_count", "check_layer_arguments"} <= layer_rule_functions()
    assert all(callable(getattr(layer_map, name)) for name in layer_rule_functions())
    offenders = layer_rule_offenders()
    assert not offenders, (
        "the layer rule (which layers are aligned, which blocks a student copies) is written outside "
        f"{PACKAGE}/layer_map.py:\n  " + "\n  ".join(offenders)
        + "\nCall the function of layer_map.py instead (pair_layers, select_teacher_layers, choose_init_layers, ...).")


def test_layer_map_is_read_through_layer_map_py():
    # commands/ and pipeline/ read layer_map.json through layer_map.py, never through the trainer module
    offenders = []
    for module, imports in IMPORTS.items():
        if module.startswith((f"{PACKAGE}.commands", f"{PACKAGE}.pipeline")):
            for statement in imports:
                if f"{PACKAGE}.distillation_trainer" in statement.targets and "LayerMap" in statement.names:
                    offenders.append(f"{os.path.relpath(MODULES[module], ROOT)}:{statement.line}")
    assert not offenders, "LayerMap imported from the trainer module at:\n  " + "\n  ".join(offenders)


def model_family_comparisons() -> list:
    """``x == "timm"`` (or ``!=``, ``in``) outside ``adapters/``: model-family knowledge belongs to the adapters."""
    offenders = []
    for module, path in MODULES.items():
        if module.startswith(f"{PACKAGE}.adapters"):
            continue
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and o.value == "timm" for o in operands):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    return offenders


def test_no_model_family_branches_outside_the_adapters():
    offenders = model_family_comparisons()
    assert not offenders, (
        "comparisons with the model family name outside hf_spectralkd/adapters/:\n  " + "\n  ".join(offenders)
        + "\nAdd an adapter method or attribute (task, packages, copy_blocks, save, ...) and call it instead.")


def test_ci_lints_with_the_configured_ruff():
    import configparser

    # pyproject.toml read as text: tomllib is Python 3.11+, the package supports 3.10
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as handle:
        pyproject = handle.read()
    assert re.search(r"^\[tool\.ruff\]\nline-length = 119\ntarget-version = \"py310\"$", pyproject, re.M)
    select = re.search(r"^select = \[(.*)\]$", pyproject, re.M).group(1)
    assert {"E", "F", "W", "I", "B", "UP"} <= {rule.strip().strip('"') for rule in select.split(",")}
    setup = configparser.ConfigParser()
    setup.read(os.path.join(ROOT, "setup.cfg"))
    assert any(line.strip().startswith("ruff") for line in setup["options.extras_require"]["dev"].splitlines()), (
        "setup.cfg: the dev extra must install ruff (.ci/run runs it)")
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as handle:
        steps = [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
    install = next(i for i, s in enumerate(steps) if "pip install" in s)
    lint = [i for i, s in enumerate(steps) if s == "ruff check ."]
    main_job = next(i for i, s in enumerate(steps) if s.startswith("hf-spectralkd distill"))
    assert len(lint) == 1 and install < lint[0] < main_job, (
        ".ci/run must run `ruff check .` once, after the install and before the main job")


def test_code_cites_the_method_page_in_the_repository():
    # the normative math is docs/method.md; the old name pointed at a file that was never in the repository
    old_name = "DESIGN" + ".md"
    offenders = []
    for folder in ("hf_spectralkd", "tests", "benchmarks", "recipes", "examples"):
        for directory, _, names in os.walk(os.path.join(ROOT, folder)):
            for name in names:
                if name.endswith((".py", ".md", ".yaml", ".jinja")):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as handle:
                        offenders += [f"{os.path.relpath(path, ROOT)}:{number}"
                                      for number, line in enumerate(handle, start=1) if old_name in line]
    assert os.path.isfile(os.path.join(ROOT, "docs", "method.md"))
    assert not offenders, f"cite docs/method.md instead of {old_name} at:\n  " + "\n  ".join(offenders)
