"""The proxies of the modules code may import, each reduced to an explicit list of safe names.

Real modules hand out other modules (``json.codecs``, ``re.enum``,
``statistics.sys``) and from there ``sys.modules['os']``. So code never sees a
real module: ``import json`` returns a fresh read-only proxy that holds only the
names listed for it in :data:`sandbox.protocol.modules.SAFE_MODULES` (the one
list, which the parent exports too), checked when the proxy is built to contain no module, frame,
code or other gadget object (so ``collections.abc`` is reached only as ``from
collections.abc import Iterable``). Functions that read or write arbitrary attributes
(``functools.wraps``, ``operator.attrgetter``) or format strings against objects
(``string.Formatter``) are left out on purpose. A name that is not there raises
an ``AttributeError`` saying so, and what the module holds here. ``sys``,
``typing``, ``traceback`` and ``dataclasses`` are stand-ins (see
:mod:`sandbox.worker.standins`).
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.protocol.modules import SAFE_MODULES
from sandbox.worker import guards, standins

# Modules that C code imports on its own while user code runs (``datetime.strptime`` imports
# ``_strptime`` through the caller's ``__import__``). User code cannot name them: every name
# starting with "_" is refused when the code is compiled.
INTERNAL_MODULES: Mapping[str, tuple[str, ...]] = {
    "_strptime": ("_strptime_datetime",),
    "__future__": standins.FUTURE_NAMES,
}

# Objects a proxy must never hand out: each is a route to frames, code or real modules.
_FORBIDDEN_VALUE_TYPES: tuple[type, ...] = (
    types.ModuleType,
    types.FrameType,
    types.CodeType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    types.MappingProxyType,
)


class UnsafeExportError(Exception):
    """A name on an allowlist resolved to an object that must not be handed to user code."""


def _checked(module_name: str, name: str, value: Any) -> Any:
    if isinstance(value, _FORBIDDEN_VALUE_TYPES):
        raise UnsafeExportError(f"{module_name}.{name} is a {type(value).__name__}")
    return value


def _missing_attribute(module_name: str, names: list[str]) -> Callable[[str], Any]:
    """The proxy's ``__getattr__`` (PEP 562): a name that is not there says so, and what is."""
    shown = ", ".join(names[:25]) + (", ..." if len(names) > 25 else "")

    def __getattr__(name: str) -> Any:
        hint = standins.HINTS.get(f"{module_name}.{name}")
        holds = f"; {hint}" if hint else f"; {module_name} here holds: {shown}" if names else ""
        raise AttributeError(f"{module_name}.{name} is not available in the sandbox{holds}")

    return __getattr__


def build_proxy(module_name: str, names: tuple[str, ...], extra: Mapping[str, Any] | None = None) -> types.ModuleType:
    """A fresh module object whose namespace holds only ``names`` (plus ``extra``).

    Attribute access on it is as fast as on a real module; writes are refused by
    the ``_write_`` guard, which treats every module as read-only.
    """
    real = importlib.import_module(module_name)
    proxy = types.ModuleType(module_name, getattr(real, "__doc__", None))
    for name in names:
        if hasattr(real, name):  # a few names are newer than the oldest supported Python
            setattr(proxy, name, _checked(module_name, name, getattr(real, name)))
    for name, value in (extra or {}).items():
        setattr(proxy, name, _checked(module_name, name, value))
    public = sorted(name for name in vars(proxy) if not name.startswith("_"))
    proxy.__getattr__ = _missing_attribute(module_name, public)  # type: ignore[attr-defined]
    return proxy


def build_all(extras: Mapping[str, Mapping[str, Any]]) -> dict[str, types.ModuleType]:
    modules = {**SAFE_MODULES, **INTERNAL_MODULES}
    return {name: build_proxy(name, names, extras.get(name)) for name, names in modules.items()}


def make_import(proxies: Mapping[str, types.ModuleType]) -> Callable[..., types.ModuleType]:
    """``__import__`` for user code: exact module names only, every ``from`` name checked.

    The compiler passes constants, but the arguments are still read as exact builtin values
    (see :mod:`sandbox.worker.guards`): the name that is checked is the name that is looked up.
    """
    available = ", ".join(sorted(name for name in proxies if name not in INTERNAL_MODULES))

    def safe_import(
        name: Any,
        globals: Any = None,
        locals: Any = None,
        fromlist: Any = (),
        level: Any = 0,
    ) -> types.ModuleType:
        if guards.exact_int(level, "level") != 0:
            raise ImportError("relative imports are not available in the sandbox")
        module = guards.exact_str(name, "module name")
        proxy = proxies.get(module)
        if proxy is None:
            raise ImportError(f"import of {module!r} is not allowed in the sandbox; available modules: {available}")
        if fromlist is None:
            # `import a.b` binds `a`, as in CPython; its proxy holds no module, so `a.b` then says so.
            return proxies.get(module.partition(".")[0], proxy)
        if type(fromlist) not in (tuple, list):
            raise TypeError("fromlist must be a tuple or list of names")
        for item in list(fromlist):
            key = guards.exact_str(item, "imported name")
            if key.startswith("_") or key not in vars(proxy):
                raise ImportError(f"cannot import name {key!r} from {module!r} (not available in the sandbox)")
        return proxy

    return safe_import
