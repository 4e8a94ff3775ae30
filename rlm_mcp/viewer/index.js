  // -- the index of runs (/trajectories/): newest first, each a link to its page ---------------

  function renderIndex(runs) {
    var root = el("section", { "class": "index" });
    root.appendChild(el("h1", null, "rlm-mcp runs"));
    if (!runs.length) {
      root.appendChild(el("p", { "class": "muted" },
        "No runs yet. Each rlm_query run, and each session driven with repl_exec, gets a page here."));
      return root;
    }
    var table = el("table", { "class": "runs" });
    table.appendChild(el("caption", { "class": "muted" }, runs.length + " most recent, newest first"));
    table.appendChild(el("thead", null, el("tr", null,
      ["started", "status", "question", "answer", "steps", "sub-calls", "cost", ""].map(function (h) {
        return el("th", { scope: "col" }, h);
      }))));
    var body = el("tbody");
    runs.forEach(function (run) { body.appendChild(renderRow(run)); });
    table.appendChild(body);
    root.appendChild(table);
    return root;
  }

  function renderRow(run) {
    var href = "./" + encodeURIComponent(run.id) + (run.link ? "?link=" + encodeURIComponent(run.link) : "");
    var question = run.kind === "run" ? (run.query || "(no question)") : "repl_exec session";
    var answer = run.answer !== null ? run.answer : run.message !== null ? run.message : "–";
    return el("tr", { "class": "run-row", id: "run-" + run.id },
      el("td", { "class": "num when" }, fmt.when(run.created_at)),
      el("td", null, el("span", { "class": "badge " + run.status }, run.status)),
      el("td", { "class": "question" }, el("a", { href: href }, question)),
      el("td", { "class": "answer-preview" + (run.answer === null ? " muted" : "") }, answer),
      el("td", { "class": "num" }, fmt.int(run.steps)),
      el("td", { "class": "num" }, fmt.int(run.sub_calls)),
      el("td", { "class": "num cost" }, run.cost_note || fmt.cost(run.cost, run.unpriced)),
      el("td", null, el("a", { href: href, "aria-label": "open run " + run.id }, "open")));
  }

  app.textContent = "";
  app.appendChild(renderIndex(data.runs));
  app.appendChild(el("footer", null, "rlm-mcp " + data.version + " · page made " + fmt.when(data.generated_at)));
  if (data.runs.some(function (run) { return run.status === "running"; }) && /^https?:$/.test(location.protocol)) {
    app.insertBefore(el("p", { "class": "muted" }, "Some runs are still going; the page reloads every 5 s."),
      app.firstChild);
    setTimeout(function () { location.reload(); }, 5000);
  }
  document.body.setAttribute("data-rendered", "true");
