"""The trajectory viewer: a self-contained page, checked in Debian's headless Chromium.

The browser tests skip only when no ``chromium`` is installed (CI's ``.ci/run``
installs it); everything else about the page is checked without a browser too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from big_trajectory import HOSTILE, build, nested
from browser import Chromium, decode_png, find_chromium
from conftest import ROOT_MODEL, SUB_MODEL, HttpServer, connect
from helpers import call

from rlm_mcp.models.pricing import PriceTable
from rlm_mcp.schemas import Step, SubCallRecord, Trajectory
from rlm_mcp.testing.bedrock import Reply, code, scripted
from rlm_mcp.viewer import content_security_policy, render, view_model

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
)
COLORS = {"root": (0x7B, 0x61, 0xFF), "sub": (0x17, 0xA6, 0x73), "fail": (0xD6, 0x45, 0x45)}


@pytest.fixture(scope="module")
def big_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = build()
    child = nested(run)
    path = tmp_path_factory.mktemp("viewer") / "big.html"
    path.write_text(render(run, {child.id: child}, PriceTable()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    assert CHROMIUM is not None
    chromium = Chromium(CHROMIUM)
    yield chromium
    chromium.close()


def test_page_is_self_contained_and_inert(big_page: Path) -> None:
    page = big_page.read_text()
    assert len(re.findall(r"<script\b", page)) == 2  # the data (not executed) and the viewer
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing to fetch
    data = page.split('<script type="application/json" id="rlm-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and HOSTILE not in page  # hostile text is only there escaped
    assert json.loads(data)["run"]["query"].endswith(HOSTILE)
    script = page.rsplit("<script>", 1)[1].rsplit("</script>", 1)[0]
    assert f'content="{content_security_policy(script)}"' in page  # the policy allows exactly this script
    assert "connect-src" not in page and "default-src 'none'" in page


def _center(browser: Chromium, selector: str) -> tuple[int, int]:
    box = browser.evaluate(
        f"(() => {{ const r = [...document.querySelectorAll({json.dumps(selector)})]"
        ".map(e => e.getBoundingClientRect()).sort((a, b) => b.width - a.width)[0];"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    return round(box[0]), round(box[1])


def _near(pixel: tuple[int, int, int], color: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=True))


@needs_chromium
def test_a_50_step_run_with_500_sub_calls_in_chromium(browser: Chromium, big_page: Path, tmp_path: Path) -> None:
    report = browser.open(big_page.as_uri())
    assert report.errors == [], report.errors
    assert report.requests == [big_page.as_uri()]  # nothing else was fetched
    assert browser.evaluate("document.title") == "rlm-mcp trajectory t_bigRun000000000"  # the hostile text stayed text
    assert browser.evaluate("document.getElementById('answer').textContent") == "412"
    assert browser.evaluate("document.querySelectorAll('details.step').length") == 51  # 50 + the nested run's one
    assert browser.evaluate("document.querySelectorAll('#r > .steps > details.step').length") == 50
    assert browser.evaluate("document.querySelectorAll('#r > .timeline rect.bar-sub').length") == 500
    assert browser.evaluate("document.querySelectorAll('#r > .timeline rect.bar-sub.fail').length") == 10
    assert browser.evaluate("[...document.querySelectorAll('#r svg text')].some(t => t.textContent === 'peak 8')")
    assert browser.evaluate("document.querySelector('#r-s3 details.nested summary').textContent").startswith(
        "Nested run t_nestedRun00000000"
    )
    assert browser.evaluate("document.querySelectorAll('#r-s0 pre.code span.tok-kw').length") >= 4
    assert browser.evaluate("document.querySelector('#r-s2 table.subs tbody').rows.length") == 80  # 40 rows + details
    # Clicking a sub-call on the timeline opens its step and shows the row (and all the step's rows).
    browser.evaluate("document.querySelector('rect[data-target=\"r-s7-c45\"]').dispatchEvent(new MouseEvent('click'))")
    assert browser.evaluate("document.getElementById('r-s7').open && !!document.getElementById('r-s7-c45')")

    browser.evaluate("window.scrollTo(0, 0); document.querySelector('.timeline').scrollIntoView(); true")
    shot = browser.screenshot()
    (tmp_path / "viewer.png").write_bytes(shot)
    image = decode_png(shot)
    assert image.width == 1280 and image.height > 600
    for selector, color in [
        ("#r > .timeline rect.bar-root", COLORS["root"]),
        ("#r > .timeline rect.bar-sub:not(.fail)", COLORS["sub"]),
        ("#r > .timeline rect.bar-sub.fail", COLORS["fail"]),
    ]:
        x, y = _center(browser, selector)
        assert 0 <= y < image.height, f"{selector} is off screen"
        assert _near(image.pixel(x, y), color), (selector, image.pixel(x, y))
    distinct = {image.pixel(x, y) for x in range(0, image.width, 37) for y in range(0, image.height, 23)}
    assert len(distinct) > 20  # a drawn page, not a blank one


@needs_chromium
@pytest.mark.anyio
async def test_served_over_http_with_a_nested_run(browser: Chromium, env, fake, http_server) -> None:
    fake.respond = lambda request: (
        scripted(ROOT_MODEL, [code("FINAL(len(context))")])(request)
        if "Question: inner" in request.all_text
        else scripted(ROOT_MODEL, [
            code("answers = llm_query_batched(['a', 'b', 'c'])\nprint(answers)", text="Asking three."),
            code("inner = rlm_query('inner', context=context[:7])\nFINAL(str(inner) + ' ' + answers[0])"),
        ])(request)
    )  # fmt: skip
    async with connect("http", env, http_server) as client:
        loaded = await call(client, "load_context", content="seven c and more")
        sid = loaded["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="outer", max_depth=2)
    assert (out["status"], out["answer"]) == ("completed", "7 A")
    base = http_server.url.removesuffix("/mcp")
    async with httpx2.AsyncClient() as http:
        page = await http.get(f"{base}/trajectories/{out['trajectory_id']}")
        missing = await http.get(f"{base}/trajectories/t_doesNotExist00")
        bad = await http.get(f"{base}/trajectories/not-an-id")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert (missing.status_code, bad.status_code) == (404, 400)

    report = browser.open(f"{base}/trajectories/{out['trajectory_id']}")
    assert report.errors == [], report.errors
    assert browser.evaluate("document.getElementById('answer').textContent") == "7 A"
    assert browser.evaluate("document.querySelectorAll('#r > .timeline rect.bar-sub').length") == 3
    assert browser.evaluate("document.querySelector('#r-s0 .root-text').textContent") == "Asking three."
    nested_answer = browser.evaluate("document.querySelector('#r-s1-n0 .answer .text').textContent")
    assert nested_answer == "7"
    assert "depth 2" in browser.evaluate("document.querySelector('#r-s1-n0 summary').textContent")

    # A session without any repl_exec yet is a page too.
    report = browser.open(f"{base}/trajectories/{loaded['trajectory_id']}")
    assert report.errors == [], report.errors
    assert browser.evaluate("document.querySelector('h1').textContent").startswith("Session ")
    assert browser.evaluate("document.getElementById('answer').textContent") == "(no answer)"


@pytest.mark.anyio
async def test_resources_and_the_guide_prompt(client) -> None:
    sid = (await call(client, "load_context", content="alpha\nbeta\n"))["session_id"]
    await call(client, "repl_exec", session_id=sid, code="print(len(context))")
    sessions = json.loads((await client.read_resource("rlm://sessions")).contents[0].text)
    mine = next(s for s in sessions["sessions"] if s["session_id"] == sid)
    one = json.loads((await client.read_resource(f"rlm://sessions/{sid}")).contents[0].text)
    assert one["trajectory_id"] == mine["trajectory_id"] and one["chars"] == 11
    trajectory = json.loads((await client.read_resource(f"rlm://trajectories/{one['trajectory_id']}")).contents[0].text)
    assert trajectory["steps"][0]["stdout"] == "11\n" and trajectory["corpus_chars"] == 11
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {"rlm://trajectories/{trajectory_id}", "rlm://sessions/{session_id}"} <= templates

    prompt = await client.get_prompt("rlm_guide", {"session_id": sid, "question": "How many lines?"})
    text = prompt.messages[0].content.text
    for words in ("repl_exec", "llm_query_batched", "FINAL(answer)", "a str of 11 characters", "How many lines?"):
        assert words in text
    general = (await client.get_prompt("rlm_guide", {})).messages[0].content.text
    assert "Load the corpus first with load_context" in general
    with pytest.raises(Exception, match="no session"):
        await client.get_prompt("rlm_guide", {"session_id": "s_noSuchSession"})


@needs_chromium
@pytest.mark.anyio
async def test_a_running_run_is_followed(browser: Chromium, env, fake, http_server) -> None:
    fake.respond = scripted(ROOT_MODEL, [code("x = 1", delay_s=0.2), code("FINAL(x)", delay_s=3)])
    async with connect("http", env, http_server) as client:
        sid = (await call(client, "load_context", content="abc"))["session_id"]
        started = await call(client, "rlm_query", session_id=sid, query="slow", wait=False)
        base = http_server.url.removesuffix("/mcp")
        report = browser.open(f"{base}/trajectories/{started['trajectory_id']}")
        assert report.errors == [], report.errors
        assert browser.evaluate("document.querySelector('.badge').textContent") == "running"
        assert "reloads every 5 s" in browser.evaluate("document.getElementById('app').textContent")


# -- what the page counts: calls in flight, corpus sent, costs; keys; the index of runs ---------------------


def peak(intervals: list[tuple[float, float]]) -> int:
    """Calls in flight at most, counted as the page does: at the same instant an end comes before a start."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    level = top = 0
    for _, change in events:
        level += change
        top = max(top, level)
    return top


def test_in_flight_is_counted_from_exact_start_and_end() -> None:
    """One call starts as another ends (concurrency 1): rounding start and length apart made them overlap."""
    origin = 1000.0
    first = SubCallRecord(model="m", started_at=origin + 0.00046, latency_ms=0.06, prompt_chars=1, prompt_preview="a")
    second = SubCallRecord(model="m", started_at=origin + 0.00052, latency_ms=5.0, prompt_chars=1, prompt_preview="b")
    trajectory = Trajectory(
        id="t_inFlight000000", kind="session", session_id="s_x", status="closed", created_at=origin,
        updated_at=origin + 1, steps=[Step(index=0, started_at=origin, elapsed_ms=10, sub_calls=[first, second])],
    )  # fmt: skip
    subs = view_model(trajectory, {}, PriceTable())["steps"][0]["subs"]
    assert peak([(s["t"], s["end"]) for s in subs]) == 1
    drawn_before = [(round(c.started_at - origin, 4), round(c.started_at - origin, 4) + round(c.latency_ms, 1) / 1000)
                    for c in (first, second)]  # fmt: skip
    assert peak(drawn_before) == 2  # what the page used to draw: one more than the configured concurrency


@pytest.fixture(scope="module")
def narrow_server(env: dict[str, str]) -> Iterator[HttpServer]:
    """A server that runs at most three sub-calls at once."""
    server = HttpServer({**env, "RLM_SUBCALL_CONCURRENCY": "3", "RLM_MAX_SUB_CALLS": "500"})
    yield server
    server.stop()


CHUNKED = """
chunks = [context[i:i + 2500] for i in range(0, len(context), 2500)]
listed = llm_query_batched(['List the errors in this part of a log, one per line:\\n' + c for c in chunks])
counted = llm_query_batched(['Count the errors in this part of a log; answer with a number:\\n' + c for c in chunks])
print(len(chunks))
"""


def page_data(page: str) -> dict:
    return json.loads(page.split('<script type="application/json" id="rlm-data">', 1)[1].split("</script>", 1)[0])


@needs_chromium
@pytest.mark.anyio
async def test_a_served_run_counts_what_it_should(browser: Chromium, env, fake, narrow_server) -> None:
    corpus = "".join(f"{i:05d} request served in {i % 97} ms by worker {i % 13}\n" for i in range(1500))
    fake.respond = scripted(
        ROOT_MODEL,
        [code(CHUNKED), code("FINAL(llm_query('Add these counts: ' + ' + '.join(counted)))")],
        sub=lambda request: Reply(text="3", delay_s=0.005),
    )
    async with connect("http", env, narrow_server) as client:
        sid = (await call(client, "load_context", content=corpus))["session_id"]
        out = await call(client, "rlm_query", session_id=sid, query="How many errors?")
    assert out["status"] == "completed"
    chunks = -(-len(corpus) // 2500)
    assert out["sub_calls"] == 2 * chunks + 1
    base = narrow_server.url.removesuffix("/mcp")
    async with httpx2.AsyncClient() as http:
        page = (await http.get(f"{base}/trajectories/{out['trajectory_id']}")).text
    run = page_data(page)["run"]
    subs = [sub for step in run["steps"] for sub in step["subs"]]
    assert peak([(s["t"], s["end"]) for s in subs]) <= 3  # never more in flight than RLM_SUBCALL_CONCURRENCY
    # Corpus text only: every chunk went out twice, with instructions; the corpus was read once, all of it.
    assert run["totals"]["coverage"] == 1.0 and run["totals"]["corpus_sent"] == len(corpus)
    assert run["totals"]["read_chars"] > 2 * len(corpus) and run["totals"]["prompt_ratio"] is None
    assert {s["corpus"] for s in subs[:-1]} <= {2500, len(corpus) % 2500} and subs[-1]["corpus"] == 0
    assert run["totals"]["unpriced"] == [ROOT_MODEL, SUB_MODEL] and run["totals"]["cost"] is None

    report = browser.open(f"{base}/trajectories/{out['trajectory_id']}")
    assert report.errors == [], report.errors
    shown_peak = browser.evaluate(
        "[...document.querySelectorAll('#r svg text')].map(t => t.textContent).find(t => t.startsWith('peak '))"
    )
    assert 1 <= int(shown_peak.split()[1]) <= 3
    stats = browser.evaluate("document.querySelector('.stats').innerText")
    assert "100.0%" in stats and "of the corpus sent to sub-calls" in stats
    assert f"cost unknown (no price for {ROOT_MODEL}, {SUB_MODEL})" in stats
    assert f"cost unknown (no price for {SUB_MODEL})" in browser.evaluate("document.querySelector('#r-s0').innerText")
    # One scale for the run: every full chunk has the same bar, in both batches; the caption says what full means.
    browser.evaluate("document.querySelector('#r-s0 table.subs').showAll(); true")
    widths = browser.evaluate("[...document.querySelectorAll('#r-s0 .share i')].map(i => i.style.width)")
    assert widths.count("100%") == 2 * (len(corpus) // 2500) and len(widths) == 2 * chunks
    scale = f"a full bar is {2500 / len(corpus) * 100:.1f}%"
    assert scale in browser.evaluate("document.querySelector('#r-s0 .scale-note').textContent")

    # Keyboard: j / k anywhere, arrows on a step; the focused step is visibly outlined.
    def key(name: str, code_: str, virtual: int) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            browser.send("Input.dispatchKeyEvent", {"type": kind, "key": name, "code": code_,
                                                     "windowsVirtualKeyCode": virtual})  # fmt: skip

    def focused() -> str | None:
        return browser.evaluate("document.activeElement.closest('details.step')?.id ?? null")

    browser.evaluate("document.activeElement.blur(); window.scrollTo(0, 0); true")
    key("j", "KeyJ", 74)
    assert focused() == "r-s0"
    key("j", "KeyJ", 74)
    assert focused() == "r-s1"
    key("ArrowUp", "ArrowUp", 38)
    assert focused() == "r-s0"
    key("k", "KeyK", 75)
    assert focused() == "r-s0"  # stays on the first
    key("ArrowDown", "ArrowDown", 40)
    assert focused() == "r-s1"
    outline = browser.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid" and browser.evaluate("document.activeElement.matches(':focus-visible')")
    assert browser.evaluate("document.activeElement.getAttribute('aria-keyshortcuts')") == "j k ArrowDown ArrowUp"


@needs_chromium
@pytest.mark.anyio
async def test_the_index_of_runs(browser: Chromium, env, fake, narrow_server) -> None:
    base = narrow_server.url.removesuffix("/mcp")
    ids = []
    async with connect("http", env, narrow_server) as client:
        for question, answer in [("first question?", "one"), ("second <b>question</b>?", "two " * 200)]:
            fake.respond = scripted(ROOT_MODEL, [Reply(text=answer)])
            sid = (await call(client, "load_context", content="some corpus"))["session_id"]
            ids.append((await call(client, "rlm_query", session_id=sid, query=question))["trajectory_id"])
    async with httpx2.AsyncClient() as http:
        index = await http.get(f"{base}/trajectories/")
        bare = await http.get(f"{base}/trajectories", follow_redirects=False)
    assert index.status_code == 200 and "script-src 'sha256-" in index.headers["content-security-policy"]
    assert bare.status_code == 308 and bare.headers["location"] == "/trajectories/"

    report = browser.open(f"{base}/trajectories/")
    assert report.errors == [], report.errors
    rows = browser.evaluate("[...document.querySelectorAll('tr.run-row')].map(r => r.id)")
    assert rows[:2] == [f"run-{ids[1]}", f"run-{ids[0]}"]  # newest first
    newest = browser.evaluate(f"document.getElementById('run-{ids[1]}').innerText")
    assert "second <b>question</b>?" in newest and "completed" in newest  # the markup stayed text
    assert "two two" in newest and "…" in newest  # the answer, previewed
    assert f"cost unknown (no price for {ROOT_MODEL}" in newest
    link = browser.evaluate(f"document.querySelector('#run-{ids[1]} td.question a').href")
    assert link == f"{base}/trajectories/{ids[1]}"
    report = browser.open(link)
    assert report.errors == [] and browser.evaluate("document.getElementById('answer').textContent").startswith("two")
    assert browser.evaluate("new URL(document.querySelector('.back a').href).pathname") == "/trajectories/"
