"""The sandbox's two sides meet only in ``sandbox.protocol``: the import rule, read from the source.

The worker (``sandbox/worker/``) runs confined and must not pull in the parent's machinery; the
parent must not import the worker's code to learn a value they share (a reviewer would then have to
read both to know what crosses). Everything both need is in ``sandbox/protocol/``, which imports
neither. The rule is in ``sandbox/__init__.py``'s docstring.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> list[str]:
    """Every ``sandbox`` module ``path`` imports (relative imports resolved; ``from a import b`` counts as
    ``a.b`` as well as ``a``, since ``b`` may be a module), including those only for type checking."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return [m for m in found if m == "sandbox" or m.startswith("sandbox.")]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _allowed(importer: str, module: str, known: set[str]) -> bool:
    if module == "sandbox" or (module not in known and not _within(module, "sandbox.worker")):
        return True  # the package itself (lazy exports) or a name imported from a module, not a module
    if _within(module, "sandbox.protocol"):
        return True  # the shared ground: both sides import it
    if _within(importer, "sandbox.protocol"):
        return False  # the protocol imports nothing else of the sandbox
    return _within(importer, "sandbox.worker") == _within(module, "sandbox.worker")


def crossings(root: Path) -> list[str]:
    """Each import that crosses between ``sandbox/worker/`` and the parent side, as ``importer -> module``."""
    paths = sorted((root / "sandbox").rglob("*.py"))
    known = {_module_name(path, root) for path in paths}
    found = []
    for path in paths:
        importer = _module_name(path, root)
        found.extend(f"{importer} -> {m}" for m in _imports(path, root) if not _allowed(importer, m, known))
    return found


def test_the_worker_and_the_parent_share_only_the_protocol() -> None:
    assert (ROOT / "sandbox" / "worker" / "main.py").is_file() and (ROOT / "sandbox" / "protocol").is_dir()
    assert crossings(ROOT) == []


def test_the_lazy_exports_come_from_the_parent_side_or_the_protocol() -> None:
    """``sandbox/__init__.py`` imports its exports by name, which an ``import`` statement would not show."""
    import sandbox

    modules = set(sandbox._EXPORTS.values())
    assert not any(_within(module, "sandbox.worker") for module in modules)
    assert sandbox._EXPORTS["SAFE_MODULES"] == "sandbox.protocol.modules"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"sandbox/__init__.py": "", "sandbox/worker/__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for name in ("sandbox/protocol/__init__.py", "sandbox/protocol/names.py", "sandbox/worker/names.py"):
        if not (root / name).exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("")
    (root / "sandbox/host.py").touch()
    return root


@pytest.mark.parametrize(
    ("name", "text", "crossing"),
    [
        ("sandbox/snapshot_check.py", "from sandbox.worker.names import is_user_name\n", "sandbox.worker.names"),
        ("sandbox/snapshot_check.py", "from sandbox.worker import names\n", "sandbox.worker"),
        ("sandbox/snapshot_check.py", "if True:\n    import sandbox.worker.names\n", "sandbox.worker.names"),
        ("sandbox/worker/repl.py", "from sandbox.host import Sandbox\n", "sandbox.host"),
        ("sandbox/worker/repl.py", "from sandbox import host\n", "sandbox.host"),
        ("sandbox/worker/repl.py", "from ..host import Sandbox\n", "sandbox.host"),
        ("sandbox/protocol/names.py", "from sandbox.worker import names\n", "sandbox.worker"),
        ("sandbox/protocol/names.py", "from sandbox.host import Sandbox\n", "sandbox.host"),
    ],
)
def test_a_crossing_is_caught(tmp_path: Path, name: str, text: str, crossing: str) -> None:
    """The check itself: each of these imports, placed in a copy of the layout, is reported."""
    found = crossings(_tree(tmp_path, {name: text}))
    assert any(entry.endswith(f"-> {crossing}") for entry in found), found


def test_the_allowed_imports_are_not_reported(tmp_path: Path) -> None:
    files = {
        "sandbox/worker/repl.py": "from sandbox.protocol import Op\nfrom sandbox.worker import x\nfrom . import y\n",
        "sandbox/snapshot_check.py": "from sandbox.protocol.names import is_user_name\nfrom sandbox import host\n",
        "sandbox/protocol/modules.py": "from sandbox.protocol import names\n",
    }
    assert crossings(_tree(tmp_path, files)) == []
