(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("rlm-data").textContent);
  var app = document.getElementById("app");
  var SVG = "http://www.w3.org/2000/svg";
  var PAGE_ROWS = 40;
  var OPEN_ALL_UP_TO = 8;

  // -- small helpers: every piece of data reaches the page as text, never as markup ----------

  function el(tag, attrs) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (key) {
      if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, String(attrs[key]));
    });
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }

  var fmt = {
    ms: function (ms) {
      if (ms === null || ms === undefined) return "–";
      if (ms < 1000) return Math.round(ms) + " ms";
      var s = ms / 1000;
      if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
      return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    },
    int: function (n) { return (n || 0).toLocaleString("en-US"); },
    usd: function (x) {
      if (x === null || x === undefined) return "unknown";
      if (x === 0) return "$0";
      return "$" + (x < 0.01 ? x.toFixed(5) : x.toFixed(4));
    },
    pct: function (x) {
      if (x === null || x === undefined) return "–";
      return (x * 100).toFixed(x < 0.01 ? 2 : 1) + "%";
    },
    chars: function (n) {
      if (n === null || n === undefined) return "unknown";
      if (n < 10000) return fmt.int(n) + " chars";
      if (n < 1e6) return (n / 1000).toFixed(1) + " k chars";
      return (n / 1e6).toFixed(n < 1e7 ? 2 : 1) + " M chars";
    },
    when: function (unix) { return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }
  };

  // -- a small Python highlighter: comments, strings, numbers, keywords, REPL helpers -----------

  var TOKENS = new RegExp([
    "(#[^\\n]*)",
    "((?:\\b[rRbBuUfF]{1,2})?(?:\"\"\"[\\s\\S]*?(?:\"\"\"|$)|'''[\\s\\S]*?(?:'''|$)|\"(?:\\\\.|[^\"\\\\\\n])*\"?|'(?:\\\\.|[^'\\\\\\n])*'?))",
    "(\\b\\d[\\d_]*(?:\\.\\d+)?(?:[eE][+-]?\\d+)?\\b)",
    "\\b(and|as|assert|async|await|break|class|continue|def|del|elif|else|except|finally|for|from|global|if|" +
      "import|in|is|lambda|nonlocal|not|or|pass|raise|return|try|while|with|yield|None|True|False)\\b",
    "\\b(print|len|range|sum|min|max|sorted|list|dict|set|tuple|str|int|float|enumerate|zip|map|filter|any|all|" +
      "isinstance|llm_query|llm_query_batched|rlm_query|FINAL|FINAL_VAR|SHOW_VARS|context)\\b"
  ].join("|"), "g");
  var TOKEN_CLASSES = [null, "tok-com", "tok-str", "tok-num", "tok-kw", "tok-fn"];

  function highlight(code) {
    var out = document.createDocumentFragment();
    var last = 0;
    var match;
    TOKENS.lastIndex = 0;
    while ((match = TOKENS.exec(code)) !== null) {
      if (match[0] === "") { TOKENS.lastIndex++; continue; }
      if (match.index > last) out.appendChild(document.createTextNode(code.slice(last, match.index)));
      var cls = null;
      for (var g = 1; g < TOKEN_CLASSES.length; g++) if (match[g] !== undefined) { cls = TOKEN_CLASSES[g]; break; }
      out.appendChild(el("span", { "class": cls }, match[0]));
      last = match.index + match[0].length;
    }
    if (last < code.length) out.appendChild(document.createTextNode(code.slice(last)));
    return out;
  }

  // -- the run ------------------------------------------------------------------------------

  function renderRun(run, prefix, top) {
    var root = el("section", { "class": "run", id: prefix });
    if (top) {
      root.appendChild(el("h1", null, run.kind === "run" ? "RLM run " : "Session ", run.id));
      root.appendChild(el("div", null,
        el("span", { "class": "badge " + run.status }, run.status),
        el("span", { "class": "badge" }, run.kind === "run" ? "rlm_query" : "repl_exec session"),
        run.depth > 1 ? el("span", { "class": "badge" }, "depth " + run.depth) : null,
        el("span", { "class": "muted" }, "started " + fmt.when(run.created_at))));
    }
    root.appendChild(renderQA(run, top));
    root.appendChild(renderStats(run));
    if (run.steps.length) {
      root.appendChild(el("h2", null, "Timeline"));
      root.appendChild(renderTimeline(run, prefix));
      root.appendChild(el("h2", null, (run.kind === "run" ? "Iterations" : "Executions") + " (" + run.steps.length + ")"));
      root.appendChild(renderSteps(run, prefix));
    } else {
      root.appendChild(el("p", { "class": "muted" }, "No steps were recorded."));
    }
    return root;
  }

  function renderQA(run, top) {
    var box = el("div", { "class": "panel qa" });
    if (run.query !== null) box.appendChild(el("div", { "class": "question" },
      el("div", { "class": "label" }, "Question"), el("div", { "class": "text" }, run.query)));
    box.appendChild(el("div", { "class": "answer" },
      el("div", { "class": "label" }, "Answer"),
      el("div", { "class": "text", id: top ? "answer" : null }, run.answer === null ? "(no answer)" : run.answer)));
    if (run.message) box.appendChild(el("div", { "class": "message muted" }, run.message));
    var models = [];
    if (run.root_model) models.push("root " + run.root_model);
    if (run.sub_model) models.push("sub-calls " + run.sub_model);
    if (models.length) box.appendChild(el("div", { "class": "muted" }, models.join(" · ")));
    return box;
  }

  function stat(value, label, title) {
    return el("div", { "class": "stat", title: title || null }, el("b", null, value), el("span", null, label));
  }

  function renderStats(run) {
    var u = run.usage, t = run.totals;
    var cost = t.nested ? fmt.usd(t.cost_with_nested) + " with nested" : fmt.usd(t.cost);
    return el("div", { "class": "stats" },
      stat(fmt.int(run.steps.length), run.kind === "run" ? "steps (" + run.iterations + " root turns)" : "executions"),
      stat(fmt.int(run.sub_calls), "sub-calls" + (run.failed ? ", " + run.failed + " failed" : "")),
      t.nested ? stat(fmt.int(t.nested), "nested runs") : null,
      stat(fmt.ms((run.elapsed_s || run.span_s) * 1000), "elapsed"),
      stat(fmt.int(u.root_input_tokens) + " / " + fmt.int(u.root_output_tokens), "root tokens in / out"),
      stat(fmt.int(u.sub_input_tokens) + " / " + fmt.int(u.sub_output_tokens), "sub-call tokens in / out"),
      stat(cost, "estimated cost", "from the price table; unknown when a model has no price"),
      stat(fmt.chars(run.corpus_chars), "corpus"),
      stat(fmt.pct(t.coverage), "of the corpus sent to sub-calls",
        "sum of sub-call prompt sizes over the corpus size (prompts include instructions)"));
  }

  // -- timeline: root turns, code, and every sub-call on lanes that show concurrency ----------

  function packLanes(calls) {
    var ends = [];
    calls.forEach(function (c) {
      var lane = 0;
      while (lane < ends.length && ends[lane] > c.start + 1e-6) lane++;
      ends[lane] = c.end;
      c.lane = lane;
    });
    return ends.length;
  }

  function renderTimeline(run, prefix) {
    var calls = [];
    run.steps.forEach(function (step, si) {
      step.subs.forEach(function (sub, ci) {
        calls.push({ start: sub.t, end: sub.t + sub.ms / 1000, sub: sub, step: si, index: ci });
      });
    });
    calls.sort(function (a, b) { return a.start - b.start; });
    var lanes = packLanes(calls);
    var span = Math.max(run.span_s, 0.001);
    var W = 1000, left = 64, right = 12, plot = W - left - right;
    var laneH = lanes > 40 ? 4 : lanes > 16 ? 6 : 9, gap = lanes > 40 ? 1 : 2;
    var rootY = 16, subsY = rootY + 26, concH = calls.length ? 44 : 0;
    var concY = subsY + lanes * (laneH + gap) + (calls.length ? 14 : 0);
    var H = concY + concH + 24;
    var x = function (t) { return left + (Math.min(Math.max(t, 0), span) / span) * plot; };
    var width = function (a, b) { return Math.max(x(b) - x(a), 1.5); };
    var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "timeline of the run" });

    chart.appendChild(label(4, rootY + 10, "root"));
    run.steps.forEach(function (step, si) {
      var end = step.t + step.ms / 1000;
      if (step.root_ms > 0) {
        var thinkStart = step.t - step.root_ms / 1000;
        chart.appendChild(bar(x(thinkStart), rootY, width(thinkStart, step.t), 14, "bar-root",
          "step " + (step.index + 1) + ": root model " + fmt.ms(step.root_ms)));
      }
      if (step.code !== null) {
        chart.appendChild(bar(x(step.t), rootY, width(step.t, end), 14,
          step.children.length ? "bar-nested" : "bar-code",
          "step " + (step.index + 1) + ": code ran " + fmt.ms(step.ms) +
          (step.children.length ? " (" + step.children.length + " nested run)" : "")));
      }
    });
    if (calls.length) {
      chart.appendChild(label(4, subsY + 8, "sub-calls"));
      calls.forEach(function (c) {
        var r = bar(x(c.start), subsY + c.lane * (laneH + gap), width(c.start, c.end), laneH,
          "bar-sub" + (c.sub.error ? " fail" : ""),
          "step " + (c.step + 1) + ", sub-call " + (c.index + 1) + ": " + fmt.ms(c.sub.ms) + ", " +
          fmt.int(c.sub.chars) + " chars (" + fmt.pct(c.sub.share) + " of the corpus)" +
          (c.sub.error ? ", failed: " + c.sub.error : ""));
        r.setAttribute("data-target", prefix + "-s" + c.step + "-c" + c.index);
        r.addEventListener("click", function () { reveal(prefix, c.step, c.index); });
        chart.appendChild(r);
      });
      var peak = drawConcurrency(chart, calls, x, concY, concH);
      chart.appendChild(label(4, concY + 10, "in flight"));
      chart.appendChild(label(4, concY + 22, "peak " + peak));
    }
    var axisY = H - 16;
    chart.appendChild(svg("line", { x1: left, x2: W - right, y1: axisY, y2: axisY, "class": "axis" }));
    for (var i = 0; i <= 5; i++) {
      var t = (span * i) / 5;
      chart.appendChild(label(x(t) - (i === 5 ? 48 : i === 0 ? 0 : 16), axisY + 12, fmt.ms(t * 1000)));
    }
    var box = el("div", { "class": "panel timeline" }, chart);
    box.appendChild(el("div", { "class": "legend" },
      el("span", null, el("i", { style: "background:var(--root)" }), "root model writing"),
      el("span", null, el("i", { style: "background:var(--code)" }), "code running"),
      el("span", null, el("i", { style: "background:var(--nested)" }), "code with nested runs"),
      el("span", null, el("i", { style: "background:var(--sub)" }), "sub-call (one lane per concurrent call)"),
      el("span", null, el("i", { style: "background:var(--fail)" }), "failed sub-call"),
      el("span", null, lanes ? "up to " + lanes + " lanes; click a sub-call to see it" : "")));
    return box;
  }

  function bar(x0, y, w, h, cls, title) {
    var r = svg("rect", { x: x0.toFixed(2), y: y, width: w.toFixed(2), height: h, rx: 1.5, "class": cls });
    var t = svg("title", null);
    t.textContent = title;
    r.appendChild(t);
    return r;
  }

  function label(x0, y, text) {
    var t = svg("text", { x: x0, y: y });
    t.textContent = text;
    return t;
  }

  function drawConcurrency(chart, calls, x, y, h) {
    var events = [];
    calls.forEach(function (c) { events.push([c.start, 1]); events.push([c.end, -1]); });
    events.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });
    var level = 0, peak = 0;
    events.forEach(function (e) { level += e[1]; peak = Math.max(peak, level); });
    level = 0;
    var base = y + h, scale = peak ? h / peak : 0;
    var d = "M" + x(events[0][0]).toFixed(2) + " " + base;
    events.forEach(function (e) {
      var px = x(e[0]).toFixed(2);
      d += " L" + px + " " + (base - level * scale).toFixed(2);
      level += e[1];
      d += " L" + px + " " + (base - level * scale).toFixed(2);
    });
    d += " Z";
    chart.appendChild(svg("path", { d: d, "class": "conc" }));
    return peak;
  }

  // -- steps --------------------------------------------------------------------------------

  function renderSteps(run, prefix) {
    var list = el("div", { "class": "steps" });
    var details = [];
    var toolbar = el("div", { "class": "toolbar" });
    var openAll = el("button", { type: "button" }, "Expand all");
    var closeAll = el("button", { type: "button" }, "Collapse all");
    var onlyErrors = el("input", { type: "checkbox", id: prefix + "-errors" });
    openAll.addEventListener("click", function () { details.forEach(function (d) { d.open = true; }); });
    closeAll.addEventListener("click", function () { details.forEach(function (d) { d.open = false; }); });
    onlyErrors.addEventListener("change", function () {
      details.forEach(function (d) {
        d.classList.toggle("hidden", onlyErrors.checked && !d.classList.contains("has-error"));
      });
    });
    append(toolbar, [openAll, closeAll, el("label", null, onlyErrors, " only steps with errors")]);
    list.appendChild(toolbar);
    run.steps.forEach(function (step, si) {
      var open = run.steps.length <= OPEN_ALL_UP_TO || si === 0 || si === run.steps.length - 1;
      var d = renderStep(run, step, prefix + "-s" + si, open);
      details.push(d);
      list.appendChild(d);
    });
    return list;
  }

  function renderStep(run, step, id, open) {
    var failed = step.subs.filter(function (s) { return s.error; }).length;
    var d = el("details", { "class": "step", id: id });
    if (step.error || failed) d.classList.add("has-error");
    if (step.final !== null) d.classList.add("is-final");
    d.open = open;
    var timing = step.root_ms ? fmt.ms(step.root_ms) + " root + " + fmt.ms(step.ms) + " code" : fmt.ms(step.ms);
    var tokens = [];
    if (step.root_in || step.root_out) tokens.push("root " + fmt.int(step.root_in) + "→" + fmt.int(step.root_out));
    if (step.sub_in || step.sub_out) tokens.push("sub " + fmt.int(step.sub_in) + "→" + fmt.int(step.sub_out));
    var share = step.subs.reduce(function (a, s) { return a + (s.share || 0); }, 0);
    d.appendChild(el("summary", null,
      el("span", { "class": "step-title" }, "Step " + (step.index + 1)),
      run.kind === "run" ? el("span", { "class": "chip" }, "turn " + (step.turn + 1)) : null,
      el("span", { "class": "chip" }, timing),
      step.sub_count ? el("span", { "class": "chip" }, step.sub_count + " sub-calls" + (failed ? " (" + failed + " failed)" : "") +
        (share ? " · " + fmt.pct(share) + " of the corpus" : "")) : null,
      step.children.length ? el("span", { "class": "chip" }, step.children.length + " nested run(s)") : null,
      tokens.length ? el("span", { "class": "chip" }, "tokens " + tokens.join(", ")) : null,
      el("span", { "class": "chip" }, fmt.usd(step.cost)),
      step.error ? el("span", { "class": "badge failed" }, step.error.type) : null,
      step.final !== null ? el("span", { "class": "badge completed" }, "FINAL") : null));
    var body = el("div", { "class": "step-body" });
    if (step.root_text) body.appendChild(section("Root", el("div", { "class": "root-text" }, step.root_text)));
    if (step.code !== null) {
      var pre = el("pre", { "class": "code" });
      pre.appendChild(highlight(step.code));
      body.appendChild(section("Code", pre));
    }
    if (step.stdout) body.appendChild(section("Output", el("pre", { "class": "out" }, step.stdout)));
    if (step.error) {
      body.appendChild(section("Error", el("pre", { "class": "err" },
        step.error.traceback || step.error.type + ": " + step.error.message)));
    }
    if (step.final !== null) body.appendChild(section("Final answer", el("div", { "class": "final" }, step.final)));
    if (step.notes.length) {
      body.appendChild(section("Notes", el("ul", null, step.notes.map(function (n) { return el("li", null, n); }))));
    }
    if (step.subs.length) body.appendChild(section("Sub-calls", renderSubs(step, id)));
    else if (step.sub_count) body.appendChild(section("Sub-calls", el("p", { "class": "muted" }, step.sub_count +
      " sub-calls (details are left out of this view)")));
    step.children.forEach(function (child, ci) { body.appendChild(renderNested(child, id + "-n" + ci)); });
    d.appendChild(body);
    return d;
  }

  function section(title, content) {
    return el("div", null, el("div", { "class": "section-label" }, title), content);
  }

  function renderSubs(step, id) {
    var table = el("table", { "class": "subs" });
    table.appendChild(el("thead", null, el("tr", null,
      ["#", "start", "latency", "model", "prompt", "share of corpus", "tokens in/out", "cost", "status"].map(
        function (h) { return el("th", null, h); }))));
    var body = el("tbody");
    table.appendChild(body);
    var shown = 0;
    // Bars are scaled to the largest share in the step, so small chunks stay visible; the label is absolute.
    var widest = step.subs.reduce(function (m, s) { return Math.max(m, s.share || 0); }, 0);
    function more(limit) {
      for (; shown < Math.min(limit, step.subs.length); shown++) addRow(body, step.subs[shown], shown, id, widest);
      button.classList.toggle("hidden", shown >= step.subs.length);
      button.textContent = "Show all " + step.subs.length + " sub-calls";
    }
    var button = el("button", { type: "button" });
    button.addEventListener("click", function () { more(Infinity); });
    table.showAll = function () { more(Infinity); };
    more(PAGE_ROWS);
    return el("div", { "class": "subs-wrap" }, table, button);
  }

  function addRow(body, sub, i, id, widest) {
    var share = sub.share === null || !widest ? null : Math.min(sub.share / widest, 1);
    var row = el("tr", { "class": "sub-row" + (sub.error ? " fail" : ""), id: id + "-c" + i },
      el("td", { "class": "num" }, i + 1),
      el("td", { "class": "num" }, "+" + fmt.ms(sub.t * 1000)),
      el("td", { "class": "num" }, fmt.ms(sub.ms)),
      el("td", null, sub.model),
      el("td", { "class": "num" }, fmt.int(sub.chars)),
      el("td", null, share === null ? "–" : el("span", { "class": "share" }, el("i", { style: "width:" + (share * 100).toFixed(1) + "%" })),
        share === null ? null : fmt.pct(sub.share)),
      el("td", { "class": "num" }, fmt.int(sub.in) + " / " + fmt.int(sub.out)),
      el("td", { "class": "num" }, fmt.usd(sub.cost)),
      el("td", null, sub.error ? "failed" : "ok"));
    var detail = el("tr", { "class": "detail hidden" }, el("td", { colspan: 9 },
      el("div", { "class": "section-label" }, "Prompt"), el("pre", null, sub.prompt),
      el("div", { "class": "section-label" }, sub.error ? "Error" : "Response"),
      el("pre", null, sub.error || sub.response || "")));
    row.addEventListener("click", function () { detail.classList.toggle("hidden"); });
    body.appendChild(row);
    body.appendChild(detail);
  }

  function renderNested(child, id) {
    var d = el("details", { "class": "nested", id: id });
    d.appendChild(el("summary", null,
      el("b", null, "Nested run " + child.id), " ",
      el("span", { "class": "badge " + child.status }, child.status),
      el("span", { "class": "badge" }, "depth " + child.depth), " ",
      el("span", { "class": "muted" }, (child.query || "") + " → " + (child.answer === null ? "(no answer)" : child.answer))));
    d.appendChild(el("div", { "class": "nested-body" }, renderRun(child, id + "-run", false)));
    return d;
  }

  function reveal(prefix, stepIndex, callIndex) {
    var step = document.getElementById(prefix + "-s" + stepIndex);
    if (!step) return;
    step.open = true;
    step.classList.remove("hidden");
    var table = step.querySelector("table.subs");
    if (table && table.showAll) table.showAll();
    var row = document.getElementById(prefix + "-s" + stepIndex + "-c" + callIndex);
    if (!row) return;
    row.scrollIntoView({ block: "center" });
    row.classList.add("flash");
    setTimeout(function () { row.classList.remove("flash"); }, 1500);
  }

  // -- page ---------------------------------------------------------------------------------

  app.textContent = "";
  app.appendChild(renderRun(data.run, "r", true));
  app.appendChild(el("footer", null, "rlm-mcp " + data.version + " · page made " + fmt.when(data.generated_at) +
    " · self-contained: it loads nothing from the network"));
  if (data.run.status === "running" && /^https?:$/.test(location.protocol)) {
    // Served by a live server: follow the run until it ends.
    app.insertBefore(el("p", { "class": "muted" }, "This run is still going; the page reloads every 5 s."), app.firstChild);
    setTimeout(function () { location.reload(); }, 5000);
  }
  document.body.setAttribute("data-rendered", "true");
})();
