"""Harmless code as root models write it runs in the sandbox exactly as in plain CPython.

Each snippet is the kind of cell real RLM trajectories show (and was refused or
behaved differently before): it runs once in a sandbox and once with plain
``exec`` in this process, with the same ``context``, and both must print the
same thing. The attack side of every relaxation these need is in
``tests/attacks.py``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import Document, Sandbox, SandboxLimits

CONTEXT = "Alice paid 30 dollars.\nBob paid 12 dollars.\nalice asked for a refund.\nCarol paid 7 dollars.\n"

SNIPPETS = {
    "system prompt's first line": "print(type(context), len(context))",
    "type name": "print(type(context).__name__, type([]).__name__, type(len).__name__)",
    "type comparisons": "print(type(context) is str, type(1) == int, isinstance(context, (list, tuple)))",
    "str.format": (
        "print('{}: {}'.format('total', 49))\n"
        "print('{name} has {n:,} chars'.format(name='context', n=len(context)))\n"
        "print('{:.2f}% | {:>8} | {:<4}|'.format(12.3456, 'right', 'l'))\n"
        "print('{0!r:>10} {1!s}'.format('x', 2))\n"
        "print('{:>{width}}|'.format('pad', width=6))\n"
        "print('{d[k]} {0.real} {0.imag}'.format(3, d={'k': 'item'}))"
    ),
    "format_map and str.format": (
        "row = {'who': 'Bob', 'amount': 12}\n"
        "print('{who} paid {amount}'.format_map(row))\n"
        "print(str.format('{} + {} = {}', 1, 2, 3))\n"
        "print(list(map('<{}>'.format, ['a', 'b'])))\n"
        "import datetime\nprint('{:%Y-%m-%d}'.format(datetime.date(2024, 2, 29)))"
    ),
    "format builtin and f-strings": (
        "x = 'val'\nprint(f'{x!r:>10}|{3.14159:.3f}|{1234567:,}|{255:#x}')\n"
        "print(format(0.5, '.1%'), format(42, '08b'))"
    ),
    "percent formatting": "print('%s paid %d (%.1f%%)' % ('Bob', 12, 24.49))",
    "class name dunders": (
        "class Finding:\n    'One extracted fact.'\n    def __init__(self, text):\n        self.text = text\n"
        "f = Finding('x')\n"
        "print(Finding.__name__, Finding.__qualname__, Finding.__doc__, type(f).__name__, f.__class__.__name__)"
    ),
    "function name dunders": "def helper():\n    'Doc.'\n    return 1\nprint(helper.__name__, helper.__doc__)",
    "__main__ guard": "def main():\n    print('ran main')\nif __name__ == '__main__':\n    main()",
    "import sys then barely use it": (
        "import sys\nprint(sys.maxsize > 2**31, sys.version_info >= (3, 8), sys.getsizeof(context) > len(context))\n"
        "sys.stdout.write('written\\n')\nsys.stdout.flush()"
    ),
    "typing annotations": (
        "from typing import List, Dict, Optional, Tuple, Any, Iterable\n"
        "def count(lines: List[str], needle: Optional[str] = None) -> Dict[str, int]:\n"
        "    out: Dict[str, int] = {}\n"
        "    for line in lines:\n"
        "        if needle is None or needle in line.lower():\n"
        "            out[line.split()[0]] = out.get(line.split()[0], 0) + 1\n"
        "    return out\n"
        "pair: Tuple[int, Any] = (1, None)\n"
        "print(count(context.splitlines(), 'paid'), pair)"
    ),
    "typing NamedTuple": (
        "from typing import NamedTuple\nclass Payment(NamedTuple):\n    who: str\n    amount: int = 0\n"
        "p = Payment('Bob', 12)\nprint(p, p.amount, p._asdict(), Payment._fields, p._replace(amount=1))"
    ),
    "collections namedtuple": (
        "from collections import namedtuple\nHit = namedtuple('Hit', 'line score')\nh = Hit(3, 0.5)\n"
        "print(h, h._asdict(), Hit._make([1, 2]))"
    ),
    "globals in a defensive check": (
        "if 'results' not in globals():\n    results = []\nresults.append(1)\n"
        "print('results' in globals(), 'nothing' in globals(), globals().get('results'))"
    ),
    "locals, vars and dir": (
        "def f(a, b=2):\n    c = a + b\n    return sorted(locals())\nprint(f(1))\n"
        "class P:\n    def __init__(self):\n        self.x = 1\n        self.y = [2]\nprint(vars(P()))\n"
        "kept = 1\nprint('kept' in dir(), 'kept' in vars())"
    ),
    "a variable named printed": (
        "printed = []\nfor line in context.splitlines()[:2]:\n    printed.append(line)\nprint(printed)"
    ),
    "exceptions: type, args, str, repr": (
        "try:\n    int('x')\nexcept ValueError as e:\n"
        "    print(type(e).__name__, e.__class__.__name__, e.args, str(e), repr(e))\n"
        "try:\n    {}['missing']\nexcept Exception as e:\n    print(f'{type(e).__name__}: {e}')"
    ),
    "traceback.format_exc": (
        "import traceback\ntry:\n    1 / 0\nexcept Exception:\n    print(traceback.format_exc().splitlines()[-1])\n"
        "try:\n    [][1]\nexcept IndexError as e:\n    print(traceback.format_exception_only(e)[-1].strip())"
    ),
    "custom exception with super().__init__": (
        "class ExtractionError(Exception):\n    def __init__(self, message, line):\n"
        "        super().__init__(message)\n        self.line = line\n"
        "try:\n    raise ExtractionError('bad line', 3)\nexcept ExtractionError as e:\n    print(e, e.line, e.args)"
    ),
    "classes with special methods": (
        "class Tally:\n"
        "    def __init__(self):\n        self.counts = {}\n"
        "    def __getitem__(self, key):\n        return self.counts.get(key, 0)\n"
        "    def __setitem__(self, key, value):\n        self.counts[key] = value\n"
        "    def __len__(self):\n        return len(self.counts)\n"
        "    def __iter__(self):\n        return iter(sorted(self.counts))\n"
        "    def __contains__(self, key):\n        return key in self.counts\n"
        "    def __repr__(self):\n        return f'Tally({self.counts})'\n"
        "    def __iadd__(self, other):\n        for k in other:\n            self[k] += 1\n        return self\n"
        "t = Tally()\nt += ['a', 'b', 'a']\nprint(t, len(t), list(t), 'a' in t, t['zzz'])"
    ),
    "dict subclass with __missing__ and super()": (
        "class Default(dict):\n    def __missing__(self, key):\n        return key.upper()\n"
        "    def __repr__(self):\n        return 'Default(' + super().__repr__() + ')'\n"
        "d = Default(a=1)\nprint(d['a'], d['b'], d)"
    ),
    "dataclasses": (
        "from dataclasses import dataclass, field, asdict, fields\n"
        "@dataclass\nclass Record:\n    name: str\n    amount: int = 0\n    tags: list = field(default_factory=list)\n"
        "    def __post_init__(self):\n        self.name = self.name.title()\n"
        "r = Record('bob', 12)\nprint(r, asdict(r), [f.name for f in fields(r)], r == Record('Bob', 12))\n"
        "@dataclass(frozen=True, order=True)\nclass Key:\n    k: int\nprint(sorted([Key(2), Key(1)]))"
    ),
    "sorting and counting": (
        "import re\nfrom collections import Counter, defaultdict\n"
        "words = re.findall(r'[a-z]+', context.lower())\nc = Counter(words)\nprint(c.most_common(3))\n"
        "d = defaultdict(int)\nfor w in words:\n    d[w[0]] += 1\n"
        "print(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:3])"
    ),
    "re flags and helpers": (
        "import re\nprint(re.findall(r'^(\\w+) paid (\\d+)', context, re.MULTILINE | re.IGNORECASE))\n"
        "print(re.sub(r'\\d+', lambda m: str(int(m.group()) * 2), 'a1 b22'), re.split(r'\\s+', 'a  b c'))\n"
        "m = re.search(r'(?P<who>\\w+) asked', context)\nprint(m.group('who'), m.span(), m.groupdict())"
    ),
    "str helpers": (
        "table = str.maketrans('abc', 'xyz', '.')\n"
        "print('aabbcc.'.translate(table), 'x'.join('abc'), 'Hello'.casefold())\n"
        "print('  pad '.strip().center(9, '*'), 'a,b,,c'.split(','), 'title case'.title())"
    ),
    "json, textwrap, math, itertools": (
        "import json, textwrap, math, itertools\n"
        "print(json.dumps({'b': [1, 2], 'a': None}, indent=2, sort_keys=True))\n"
        "print(textwrap.shorten('The quick brown fox jumps over the lazy dog', width=20))\n"
        "print(math.ceil(7 / 2), math.floor(-0.5), math.isclose(0.1 + 0.2, 0.3))\n"
        "print(list(itertools.islice(itertools.count(5), 3)), list(itertools.chain([1], (2, 3))))"
    ),
    "chunking and enumerate": (
        "lines = context.splitlines()\nchunks = [lines[i:i + 2] for i in range(0, len(lines), 2)]\n"
        "for i, chunk in enumerate(chunks, start=1):\n    print(i, len(chunk), chunk[0][:10])"
    ),
    "setattr and getattr on own objects": (
        "class Cfg:\n    pass\nc = Cfg()\nfor k, v in {'a': 1, 'b': 2}.items():\n    setattr(c, k, v)\n"
        "print(getattr(c, 'a'), getattr(c, 'missing', 'default'), hasattr(c, 'b'))\n"
        "delattr(c, 'b')\nprint(hasattr(c, 'b'))"
    ),
    "from __future__ import annotations": (
        "from __future__ import annotations\ndef f(x: int) -> list[str]:\n    return [str(x)]\nprint(f(3))"
    ),
    "generators and comprehensions": (
        "def gen(n):\n    for i in range(n):\n        yield i * i\n"
        "print(sum(gen(4)), {k: v for k, v in zip('ab', gen(2))}, any(x > 5 for x in gen(4)))"
    ),
    "with a context manager class": (
        "class Timer:\n    def __enter__(self):\n        print('enter')\n        return self\n"
        "    def __exit__(self, *exc):\n        print('exit', exc[0])\n        return False\n"
        "with Timer() as t:\n    print(type(t).__name__)"
    ),
    "user class with a format method": (
        "class Report:\n    def __init__(self):\n        self.format = 'md'\n"
        "    def render(self):\n        return f'[{self.format}]'\nprint(Report().render(), Report().format)"
    ),
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def box(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    corpus: Path = tmp_path_factory.mktemp("harmless") / "corpus.txt"
    corpus.write_text(CONTEXT)
    async with Sandbox(SandboxLimits(exec_timeout_s=10, memory_bytes=512 * 1024 * 1024)) as sandbox:
        await sandbox.load([Document(name="corpus.txt", path=corpus)], shape="str")
        yield sandbox


def plain_cpython(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<plain>", "exec"), {"__name__": "__main__", "context": CONTEXT})
    return out.getvalue()


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(SNIPPETS))
async def test_runs_as_in_plain_cpython(box: Sandbox, name: str) -> None:
    code = SNIPPETS[name]
    expected = plain_cpython(code)
    result = await box.execute(code)
    assert result.error is None, f"{name}: {result.error}"
    assert result.stdout == expected
