"""The modules code may import, each reduced to an explicit list of safe names.

Real modules hand out other modules (``json.codecs``, ``re.enum``,
``statistics.sys``) and from there ``sys.modules['os']``. So code never sees a
real module: ``import json`` returns a fresh read-only proxy that holds only the
names listed here, checked when the proxy is built to contain no module, frame,
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

from sandbox.worker import guards, standins

SAFE_MODULES: Mapping[str, tuple[str, ...]] = {
    "re": (
        "compile",
        "search",
        "match",
        "fullmatch",
        "split",
        "findall",
        "finditer",
        "sub",
        "subn",
        "escape",
        "purge",
        "Pattern",
        "Match",
        "error",
        "NOFLAG",
        "ASCII",
        "A",
        "IGNORECASE",
        "I",
        "LOCALE",
        "L",
        "MULTILINE",
        "M",
        "DOTALL",
        "S",
        "VERBOSE",
        "X",
        "UNICODE",
        "U",
    ),
    "json": ("loads", "dumps", "JSONDecodeError"),
    "math": (
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "cbrt",
        "ceil",
        "comb",
        "copysign",
        "cos",
        "cosh",
        "degrees",
        "dist",
        "e",
        "erf",
        "erfc",
        "exp",
        "exp2",
        "expm1",
        "fabs",
        "factorial",
        "floor",
        "fmod",
        "frexp",
        "fsum",
        "gamma",
        "gcd",
        "hypot",
        "inf",
        "isclose",
        "isfinite",
        "isinf",
        "isnan",
        "isqrt",
        "lcm",
        "ldexp",
        "lgamma",
        "log",
        "log10",
        "log1p",
        "log2",
        "modf",
        "nan",
        "nextafter",
        "perm",
        "pi",
        "pow",
        "prod",
        "radians",
        "remainder",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "tau",
        "trunc",
        "ulp",
    ),
    "collections": ("Counter", "defaultdict", "OrderedDict", "deque", "namedtuple", "ChainMap"),
    # The abstract classes typing already aliases (typing.Mapping is collections.abc.Mapping); only
    # ``from collections.abc import ...`` reaches them: no proxy holds another module.
    "collections.abc": (
        "Hashable",
        "Iterable",
        "Iterator",
        "Generator",
        "Reversible",
        "Sized",
        "Container",
        "Callable",
        "Collection",
        "Set",
        "MutableSet",
        "Mapping",
        "MutableMapping",
        "MappingView",
        "KeysView",
        "ItemsView",
        "ValuesView",
        "Sequence",
        "MutableSequence",
    ),
    "itertools": (
        "accumulate",
        "chain",
        "combinations",
        "combinations_with_replacement",
        "compress",
        "count",
        "cycle",
        "dropwhile",
        "filterfalse",
        "groupby",
        "islice",
        "pairwise",
        "permutations",
        "product",
        "repeat",
        "starmap",
        "takewhile",
        "tee",
        "zip_longest",
    ),
    "functools": ("reduce", "partial", "lru_cache", "cache", "cmp_to_key", "total_ordering"),
    "statistics": (
        "mean",
        "fmean",
        "geometric_mean",
        "harmonic_mean",
        "median",
        "median_low",
        "median_high",
        "median_grouped",
        "mode",
        "multimode",
        "quantiles",
        "pstdev",
        "pvariance",
        "stdev",
        "variance",
        "correlation",
        "covariance",
        "linear_regression",
        "NormalDist",
        "StatisticsError",
    ),
    "string": (
        "ascii_letters",
        "ascii_lowercase",
        "ascii_uppercase",
        "digits",
        "hexdigits",
        "octdigits",
        "punctuation",
        "printable",
        "whitespace",
        "capwords",
        "Template",
    ),
    "textwrap": ("wrap", "fill", "shorten", "dedent", "indent", "TextWrapper"),
    "datetime": ("date", "datetime", "time", "timedelta", "timezone", "MINYEAR", "MAXYEAR"),
    "difflib": (
        "SequenceMatcher",
        "Differ",
        "get_close_matches",
        "unified_diff",
        "context_diff",
        "ndiff",
    ),
    "heapq": ("heappush", "heappop", "heapify", "heapreplace", "heappushpop", "nlargest", "nsmallest", "merge"),
    "bisect": ("bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right"),
    "random": (
        "random",
        "randint",
        "randrange",
        "choice",
        "choices",
        "sample",
        "shuffle",
        "uniform",
        "gauss",
        "seed",
        "Random",
    ),
    "operator": (
        "itemgetter",
        "add",
        "sub",
        "mul",
        "truediv",
        "floordiv",
        "mod",
        "neg",
        "pos",
        "abs",
        "not_",
        "truth",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "and_",
        "or_",
        "xor",
        "contains",
        "countOf",
        "indexOf",
        "getitem",
        "concat",
    ),
    "csv": (
        "reader",
        "writer",
        "DictReader",
        "DictWriter",
        "Sniffer",
        "Error",
        "QUOTE_ALL",
        "QUOTE_MINIMAL",
        "QUOTE_NONE",
        "QUOTE_NONNUMERIC",
        "excel",
        "excel_tab",
    ),
    "io": ("StringIO",),
    "unicodedata": (
        "normalize",
        "is_normalized",
        "category",
        "name",
        "lookup",
        "east_asian_width",
        "combining",
        "decimal",
        "digit",
        "numeric",
        "bidirectional",
        "mirrored",
        "unidata_version",
    ),
    "hashlib": ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "blake2s"),
    "base64": (
        "b64encode",
        "b64decode",
        "urlsafe_b64encode",
        "urlsafe_b64decode",
        "b32encode",
        "b32decode",
        "b16encode",
        "b16decode",
    ),
    "html": ("escape", "unescape"),
    "fractions": ("Fraction",),
    "decimal": (
        "Decimal",
        "InvalidOperation",
        "DivisionByZero",
        "ROUND_HALF_UP",
        "ROUND_HALF_EVEN",
        "ROUND_DOWN",
        "ROUND_UP",
        "ROUND_FLOOR",
        "ROUND_CEILING",
    ),
    "copy": ("copy", "deepcopy"),
    "time": (
        "time",
        "time_ns",
        "sleep",
        "perf_counter",
        "perf_counter_ns",
        "monotonic",
        "process_time",
        "strftime",
        "gmtime",
        "localtime",
        "struct_time",
    ),
    "pprint": ("pformat",),
    **standins.STANDIN_MODULES,
}

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
