// Shared by the viewer's scripts (concatenated into one function by rlm_mcp.viewer):
// constants, DOM helpers that only ever insert text, formatting, and the Python highlighter.

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
    // A cost, or why there is none: the models the price table does not know.
    cost: function (x, unpriced) {
      if (x !== null && x !== undefined) return fmt.usd(x);
      return unpriced && unpriced.length ? "cost unknown (no price for " + unpriced.join(", ") + ")" : "cost unknown";
    },
    times: function (x) { return x.toFixed(x < 10 ? 2 : 1) + "×"; },
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
