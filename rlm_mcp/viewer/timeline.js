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
        // End as recorded (never start + rounded length), so back-to-back calls never seem to overlap.
        var end = sub.end === undefined ? sub.t + sub.ms / 1000 : sub.end;
        calls.push({ start: sub.t, end: end, sub: sub, step: si, index: ci });
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
          fmt.int(c.sub.chars) + " chars" + (c.sub.share === null ? "" : " (" + fmt.pct(c.sub.share) + " of the corpus)") +
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
