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
    ("type(llm_query)", "PermissionError"),
    ("vars(llm_query)", "PermissionError"),
    ("llm_query.__dict__", "RestrictedCodeError"),
    ("llm_query._call", "RestrictedCodeError"),
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
    ("globals()", "PermissionError"),
    ("locals()", "PermissionError"),
    ("breakpoint()", "RestrictedCodeError"),
    ("help()", "PermissionError"),
    ("class X:\n    def __getattribute__(self, name):\n        return 1", "RestrictedCodeError"),
    ("class X:\n    __slots__ = ()", "RestrictedCodeError"),
    ("class M(type):\n    pass\nclass X(metaclass=M):\n    pass", "RestrictedCodeError"),
    ("super(type, type).__call__", "RestrictedCodeError"),
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
        ("time", "sleep"),
        ("hashlib", "new"),
        ("pprint", "PrettyPrinter"),
    ]
] + [
    (
        # Walk everything reachable by attribute from every module and builtin; report anything
        # that is a module, frame, code object, traceback or cell.
        "import re, json, math, collections, itertools, functools, statistics, string, textwrap\n"
        "import datetime, difflib, heapq, bisect, random, operator, csv, io, unicodedata, hashlib\n"
        "import base64, html, fractions, decimal, copy, time, pprint\n"
        "roots = [re, json, math, collections, itertools, functools, statistics, string, textwrap,\n"
        "         datetime, difflib, heapq, bisect, random, operator, csv, io, unicodedata, hashlib,\n"
        "         base64, html, fractions, decimal, copy, time, pprint, llm_query, print, FINAL,\n"
        "         len, getattr, isinstance, object, super, property, Exception, LLMError, str, int]\n"
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
        "        for name in dir(obj):\n"
        "            if name.startswith('_') or name in ('format', 'format_map', 'mro'):\n"
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
            "sys",
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
    ("import builtins", "RestrictedCodeError"),
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
    ("try:\n    1 / 0\nexcept Exception as e:\n    c = e.__context__", "RestrictedCodeError"),
    ("import sys\nsys._getframe()", "RestrictedCodeError"),
    ("import sys\nsys.exc_info()", "ImportError"),
    ("def f():\n    return f\nf.__closure__", "RestrictedCodeError"),
    ("import functools\nfunctools.lru_cache(len).__wrapped__", "RestrictedCodeError"),
    ("g = (x for x in [1])\n[getattr(g, n) for n in dir(g) if 'frame' in n or 'code' in n]", "AttributeError"),
]

FORMAT_TRICKS = [
    ("'{0.__class__}'.format(1)", "RestrictedCodeError"),  # CVE-2023-41039
    ("'{x.__init__.__globals__}'.format_map({'x': llm_query})", "RestrictedCodeError"),
    ("getattr('{0.__class__}', 'format')(1)", "AttributeError"),
    ("getattr('', 'form' + 'at_map')", "AttributeError"),
    ("str.format('{0.__class__}', 1)", "RestrictedCodeError"),
    ("f = 'x'.format", "RestrictedCodeError"),
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
    ("import json\nsetattr(json, 'loads', None)", "PermissionError"),
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
    ("().__\uff43lass__", "RestrictedCodeError"),  # fullwidth c: NFKC folds it to __class__
    ("\uff45xec('1')", "RestrictedCodeError"),
    ("g = (x for x in [1])\ng.\uff47i_frame", "RestrictedCodeError"),
    ("'{0}'.\uff46ormat(1)", "RestrictedCodeError"),
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
    ("import itertools\nlist(itertools.repeat(1))", "MemoryError", False),
    ("def f():\n    return f()\nf()", "RecursionError", False),
    ("t = ()\nfor i in range(300000):\n    t = (t,)\nhash(t)", "SandboxCrashed", True),  # C recursion: SIGSEGV
    ("import time\ntime.sleep(100)", "AttributeError", False),
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
