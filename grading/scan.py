"""A static scan of answer cells for the instructor's report: constructs that honest answers to these
exercises never need, and answers that lean on the course's own helpers. It flags; it never changes a
mark (the marks come from `grading.checks`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

#: Modules the exercises never need and tampering often does.
SUSPICIOUS_MODULES = {
    "builtins", "ctypes", "gc", "importlib", "inspect", "IPython", "multiprocessing", "signal", "socket",
    "subprocess", "sys", "threading", "urllib", "http", "requests", "shutil", "pickle", "marshal",
    "resource", "os",
}
#: Built-in names that reach into the interpreter or the kernel.
SUSPICIOUS_BUILTINS = {"get_ipython", "__builtins__", "__import__", "exec", "eval", "compile", "globals",
                       "setattr", "delattr", "exit", "quit", "breakpoint"}
#: Attributes that reach into the interpreter, the kernel, or other processes.
SUSPICIOUS_ATTRIBUTES = {
    "__class__", "__dict__", "__globals__", "__code__", "__builtins__", "modules", "settrace", "setprofile",
    "events", "input_transformers_cleanup", "input_transformers_post", "ast_transformers", "run_cell",
    "showtraceback", "update_display", "fork", "_exit", "kill", "system", "popen",
}
#: Special methods that let an object pretend to be something else (equal to anything, say).
SUSPICIOUS_METHODS = {"__eq__", "__ne__", "__bool__", "__array__", "__array_function__", "__array_ufunc__",
                      "__getattr__", "__getattribute__", "__float__", "__index__"}
#: Rebinding an attribute of these modules changes what every later cell (the tests too) sees. Any other
#: name that an import binds anywhere in the notebook (an alias, a class) counts as well.
PATCHED_MODULES = {"np", "numpy", "course_utils", "builtins", "math", "random", "keras", "tf", "tensorflow"}
#: The course's helper package: what the student kit ships, and what answers must not be made of.
COURSE_PACKAGE = "course_utils"


@dataclass
class Imports:
    """What the imports of a whole notebook bind: every name, and which of them reach the course's package."""

    names: set[str] = field(default_factory=set)
    course_modules: set[str] = field(default_factory=set)  # names bound to course_utils or a module of it
    course_helpers: set[str] = field(default_factory=set)  # names imported from course_utils modules

    def add(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    self.names.add(bound)
                    if _is_course(alias.name):
                        self.course_modules.add(bound)
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    self.names.add(alias.asname or alias.name)
                    if _is_course(node.module or "") and node.level == 0:
                        self.course_helpers.add(alias.asname or alias.name)


def _is_course(module: str) -> bool:
    return module.split(".")[0] == COURSE_PACKAGE


def _parse(source: str) -> ast.AST | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _assigned(node: ast.AST) -> list[ast.AST]:
    """Every target that ``node`` binds or deletes (assignments, loops, ``with ... as``)."""
    if isinstance(node, (ast.Assign, ast.Delete)):
        return list(node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
        return [node.target]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [node.optional_vars]
    return []


def _unpacked(target: ast.AST):
    if isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _unpacked(element)
    elif isinstance(target, ast.Starred):
        yield from _unpacked(target.value)
    else:
        yield target


def _rebinding(target: ast.AST, imported: set[str]) -> str | None:
    """What a target rebinds that every later cell shares: a module's or an imported class's attribute."""
    for part in _unpacked(target):
        if isinstance(part, ast.Name) and part.id in PATCHED_MODULES:
            return f"rebinds {part.id}"
        if not isinstance(part, (ast.Attribute, ast.Subscript)):
            continue
        base = _root(part)
        if isinstance(base, ast.Name) and (base.id in PATCHED_MODULES or base.id in imported):
            return f"rebinds {ast.unparse(part)}"
        if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "type":
            return f"rebinds {ast.unparse(part)}"  # type(model).predict = ...: the class, for everyone
    return None


def scan_source(source: str, imports: Imports | None = None) -> list[str]:
    """What an answer cell does that the exercises never need, one short phrase each (sorted, unique).

    ``imports`` is what the whole notebook's imports bind (`notebook_imports`); without it, this cell's.
    """
    tree = _parse(source)
    if tree is None:
        return ["does not parse as Python"] if source.strip() else []
    if imports is None:
        imports = Imports()
        imports.add(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {f"imports {a.name}" for a in node.names if a.name.split(".")[0] in SUSPICIOUS_MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in SUSPICIOUS_MODULES:
            found.add(f"imports from {node.module}")
        elif isinstance(node, ast.Name) and node.id in SUSPICIOUS_BUILTINS:
            found.add(f"uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in SUSPICIOUS_ATTRIBUTES:
            found.add(f"uses .{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in SUSPICIOUS_METHODS:
            found.add(f"defines {node.name}")
        for target in _assigned(node):
            rebinding = _rebinding(target, imports.names)
            if rebinding:
                found.add(rebinding)
    return sorted(found)


def course_helper_uses(source: str, imports: Imports) -> list[str]:
    """Where an answer cell imports or calls a helper of the course's package (sorted, unique).

    Reading a chapter's helpers is learning; an answer made of them is not the student's own work, and
    the exercises never need one (the setup cells import what the tests use).
    """
    tree = _parse(source)
    if tree is None:
        return []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {f"imports {a.name}" for a in node.names if _is_course(a.name)}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_course(node.module or ""):
            found |= {f"imports {node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in imports.course_helpers:
                found.add(f"calls {func.id}")
            elif isinstance(func, ast.Attribute):
                base = _root(func)
                if isinstance(base, ast.Name) and base.id in imports.course_modules:
                    found.add(f"calls {ast.unparse(func)}")
    return sorted(found)


def notebook_imports(nb) -> Imports:
    """What every code cell's imports bind, locked cells included (a setup cell's alias counts too)."""
    imports = Imports()
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            tree = _parse(cell.get("source", ""))
            if tree is not None:
                imports.add(tree)
    return imports


def _scanned_cells(nb):
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") == "code" and not meta.get("locked"):
            yield meta.get("grade_id") or f"cell {index + 1}", cell.get("source", "")


def scan_notebook(nb) -> dict[str, list[str]]:
    """grade_id (or cell position) -> findings, for every answer cell and every unlocked extra code cell."""
    imports = notebook_imports(nb)
    findings = {}
    for name, source in _scanned_cells(nb):
        found = scan_source(source, imports)
        if found:
            findings[name] = found
    return findings


def scan_course_helpers(nb) -> dict[str, list[str]]:
    """grade_id (or cell position) -> the course helpers each answer or extra cell imports or calls."""
    imports = notebook_imports(nb)
    findings = {}
    for name, source in _scanned_cells(nb):
        found = course_helper_uses(source, imports)
        if found:
            findings[name] = found
    return findings
