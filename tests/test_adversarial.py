"""Hostile code through the MCP tools, with canaries planted where an escape would find them.

The server runs with a fake AWS key and a fake token in its environment, a
credentials file in its home directory, a secret file outside and one inside
the allowed roots, a listener on a loopback port, and a second session holding
a marker. Every category of attack runs in its own session; after each snippet
the test checks that no canary shows up in any output, and after each category
that no file appeared outside the sandbox, nothing connected to the listener,
the other session is intact and the hostile session still works.

Each row is ``(code, expected)``: ``expected`` is the error type the snippet
must end with, ``None`` when it must run cleanly, or ``ANY_ERROR``.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import SUB_MODEL, server_env
from helpers import call, call_error
from mcp import Client

from rlm_mcp.fakes.bedrock import ConverseFake

pytestmark = pytest.mark.anyio

ANY_ERROR = "*"
TOKEN = secrets.token_hex(6)
PWNED = f"pwned-{TOKEN}"


@dataclass
class Canaries:
    aws_key_id: str
    aws_secret: str
    api_token: str
    home_credentials: str
    outside_file: str
    inside_file: str
    marker: str
    home: Path
    outside_dir: Path
    port: int
    connections: list[str] = field(default_factory=list)

    def secrets(self) -> dict[str, str]:
        return {
            "AWS key id": self.aws_key_id,
            "AWS secret": self.aws_secret,
            "API token": self.api_token,
            "credentials file": self.home_credentials,
            "secret file outside the roots": self.outside_file,
            "secret file inside the roots": self.inside_file,
            "other session's marker": self.marker,
        }


def _listen(port_holder: list[int], connections: list[str], stop: threading.Event) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        port_holder.append(server.getsockname()[1])
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            connections.append(str(peer))
            conn.close()


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Iterator[Canaries]:
    def unique(kind: str) -> str:
        return f"CANARY-{kind}-{secrets.token_hex(8)}"

    home = tmp_path_factory.mktemp("home")
    outside = tmp_path_factory.mktemp("outside")
    values = {k: unique(k) for k in ("KEYID", "SECRET", "TOKEN", "CREDS", "OUTSIDE", "INSIDE", "MARKER")}
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {values['CREDS']}\n")
    (outside / "secret.txt").write_text(values["OUTSIDE"])
    (corpus_dir / "secret-inside.txt").write_text(values["INSIDE"])
    port: list[int] = []
    connections: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=_listen, args=(port, connections, stop), daemon=True)
    thread.start()
    while not port:
        stop.wait(0.01)
    yield Canaries(
        aws_key_id="AKIA" + values["KEYID"],
        aws_secret=values["SECRET"],
        api_token=values["TOKEN"],
        home_credentials=values["CREDS"],
        outside_file=values["OUTSIDE"],
        inside_file=values["INSIDE"],
        marker=values["MARKER"],
        home=home,
        outside_dir=outside,
        port=port[0],
        connections=connections,
    )
    stop.set()
    thread.join()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path, fake: ConverseFake, canaries: Canaries):
    """The server's environment, canaries included (overrides conftest's ``env`` for this module)."""
    return server_env(
        tmp_path_factory.mktemp("data"),
        corpus_dir,
        fake.url,
        AWS_ACCESS_KEY_ID=canaries.aws_key_id,
        AWS_SECRET_ACCESS_KEY=canaries.aws_secret,
        GITHUB_TOKEN=canaries.api_token,
        HOME=str(canaries.home),
        RLM_WORKER_MEMORY_MB="384",
        RLM_MAX_SUB_CALLS="20",
    )


# -- the attacks ---------------------------------------------------------------------------------

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


# -- checks --------------------------------------------------------------------------------------


def leaked(canaries: Canaries, text: str) -> list[str]:
    return [name for name, value in canaries.secrets().items() if value in text]


def files_outside(canaries: Canaries, corpus_dir: Path, env: dict[str, str]) -> list[Path]:
    roots = [canaries.home, canaries.outside_dir, corpus_dir, Path(env["RLM_DATA_DIR"])]
    found = [p for root in roots for p in root.rglob(f"*{PWNED}*")]
    found += [p for p in (Path("/tmp"), Path.cwd()) for p in p.glob(f"*{PWNED}*")]
    return found


async def victim_session(client: Client, canaries: Canaries) -> str:
    """Another session, holding the marker in its corpus and a variable, with random seeded."""
    sid = (await call(client, "load_context", content=f"victim corpus {canaries.marker}"))["session_id"]
    out = await call(
        client, "repl_exec", session_id=sid, code="import random\nrandom.seed(7)\nmarker = context.split()[-1]"
    )
    assert out["error"] is None, out["error"]
    return sid


async def check_victim(client: Client, sid: str, canaries: Canaries) -> None:
    import random

    expected = random.Random(7).random()
    out = await call(
        client,
        "repl_exec",
        session_id=sid,
        code="import json, random\nprint(marker == context.split()[-1], json.loads('[2]')[0], len('ab'))\n"
        "print(repr(random.random()))",
    )
    assert out["error"] is None, out["error"]
    assert out["stdout"].splitlines() == ["True 2 2", repr(expected)], "the other session was disturbed"


async def run_attacks(client: Client, sid: str, attacks: list[tuple[str, str | None]], canaries: Canaries) -> list[str]:
    problems = []
    for code, expected in attacks:
        out = await call(client, "repl_exec", session_id=sid, code=code)
        text = json.dumps(out)
        if leaks := leaked(canaries, text):
            problems.append(f"{code!r} leaked {leaks}: {text[:500]}")
        error = out["error"]
        got = error["type"] if error else None
        if expected == ANY_ERROR and got is None:
            problems.append(f"{code!r} should have failed; it printed {out['stdout'][:300]!r}")
        elif expected != ANY_ERROR and got != expected:
            problems.append(f"{code!r}: expected {expected}, got {got}: {error and error['message'][:300]}")
        if out["restarted"]:
            problems.append(f"{code!r} restarted the sandbox")
    return problems


@pytest.mark.parametrize("category", sorted(CATEGORIES))
async def test_hostile_code_is_contained(client, category: str, canaries: Canaries, corpus_dir: Path, env) -> None:
    victim = await victim_session(client, canaries)
    loaded = await call(client, "load_context", content="hostile session corpus\nnothing to see\n")
    sid = loaded["session_id"]

    problems = await run_attacks(client, sid, CATEGORIES[category], canaries)
    assert not problems, "\n".join(problems)

    trajectory = await call(client, "get_trajectory", trajectory_id=loaded["trajectory_id"], detail="full")
    assert len(trajectory["steps"]) == len(CATEGORIES[category])
    assert not leaked(canaries, json.dumps(trajectory))
    assert not leaked(canaries, json.dumps(await call(client, "list_sessions")))
    assert files_outside(canaries, corpus_dir, env) == []
    assert canaries.connections == []
    await check_victim(client, victim, canaries)
    after = await call(client, "repl_exec", session_id=sid, code="len(context)")
    assert after["stdout"] == "38\n" and not after["restarted"]


# -- resource exhaustion (one transport: these take seconds each) ------------------------------

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


@pytest.mark.parametrize("transport", ["http"])
async def test_resource_exhaustion_is_contained(client, fake: ConverseFake, canaries: Canaries) -> None:
    victim = await victim_session(client, canaries)
    sid = (await call(client, "load_context", content="hostile session corpus\nnothing to see\n"))["session_id"]
    problems = []
    for code, expected, restarts in EXHAUSTION:
        out = await call(client, "repl_exec", session_id=sid, code=code + "\nkept = 1")
        got = out["error"]["type"] if out["error"] else None
        if got != expected or out["restarted"] != restarts:
            problems.append(f"{code[:60]!r}: expected {expected} (restarted={restarts}), got {got} {out}"[:600])
        if len(out["stdout"]) > 21_000 or len(json.dumps(out)) > 40_000:
            problems.append(f"{code[:60]!r}: {len(json.dumps(out)):,} characters came back")
        if restarts and not any("restarted" in note or "reloaded" in note for note in [out["error"]["message"]]):
            problems.append(f"{code[:60]!r}: the restart was not reported: {out['error']['message']}")
        alive = await call(client, "repl_exec", session_id=sid, code="len(context)")
        if alive["stdout"] != "38\n":
            problems.append(f"after {code[:60]!r} the session answered {alive}")
    assert not problems, "\n".join(problems)
    assert len(fake.requests_for(SUB_MODEL)) <= 20  # the budget held through both floods

    too_big = await call_error(client, "repl_exec", session_id=sid, code="x = 1\n" * 40_000)
    assert "over the limit" in too_big and "split it" in too_big
    final = await call(client, "repl_exec", session_id=sid, code="FINAL('f' * 3_000_000)")
    assert 1_000_000 <= len(final["final"]) <= 1_001_000  # RLM_MAX_FINAL_CHARS-style clip
    await check_victim(client, victim, canaries)
    assert canaries.connections == []
