"""The package's layering: each sub-package imports only those below it (issue 13).

Every import counts, module-level or inside a function, absolute or relative. The top-level
`cvfm_ros/__init__.py` (the user API) stands above all layers.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cvfm_ros"

# Bottom to top; a sub-package may import its own modules and any layer before its own.
LAYERS = ["config", "geometry", "io", "maps", "model", "data", "train", "runtime", "eval", "ros", "cli"]


def _imported_subpackages(source: str, rel: Path) -> list[tuple[str, int]]:
    """(sub-package of cvfm_ros, line) for every import of cvfm_ros in the module at `rel`
    (relative to the package folder) whose text is `source`."""
    found = []
    for node in ast.walk(ast.parse(source, str(rel))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(rel.parts[:-1])
            if node.level > 1:
                base = base[:len(base) - (node.level - 1)]
            full = base + [m for m in (node.module or "").split(".") if m]
            found += [(full[0], node.lineno)] if full else [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cvfm_ros":
            parts = node.module.split(".")
            found += [(parts[1], node.lineno)] if len(parts) > 1 else [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".")[1], node.lineno) for a in node.names if a.name.startswith("cvfm_ros.")]
    return found


def test_every_subpackage_is_in_a_layer():
    present = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert present == set(LAYERS) - {"weights"}, sorted(present ^ set(LAYERS))


def test_imports_point_down_only():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel == Path("__init__.py"):
            continue
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for target, line in _imported_subpackages(path.read_text(), rel):
            if target != own and target in LAYERS and LAYERS.index(target) > LAYERS.index(own):
                violations.append(f"{rel}:{line}: {own} imports {target}")
    assert not violations, "\n".join(violations)


def test_the_check_sees_a_violation():
    """The reader resolves relative imports inside functions (else the test could never fail)."""
    source = "import math\n\ndef f():\n    from ..runtime.localizer import Localizer\n    from . import poses\n"
    found = _imported_subpackages(source, Path("geometry") / "probe.py")
    assert ("runtime", 4) in found and ("geometry", 5) in found
