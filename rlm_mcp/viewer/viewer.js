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
    var total = t.nested ? t.cost_with_nested : t.cost;
    var cost = total === null ? stat("unknown", fmt.cost(null, t.unpriced), "the price table has no price for these models")
      : stat(fmt.usd(total) + (t.nested ? " with nested" : ""), "estimated cost", "from the price table");
    return el("div", { "class": "stats" },
      stat(fmt.int(run.steps.length), run.kind === "run" ? "steps (" + run.iterations + " root turns)" : "executions"),
      stat(fmt.int(run.sub_calls), "sub-calls" + (run.failed ? ", " + run.failed + " failed" : "") +
        (run.cached_sub_calls ? ", " + run.cached_sub_calls + " cached" : ""),
        run.cached_sub_calls ? "cached sub-calls were answered from the sub-call cache: nothing sent, nothing spent" +
          (run.cost_saved !== null ? " (" + fmt.usd(run.cost_saved) + " saved)" : "") : null),
      run.resumes.length ? stat(fmt.int(run.resumes.length), "resumes") : null,
      t.nested ? stat(fmt.int(t.nested), "nested runs") : null,
      stat(fmt.ms((run.elapsed_s || run.span_s) * 1000), "elapsed"),
      stat(fmt.int(u.root_input_tokens) + " / " + fmt.int(u.root_output_tokens), "root tokens in / out"),
      stat(fmt.int(u.sub_input_tokens) + " / " + fmt.int(u.sub_output_tokens), "sub-call tokens in / out"),
      cost,
      stat(fmt.chars(run.corpus_chars), "corpus"),
      coverageStat(run));
  }

  // Corpus text only: what the sandbox found verbatim in the prompts, each character once. Older
  // trajectories have only prompt sizes; those are shown as a ratio, never as a share.
  function coverageStat(run) {
    var t = run.totals;
    if (t.coverage !== null) {
      return stat(fmt.pct(t.coverage), "of the corpus sent to sub-calls",
        fmt.int(t.corpus_sent) + " distinct characters of corpus text found in sub-call prompts, over the corpus " +
        "size; instructions are not counted, text sent twice counts once, reworded text is not found");
    }
    if (t.prompt_ratio !== null) {
      return stat(fmt.times(t.prompt_ratio), "the corpus size in sub-call prompts",
        "prompt sizes over the corpus size, instructions and repeats included: this trajectory was recorded " +
        "before corpus text was told apart");
    }
    return stat("–", "of the corpus sent to sub-calls", "no sub-calls");
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
    append(toolbar, [openAll, closeAll, el("label", null, onlyErrors, " only steps with errors"),
      el("span", { "class": "muted keys" }, "keys: j / k or \u2193 / \u2191 move between steps, Enter opens one")]);
    list.appendChild(toolbar);
    run.steps.forEach(function (step, si) {
      run.resumes.forEach(function (r) { if (r.after_step === si) list.appendChild(renderResume(r)); });
      var open = run.steps.length <= OPEN_ALL_UP_TO || si === 0 || si === run.steps.length - 1;
      var d = renderStep(run, step, prefix + "-s" + si, open);
      details.push(d);
      list.appendChild(d);
    });
    run.resumes.forEach(function (r) { if (r.after_step >= run.steps.length) list.appendChild(renderResume(r)); });
    return list;
  }

  function renderResume(r) {
    var box = el("div", { "class": "panel resume" },
      el("b", null, "Resumed "), el("span", { "class": "muted" }, fmt.when(r.at)), " after ",
      el("span", { "class": "badge " + r.from_status }, r.from_status),
      r.from_message ? el("span", { "class": "muted" }, " " + r.from_message) : null);
    if (r.query) box.appendChild(el("div", null, "Asked: " + r.query));
    box.appendChild(el("div", null, "Variables restored" +
      (r.snapshot_step === null ? ": none had been saved" : " (as after step " + (r.snapshot_step + 1) + "): " +
        (r.restored.length ? r.restored.join(", ") : "none"))));
    if (r.not_restored.length) {
      box.appendChild(el("div", { "class": "muted" }, "Not restored: " + r.not_restored.map(function (n) {
        return n.name + " (" + n.reason + ")";
      }).join("; ")));
    }
    return box;
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
    d.appendChild(el("summary", { "aria-keyshortcuts": "j k ArrowDown ArrowUp" },
      el("span", { "class": "step-title" }, "Step " + (step.index + 1)),
      run.kind === "run" ? el("span", { "class": "chip" }, "turn " + (step.turn + 1)) : null,
      el("span", { "class": "chip" }, timing),
      step.sub_count ? el("span", { "class": "chip" }, step.sub_count + " sub-calls" + (failed ? " (" + failed + " failed)" : "") +
        (step.cached ? " (" + step.cached + " cached)" : "") +
        (step.share ? " · " + fmt.pct(step.share) + " of the corpus" : "")) : null,
      step.children.length ? el("span", { "class": "chip" }, step.children.length + " nested run(s)") : null,
      tokens.length ? el("span", { "class": "chip" }, "tokens " + tokens.join(", ")) : null,
      el("span", { "class": "chip" }, fmt.cost(step.cost, step.unpriced)),
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
    if (step.subs.length) body.appendChild(section("Sub-calls", renderSubs(step, id, run.totals.share_scale)));
    else if (step.sub_count) body.appendChild(section("Sub-calls", el("p", { "class": "muted" }, step.sub_count +
      " sub-calls (details are left out of this view)")));
    step.children.forEach(function (child, ci) { body.appendChild(renderNested(child, id + "-n" + ci)); });
    d.appendChild(body);
    return d;
  }

  function section(title, content) {
    return el("div", null, el("div", { "class": "section-label" }, title), content);
  }

  function renderSubs(step, id, scale) {
    var table = el("table", { "class": "subs" });
    table.appendChild(el("thead", null, el("tr", null,
      ["#", "start", "latency", "model", "prompt", "share of corpus", "tokens in/out", "cost", "status"].map(
        function (h) { return el("th", null, h); }))));
    var body = el("tbody");
    table.appendChild(body);
    var shown = 0;
    // One scale for the whole run (the largest share of any sub-call is a full bar), so bars compare across steps.
    function more(limit) {
      for (; shown < Math.min(limit, step.subs.length); shown++) addRow(body, step.subs[shown], shown, id, scale);
      button.classList.toggle("hidden", shown >= step.subs.length);
      button.textContent = "Show all " + step.subs.length + " sub-calls";
    }
    var button = el("button", { type: "button" });
    button.addEventListener("click", function () { more(Infinity); });
    table.showAll = function () { more(Infinity); };
    more(PAGE_ROWS);
    var caption = scale ? "Share of corpus: corpus text in the prompt over the corpus size. Bars share one scale " +
      "for the whole run: a full bar is " + fmt.pct(scale) + "." : null;
    return el("div", { "class": "subs-wrap" }, caption ? el("p", { "class": "muted scale-note" }, caption) : null,
      table, button);
  }

  function addRow(body, sub, i, id, scale) {
    var share = sub.share === null || !scale ? null : Math.min(sub.share / scale, 1);
    var row = el("tr", { "class": "sub-row" + (sub.error ? " fail" : ""), id: id + "-c" + i },
      el("td", { "class": "num" }, i + 1),
      el("td", { "class": "num" }, "+" + fmt.ms(sub.t * 1000)),
      el("td", { "class": "num" }, fmt.ms(sub.ms)),
      el("td", null, sub.model),
      el("td", { "class": "num" }, fmt.int(sub.chars)),
      el("td", null, share === null ? "–" : el("span", { "class": "share" }, el("i", { style: "width:" + (share * 100).toFixed(1) + "%" })),
        share === null ? null : fmt.pct(sub.share)),
      el("td", { "class": "num" }, fmt.int(sub.in) + " / " + fmt.int(sub.out)),
      el("td", { "class": "num" }, fmt.cost(sub.cost, sub.unpriced)),
      el("td", null, sub.error ? "failed" : sub.cached ? "cached" : "ok"));
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

  // -- keyboard: j / k (anywhere) and the arrow keys (on a step) move between visible steps ----------

  function visibleSteps() {
    return Array.prototype.filter.call(document.querySelectorAll("details.step > summary"), function (summary) {
      return summary.getClientRects().length > 0;  // not inside a closed step or a hidden one
    });
  }

  function moveBetweenSteps(delta) {
    var steps = visibleSteps();
    if (!steps.length) return;
    var at = steps.indexOf(document.activeElement);
    var next = at < 0 ? (delta > 0 ? 0 : steps.length - 1) : Math.min(Math.max(at + delta, 0), steps.length - 1);
    steps[next].focus();
    steps[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) return;
    var target = event.target;
    var tag = target && target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable)) return;
    var onStep = !!(target && target.matches && target.matches("details.step > summary"));
    if (event.key === "j" || (onStep && event.key === "ArrowDown")) {
      moveBetweenSteps(1);
      event.preventDefault();
    } else if (event.key === "k" || (onStep && event.key === "ArrowUp")) {
      moveBetweenSteps(-1);
      event.preventDefault();
    }
  });

  // -- page ---------------------------------------------------------------------------------

  app.textContent = "";
  if (/^https?:$/.test(location.protocol)) {  // served by rlm-mcp: the index of runs is next door
    app.appendChild(el("p", { "class": "back" }, el("a", { href: "./" }, "\u2190 all runs")));
  }
  app.appendChild(renderRun(data.run, "r", true));
  app.appendChild(el("footer", null, "rlm-mcp " + data.version + " · page made " + fmt.when(data.generated_at) +
    " · self-contained: it loads nothing from the network"));
  if (data.run.status === "running" && /^https?:$/.test(location.protocol)) {
    // Served by a live server: follow the run until it ends.
    app.insertBefore(el("p", { "class": "muted" }, "This run is still going; the page reloads every 5 s."), app.firstChild);
    setTimeout(function () { location.reload(); }, 5000);
  }
  document.body.setAttribute("data-rendered", "true");
