"""A static scan of answer cells for the instructor's report: constructs that honest answers to these
exercises never need. It flags; it never changes a mark (the marks come from `grading.checks`).
"""

from __future__ import annotations

import ast

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
#: Rebinding an attribute of these modules changes what every later cell (the tests too) sees.
PATCHED_MODULES = {"np", "numpy", "course_utils", "builtins", "math", "random", "keras", "tf", "tensorflow"}


def scan_source(source: str) -> list[str]:
    """What an answer cell does that the exercises never need, one short phrase each (sorted, unique)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ["does not parse as Python"] if source.strip() else []
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
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                base = target
                while isinstance(base, (ast.Attribute, ast.Subscript)):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in PATCHED_MODULES and base is not target:
                    found.add(f"rebinds {ast.unparse(target)}")
                elif isinstance(target, ast.Name) and target.id in PATCHED_MODULES:
                    found.add(f"rebinds {target.id}")
    return sorted(found)


def scan_notebook(nb) -> dict[str, list[str]]:
    """grade_id (or cell position) -> findings, for every answer cell and every unlocked extra code cell."""
    findings = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or meta.get("locked"):
            continue
        found = scan_source(cell.get("source", ""))
        if found:
            findings[meta.get("grade_id") or f"cell {index + 1}"] = found
    return findings
