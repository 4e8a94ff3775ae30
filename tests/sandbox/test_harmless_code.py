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
    "private attributes in a class": (
        "class Tracker:\n    _instances = 0\n    def __init__(self, name):\n        self._name = name\n"
        "        self._seen = set()\n        self._count = 0\n        Tracker._instances += 1\n"
        "    def add(self, item):\n        if item not in self._seen:\n            self._seen.add(item)\n"
        "            self._count += 1\n        return self\n    def _summary(self):\n"
        "        return f'{self._name}: {self._count} unique'\n    def __repr__(self):\n"
        "        return f'Tracker({self._summary()})'\nt = Tracker('words')\n"
        "for w in context.lower().split():\n    t.add(w.strip('.'))\n"
        "print(t, Tracker._instances, t._count, sorted(t._seen)[:3], vars(t)['_count'])"
    ),
    "private helpers and variables": (
        "_cache = {}\ndef _norm(s):\n    return s.strip().lower()\ndef lookup(key):\n    k = _norm(key)\n"
        "    if k not in _cache:\n        _cache[k] = len(k)\n    return _cache[k]\n"
        "for _i, _w in enumerate([' Alice', 'bob ', 'ALICE']):\n    print(_i, lookup(_w))\n"
        "print(sorted(_cache.items()), '_cache' in globals())"
    ),
    "super() and private methods": (
        "class Parser:\n    def _clean(self, line):\n        return line.strip()\n"
        "    def parse(self, text):\n"
        "        return [self._clean(l) for l in text.splitlines() if l.strip()]\n"
        "class PaymentParser(Parser):\n    def _clean(self, line):\n"
        "        return super()._clean(line).rstrip('.')\nprint(PaymentParser().parse(context)[:2])"
    ),
    "isinstance with type": (
        "def describe(x):\n    if isinstance(x, type):\n        return f'class {x.__name__}'\n"
        "    return f'instance of {type(x).__name__}'\n"
        "print(describe(int), describe(3), describe(type), issubclass(bool, int), isinstance(type, type))\n"
        "def make(cls: type, value) -> object:\n    return cls(value)\n"
        "print(make(int, '7'), repr(make(str, 7)), type(int) is type)"
    ),
    "exception chaining": (
        "class ParseError(Exception):\n    pass\ndef parse(s):\n    try:\n        return int(s)\n"
        "    except ValueError as e:\n        raise ParseError(f'bad number {s!r}') from e\ntry:\n"
        "    parse('x1')\nexcept ParseError as e:\n"
        "    print(e, '| cause:', type(e.__cause__).__name__, e.__cause__)\ntry:\n    try:\n"
        "        {}['k']\n    except KeyError:\n        raise RuntimeError('while handling')\n"
        "except RuntimeError as e:\n    print(repr(e.__context__), e.__cause__)"
    ),
    "try except else finally": (
        "def safe_div(a, b):\n    try:\n        r = a / b\n    except ZeroDivisionError as e:\n"
        "        print('error:', e)\n        return None\n    else:\n        print('ok')\n"
        "        return r\n    finally:\n        print('done', a, b)\n"
        "print(safe_div(6, 3), safe_div(1, 0))\ntry:\n    raise ValueError('bad', 42)\n"
        "except (TypeError, ValueError) as e:\n    print(type(e).__name__, e.args)"
    ),
    "dataclass with defaults and property": (
        "from dataclasses import dataclass, field\nfrom typing import Optional, List\n@dataclass\n"
        "class Chunk:\n    start: int\n    end: int\n    label: str = 'unknown'\n"
        "    hits: List[int] = field(default_factory=list)\n    note: Optional[str] = None\n    @property\n"
        "    def size(self):\n        return self.end - self.start\n"
        "chunks = [Chunk(0, 10), Chunk(10, 25, 'b', [1])]\nfor i, c in enumerate(chunks, start=1):\n"
        "    print(i, c, c.size)"
    ),
    "staticmethod classmethod and class attributes": (
        "class Money:\n    currency = 'USD'\n    rate = {'USD': 1.0, 'EUR': 0.5}\n"
        "    def __init__(self, amount):\n        self.amount = amount\n    @classmethod\n"
        "    def parse(cls, text):\n        return cls(float(text.split()[0]))\n    @staticmethod\n"
        "    def fmt(x):\n        return f'{x:,.2f}'\n    def __repr__(self):\n"
        "        return f'Money({self.fmt(self.amount)} {self.currency})'\n    def __add__(self, other):\n"
        "        return Money(self.amount + other.amount)\n"
        "print(Money.parse('1234.5 dollars') + Money(10), Money.fmt(3), Money.rate['EUR'])"
    ),
    "sorting keys": (
        "words = ['banana', 'Apple', 'cherry', 'apple', 'Banana']\nprint(sorted(words, key=str.lower))\n"
        "print(sorted(words, key=lambda w: (len(w), w), reverse=True))\nd = {'a': 3, 'b': 1, 'c': 2}\n"
        "print(sorted(d, key=d.get), max(d, key=d.get), min(d.items(), key=lambda kv: kv[1]))\n"
        "import operator\nprint(sorted(d.items(), key=operator.itemgetter(1)))"
    ),
    "re.finditer and groupdict": (
        "import re\npattern = re.compile(r'(?P<who>[A-Z]\\w+) paid (?P<amount>\\d+)')\n"
        "for m in pattern.finditer(context):\n    print(m.groupdict(), m.start(), m.group(0))\n"
        "print(pattern.pattern, re.escape('a.b*c'), re.sub(r'(\\w+) paid', r'\\1 spent', "
        "context.splitlines()[0]))"
    ),
    "Counter arithmetic": (
        "from collections import Counter\na = Counter('abracadabra')\nb = Counter('alakazam')\n"
        "print(a + b)\nprint(a - b)\nprint(a & b, a | b)\n"
        "print(a.most_common(2), sum(a.values()), a.total())\na.update(['z', 'z'])\na.subtract({'a': 5})\n"
        "print(sorted(a.elements())[:6], +a == a)"
    ),
    "str translate partition and friends": (
        "s = 'Hello, World! 2024'\n"
        "print(s.translate(str.maketrans('', '', ',!')), s.partition(', '), s.rpartition(' '))\n"
        "print(s.zfill(20), s.ljust(20, '.') + '|', s.rsplit(' ', 1), s.swapcase(), s.count('o'))\n"
        "print('a-b_c d'.replace('-', ' ').replace('_', ' ').split(), 'x'.isalpha(), '12'.isdigit(), "
        "' '.isspace())\n"
        "print(s.startswith(('Hell', 'Bye')), s.endswith('24'), s.find('World'), s.index('o'), s[::-1], "
        "s[1:10:2])"
    ),
    "textwrap and str formatting": (
        "import textwrap\ntext = 'The quick brown fox jumps over the lazy dog. ' * 3\n"
        "for line in textwrap.wrap(text, width=30):\n    print(f'|{line:<30}|')\n"
        "print(textwrap.fill('a b c d e f', width=5))\nprint(textwrap.indent(textwrap.dedent('''\n    x\n"
        "      y\n'''), '> '))"
    ),
    "json dumps with default": (
        "import json, datetime\n"
        "record = {'when': datetime.date(2024, 3, 1), 'tags': {'a'}, 'n': 1.5, 'name': 'Zoë'}\n"
        "print(json.dumps(record, default=str))\n"
        "print(json.dumps(record, default=str, ensure_ascii=False, indent=1))\n"
        "print(json.loads('{\"a\": [1, {\"b\": null}]}')['a'][1].get('b', 'none'))"
    ),
    "functools itertools heapq": (
        "import functools, itertools, heapq, operator\n"
        "print(functools.reduce(operator.mul, range(1, 6)), functools.reduce(lambda a, b: a + b, ['x', 'y'], "
        "''))\nrows = [('a', 1), ('a', 2), ('b', 3)]\n"
        "for key, group in itertools.groupby(rows, key=lambda r: r[0]):\n"
        "    print(key, [g[1] for g in group])\nscores = {'x': 3, 'y': 9, 'z': 5}\n"
        "print(heapq.nlargest(2, scores, key=scores.get), heapq.nsmallest(1, scores.values()))\n"
        "print(list(itertools.accumulate([1, 2, 3])), list(itertools.combinations('abc', 2)), "
        "list(itertools.product([0, 1], repeat=2)))\n@functools.lru_cache(maxsize=None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint(fib(30))"
    ),
    "numbers": (
        "import math\n"
        "print(math.isclose(0.1 + 0.2, 0.3), round(2.675, 2), round(1234.5678, -2), divmod(17, 5), int('ff', "
        "16), int('0b101', 2))\n"
        "print(sum([1, 2, 3], start=10), min([], default=0), max([3, 1], default=None), abs(-2.5), pow(2, "
        "10, 1000))\nprint(f'{1234567.891:,.2f}', f'{0.25:.0%}', f'{42:05d}', hex(255), bin(5), oct(8), "
        "(255).bit_length(), 3.0.is_integer())\n"
        "print(math.sqrt(16), math.log(math.e), math.floor(2.7), math.ceil(2.1), math.inf > 1e308, "
        "float('nan') != float('nan'))"
    ),
    "closures and nonlocal": (
        "def make_counter(start=0):\n    count = start\n    def inc(step=1):\n        nonlocal count\n"
        "        count += step\n        return count\n    return inc\nc = make_counter(5)\n"
        "print(c(), c(), c(10))\nadders = [lambda x, n=n: x + n for n in range(3)]\n"
        "print([f(10) for f in adders])\ntotal = 0\ndef add(x):\n    global total\n    total += x\nadd(3)\n"
        "add(4)\nprint(total)"
    ),
    "generators with yield from": (
        "def chunks(seq, n):\n    for i in range(0, len(seq), n):\n        yield seq[i:i + n]\n"
        "def flatten(nested):\n    for item in nested:\n        if isinstance(item, list):\n"
        "            yield from flatten(item)\n        else:\n            yield item\n"
        "print(list(chunks('abcdefg', 3)), list(flatten([1, [2, [3, 4]], 5])))\n"
        "gen = (x * x for x in range(5))\nprint(next(gen), next(gen), list(gen))"
    ),
    "print with sep end and star": (
        "lines = context.splitlines()\nprint(*lines[:2], sep='\\n')\n"
        "print('a', 'b', sep=' | ', end=' <-\\n')\nprint(*range(3))\nprint()\nprint('done', flush=True)"
    ),
    "f-string debugging and conversions": (
        "x = 41\nname = 'Bob'\nitems = [1, 2]\n"
        "print(f'{x=}', f'{x + 1 = }', f'{name!r}', f'{name!s:>6}', f'{items!a}', f'{x:#x}', "
        "f\"{'nested'}\")\nwidth = 8\nprint(f'{name:>{width}}|{3.14159:.{2}f}|{{literal}}')"
    ),
    "assert walrus del and star unpacking": (
        "data = [3, 1, 4, 1, 5, 9, 2, 6]\nif (n := len(data)) > 5:\n    print('long', n)\n"
        "first, *middle, last = data\nprint(first, middle, last)\na, (b, c) = 1, (2, 3)\n"
        "print(a, b, c, [*data[:2], *'xy'], {**{'a': 1}, 'b': 2})\nassert n == 8, 'length changed'\n"
        "del data[0]\ntmp = 1\ndel tmp\nprint(data, 'tmp' in globals())\ntry:\n"
        "    assert n < 0, f'n is {n}'\nexcept AssertionError as e:\n    print('assert:', e)"
    ),
    "comprehensions zip map filter": (
        "names = ['alice', 'bob', 'carol']\namounts = [30, 12, 7]\n"
        "print({n: a for n, a in zip(names, amounts)}, {len(n) for n in names})\n"
        "print(list(zip(names, amounts, strict=True)), list(map(str.upper, names)), list(filter(None, [0, 1, "
        "'', 'x'])))\n"
        "print([(i, j) for i in range(2) for j in range(2) if i != j], dict(zip(*[iter('abcd')] * 2)))\n"
        "try:\n    list(zip([1], [1, 2], strict=True))\nexcept ValueError as e:\n    print('zip:', e)"
    ),
    "bytes and encodings": (
        "b = 'café ✓'.encode('utf-8')\n"
        "print(b, len(b), b.decode('utf-8'), b.decode('ascii', errors='replace'))\n"
        "print(bytes([72, 105]).decode(), b.hex()[:8], bytes.fromhex('4869'), 'x'.encode().upper(), "
        "bytearray(b'ab') + b'c')\nimport base64, hashlib\n"
        "token = base64.b64encode(b'user:pass').decode()\n"
        "print(token, base64.b64decode(token), hashlib.md5('hello'.encode()).hexdigest(), "
        "hashlib.sha256(b'x').hexdigest()[:16])"
    ),
    "datetime": (
        "from datetime import datetime, timedelta, date\n"
        "d = datetime.strptime('2024-03-01 14:30', '%Y-%m-%d %H:%M')\n"
        "print(d, d + timedelta(days=30, hours=2), d.strftime('%b %d, %Y'), d.isoformat(), d.weekday())\n"
        "print((date(2024, 12, 25) - date(2024, 1, 1)).days, "
        "date.fromisoformat('2024-02-29').replace(day=1))\n"
        "print(sorted(['2024-01-05', '2023-12-31'], key=lambda s: datetime.strptime(s, '%Y-%m-%d')))"
    ),
    "random and statistics": (
        "import random, statistics\nrandom.seed(42)\n"
        "print(random.sample(range(100), 5), random.choice('abc'), random.randint(1, 6), "
        "round(random.random(), 6))\nxs = [2, 4, 4, 4, 5, 5, 7, 9]\n"
        "print(statistics.mean(xs), statistics.median(xs), statistics.mode(xs), statistics.pstdev(xs), "
        "round(statistics.stdev(xs), 4))\nrng = random.Random(7)\nitems = list(range(5))\n"
        "rng.shuffle(items)\nprint(items, statistics.quantiles(xs, n=4))"
    ),
    "unicodedata and normalization": (
        "import unicodedata\ns = 'Crème Brûlée'\n"
        "print(unicodedata.normalize('NFKD', s).encode('ascii', 'ignore').decode(), unicodedata.name('é'), "
        "unicodedata.category('A'))\n"
        "print(len(unicodedata.normalize('NFC', 'e\\u0301')), 'ﬁ'.casefold(), unicodedata.normalize('NFKC', "
        "'ﬁ'))"
    ),
    "any all and conditional expressions": (
        "lines = context.splitlines()\n"
        "print(any('refund' in l for l in lines), all(l.endswith('.') for l in lines), "
        "sum(1 for l in lines if 'paid' in l))\nprint(['even' if i % 2 == 0 else 'odd' for i in range(3)], "
        "next((l for l in lines if l.startswith('Bob')), None))\n"
        "print(sum(int(w) for l in lines for w in l.split() if w.isdigit()) / len(lines))"
    ),
    "dict and set idioms": (
        "d = {}\nfor w in 'a b a c b a'.split():\n    d.setdefault(w, []).append(len(d))\nprint(d)\n"
        "a = {'x': 1, 'y': 2}\nb = {'y': 3, 'z': 4}\n"
        "print(a | b, {**a, **b}, a.keys() & b.keys(), a.get('q', 0))\ns = {1, 2, 3}\n"
        "print(s - {2}, s ^ {3, 4}, s <= {1, 2, 3, 4}, sorted(s.union([9])), "
        "frozenset('ab') == frozenset('ba'))\nfrom collections import defaultdict, OrderedDict, deque\n"
        "dd = defaultdict(list)\ndd['k'].append(1)\nod = OrderedDict(a=1, b=2)\nod.move_to_end('a')\n"
        "q = deque([1, 2, 3], maxlen=3)\nq.append(4)\nprint(dict(dd), list(od), q, q.popleft())"
    ),
    "csv and io": (
        "import csv, io\ntext = 'name,amount\\nAlice,30\\nBob,12\\n'\n"
        "rows = list(csv.DictReader(io.StringIO(text)))\nprint(rows, sum(int(r['amount']) for r in rows))\n"
        "out = io.StringIO()\nw = csv.writer(out)\nw.writerow(['a', 'b, c'])\nw.writerows([[1, 2]])\n"
        "print(repr(out.getvalue()))"
    ),
    "fractions and decimal": (
        "from fractions import Fraction\nfrom decimal import Decimal, ROUND_HALF_UP\n"
        "print(Fraction(1, 3) + Fraction(1, 6), Fraction('0.25'), Decimal('1.10') + Decimal('2.20'))\n"
        "print(Decimal('2.675').quantize(Decimal('0.01'), rounding=ROUND_HALF_UP), float(Fraction(3, 4)))"
    ),
    "total_ordering and equality": (
        "import functools\n@functools.total_ordering\nclass Version:\n    def __init__(self, text):\n"
        "        self.parts = tuple(int(p) for p in text.split('.'))\n    def __eq__(self, other):\n"
        "        return self.parts == other.parts\n    def __lt__(self, other):\n"
        "        return self.parts < other.parts\n    def __hash__(self):\n"
        "        return hash(self.parts)\n    def __repr__(self):\n"
        "        return 'v' + '.'.join(map(str, self.parts))\n"
        "vs = [Version('1.10'), Version('1.2'), Version('1.2')]\n"
        "print(sorted(vs), max(vs), len(set(vs)), vs[0] >= vs[1])"
    ),
    "copy and deepcopy": (
        "import copy\norig = {'a': [1, 2], 'b': {'c': 3}}\nshallow = copy.copy(orig)\n"
        "deep = copy.deepcopy(orig)\norig['a'].append(3)\nprint(shallow['a'], deep['a'], orig == deep)\n"
        "class Node:\n    def __init__(self, v):\n        self.v = v\n        self._children = []\n"
        "n = Node(1)\nn._children.append(Node(2))\nm = copy.deepcopy(n)\n"
        "print(m._children[0].v, m._children is n._children)"
    ),
    "string module and Template": (
        "import string\nprint(string.ascii_lowercase[:5], string.digits, string.punctuation[:4], "
        "string.capwords('hello world'))\nt = string.Template('$who paid $$${amount}')\n"
        "print(t.substitute(who='Bob', amount=12), t.safe_substitute(who='Al'))\n"
        "print(''.join(c for c in 'a1b2!' if c not in string.punctuation and not c.isdigit()))"
    ),
    "recursion and memo dict": (
        "memo = {}\ndef ways(n):\n    if n <= 1:\n        return 1\n    if n in memo:\n"
        "        return memo[n]\n    memo[n] = ways(n - 1) + ways(n - 2)\n    return memo[n]\n"
        "print(ways(50), len(memo))\ndef depth(d):\n"
        "    return 1 + max((depth(v) for v in d.values() if isinstance(v, dict)), default=0)\n"
        "print(depth({'a': {'b': {'c': 1}}, 'd': 2}))"
    ),
    "enumerate zip reversed and slicing": (
        "lines = context.splitlines()\nfor i, (a, b) in enumerate(zip(lines, lines[1:]), 1):\n"
        "    print(i, a.split()[0], '->', b.split()[0])\n"
        "print(list(reversed(lines))[0], lines[-1][:5], lines[::2], lines[::-2][0][:3])\n"
        "matrix = [[1, 2, 3], [4, 5, 6]]\n"
        "print(list(zip(*matrix)), [row[::-1] for row in matrix], matrix[1][-2:])"
    ),
    "class with __eq__ __hash__ __len__ __iter__": (
        "class Bag:\n    def __init__(self, *items):\n        self._items = list(items)\n"
        "    def __len__(self):\n        return len(self._items)\n    def __iter__(self):\n"
        "        return iter(self._items)\n    def __contains__(self, x):\n"
        "        return x in self._items\n    def __eq__(self, other):\n"
        "        return isinstance(other, Bag) and sorted(self._items) == sorted(other._items)\n"
        "    __hash__ = None\n    def __bool__(self):\n        return bool(self._items)\n"
        "    def __str__(self):\n        return 'Bag(' + ', '.join(map(str, self)) + ')'\nb = Bag(3, 1)\n"
        "print(b, len(b), 2 in b, b == Bag(1, 3), bool(Bag()), list(b), str(b))"
    ),
    "bisect and insort": (
        "import bisect\ngrades = [60, 70, 80, 90]\n"
        "print([('FDCBA'[bisect.bisect(grades, s)]) for s in (55, 70, 85, 99)])\nxs = []\n"
        "for v in [5, 1, 4]:\n    bisect.insort(xs, v)\nprint(xs, bisect.bisect_left(xs, 4))"
    ),
    "sys.stderr and typing Callable": (
        "import sys\nfrom typing import Callable, Iterable, Dict\n"
        "def apply(fn: Callable[[int], int], xs: Iterable[int]) -> Dict[int, int]:\n"
        "    return {x: fn(x) for x in xs}\nprint(apply(lambda x: x * x, range(4)))\n"
        "print('warning', file=sys.stdout)"
    ),
    "class body special methods": (
        "class Vec:\n    def __init__(self, x):\n        self.x = x\n    def __add__(self, other):\n"
        "        return Vec(self.x + (other.x if isinstance(other, Vec) else other))\n"
        "    __radd__ = __add__\n    def __str__(self):\n        return f'Vec({self.x})'\n"
        "    __repr__ = __str__\n    def __eq__(self, other):\n"
        "        return isinstance(other, Vec) and self.x == other.x\n    __hash__ = None\n"
        "print(sum([Vec(1), Vec(2)]), [Vec(3)], Vec(1) == Vec(1))"
    ),
    "instance __dict__": (
        "class Record:\n    def __init__(self, **fields):\n        self.__dict__.update(fields)\n"
        "    def __repr__(self):\n        return f'Record({self.__dict__})'\n"
        "r = Record(name='Bob', amount=12)\nr.note = 'x'\n"
        "print(r, r.name, sorted(r.__dict__), vars(r) == r.__dict__)"
    ),
    "exception notes and suppressed context": (
        "try:\n    try:\n        int('x')\n    except ValueError as e:\n"
        "        e.add_note('while parsing line 3')\n        raise\nexcept ValueError as e:\n"
        "    print(e, e.__notes__)\ntry:\n    try:\n        [][0]\n    except IndexError:\n"
        "        raise KeyError('k') from None\nexcept KeyError as e:\n"
        "    print(repr(e), e.__cause__, e.__suppress_context__)"
    ),
    "old-style base class calls": (
        "class Base:\n    def __init__(self, n):\n        self.n = n\n    def describe(self):\n"
        "        return f'n={self.n}'\nclass Sub(Base):\n    def __init__(self, n):\n"
        "        Base.__init__(self, n)\n        self.m = n * 2\n    def describe(self):\n"
        "        return Base.describe(self) + f' m={self.m}'\nclass AppError(Exception):\n"
        "    def __init__(self, msg, code):\n        Exception.__init__(self, msg)\n"
        "        self.code = code\nclass Lower(dict):\n    def __setitem__(self, k, v):\n"
        "        dict.__setitem__(self, k.lower(), v)\nd = Lower()\nd['Key'] = 1\n"
        "print(Sub(2).describe(), AppError('bad', 7), AppError('bad', 7).code, d, AppError('x', 1).__str__())"
    ),
    "name-mangled private attributes": (
        "class Account:\n    __count = 0\n    def __init__(self, owner):\n        self.__owner = owner\n"
        "        self.__balance = 0\n        Account.__count += 1\n    def deposit(self, amount):\n"
        "        self.__balance += amount\n        return self\n    def __str__(self):\n"
        "        return f'{self.__owner}: {self.__balance} (of {Account.__count})'\n"
        "print(Account('Bob').deposit(12).deposit(30), Account('Al')._Account__owner)"
    ),
    "collections.abc in type checks": (
        "from collections.abc import Iterable, Mapping, Sequence\n"
        "def flatten(x):\n"
        "    if isinstance(x, Mapping):\n        return [v for val in x.values() for v in flatten(val)]\n"
        "    if isinstance(x, Iterable) and not isinstance(x, (str, bytes)):\n"
        "        return [v for item in x for v in flatten(item)]\n    return [x]\n"
        "print(flatten({'a': [1, (2, 3)], 'b': {'c': 'four'}}), isinstance('s', Sequence))"
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
