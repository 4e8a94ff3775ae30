"""The hostile snippets the adversarial suite (test_adversarial.py) runs, by category.

Each row is ``(code, expected)``: ``expected`` is the error type the snippet
must end with, ``None`` when it must run cleanly, or ``ANY_ERROR``. Snippets
that succeed in an escape print or return ``PWNED``, which the suite looks for
in every output.
"""

from __future__ import annotations

import secrets

ANY_ERROR = "*"
TOKEN = secrets.token_hex(6)
PWNED = f"pwned-{TOKEN}"

DUNDER_WALKS = [
    ("().__class__.__bases__[0].__subclasses__()", "RestrictedCodeError"),
    ("getattr(getattr((), '__cla' + 'ss__'), '__bas' + 'es__')", "AttributeError"),
    ("getattr(object, '__subclasses__')()", "AttributeError"),
    ("type(llm_query)('x', getattr)(llm_query, '_call')", "AttributeError"),
    ("print.__class__('p', getattr)(llm_query, '_call')", "AttributeError"),
    ("vars(llm_query)", "PermissionError"),
    ("llm_query.__dict__", "AttributeError"),  # __dict__ only of the REPL's own instances and functions
    ("llm_query._call", "AttributeError"),  # a private name: read only on the REPL's own objects
    ("getattr(llm_query, '_call')", "AttributeError"),
    ("llm_query.__self__", "RestrictedCodeError"),
    ("print.__self__", "RestrictedCodeError"),
    ("FINAL.__call__.__func__.__globals__", "RestrictedCodeError"),
    ("object.__getattribute__(llm_query, '_call')", "RestrictedCodeError"),
    ("int.mro()", "RestrictedCodeError"),
    ("getattr(int, 'mro')()", "AttributeError"),
    ("[n for n in dir(llm_query) if not n.startswith('_')]", None),
    ("import functools\nfunctools.partial(llm_query, 'x').func", None),
    ("SHOW_VARS.x = 1", "AttributeError"),
    ("FINAL_VAR('__builtins__')", "NameError"),
    ("globals()['__builtins__']", "KeyError"),
    ("locals()['_write_']", "KeyError"),
    ("breakpoint()", "PermissionError"),
    ("help()", "PermissionError"),
    ("class X:\n    def __getattribute__(self, name):\n        return 1", "RestrictedCodeError"),
    ("class X:\n    __slots__ = ()", "RestrictedCodeError"),
    ("class M(type):\n    pass\nclass X(metaclass=M):\n    pass", "RestrictedCodeError"),
    ("super(type, type).__call__", "TypeError"),  # type is the sandbox's function
    ("super(int, 1).__init__", "AttributeError"),  # super().<special> only for REPL classes
    ("class A:\n    pass\nsuper(A, A()).__init__()", None),
    ("lambda _write_: 1", "RestrictedCodeError"),
]

MODULE_CHAINS = [
    (f"import {module}\n{module}.{name}", "AttributeError")
    for module, name in [
        ("json", "codecs"),
        ("json", "decoder"),
        ("re", "enum"),
        ("re", "functools"),
        ("statistics", "sys"),
        ("collections", "abc"),
        ("copy", "weakref"),
        ("csv", "re"),
        ("datetime", "sys"),
        ("decimal", "sys"),
        ("functools", "update_wrapper"),
        ("functools", "wraps"),
        ("operator", "attrgetter"),
        ("operator", "methodcaller"),
        ("io", "open"),
        ("io", "FileIO"),
        ("base64", "binascii"),
        ("html", "entities"),
        ("textwrap", "re"),
        ("difflib", "HtmlDiff"),
        ("string", "Formatter"),
        ("hashlib", "new"),
        ("pprint", "PrettyPrinter"),
    ]
] + [
    (
        # Walk everything reachable by attribute (and by type(), now allowed) from every module and
        # builtin; report anything that is a module, frame, code object, traceback or cell.
        "import re, json, math, collections, itertools, functools, statistics, string, textwrap\n"
        "import datetime, difflib, heapq, bisect, random, operator, csv, io, unicodedata, hashlib\n"
        "import base64, html, fractions, decimal, copy, time, pprint, sys, typing, traceback, dataclasses\n"
        "from collections.abc import Mapping, MutableMapping, MutableSequence, MutableSet, Generator, ItemsView\n"
        "roots = [Mapping, MutableMapping, MutableSequence, MutableSet, Generator, ItemsView,\n"
        "         re, json, math, collections, itertools, functools, statistics, string, textwrap,\n"
        "         datetime, difflib, heapq, bisect, random, operator, csv, io, unicodedata, hashlib,\n"
        "         base64, html, fractions, decimal, copy, time, pprint, sys, typing, traceback, dataclasses,\n"
        "         llm_query, print, FINAL, len, getattr, isinstance, object, super, property, Exception,\n"
        "         LLMError, str, int, type, globals, globals(), vars, dir, '{0}'.format, str.format_map]\n"
        "seen = set()\n"
        "found = []\n"
        "queue = [(r, 0) for r in roots]\n"
        "while queue:\n"
        "    obj, depth = queue.pop()\n"
        "    if id(obj) in seen:\n"
        "        continue\n"
        "    seen.add(id(obj))\n"
        "    text = repr(obj)[:40]\n"
        "    if depth and text.startswith(('<module', '<frame', '<code', '<traceback', '<cell')):\n"
        "        found.append(text)\n"
        "    if depth < 3:\n"
        "        try:\n"
        "            queue.append((type(obj), depth + 1))\n"
        "        except PermissionError:\n"
        "            pass\n"
        "        for name in dir(obj):\n"
        "            if name.startswith('_') and name not in ('__name__', '__qualname__', '__doc__', '__module__'):\n"
        "                continue\n"
        "            try:\n"
        "                queue.append((getattr(obj, name), depth + 1))\n"
        "            except Exception:\n"
        "                pass\n"
        "assert len(seen) > 500 and not found, found",
        None,
    ),
]

IMPORT_TRICKS = [
    *(
        (f"import {name}", "ImportError")
        for name in (
            "os",
            "subprocess",
            "socket",
            "ctypes",
            "importlib",
            "posix",
            "pickle",
            "marshal",
            "gc",
            "inspect",
            "types",
            "threading",
            "multiprocessing",
            "signal",
            "resource",
            "pty",
            "shutil",
            "tempfile",
            "pathlib",
            "asyncio",
            "code",
            "weakref",
            "json.decoder",
            "urllib.request",
        )
    ),
    ("import io as os\nos.open", "AttributeError"),
    ("from json import codecs", "ImportError"),
    ("from re import enum", "ImportError"),
    ("from collections import abc", "ImportError"),
    ("from os import system", "ImportError"),
    ("from json import loads, scanner", "ImportError"),
    ("from . import json", "ImportError"),
    ("from importlib import import_module", "ImportError"),
    ("import _thread", "RestrictedCodeError"),
    ("import builtins", "ImportError"),
    ("import sys\nsys.modules['os']", "AttributeError"),
    ("from sys import modules", "ImportError"),
    ("import __future__", "RestrictedCodeError"),
    ("import _strptime", "RestrictedCodeError"),
    ("__import__('os')", "RestrictedCodeError"),
    ("exec('import os')", "RestrictedCodeError"),
    ("eval('1')", "RestrictedCodeError"),
    ("compile('1', 'x', 'exec')", "PermissionError"),
    ("from json import *", "RestrictedCodeError"),
]

FRAME_WALKS = [
    ("g = (x for x in [1])\ng.gi_frame.f_back.f_globals", "RestrictedCodeError"),  # CVE-2023-37271
    ("def gen():\n    yield 1\ng = gen()\nnext(g)\ngetattr(g, 'gi_frame')", "AttributeError"),
    ("g = (x for x in [1])\ng.gi_code.co_consts", "RestrictedCodeError"),
    ("def a():\n    yield from b()\ndef b():\n    yield 1\ng = a()\nnext(g)\ng.gi_yieldfrom", "RestrictedCodeError"),
    ("async def c():\n    return 1\nc().cr_frame", "RestrictedCodeError"),
    ("async def c():\n    yield 1\nc().ag_frame", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    tb = e.__traceback__", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    tb = getattr(e, '__traceback__')", "AttributeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.with_traceback(None).tb_frame", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    c = e.__context__.__traceback__", "RestrictedCodeError"),
    ("import sys\nsys._getframe()", "AttributeError"),
    ("import sys\nsys.exc_info()", "AttributeError"),
    ("def f():\n    return f\nf.__closure__", "RestrictedCodeError"),
    ("import functools\nfunctools.lru_cache(len).__wrapped__", "RestrictedCodeError"),
    ("g = (x for x in [1])\n[getattr(g, n) for n in dir(g) if 'frame' in n or 'code' in n]", "AttributeError"),
]

# str.format/format_map run through the sandbox's formatter: a field may walk attributes only as code may
# (`{0.__class__}` is `type(0)`, `{0.__init__}` is refused), items as a subscript in code would.
FORMAT_TRICKS = [
    ("'{0.__class__.__base__.__subclasses__}'.format(1)", "AttributeError"),  # CVE-2023-41039
    ("'{0.__class__}'.format(1)", None),  # the class, as type(1) gives it
    ("'{x.__init__.__globals__}'.format_map({'x': llm_query})", "AttributeError"),
    ("'{0.__init__.__globals__[__builtins__]}'.format(len)", "AttributeError"),
    ("def f():\n    pass\n'{0.__globals__}'.format(f)", "AttributeError"),
    ("'{0.gi_frame.f_back.f_globals}'.format(x for x in [1])", "AttributeError"),
    ("'{0.gi_frame}'.format(x for x in [1])", "AttributeError"),
    ("'{0.__class__.mro}'.format(1)", "AttributeError"),
    ("'{0:{1.__class__.__base__}}'.format(1, 2)", "AttributeError"),  # a walk inside a nested spec
    ("'{0:{1}}'.format(1, '{0.__init__.__globals__}')", "ValueError"),  # a spec is a spec, never a template
    ("'{0:{0:{0:{0}}}}'.format(1)", "ValueError"),  # max recursion, as CPython
    ("try:\n    llm_query.nothing\nexcept AttributeError as e:\n    '{0.obj}'.format(e)", "AttributeError"),
    ("getattr('{0.__init__.__globals__}', 'format')(len)", "AttributeError"),
    ("getattr('{0.__init__.__globals__}', 'form' + 'at_map')({'0': len})", "ValueError"),
    ("getattr('{x.__init__.__globals__}', 'form' + 'at_map')({'x': len})", "AttributeError"),
    ("str.format('{0.__init__.__globals__}', len)", "AttributeError"),
    ("str.format_map('{x.__init__.__globals__}', {'x': len})", "AttributeError"),
    ("f = '{0.__init__.__globals__}'.format\nf(len)", "AttributeError"),
    ("list(map(str.format, ['{0.__init__.__globals__}'], [len]))", "AttributeError"),
    ("import functools\nfunctools.partial(str.format, '{0.__init__.__globals__}')(len)", "AttributeError"),
    ("type('')('{0.__init__.__globals__}').format(len)", "AttributeError"),
    ("''.__class__.format('{0.__init__.__globals__}', len)", "AttributeError"),
    ("str.format(1)", "TypeError"),
    ("'{0.format}'.format('{0.__init__.__globals__}')", None),  # hands out the sandbox's format, not str's
    ("'{0.__class__.__name__}:{0!r:>5}|{1[k]}|{2:{3}}'.format(1, {'k': 2}, 3.14159, '.2f')", None),
    (
        "class Box:\n    def __getitem__(self, key):\n        return len\n'{0[x]}'.format(Box())",
        None,  # items are read as a subscript in code would: the user's own __getitem__
    ),
    ("import string\nstring.Formatter().vformat('{0.__class__}', [1], {})", "AttributeError"),
    ("import string\nstring.Template('$x').substitute(x=llm_query)", None),
    ("'%(a)s %(b)r' % {'a': llm_query, 'b': print}", None),
    ("format(llm_query, '')", None),
    ("format(1, '{0.__class__}')", "ValueError"),
    ("f'{llm_query.__self__}'", "RestrictedCodeError"),
    ("import string\ntry:\n    string.nothing\nexcept AttributeError as e:\n    e.obj", "AttributeError"),  # 2024-47532
    ("try:\n    llm_query.nothing\nexcept AttributeError as e:\n    getattr(e, 'obj')", "AttributeError"),
    ("import datetime\ndatetime.date(2020, 1, 2).strftime('%Y %B')", None),
]

BUILTINS_TAMPERING = [
    ("__builtins__['open'] = print", "RestrictedCodeError"),
    ("import json\njson.loads = None", "AttributeError"),
    ("import json\ndel json.loads", "AttributeError"),
    ("import json\nsetattr(json, 'loads', None)", "AttributeError"),
    ("import json\ndelattr(json, 'loads')", "AttributeError"),
    ("class A:\n    pass\nsetattr(A(), '__class__', int)", "AttributeError"),
    ("class A:\n    pass\na = A()\nsetattr(a, 'x', 1)\ndelattr(a, 'x')", None),
    ("import collections\ncollections.Counter.most_common = None", "AttributeError"),
    ("import string\nstring.Template.delimiter = '#'", "AttributeError"),
    ("import functools, difflib\nfunctools.total_ordering(difflib.SequenceMatcher)", "ValueError"),
    ("LLMError.args = None", "AttributeError"),
    ("print.x = 1", "AttributeError"),
    ("llm_query = None\nlen = None\nisinstance = None", None),
    ("len('abc') + isinstance(llm_query, object)", "TypeError"),  # own namespace only: shadowed just above
    ("del len, isinstance\nlen('abc')", None),
    ("import json\njson.dumps(json.loads('[1]'))", None),
]

UNICODE_TRICKS = [
    ("().__\uff43lass__.__\uff42ases__", "RestrictedCodeError"),  # fullwidth c, b: NFKC folds them
    ("\uff45xec('1')", "RestrictedCodeError"),
    ("g = (x for x in [1])\ng.\uff47i_frame", "RestrictedCodeError"),
    ("'{0.__class__.__base__}'.\uff46ormat(1)", "AttributeError"),  # the sandbox's format, all the same
    ("import \uff4fs", "ImportError"),
    ("__\uff49mport__('os')", "RestrictedCodeError"),
    ("getattr(1, '__\uff43lass__')", "AttributeError"),
    ("g = (x for x in [1])\ngetattr(g, '\uff47i_frame')", "AttributeError"),
    ("\u210c = 1\n\u210c", None),
]

FILES_NETWORK_PROCESSES = [
    (f"open('/tmp/{PWNED}', 'w')", "PermissionError"),
    ("open('secret-inside.txt').read()", "PermissionError"),
    ("import io\nio.StringIO('x').read()", None),
    (f"print('owned', file='/tmp/{PWNED}')", "AttributeError"),
    ("import pathlib", "ImportError"),
    ("import socket\nsocket.create_connection(('127.0.0.1', 1))", "ImportError"),
    ("import http.client", "ImportError"),
    ("import ssl", "ImportError"),
    ("import os\nos.system('id')", "ImportError"),
    ("import subprocess\nsubprocess.run(['id'])", "ImportError"),
    ("import os\nos.fork()", "ImportError"),
    ("import threading\nthreading.Thread(target=len).start()", "ImportError"),
    ("import os\nos.environ", "ImportError"),
    ("import os\nos.getenv('AWS_SECRET_ACCESS_KEY')", "ImportError"),
    ("dir()", None),
    ("SHOW_VARS()", None),
    ("[v for v in context.split() if 'CANARY' in v]", None),
]

PICKLE_TRICKS = [
    ("import pickle\npickle.loads(b'')", "ImportError"),
    ("import copyreg", "ImportError"),
    ("import shelve", "ImportError"),
    ("import copy\ncopy.copy(llm_query)", "TypeError"),
    ("import copy\ncopy.deepcopy(print)", "TypeError"),
    ("import copy, json\ncopy.copy(json)", "TypeError"),
    ("class A:\n    def __reduce__(self):\n        return (print, ('x',))", "RestrictedCodeError"),
    ("class A:\n    def __reduce_ex__(self, p):\n        return (print, ('x',))", "RestrictedCodeError"),
    ("class A:\n    pass\nimport copy\na = A()\na.v = [1]\ncopy.deepcopy(a).v", None),
]

CVE_STYLE = [
    ("try:\n    pass\nexcept* ValueError:\n    pass", "RestrictedCodeError"),  # CVE-2025-22153
    (
        "class EG(ExceptionGroup):\n    def derive(self, excs):\n        return 1\n"
        "try:\n    raise EG('x', [ValueError()])\nexcept ExceptionGroup as e:\n    r = e.split(ValueError)",
        "TypeError",  # without except*, CPython checks what derive() returns
    ),
    ("def f(_getattr_, /):\n    return _getattr_", "RestrictedCodeError"),  # positional-only shadowing
    ("match 1:\n    case _write_:\n        pass", "RestrictedCodeError"),
    ("(_write_ := print)", "RestrictedCodeError"),
    ("[1 for _write_ in [print]]", "RestrictedCodeError"),
]

# A value handed to a guard may be the user's own subclass of str/int/tuple whose methods lie: Evil
# answers startswith/endswith/in as it likes, Alias keeps harmless characters but borrows the hash of
# `target` and equals everything, so a dict lookup by CPython lands on `target`. Every guard must read
# the real characters (and hand those, never the object, to the real operation).
LIARS = (
    "class Evil(str):\n"
    "    def startswith(self, *args):\n        return False\n"
    "    def endswith(self, *args):\n        return False\n"
    "    def isidentifier(self):\n        return True\n"
    "    def __contains__(self, item):\n        return False\n"
    "    def __len__(self):\n        return 1\n"
    "    def __iter__(self):\n        return iter('a')\n"
    "class Alias(str):\n"
    "    def __eq__(self, other):\n        return True\n"
    "    def __ne__(self, other):\n        return False\n"
    "    def __hash__(self):\n        return hash(target)\n"
    "class Text(str):\n"
    "    def __add__(self, other):\n        return 1\n"
    "    def __len__(self):\n        return 0\n"
    "    def __getitem__(self, index):\n        return self\n"
    "    def __str__(self):\n        return self\n"
    "    def __repr__(self):\n        return self\n"
    "class Shown:\n"
    "    def __repr__(self):\n        return Text('shown')\n"
    "    def __str__(self):\n        return Text('printed')\n"
    "def f():\n    pass\n"
    "target = '__globals__'\n"
)

TYPE_CONFUSION = [
    (LIARS, None),
    ("getattr(f, Evil('__globals__'))['__builtins__']", "AttributeError"),  # issue 10, item 1
    ("getattr(f, Evil('__globals__'), None)", "AttributeError"),
    ("assert hasattr(f, Evil('__globals__')) and hasattr([], '__iter__')", None),  # a bool, nothing more
    ("getattr(f, name=Evil('__globals__'))", "AttributeError"),
    ("getattr(f, **{'name': Evil('__globals__')})", "AttributeError"),
    ("getattr(getattr((), Evil('__class__')), Evil('__base__'))", "AttributeError"),
    ("getattr((x for x in [1]), Evil('gi_frame'))", "AttributeError"),
    ("getattr('{0.__init__.__globals__}', Evil('format'))(f)", "AttributeError"),
    (f"g = getattr(f, Alias('harmless'))\nprint('{PWNED}', sorted(g)[:3])", "AttributeError"),
    (f"target = 'gi_frame'\nprint('{PWNED}', getattr((x for x in [1]), Alias('harmless')))", "AttributeError"),
    (f"target = '__class__'\nprint('{PWNED}', getattr((), Alias('harmless')))", "AttributeError"),
    (f"target = '__subclasses__'\nprint('{PWNED}', getattr(object, Alias('harmless'))())", "AttributeError"),
    (f"target = '__globals__'\nif hasattr(f, Alias('harmless')):\n    print('{PWNED}')", None),
    ("getattr(f, 7)", "TypeError"),
    ("getattr(f, b'__globals__')", "TypeError"),
    ("FINAL_VAR(Evil('__builtins__'))", None),  # a value: the answer is its characters (see test_policy)
    ("target = '__builtins__'\nFINAL_VAR(Alias('harmless'))", None),
    ("target = '_write_'\nFINAL_VAR(Alias('harmless'))", None),
    ("getattr(llm_query, Evil('_call'))", "AttributeError"),
    (f"target = '_call'\nprint('{PWNED}', getattr(llm_query, Alias('harmless')))", "AttributeError"),
    ("import random\nclass R(random.Random):\n    pass\ngetattr(R(), Evil('_randbelow'))", "AttributeError"),
    ("import random\nclass R(random.Random):\n    pass\nsetattr(R(), Evil('_randbelow'), print)", "AttributeError"),
    ("class A:\n    pass\na = A()\nsetattr(a, Evil('_x'), 1)\nassert a._x == 1 and getattr(a, Evil('_x')) == 1", None),
    ("'{0._call}'.format(llm_query)", "AttributeError"),
    ("Evil('{0._call}').format(llm_query)", "AttributeError"),
    ("Evil('{0.__init__.__globals__}').format(f)", "AttributeError"),
    ("Evil('{x.__init__.__globals__}').format_map({'x': f})", "AttributeError"),
    ("str.format(Evil('{0.__init__.__globals__}'), f)", "AttributeError"),
    ("super(Evil, Evil('{0.__init__.__globals__}')).format(f)", "AttributeError"),
    (
        "class Fmt(str):\n    def format(self, *args):\n        return super().format(*args)\n"
        "Fmt('{0.__init__.__globals__}').format(f)",
        "AttributeError",
    ),
    ("target = '{0.__init__.__globals__}'\nAlias('{0}').format(f)", None),  # its real characters: '{0}'
    ("format(1, Evil('{0.__class__}'))", "ValueError"),
    ("f'{1:{Evil(\"{0.__class__}\")}}'", "ValueError"),
    ("Shown()\nprint(Shown())\nprint(Text('t'), sep=Text(','), end=Text('\\n'))", None),  # output is copied
    ("FINAL(Text('the answer'))", None),
    ("raise ValueError(Shown())", "ValueError"),
    (
        "class Sized(list):\n    def __len__(self):\n        raise SystemExit\n"
        "kept_sized = Sized([1, 2])\nkept_text = Text('abc')\nSHOW_VARS()",
        None,  # the variables listing reads sizes without calling the user's methods
    ),
    (
        "class Index(int):\n    def __eq__(self, other):\n        return True\n"
        "    def __hash__(self):\n        return 0\n"
        "context[Index(0):Index(4)]",
        None,
    ),
    ("class Index:\n    def __index__(self):\n        return 0", "RestrictedCodeError"),
    (
        "class Types(tuple):\n    def __iter__(self):\n        return iter([object])\n"
        "assert not isinstance(1, Types((str,)))",
        None,
    ),
    ("def g(**kw):\n    return sorted(kw)\ng(**{Evil('__class__'): 1})", None),
    ("import collections\nP = collections.namedtuple('P', [Evil('__class__')])", "ValueError"),
    ("import collections\nP = collections.namedtuple('P', 'x', module=Alias('repl'))\nP.y = 1", "AttributeError"),
]

# Relaxed builtins: type(x), x.__class__, read-only dunders, super().__init__, globals(), locals(),
# vars(obj), dir(), __name__. Each must still refuse what it could be turned into.
RELAXED_BUILTINS = [
    ("type('X', (), {})", "PermissionError"),
    ("type('X', (object,), {'__getattribute__': print})", "PermissionError"),
    ("type(type(1))('X', (), {})", "PermissionError"),
    ("(1).__class__.__class__('X', (), {})", "PermissionError"),
    ("type(1).__base__", "RestrictedCodeError"),
    ("type(1).__subclasses__()", "RestrictedCodeError"),
    ("type(1).mro()", "RestrictedCodeError"),
    ("import json\ntype(json)('os').system", "AttributeError"),
    ("type(lambda: 0)(None, {})", "TypeError"),
    ("import re\ntype(re.I)('X', names=[('__getattribute__', print)])", "TypeError"),
    ("import re\ntype(type(re.I))", "PermissionError"),
    ("import collections\ntype(collections.ChainMap)", "PermissionError"),
    ("import typing\ntype(typing.Any)", "PermissionError"),
    ("class A:\n    pass\nassert type(A) is type and type(A()) is A and A().__class__ is A", None),
    ("x = (1).__class__\nx.__class__ = int", "RestrictedCodeError"),
    ("(lambda: 0).__globals__", "RestrictedCodeError"),
    ("def f():\n    'doc'\n[f.__name__, f.__qualname__, f.__module__, f.__doc__, type(f).__name__]", None),
    ("def f():\n    pass\nf.__name__ = 'g'", "RestrictedCodeError"),
    ("def f():\n    pass\ndel f.__doc__", "RestrictedCodeError"),
    ("llm_query.__name__", "AttributeError"),
    ("getattr(len, '__name__') + getattr(len, '__class__').__name__", None),
    ("getattr(len, '__init__')", "AttributeError"),
    ("getattr(len, '__self__')", "AttributeError"),
    ("super(type(print), print).__init__('x', getattr)", "AttributeError"),
    ("class H(type(print)):\n    pass\nsuper(H, print).__init__('x', getattr)", "TypeError"),
    (
        "class Err(Exception):\n    def __init__(self, message):\n        super().__init__(message)\n"
        "        self.message = message\nstr(Err('x'))",
        None,
    ),
    ("class A:\n    def f(self):\n        return super().__reduce_ex__\nA().f()", "RestrictedCodeError"),
    ("s = super\nclass A:\n    def __init__(self):\n        s().__init__()\nA()", "RuntimeError"),  # no __class__ cell
    ("super = lambda: print\nclass A:\n    def f(self):\n        return super().__init__\nA().f()", "AttributeError"),
    ("del super", None),
    ("globals()['_write_']", "KeyError"),
    ("globals()['kept'] = 1", "TypeError"),
    ("globals().update(len=None)", "TypeError"),
    ("g = globals()\ndict.update(g, {'len': None})\nassert len('ab') == 2", None),
    ("assert not [k for k in globals() if k != '_' and k[:1] == '_' and (k[:2] == '__' or k[-1:] == '_')]", None),
    ("def f():\n    y = 1\n    return locals()\nassert f() == {'y': 1}", None),
    ("assert not [k for k in dir() if k != '_' and k[:1] == '_' and (k[:2] == '__' or k[-1:] == '_')]", None),
    ("assert not [k for k in vars() if k != '_' and k[:1] == '_' and (k[:2] == '__' or k[-1:] == '_')]", None),
    ("import json\nvars(json)", "PermissionError"),
    ("vars(print)", "PermissionError"),
    ("vars(type(print))", "PermissionError"),
    ("class A:\n    pass\nvars(A)", "PermissionError"),
    ("class A:\n    pass\na = A()\na.x = 1\nassert vars(a) == {'x': 1}", None),
    ("class A:\n    pass\nvars(A())['x'] = 1", "TypeError"),
    (
        "class E(AttributeError):\n    def leak(self):\n        return super().obj\nE('x', obj=1).leak()",
        "AttributeError",
    ),
    ("import functools\nfunctools.reduce(lambda a, b: locals(), [1, 2])", None),
    (
        "from dataclasses import dataclass, field\n@dataclass\nclass D:\n"
        "    x: dict = field(default_factory=locals)\nD()",
        "PermissionError",  # called by generated library code, not by a cell: no frame of it is handed out
    ),
    ("import collections\nP = collections.namedtuple('P', 'x')\nP(1)._asdict(), P._fields, P._make([2])", None),
    ("import collections\ncollections.namedtuple('P', 'x')._make.__func__", "RestrictedCodeError"),
    ("import statistics\nstatistics.LinearRegression._fields = ('y',)", "AttributeError"),  # a library's
    ("import statistics\nsetattr(statistics.LinearRegression, '_fields', ('y',))", "AttributeError"),
    ("import difflib\ndifflib.Match._make = print", "AttributeError"),
    ("class A:\n    def _asdict(self):\n        return {}\nassert A()._asdict() == {}", None),  # the REPL's own
    ("assert __name__ == '__main__'", None),
    ("__name__ = 'x'", "RestrictedCodeError"),
    ("printed = builtins = 1", None),
]

# Stand-in modules: sys, typing, traceback, dataclasses and __future__ hold only what is harmless.
STANDIN_MODULES = [
    ("import sys\nsys.modules", "AttributeError"),
    ("import sys\nsys.path", "AttributeError"),
    ("import sys\nsys.settrace(print)", "AttributeError"),
    ("import sys\nsys.setrecursionlimit(10 ** 6)", "AttributeError"),
    ("import sys\nsys.executable", "AttributeError"),
    ("import sys\nsys.exit()", "AttributeError"),
    ("import sys\nsys.stdout.buffer", "AttributeError"),
    ("import sys\nsys.stdout._write", "AttributeError"),
    ("import sys\ngetattr(sys.stdout, '_write')", "AttributeError"),
    ("import sys\nsys.stdout.write('ok\\n')\nprint('err', file=sys.stderr)", None),
    ("from sys import getsizeof, maxsize, version_info\ngetsizeof([]) < maxsize and version_info >= (3, 8)", None),
    ("import typing\ntyping.get_type_hints", "AttributeError"),
    ("import typing\ntyping.ForwardRef", "AttributeError"),
    ("import typing\ntyping.TypedDict", "AttributeError"),
    ("import typing\ntyping.no_type_check", "AttributeError"),
    ("import typing\ntyping.List.__origin__", "RestrictedCodeError"),
    ("import typing\ntyping.Type.mro", "RestrictedCodeError"),
    (f"import typing\nhint = typing.Optional[\"__import__('os').system('touch /tmp/{PWNED}')\"]", None),
    (
        "from typing import List, Dict, Optional\ndef f(x: List[str]) -> Optional[Dict[str, int]]:\n    return None",
        None,
    ),
    ("import dataclasses\ndataclasses.make_dataclass", "AttributeError"),
    ("import dataclasses, collections\ndataclasses.dataclass(collections.Counter)", "PermissionError"),
    ("import dataclasses\ndataclasses.dataclass(type(print))", "PermissionError"),
    ("import dataclasses\ndataclasses.dataclass(frozen=True)(type(print))", "PermissionError"),
    ("from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: int = 2\nP(1)", None),
    ("import traceback\ntraceback.extract_stack()", "AttributeError"),
    ("import traceback\ntraceback.walk_tb", "AttributeError"),
    (
        "import traceback\ntry:\n    1 / 0\nexcept Exception:\n    t = traceback.format_exc()\n"
        "assert 'ZeroDivisionError' in t and '.py' not in t, t",
        None,
    ),
    ("from __future__ import annotations\ndef f(x: int) -> str:\n    return str(x)\nf(1)", None),
    ("import __future__", "RestrictedCodeError"),
    # collections.abc: the abstract classes typing already aliases, for `from collections.abc import Iterable`
    (
        "from collections.abc import Iterable, Mapping\nassert isinstance([], Iterable) and isinstance({}, Mapping)",
        None,
    ),
    ("import collections.abc\ncollections.abc.Iterable", "AttributeError"),  # no module inside a module
    ("from collections.abc import _check_methods", "RestrictedCodeError"),
    ("from collections.abc import sys", "ImportError"),
    ("from collections.abc import Iterable\nIterable._abc_impl", "AttributeError"),
    ("from collections.abc import Iterable\nIterable.__subclasshook__", "RestrictedCodeError"),
    ("from collections.abc import Iterable\nIterable.mro()", "RestrictedCodeError"),
    ("from collections.abc import Mapping\nMapping.x = 1", "AttributeError"),
    (
        "from collections.abc import MutableMapping\nMutableMapping.update(globals(), {'len': None})\n"
        "assert len('ab') == 2",
        "TypeError",  # a mixin method uses only the object's public protocol: here, a read-only copy's
    ),
]

# Private names (issue 11): `_x` variables, functions and arguments are the code's own; `obj._x` is read and
# written through a guard, only on the REPL's own classes, instances and functions, and only where no library
# class defines the name first. The names the sandbox and RestrictedPython keep (`_x_`, dunders, `_print`,
# `_tmp<n>`) can be neither named, shadowed nor read.
PRIVATE_NAMES = [
    # the guards and hooks compiled code calls: never named
    ("_write_ = lambda o: o\nimport json\njson.loads = 1", "RestrictedCodeError"),
    ("_read_guarded_ = lambda o, n: print", "RestrictedCodeError"),
    ("_read_private_", "RestrictedCodeError"),
    ("_write_private_ = lambda o, n: o", "RestrictedCodeError"),
    ("print(_write_)", "RestrictedCodeError"),
    ("__rlm_echo__ = print", "RestrictedCodeError"),
    ("__rlm_final_var__('context')", "RestrictedCodeError"),
    ("__builtins__", "RestrictedCodeError"),
    ("_getattr_ = getattr", "RestrictedCodeError"),
    ("_tmp0 = print", "RestrictedCodeError"),
    ("_print = print", "RestrictedCodeError"),
    ("__x = 1", "RestrictedCodeError"),
    # ... nor shadowed by any binding form, in a class body (whose names generated code would see) or elsewhere
    ("class A:\n    _write_ = staticmethod(lambda o: o)\n    import json\n    json.loads = 1", "RestrictedCodeError"),
    ("class A:\n    _read_private_ = staticmethod(getattr)\n    x = llm_query._call", "RestrictedCodeError"),
    ("class A:\n    def _getattr_(self, name):\n        return 1", "RestrictedCodeError"),
    ("class _write_:\n    pass", "RestrictedCodeError"),
    ("def _write_(o):\n    return o", "RestrictedCodeError"),
    ("def f(_read_private_=None):\n    pass", "RestrictedCodeError"),
    ("def f(*_write_):\n    pass", "RestrictedCodeError"),
    ("def f(**_write_private_):\n    pass", "RestrictedCodeError"),
    ("def f(*, _write_):\n    pass", "RestrictedCodeError"),
    ("lambda _read_guarded_: 1", "RestrictedCodeError"),
    ("for _write_ in [print]:\n    pass", "RestrictedCodeError"),
    ("[1 for _read_private_ in [getattr]]", "RestrictedCodeError"),
    ("(_write_private_ := print)", "RestrictedCodeError"),
    ("(*_write_,) = [print]", "RestrictedCodeError"),
    ("import json as _write_", "RestrictedCodeError"),
    ("from json import loads as _read_guarded_", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as _write_:\n    pass", "RestrictedCodeError"),
    ("import io\nwith io.StringIO() as _write_:\n    pass", "RestrictedCodeError"),
    ("global _write_\n_write_ = print", "RestrictedCodeError"),
    ("del _write_", "RestrictedCodeError"),
    ("def f():\n    x = 1\n    def g():\n        nonlocal _write_\n", "RestrictedCodeError"),
    # inside a class, __x is mangled to the private name _Class__x, as CPython compiles it
    (
        "class A:\n    __n = 1\n    def __init__(self):\n        self.__x = A.__n\n    def get(self):\n"
        "        return self.__x\nassert A().get() == 1 and A()._A__x == 1 and A._A__n == 1",
        None,
    ),
    ("class A:\n    def f(self):\n        return self.__x\nA().f()", "AttributeError"),
    (
        "import difflib\nclass SequenceMatcher(difflib.SequenceMatcher):\n    def f(self):\n"
        "        return self.__chain_b\nSequenceMatcher().f()",
        "AttributeError",  # mangles to the library's _SequenceMatcher__chain_b: defined by a library class
    ),
    ("class A_:\n    __x_ = 1", "RestrictedCodeError"),  # _A___x_: the reserved form
    ("__x = 1", "RestrictedCodeError"),  # outside a class, nothing to mangle it to
    ("class _:\n    __x = 1", "RestrictedCodeError"),  # a class named only "_" does not mangle
    ("class A:\n    def f(self):\n        return __builtins__", "RestrictedCodeError"),  # dunders never mangle
    # internal modules and names stay out of imports
    ("import _strptime as s", "RestrictedCodeError"),
    ("from _strptime import _strptime_datetime", "RestrictedCodeError"),
    ("from json import _default_decoder", "RestrictedCodeError"),
    ("from _strptime import time", "ImportError"),
    # private attributes of everything the REPL did not write
    ("import json\njson._default_decoder", "AttributeError"),
    ("import re\nre._compile('x')", "AttributeError"),
    ("import json\njson._x = 1", "AttributeError"),
    ("import json\nsetattr(json, '_x', 1)", "AttributeError"),
    ("import collections\ncollections.Counter._keep_positive", "AttributeError"),
    ("import collections\ncollections.Counter()._keep_positive()", "AttributeError"),
    ("import random\nrandom.Random()._randbelow(5)", "AttributeError"),
    ("FINAL._call('x')", "AttributeError"),
    ("setattr(llm_query, '_call', print)", "AttributeError"),
    ("delattr(llm_query, '_name')", "AttributeError"),
    ("class H(type(llm_query)):\n    pass\nH('h', print)._call", "AttributeError"),
    ("class H(type(llm_query)):\n    pass\nH('h', print)._call = getattr", "AttributeError"),
    ("class S(type(globals())):\n    pass\nS()._read_only", "AttributeError"),
    ("'{0.real}'.format._formatter", "AttributeError"),
    ("len._x", "AttributeError"),
    ("(1)._x", "AttributeError"),
    ("type._x", "AttributeError"),
    ("e = ValueError('x')\ne._x = 1", "AttributeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e._x", "AttributeError"),
    ("g = (x for x in [1])\ng._x", "AttributeError"),
    ("class A:\n    def m(self):\n        pass\nA().m._x", "AttributeError"),  # a bound method is not the REPL's
    ("import functools\ndef f():\n    pass\nfunctools.partial(f)._x", "AttributeError"),
    ("import functools\n@functools.lru_cache\ndef f():\n    pass\nf._x = 1", "AttributeError"),
    ("super(int, 1)._x", "AttributeError"),
    # a library's private names on a class the REPL derived from it
    ("import random\nclass R(random.Random):\n    pass\nR()._randbelow(5)", "AttributeError"),
    ("import random\nclass R(random.Random):\n    pass\nR._randbelow", "AttributeError"),
    ("import random\nclass R(random.Random):\n    pass\nr = R()\nr._randbelow = print", "AttributeError"),
    ("import random\nclass R(random.Random):\n    pass\nR._randbelow = print", "AttributeError"),
    ("import random\nclass R(random.Random):\n    pass\ndel R()._randbelow", "AttributeError"),
    (
        "import random\nclass R(random.Random):\n    def f(self):\n        return super()._randbelow(5)\nR().f()",
        "AttributeError",
    ),
    ("import fractions\nclass F(fractions.Fraction):\n    pass\nF(1, 2)._numerator", "AttributeError"),
    ("import fractions\nclass F(fractions.Fraction):\n    pass\nF._abc_impl", "AttributeError"),  # planted by ABCMeta
    ("import typing\nclass M(typing.Mapping):\n    pass\nM._abc_impl = 1", "AttributeError"),
    ("import fractions\nclass F(fractions.Fraction):\n    pass\nF._dump_registry()", "AttributeError"),  # metaclass
    ("import difflib\nclass S(difflib.SequenceMatcher):\n    pass\nS()._SequenceMatcher__chain_b()", "AttributeError"),
    ("import sys\nclass T(type(sys.stdout)):\n    pass\nT('x', print)._write('y')", "AttributeError"),
    ("class A:\n    pass\nA._x", "AttributeError"),  # defined nowhere: an AttributeError, as in CPython
    ("class A:\n    pass\nsuper(A, A())._x", "AttributeError"),
    # the REPL's own objects: as in plain Python
    (
        "class A:\n    _registry = {}\n    def __init__(self):\n        self._n = 0\n"
        "    def inc(self):\n        self._n += 1\n        return self._n\n"
        "    @classmethod\n    def _add(cls, k):\n        cls._registry[k] = 1\n"
        "a = A()\na.inc()\nA._add('k')\n"
        "assert a._n == 1 and getattr(a, '_n') == 1 and vars(a) == {'_n': 1} and A._registry == {'k': 1}\n"
        "del a._n\nassert not hasattr(a, '_n')",
        None,
    ),
    (
        "class B:\n    def _helper(self):\n        return 1\n"
        "class C(B):\n    def _helper(self):\n        return super()._helper() + 1\nassert C()._helper() == 2",
        None,
    ),
    (
        "_tmp = 1\ndef _helper(_x, *, _y=2):\n    return _x + _y + _tmp\n"
        "assert _helper(1) == 4 and '_tmp' in globals()",
        None,
    ),
    ("def f():\n    pass\nf._calls = 0\nf._calls += 1\nassert f._calls == 1", None),
    ("import random\nclass R(random.Random):\n    def _own(self):\n        return 1\nassert R()._own() == 1", None),
    ("import csv, io\nclass D(csv.DictReader):\n    pass\nassert D(io.StringIO('a\\n1'))._fieldnames is None", None),
    ("import collections\nP = collections.namedtuple('P', 'x')\nP._fields = ('y',)", None),  # the REPL's own class
]

# Special methods bound by assignment in a class body (`__hash__ = None`, `__radd__ = __add__`): only the names a
# class may define with `def`, only in the class body's own scope.
CLASS_BODY_SPECIALS = [
    ("class A:\n    __eq__ = lambda s, o: True\n    __hash__ = None\nassert A() == 1", None),
    ("class A:\n    def __str__(self):\n        return 'a'\n    __repr__ = __str__\nassert repr(A()) == 'a'", None),
    ("__hash__ = None", "RestrictedCodeError"),
    ("__init__ = print", "RestrictedCodeError"),
    ("def f():\n    __init__ = 1", "RestrictedCodeError"),
    ("class A:\n    def f(self):\n        return __repr__", "RestrictedCodeError"),
    ("class A:\n    x = [__init__ for _ in [1]]", "RestrictedCodeError"),
    ("class A:\n    f = lambda self: __init__", "RestrictedCodeError"),
    ("class A:\n    __getattr__ = print", "RestrictedCodeError"),
    ("class A:\n    __getattribute__ = print", "RestrictedCodeError"),
    ("class A:\n    __reduce_ex__ = print", "RestrictedCodeError"),
    ("class A:\n    __init_subclass__ = print", "RestrictedCodeError"),
    ("class A:\n    __class_getitem__ = print", "RestrictedCodeError"),
    ("class A:\n    __set_name__ = print", "RestrictedCodeError"),
    ("class A:\n    __index__ = lambda self: 0", "RestrictedCodeError"),
    ("class A:\n    __del__ = print", "RestrictedCodeError"),
    ("class A:\n    __slots__ = ()", "RestrictedCodeError"),
    ("class A:\n    __dict__ = {}", "RestrictedCodeError"),
    ("class A:\n    __class__ = int", "RestrictedCodeError"),
    ("class A:\n    __builtins__ = {}", "RestrictedCodeError"),
    ("class A:\n    _write_ = print", "RestrictedCodeError"),
    ("class A:\n    __call__ = getattr\nA()(llm_query, '_call')", "TypeError"),  # the sandbox's getattr, bound
]

# Special methods read outside super(): bound to the REPL's own instances, or read from a class as a wrapper that
# applies only to instances of the REPL's classes (never re-initialising a library or sandbox object, never running
# the code dataclass generates on something else).
SPECIAL_METHOD_READS = [
    (
        "class E(Exception):\n    def __init__(self, m):\n        Exception.__init__(self, m)\n"
        "assert str(E('m')) == 'm'",
        None,
    ),
    (
        "class D(dict):\n    def __setitem__(self, k, v):\n        dict.__setitem__(self, k.lower(), v)\n"
        "d = D()\nd['A'] = 1\nassert d == {'a': 1}",
        None,
    ),
    ("class A:\n    def __repr__(self):\n        return 'A'\nassert A().__repr__() == 'A' == A.__repr__(A())", None),
    ("class A:\n    pass\nA().__init__()", None),
    ("import random\nclass R(random.Random):\n    pass\nr = R()\nR.__init__(r, 5)\nrandom.Random.__init__(r, 6)", None),
    ("type(llm_query).__init__(llm_query, 'x', print)", "TypeError"),
    ("import sys\ntype(sys.stdout).__init__(sys.stdout, 'x', print)", "TypeError"),
    ("class H(type(llm_query)):\n    pass\nH.__init__(llm_query, 'x', print)", "TypeError"),
    ("llm_query.__init__('x', print)", "AttributeError"),
    ("import sys\nsys.stdout.__init__('x', print)", "AttributeError"),
    ("print.__call__", "AttributeError"),
    ("[].__len__()", "AttributeError"),  # on library objects: refused (len() does it)
    ("object.__init__(llm_query)", "TypeError"),
    ("dict.__setitem__(globals(), 'x', 1)", "TypeError"),
    ("Exception.__init__(ValueError(), 'x')", "TypeError"),
    ("import random\nrandom.Random.__init__(random.Random(), 5)", "TypeError"),
    ("int.__add__(1, 2)", "TypeError"),
    ("class A:\n    pass\nf = A.__init__\nf(llm_query)", "TypeError"),
    ("class A:\n    def __init__(self):\n        self.x = 1\nA.__init__(llm_query)", "TypeError"),
    (
        # the __init__ dataclass generates is not compiled by the sandbox: never applied to another object
        "from dataclasses import dataclass\n@dataclass(frozen=True)\nclass D:\n    _call: object = None\n"
        "D.__init__(llm_query, print)",
        "TypeError",
    ),
    (
        "from dataclasses import dataclass\n@dataclass\nclass D:\n    x: int = 0\nimport json\nD.__init__(json, 1)",
        "TypeError",
    ),
    ("class A:\n    pass\ntype(A.__init__)(type(llm_query), '__init__')(llm_query, 'x', print)", "TypeError"),
    ("Exception.__init__._cls", "AttributeError"),
    ("Exception.__init__.__self__", "RestrictedCodeError"),
    ("class A:\n    pass\nA.__init__ = print", "RestrictedCodeError"),
    ("class A:\n    pass\na = A()\na.__repr__ = print", "RestrictedCodeError"),
    ("class A:\n    pass\nA.__len__", "AttributeError"),
    ("getattr(len, '__init__')", "AttributeError"),
    ("class A:\n    pass\ngetattr(A(), '__init__')()", None),
    ("'{0.__init__}'.format(llm_query)", "AttributeError"),
    ("import copy\ncopy.copy(Exception.__init__)", "TypeError"),
    ("class D:\n    __call__: int = 0", "RestrictedCodeError"),  # an annotated special name would be a dataclass field
    (
        # a virtual subclass (ABC registration) is not derived from the class: the real MRO decides
        "from collections.abc import Mapping\nclass U:\n    pass\nMapping.register(U)\nMapping.__init__(U())",
        "TypeError",
    ),
]

# obj.__dict__: the live attributes of the REPL's own instances and functions; nothing else's.
INSTANCE_DICTS = [
    (
        "class A:\n    def __init__(self, **kw):\n        self.__dict__.update(kw)\n"
        "a = A(x=1, _y=2)\nassert a.x == 1 and a._y == 2 and a.__dict__ == {'x': 1, '_y': 2}",
        None,
    ),
    ("def f():\n    pass\nf.__dict__['x'] = 1\nassert f.x == 1 and getattr(f, '__dict__') == {'x': 1}", None),
    ("class E(Exception):\n    pass\ne = E('x')\ne.code = 3\nassert e.__dict__ == {'code': 3}", None),
    (
        # a library method shadowed on the REPL's own instance: as a def in its class body would
        "import random\nclass R(random.Random):\n    pass\nr = R()\nr.__dict__['_randbelow'] = lambda n: 0\n"
        "assert r.randrange(5) == 0",
        None,
    ),
    ("import json\njson.__dict__", "AttributeError"),
    ("import json\njson.__dict__['loads'] = None", "AttributeError"),
    ("import json\ngetattr(json, '__dict__')", "AttributeError"),
    ("import json\n'{0.__dict__}'.format(json)", "AttributeError"),
    ("'{0.__dict__}'.format(llm_query)", "AttributeError"),
    ("len.__dict__", "AttributeError"),
    ("int.__dict__", "AttributeError"),
    ("type.__dict__", "AttributeError"),
    ("class A:\n    pass\nA.__dict__", "AttributeError"),  # a class's namespace: descriptors, generated methods
    ("import dataclasses\n@dataclasses.dataclass\nclass D:\n    x: int = 0\nD.__dict__", "AttributeError"),
    ("class A:\n    pass\ntype(A()).__dict__", "AttributeError"),
    ("class A:\n    def f(self):\n        return super().__dict__\nA().f()", "AttributeError"),
    ("class A:\n    pass\na = A()\na.__dict__ = {}", "RestrictedCodeError"),
    ("class A:\n    pass\nsetattr(A(), '__dict__', {})", "AttributeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.__dict__", "AttributeError"),
    ("g = (x for x in [1])\ng.__dict__", "AttributeError"),
    ("import sys\nsys.stdout.__dict__", "AttributeError"),
    ("import functools\nfunctools.partial(print).__dict__", "AttributeError"),
    ("import collections\nP = collections.namedtuple('P', 'x')\nP(1).__dict__", "AttributeError"),
    ("class A:\n    def m(self):\n        pass\nA().m.__dict__", "AttributeError"),
]

# `type` is a stand-in object, not the real class: isinstance/issubclass/annotations work, the three-argument
# form and every route to a metaclass stay closed.
TYPE_STANDIN = [
    (
        "assert isinstance(int, type) and not isinstance(1, type) and isinstance(type, type)\n"
        "assert issubclass(type, type) and not issubclass(int, type) and isinstance(1, (type, int))\n"
        "class A:\n    pass\nassert type(A) is type and type(type) is type and type.__class__ is type\n"
        "assert type.__name__ == 'type' and repr(type) == \"<class 'type'>\"",
        None,
    ),
    ("isinstance(1, type) or type('X', (object,), {'__getattribute__': print})", "PermissionError"),
    ("type(type)('X', (), {})", "PermissionError"),
    ("type.__class__('X', (), {})", "PermissionError"),
    ("type[int]('X', (), {})", "TypeError"),  # typing.Type[int]: cannot be instantiated
    ("import typing\ntyping.Type[int]('X', (), {})", "TypeError"),
    ("import typing\ntyping.Type('X', (), {})", "TypeError"),
    ("(type | None)('X', (), {})", "TypeError"),
    ("class M(type):\n    pass", "TypeError"),  # not a class: no metaclass can be derived from it
    ("class M(type(type)):\n    pass", "TypeError"),
    ("super(type, int)", "TypeError"),
    ("import copy\ncopy.copy(type)", "TypeError"),
    ("getattr(type, '__instancecheck__')", "AttributeError"),
    ("type.__call__", "AttributeError"),
    ("vars(type)", "PermissionError"),
    ("issubclass(1, type)", "TypeError"),
    ("import collections\ntype(collections.ChainMap)", "PermissionError"),
    ("'{0.__class__.__class__}'.format(int)", None),
    ("def f(cls: type, other: type[int], t: type | None = None) -> type:\n    return cls\nf(int, int)", None),
]

# e.__cause__ / e.__context__: exceptions, read under the same rules as one the code caught (`obj` guarded,
# `__traceback__` refused), on exceptions only, never written.
EXCEPTION_CHAIN = [
    (
        "try:\n    try:\n        1 / 0\n    except ZeroDivisionError as inner:\n"
        "        raise ValueError('v') from inner\n"
        "except ValueError as e:\n    assert type(e.__cause__) is ZeroDivisionError and e.__context__ is e.__cause__",
        None,
    ),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.__cause__ = None", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.__context__ = None", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    del e.__cause__", "RestrictedCodeError"),
    ("try:\n    1 / 0\nexcept Exception as e:\n    setattr(e, '__cause__', None)", "AttributeError"),
    (
        "try:\n    try:\n        1 / 0\n    except Exception:\n        raise ValueError('v')\n"
        "except ValueError as e:\n    getattr(e.__context__, '__traceback__')",
        "AttributeError",
    ),
    (
        "try:\n    try:\n        llm_query.nothing\n    except AttributeError:\n        raise ValueError('v')\n"
        "except ValueError as e:\n    e.__context__.obj",
        "AttributeError",
    ),
    ("(1).__cause__", "AttributeError"),
    ("getattr(1, '__context__')", "AttributeError"),
    ("class A:\n    pass\nA().__context__", "AttributeError"),
    ("class E(Exception):\n    def f(self):\n        return super().__context__\nE().f()", "AttributeError"),
    ("'{0.__context__.__traceback__}'.format(ValueError())", "AttributeError"),
    (
        "try:\n    try:\n        1 / 0\n    except Exception:\n        raise ValueError('v') from None\n"
        "except ValueError as e:\n    assert e.__suppress_context__ and e.__cause__ is None",
        None,
    ),
    ("e = ValueError('v')\ne.add_note('hint')\nassert e.__notes__ == ['hint']", None),
    ("e = ValueError('v')\ne.__notes__ = []", "RestrictedCodeError"),
    ("e = ValueError('v')\ne.__suppress_context__ = True", "RestrictedCodeError"),
    ("ValueError('v').__notes__", "AttributeError"),  # none added: as in CPython
    ("(1).__notes__", "AttributeError"),
    (
        # Errors raised inside library and sandbox code, each chained: walk every exception reachable through
        # __cause__, __context__, args, .exceptions and public attributes; nothing may be a module, frame, code
        # object, traceback or cell.
        "import json, datetime, statistics, collections, dataclasses, copy, decimal, fractions, re, base64\n"
        "import unicodedata, hashlib, textwrap, string, heapq, itertools, csv, sys, typing\n"
        "tries = [lambda: json.loads('{'), lambda: int('x'), lambda: getattr(llm_query, '_call'),\n"
        "    lambda: '{0.__init__}'.format(1), lambda: datetime.datetime.strptime('x', '%Y'),\n"
        "    lambda: statistics.mean([]), lambda: FINAL_VAR('missing'), lambda: llm_query(1),\n"
        "    lambda: collections.namedtuple('P', '_x'), lambda: dataclasses.replace(1),\n"
        "    lambda: copy.deepcopy(llm_query), lambda: decimal.Decimal('x'), lambda: fractions.Fraction('x'),\n"
        "    lambda: re.compile('('), lambda: next(csv.reader(['\"a'], strict=True)), lambda: sys.exit(),\n"
        "    lambda: base64.b64decode('x'), lambda: unicodedata.lookup('nope'), lambda: hashlib.md5(1),\n"
        "    lambda: textwrap.wrap(1), lambda: type('X', (), {}), lambda: vars(json), lambda: setattr(json, 'x', 1),\n"
        "    lambda: string.Template('$x').substitute({}), lambda: heapq.heappush(1, 1),\n"
        "    lambda: list(itertools.chain(1)),\n"
        "    lambda: globals()['x'], lambda: llm_query_batched('x'), lambda: rlm_query(1), lambda: next(iter([])),\n"
        "    lambda: typing.get_type_hints, lambda: print(1, file=1), lambda: json._x, lambda: {}.popitem()]\n"
        "caught = []\n"
        "for attempt in tries:\n"
        "    try:\n"
        "        try:\n"
        "            attempt()\n"
        "        except BaseException as first:\n"
        "            try:\n"
        "                raise RuntimeError('again') from first\n"
        "            except RuntimeError:\n"
        "                raise LookupError('third')\n"
        "    except BaseException as e:\n"
        "        caught.append(e)\n"
        "seen, found, queue = set(), [], [(e, 0) for e in caught]\n"
        "while queue:\n"
        "    obj, depth = queue.pop()\n"
        "    if id(obj) in seen or depth > 6:\n"
        "        continue\n"
        "    seen.add(id(obj))\n"
        "    text = repr(obj)[:40]\n"
        "    if text.startswith(('<module', '<frame', '<code', '<traceback', '<cell')):\n"
        "        found.append(text)\n"
        "    if isinstance(obj, BaseException):\n"
        "        queue += [(obj.__cause__, depth + 1), (obj.__context__, depth + 1)]\n"
        "        queue += [(a, depth + 1) for a in obj.args]\n"
        "        queue += [(x, depth + 1) for x in getattr(obj, 'exceptions', ())]\n"
        "        for name in dir(obj):\n"
        "            if not name.startswith('_'):\n"
        "                try:\n"
        "                    queue.append((getattr(obj, name), depth + 1))\n"
        "                except Exception:\n"
        "                    pass\n"
        "assert len(caught) == len(tries) and len(seen) > 100 and not found, (len(caught), len(seen), found)",
        None,
    ),
]

CATEGORIES = {
    "dunder_walks": DUNDER_WALKS,
    "module_chains": MODULE_CHAINS,
    "import_tricks": IMPORT_TRICKS,
    "frame_walks": FRAME_WALKS,
    "format_strings": FORMAT_TRICKS,
    "builtins_tampering": BUILTINS_TAMPERING,
    "unicode_identifiers": UNICODE_TRICKS,
    "files_network_processes_environment": FILES_NETWORK_PROCESSES,
    "pickle": PICKLE_TRICKS,
    "cve_style": CVE_STYLE,
    "type_confusion": TYPE_CONFUSION,
    "relaxed_builtins": RELAXED_BUILTINS,
    "standin_modules": STANDIN_MODULES,
    "private_names": PRIVATE_NAMES,
    "type_standin": TYPE_STANDIN,
    "exception_chain": EXCEPTION_CHAIN,
    "class_body_specials": CLASS_BODY_SPECIALS,
    "instance_dicts": INSTANCE_DICTS,
    "special_method_reads": SPECIAL_METHOD_READS,
}


# Resource exhaustion: (code, expected error, whether the sandbox may be restarted).

EXHAUSTION = [
    ("while True:\n    pass", "TimeoutError", False),
    ("import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')", "TimeoutError", False),
    ("pow(3, 10**9)", "TimeoutError", False),
    ("import itertools\nany(itertools.repeat(0))", "TimeoutError", True),  # one C call that never yields
    ("import time\nt = time.time()\nwhile time.time() - t < 100:\n    pass", "TimeoutError", False),
    (
        "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
        "TimeoutError",
        True,
    ),
    ("x = 'a' * 10**11", "MemoryError", False),
    ("hoard = []\nwhile True:\n    hoard.append(bytearray(10**7))", "MemoryError", False),
    # the hoard is kept, so the session stays at its limit: with no room left, the error report of a later
    # deep recursion can itself run out of memory (and did on main, in a direct Sandbox); free it first
    ("del hoard", None, False),
    ("import itertools\nlist(itertools.repeat(1))", "MemoryError", False),
    ("def f():\n    return f()\nf()", "RecursionError", False),
    ("t = ()\nfor i in range(300000):\n    t = (t,)\nhash(t)", "SandboxCrashed", True),  # C recursion: SIGSEGV
    ("import time\ntime.sleep(100)", "TimeoutError", False),  # sleeping counts as compute
    ("import threading", "ImportError", False),
    ("while True:\n    print('flood ' * 100)", "TimeoutError", False),
    ("raise ValueError('v' * 10**7)", "ValueError", False),
    ("llm_query_batched(['p'] * 100000)", "SubcallBudgetExceeded", False),
    # once the budget is spent, refused calls count as compute: the loop ends softly
    (
        "n = 0\nwhile True:\n    try:\n        llm_query('spin')\n    except LLMError:\n        n += 1",
        "TimeoutError",
        False,
    ),
    ("x = " + "-" * 100_000 + "1", "RestrictedCodeError", False),
    ("x = " + "+".join(["1"] * 50_000), "RestrictedCodeError", False),
]
