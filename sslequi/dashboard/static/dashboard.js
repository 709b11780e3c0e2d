/* sslequi dashboard: leaderboard, trade-off plot, training curves, provenance.
 *
 * Reads the payload in <script id="dashboard-data"> (sslequi/dashboard/data.py). With
 * window.DASHBOARD_LIVE ({url, interval_ms}) it polls the payload and re-renders when its
 * version changes (sslequi-dashboard --serve). Opened with #selftest it sorts and filters
 * its own leaderboard and writes the outcome into #selftest (data-outcome pass|fail).
 */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
  var PARTS = ["full", "equivariant", "invariant"];
  var R2 = {
    global: ["r2_global"],
    per_component: ["r2_per_component"],
    canonical: ["r2_global_canonical", "r2_per_component_canonical"],
  };
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  var state = {
    split: "val", part: "auto", dataset: "all", protocol: "all", r2: "global",
    metrics: "headline", sort: null, sortDir: -1, curve: null, tradeX: null, tradeY: null,
    numbersRun: null,
  };

  // ------------------------------------------------------------------ helpers

  function el(tag, attrs) {
    var node = document.createElement(tag);
    var key;
    for (key in attrs || {}) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "html") node.innerHTML = attrs[key];
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), attrs[key]);
      else if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, attrs[key]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (Math.abs(value) >= 1e4) return value.toExponential(2);
    return value.toFixed(3);
  }

  function byId(list) {
    var out = {};
    list.forEach(function (item) { out[item.id] = item; });
    return out;
  }

  function colour(index) {
    if (index < PALETTE.length) return PALETTE[index];
    return "hsl(" + ((index * 137.5) % 360).toFixed(0) + ",60%,45%)";
  }

  function groupColour(groupId) {
    var index = DATA.groups.findIndex(function (g) { return g.id === groupId; });
    return colour(Math.max(0, index));
  }

  function headlineLabel(probe, metric) {
    for (var i = 0; i < DATA.headline.length; i++) {
      if (DATA.headline[i][0] === probe && DATA.headline[i][1] === metric) return DATA.headline[i][2];
    }
    return null;
  }

  function isR2(metric) { return metric.indexOf("r2_") === 0; }

  function r2Allowed(metric) {
    if (!isR2(metric) || state.r2 === "all") return true;
    return R2[state.r2].indexOf(metric) >= 0;
  }

  function headlineRank(probe, metric) {
    for (var i = 0; i < DATA.headline.length; i++) {
      var item = DATA.headline[i];
      if (item[0] !== probe) continue;
      if (item[1] === metric || (isR2(metric) && isR2(item[1]))) return i;
    }
    return -1;
  }

  function columnKey(cell) {
    return [cell.probe, cell.part, cell.metric, cell.split, cell.protocol].join("|");
  }

  function familyLabel(protocol) {
    var family = DATA.protocol_family[protocol];
    return DATA.family_labels[family] || "#" + protocol;
  }

  function protocolText(index) {
    var protocol = DATA.protocols[index] || {};
    return Object.keys(protocol).sort().map(function (k) { return k + "=" + protocol[k]; }).join("; ");
  }

  // ------------------------------------------------------------------ leaderboard

  function visibleCells() {
    var cells = DATA.cells.filter(function (c) {
      return c.split === state.split &&
        (state.dataset === "all" || c.dataset === state.dataset) &&
        (state.protocol === "all" || String(c.family) === state.protocol) &&
        r2Allowed(c.metric) &&
        (state.metrics === "all" || headlineRank(c.probe, c.metric) >= 0);
    });
    if (state.part === "all") return cells;
    if (state.part !== "auto") return cells.filter(function (c) { return c.part === state.part; });
    var best = {};  // (probe, metric, split, probe protocol) -> first available part
    cells.forEach(function (c) {
      var key = [c.probe, c.metric, c.split, c.family].join("|");
      var rank = PARTS.indexOf(c.part);
      if (!(key in best) || rank < best[key]) best[key] = rank;
    });
    return cells.filter(function (c) {
      return PARTS.indexOf(c.part) === best[[c.probe, c.metric, c.split, c.family].join("|")];
    });
  }

  function columnsOf(cells) {
    var columns = {};
    cells.forEach(function (c) {
      var key = columnKey(c);
      if (!(key in columns)) {
        columns[key] = { key: key, probe: c.probe, part: c.part, metric: c.metric, split: c.split,
          protocol: c.protocol, dataset: c.dataset };
      }
    });
    var list = Object.keys(columns).map(function (k) { return columns[k]; });
    var count = {};
    list.forEach(function (c) {
      var family = [c.probe, c.part, c.metric].join("|");
      count[family] = (count[family] || 0) + 1;
    });
    list.forEach(function (c) {
      var label = headlineLabel(c.probe, c.metric) || (c.probe + " " + c.metric);
      if (c.part !== "full") label += " (" + c.part + ")";
      if (count[[c.probe, c.part, c.metric].join("|")] > 1) {
        label += " " + familyLabel(c.protocol).replace(c.probe, "").trim();
      }
      c.label = label;
    });
    list.sort(function (a, b) {
      var ra = headlineRank(a.probe, a.metric), rb = headlineRank(b.probe, b.metric);
      ra = ra < 0 ? 999 : ra; rb = rb < 0 ? 999 : rb;
      if (ra !== rb) return ra - rb;
      return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    });
    return list;
  }

  function filtersActive() { return state.dataset !== "all" || state.protocol !== "all"; }

  function renderLeaderboard() {
    var cells = visibleCells();
    var columns = columnsOf(cells);
    var lookup = {};
    cells.forEach(function (c) { lookup[c.group + "#" + columnKey(c)] = c; });
    var groups = DATA.groups.filter(function (g) {
      if (!filtersActive()) return true;
      return columns.some(function (col) { return (g.id + "#" + col.key) in lookup; });
    });
    if (state.sort) {
      groups.sort(function (a, b) {
        if (state.sort === "group") return state.sortDir * (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);
        var ca = lookup[a.id + "#" + state.sort], cb = lookup[b.id + "#" + state.sort];
        if (!ca && !cb) return 0;
        if (!ca) return 1;
        if (!cb) return -1;
        return state.sortDir * (ca.mean - cb.mean);
      });
    }
    var table = document.getElementById("leaderboard");
    table.innerHTML = "";
    var arrow = function (key) { return state.sort === key ? (state.sortDir > 0 ? " ▲" : " ▼") : ""; };
    var head = el("tr", null,
      el("th", { "data-col": "group", class: "sortable", onclick: function () { sortBy("group"); } },
        "group" + arrow("group")),
      el("th", null, "runs"));
    columns.forEach(function (col) {
      head.appendChild(el("th", {
        "data-col": col.key, class: "sortable", title: protocolText(col.protocol),
        onclick: function () { sortBy(col.key); },
      }, col.label + arrow(col.key)));
    });
    table.appendChild(el("thead", null, head));
    var body = el("tbody");
    groups.forEach(function (g) {
      var row = el("tr", { "data-group": g.id },
        el("td", { class: "group", title: g.runs.length + " runs; seeds " + g.seeds.join(", ") },
          el("span", { class: "swatch", style: "background:" + groupColour(g.id) }), g.label),
        el("td", { class: "num" }, String(g.runs.length)));
      columns.forEach(function (col) {
        var c = lookup[g.id + "#" + col.key];
        if (!c) { row.appendChild(el("td", { class: "missing", "data-col": col.key }, "–")); return; }
        var runs = c.runs.map(function (id, i) {
          var run = RUNS[id];
          return (run ? run.label : id) + ": " + fmt(c.values[i]);
        }).join("\n");
        row.appendChild(el("td", {
          class: "num", "data-col": col.key, "data-value": String(c.mean),
          "data-dataset": c.dataset, "data-protocol": String(c.family), "data-metric": c.metric,
          title: runs + "\n\nprotocol: " + protocolText(c.protocol),
        },
          el("span", { class: "value" }, fmt(c.mean) + (c.std === null ? "" : " ± " + fmt(c.std))),
          el("span", { class: "n" }, " n=" + c.n),
          el("span", { class: "floor" }, c.floor === null ? "" : " floor " + fmt(c.floor))));
      });
      body.appendChild(row);
    });
    table.appendChild(body);
    document.getElementById("leaderboard-note").textContent =
      groups.length + " of " + DATA.groups.length + " groups, " + columns.length + " columns. " +
      "A group is the runs whose configs differ only in seed; a cell is mean ± std over its " +
      "runs under one protocol (hover for each run and the protocol); floor: the constant " +
      "predictor's score (chance for accuracies) on the same split.";
  }

  function sortBy(key) {
    if (state.sort === key) state.sortDir = -state.sortDir;
    else { state.sort = key; state.sortDir = key === "group" ? 1 : -1; }
    renderLeaderboard();
  }

  function options(select, values, current) {
    select.innerHTML = "";
    values.forEach(function (v) {
      select.appendChild(el("option", { value: v[0] }, v[1]));
    });
    select.value = current;
    if (select.value !== current && values.length) {
      select.value = values[0][0];
    }
    return select.value;
  }

  function renderFilters() {
    var splits = unique(DATA.cells.map(function (c) { return c.split; }));
    if (splits.indexOf(state.split) < 0 && splits.length) state.split = splits.indexOf("val") >= 0 ? "val" : splits[0];
    var datasets = unique(DATA.cells.map(function (c) { return c.dataset; }));
    var families = unique(DATA.cells.map(function (c) { return c.family; })).sort(function (a, b) { return a - b; });
    var specs = [
      ["split", "split", splits.map(function (s) { return [s, s]; })],
      ["dataset", "dataset", [["all", "all datasets"]].concat(datasets.map(function (d) { return [d, d]; }))],
      ["protocol", "probe protocol", [["all", "all protocols"]].concat(families.map(function (f) {
        return [String(f), DATA.family_labels[f] || "#" + f];
      }))],
      ["r2", "R² definition", [["global", "global (SIE)"], ["per_component", "per component (sklearn)"],
        ["canonical", "canonical (w ≥ 0)"], ["all", "all"]]],
      ["part", "part", [["auto", "full (else its part)"], ["full", "full"], ["invariant", "invariant"],
        ["equivariant", "equivariant"], ["all", "all parts"]]],
      ["metrics", "metrics", [["headline", "headline"], ["all", "all"]]],
    ];
    var box = document.getElementById("filters");
    box.innerHTML = "";
    specs.forEach(function (spec) {
      var select = el("select", { id: "filter-" + spec[0], "data-filter": spec[0] });
      state[spec[0]] = options(select, spec[2], state[spec[0]]);
      select.addEventListener("change", function () {
        state[spec[0]] = select.value;
        renderLeaderboard();
        renderTradeoff();
      });
      box.appendChild(el("label", null, spec[1] + " ", select));
    });
    box.appendChild(el("button", { id: "filter-reset", type: "button", onclick: resetFilters }, "reset"));
  }

  function resetFilters() {
    state.dataset = "all"; state.protocol = "all"; state.r2 = "global"; state.part = "auto";
    state.metrics = "headline"; state.sort = null;
    renderFilters();
    renderLeaderboard();
    renderTradeoff();
  }

  function unique(values) {
    var seen = [];
    values.forEach(function (v) { if (seen.indexOf(v) < 0) seen.push(v); });
    return seen;
  }

  // ------------------------------------------------------------------ plots

  function tagTraces(gd) {
    // Each drawn trace's <g> gets the run (or group) it shows: tests count marks per run.
    gd.querySelectorAll("g.trace").forEach(function (g) {
      var datum = g.__data__;
      var trace = datum && datum[0] && datum[0].trace;
      if (trace && trace.meta !== undefined && trace.meta !== null) g.setAttribute("data-run", String(trace.meta));
    });
  }

  function plot(id, traces, layout) {
    var gd = document.getElementById(id);
    var config = { responsive: true, displaylogo: false };
    return Plotly.react(gd, traces, layout, config).then(function () { tagTraces(gd); });
  }

  function tradeoffColumns() {
    var cells = DATA.cells.filter(function (c) {
      return c.split === state.split &&
        (state.dataset === "all" || c.dataset === state.dataset) &&
        (state.protocol === "all" || String(c.family) === state.protocol);
    });
    var columns = columnsOf(cells);
    var xs = columns.filter(function (c) { return c.probe === "rotation" && isR2(c.metric) && r2Allowed(c.metric); });
    var ys = columns.filter(function (c) { return c.probe === "linear" && c.metric === "top1"; });
    var prefer = function (list) {
      var sorted = list.slice().sort(function (a, b) { return PARTS.indexOf(a.part) - PARTS.indexOf(b.part); });
      return sorted;
    };
    return { xs: prefer(xs), ys: prefer(ys), cells: cells };
  }

  function renderTradeoff() {
    var found = tradeoffColumns();
    var controls = document.getElementById("tradeoff-controls");
    controls.innerHTML = "";
    var note = document.getElementById("tradeoff-note");
    if (!found.xs.length || !found.ys.length) {
      note.textContent = "Needs linear top-1 and rotation R² numbers on the " + state.split +
        " split (sslequi-eval probes=[linear,rotation]).";
      Plotly.purge(document.getElementById("tradeoff"));
      return Promise.resolve();
    }
    var pick = function (name, list, current) {
      var select = el("select", { id: "tradeoff-" + name });
      var value = options(select, list.map(function (c) { return [c.key, c.label]; }), current || list[0].key);
      select.addEventListener("change", function () { state["trade" + name.toUpperCase()] = select.value; renderTradeoff(); });
      controls.appendChild(el("label", null, name + " ", select));
      return value;
    };
    state.tradeX = pick("x", found.xs, state.tradeX);
    state.tradeY = pick("y", found.ys, state.tradeY);
    var xcol = found.xs.filter(function (c) { return c.key === state.tradeX; })[0];
    var ycol = found.ys.filter(function (c) { return c.key === state.tradeY; })[0];
    var byGroup = function (col) {
      var out = {};
      found.cells.forEach(function (c) { if (columnKey(c) === col.key) out[c.group] = c; });
      return out;
    };
    var xcells = byGroup(xcol), ycells = byGroup(ycol);
    var traces = [], missing = [], xfloors = [], yfloors = [];
    DATA.groups.forEach(function (g) {
      var cx = xcells[g.id], cy = ycells[g.id];
      if (!cx || !cy) { g.runs.forEach(function (id) { missing.push(RUNS[id].label); }); return; }
      if (cx.floor !== null) xfloors.push(cx.floor);
      if (cy.floor !== null) yfloors.push(cy.floor);
      var first = true;
      g.runs.forEach(function (id) {
        var ix = cx.runs.indexOf(id), iy = cy.runs.indexOf(id);
        if (ix < 0 || iy < 0) { missing.push(RUNS[id].label); return; }
        traces.push({
          type: "scatter", mode: "markers", x: [cx.values[ix]], y: [cy.values[iy]],
          name: RUNS[id].label, legendgroup: g.id, showlegend: false, meta: id,
          marker: { color: groupColour(g.id), size: 8, opacity: 0.55 },
          hovertemplate: RUNS[id].label + "<br>x %{x:.3f}<br>y %{y:.3f}<extra>" + g.label + "</extra>",
        });
        first = false;
      });
      if (first) return;
      traces.push({
        type: "scatter", mode: "markers", x: [cx.mean], y: [cy.mean], name: g.label + " (mean)",
        legendgroup: g.id, meta: "group:" + g.id,
        marker: { color: groupColour(g.id), size: 14, symbol: "diamond", line: { color: "black", width: 1 } },
        error_x: { type: "data", array: [cx.std || 0], visible: cx.std !== null, color: groupColour(g.id) },
        error_y: { type: "data", array: [cy.std || 0], visible: cy.std !== null, color: groupColour(g.id) },
      });
    });
    var shapes = [], annotations = [];
    var mean = function (list) { return list.reduce(function (a, b) { return a + b; }, 0) / list.length; };
    if (xfloors.length) {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: mean(xfloors), x1: mean(xfloors), y0: 0, y1: 1,
        line: { dash: "dash", color: "#444", width: 1 } });
      annotations.push({ xref: "x", yref: "paper", x: mean(xfloors), y: 1, text: "floor", showarrow: false,
        yanchor: "bottom", font: { size: 10 } });
    }
    if (yfloors.length) {
      shapes.push({ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: mean(yfloors), y1: mean(yfloors),
        line: { dash: "dot", color: "#444", width: 1 } });
      annotations.push({ xref: "paper", yref: "y", x: 1, y: mean(yfloors), text: "chance", showarrow: false,
        xanchor: "right", yanchor: "bottom", font: { size: 10 } });
    }
    note.textContent = "x: " + xcol.label + " (" + xcol.part + "), " + familyLabel(xcol.protocol) + ". y: " +
      ycol.label + " (" + ycol.part + "), " + familyLabel(ycol.protocol) + ". Small dots: runs; diamonds: " +
      "group means ± std; dashed: the constant predictor's R² (floor), dotted: chance." +
      (missing.length ? " Not plotted (no number under these protocols): " + missing.join(", ") + "." : "");
    note.setAttribute("title", "x: " + protocolText(xcol.protocol) + "\ny: " + protocolText(ycol.protocol));
    return plot("tradeoff", traces, {
      height: 440, margin: { t: 30, r: 20, b: 50, l: 60 },
      xaxis: { title: { text: xcol.label + " (equivariance)" }, zeroline: false },
      yaxis: { title: { text: ycol.label + " (invariance)" }, zeroline: false },
      shapes: shapes, annotations: annotations, legend: { orientation: "h", y: -0.2 },
    });
  }

  function renderCurves() {
    var keys = DATA.curves.keys;
    var controls = document.getElementById("curves-controls");
    controls.innerHTML = "";
    if (!keys.length) {
      document.getElementById("curves-note").textContent = "No metrics.jsonl records yet.";
      Plotly.purge(document.getElementById("curves"));
      return Promise.resolve();
    }
    if (keys.indexOf(state.curve) < 0) state.curve = keys.indexOf("loss") >= 0 ? "loss" : keys[0];
    var select = el("select", { id: "curves-key" });
    options(select, keys.map(function (k) { return [k, k]; }), state.curve);
    select.addEventListener("change", function () { state.curve = select.value; renderCurves(); });
    controls.appendChild(el("label", null, "metric ", select));
    var traces = [];
    DATA.groups.forEach(function (g) {
      var shown = false;
      g.runs.forEach(function (id) {
        var curve = DATA.curves.runs[id] || {};
        if (!curve.step || !curve[state.curve]) return;
        traces.push({
          type: "scatter", mode: "lines+markers", x: curve.step, y: curve[state.curve],
          name: g.label, legendgroup: g.id, showlegend: !shown, meta: id,
          line: { color: groupColour(g.id), width: 1.5 }, marker: { size: 3 },
          hovertemplate: RUNS[id].label + "<br>step %{x}<br>%{y:.4g}<extra></extra>",
        });
        shown = true;
      });
    });
    document.getElementById("curves-note").textContent =
      "From each run's metrics.jsonl (at most 200 points a run); one line per run, coloured by group.";
    return plot("curves", traces, {
      height: 400, margin: { t: 20, r: 20, b: 50, l: 60 },
      xaxis: { title: { text: "step" } }, yaxis: { title: { text: state.curve } },
      legend: { orientation: "h", y: -0.2 },
    });
  }

  // ------------------------------------------------------------------ provenance

  function renderRuns() {
    var table = document.getElementById("runs");
    table.innerHTML = "";
    var columns = ["run", "group", "state", "step", "eval", "method", "seed", "experiment", "wandb id",
      "attempts", "code", "config differences"];
    var head = el("tr");
    columns.forEach(function (c) { head.appendChild(el("th", null, c)); });
    table.appendChild(el("thead", null, head));
    var body = el("tbody");
    DATA.runs.forEach(function (run) {
      var group = GROUPS[run.group];
      var diff = Object.keys(run.diff).map(function (k) { return k + "=" + run.diff[k]; }).join(", ");
      body.appendChild(el("tr", { "data-run": run.id },
        el("td", { title: run.dir }, run.label),
        el("td", null, el("span", { class: "swatch", style: "background:" + groupColour(run.group) }),
          group ? group.label : "-"),
        el("td", { class: "state-" + run.state, title: run.reason || run.scheduler }, run.state),
        el("td", { class: "num" }, run.total_steps ? run.step + "/" + run.total_steps : String(run.step)),
        el("td", null, run.eval),
        el("td", null, String(run.method)),
        el("td", { class: "num" }, String(run.seed)),
        el("td", null, String(run.experiment)),
        el("td", null, String(run.wandb_id)),
        el("td", { class: "num" }, String(run.attempts)),
        el("td", null, String(run.code_version)),
        el("td", { class: "diff" }, diff || "–")));
    });
    table.appendChild(body);
    renderNumbers();
  }

  function renderNumbers() {
    var box = document.getElementById("numbers");
    box.innerHTML = "";
    var withRows = {};
    var fields = DATA.rows.fields;
    DATA.rows.values.forEach(function (v) { withRows[v[0]] = true; });
    var runs = DATA.runs.filter(function (r) { return withRows[r.id]; });
    if (!runs.length) { box.appendChild(el("p", null, "No evaluation results yet.")); return; }
    if (!state.numbersRun || !withRows[state.numbersRun]) state.numbersRun = runs[0].id;
    var select = el("select", { id: "numbers-run" });
    options(select, runs.map(function (r) { return [r.id, r.label]; }), state.numbersRun);
    select.addEventListener("change", function () { state.numbersRun = select.value; renderNumbers(); });
    box.appendChild(el("label", null, "every number of ", select));
    var table = el("table", { class: "numbers" });
    var shown = fields.filter(function (f) { return f !== "run"; });
    var head = el("tr");
    shown.forEach(function (f) { head.appendChild(el("th", null, f)); });
    table.appendChild(el("thead", null, head));
    var body = el("tbody");
    DATA.rows.values.forEach(function (v) {
      if (v[0] !== state.numbersRun) return;
      var tr = el("tr");
      shown.forEach(function (f) {
        var value = v[fields.indexOf(f)];
        if (f === "protocol") {
          tr.appendChild(el("td", { class: "protocol" }, el("details", null,
            el("summary", null, familyLabel(value)), protocolText(value))));
        } else {
          tr.appendChild(el("td", null, typeof value === "number" && f !== "n" && f !== "evaluation" ? fmt(value) : String(value)));
        }
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.appendChild(table);
  }

  function renderMeta() {
    var meta = document.getElementById("meta");
    meta.innerHTML = "";
    var docs = DATA.docs && DATA.docs.evaluation;
    meta.appendChild(el("p", null,
      DATA.runs.length + " runs in " + DATA.groups.length + " groups from " + DATA.sources.join(", ") +
      ". Generated " + DATA.generated + ". ",
      el("span", { id: "updated" }, window.DASHBOARD_LIVE ? "Live: refreshes as runs and results appear." : ""),
      " What each probe and metric means, both R² definitions and their floors: ",
      docs ? el("a", { href: docs }, "docs/evaluation.md") : "docs/evaluation.md in the sslequi repository",
      "."));
  }

  var RUNS = {}, GROUPS = {};

  function renderAll() {
    RUNS = byId(DATA.runs);
    GROUPS = byId(DATA.groups);
    document.body.setAttribute("data-version", DATA.version);
    renderMeta();
    renderFilters();
    renderLeaderboard();
    renderRuns();
    return Promise.all([renderTradeoff(), renderCurves()]);
  }

  // ------------------------------------------------------------------ self-test

  function leaderboardRows() {
    return Array.prototype.slice.call(document.querySelectorAll("#leaderboard tbody tr"));
  }

  function cellValues(column) {
    return leaderboardRows().map(function (row) {
      var cell = row.querySelector('td[data-col="' + column + '"]');
      return cell && cell.hasAttribute("data-value") ? parseFloat(cell.getAttribute("data-value")) : null;
    });
  }

  function sortedBy(values, direction) {
    var present = values.filter(function (v) { return v !== null; });
    var firstMissing = values.indexOf(null);
    if (firstMissing >= 0 && values.slice(firstMissing).some(function (v) { return v !== null; })) return false;
    for (var i = 1; i < present.length; i++) {
      if (direction * (present[i] - present[i - 1]) < 0) return false;
    }
    return true;
  }

  function setFilter(name, value) {
    var select = document.getElementById("filter-" + name);
    select.value = value;
    select.dispatchEvent(new Event("change"));
  }

  function selftest() {
    var checks = [];
    var check = function (name, ok, detail) { checks.push({ name: name, ok: !!ok, detail: detail || "" }); };
    check("one leaderboard row per group", leaderboardRows().length === DATA.groups.length,
      leaderboardRows().length + " rows for " + DATA.groups.length + " groups");
    var header = document.querySelector("#leaderboard thead th[data-col]:not([data-col=group])");
    check("a sortable metric column", header !== null);
    if (header) {
      var column = header.getAttribute("data-col");
      header.click();
      check("sort descending", sortedBy(cellValues(column), -1), cellValues(column).join(","));
      document.querySelector('#leaderboard thead th[data-col="' + column + '"]').click();
      check("sort ascending", sortedBy(cellValues(column), 1), cellValues(column).join(","));
      check("sorting keeps every group", leaderboardRows().length === DATA.groups.length);
    }
    var datasets = unique(DATA.cells.map(function (c) { return c.dataset; }));
    datasets.forEach(function (dataset) {
      setFilter("dataset", dataset);
      var cells = document.querySelectorAll("#leaderboard td[data-dataset]");
      var wrong = Array.prototype.filter.call(cells, function (c) { return c.getAttribute("data-dataset") !== dataset; });
      check("filter dataset " + dataset, cells.length > 0 && wrong.length === 0 && leaderboardRows().length > 0,
        cells.length + " cells, " + wrong.length + " of another dataset");
    });
    setFilter("dataset", "all");
    [["per_component", "r2_per_component"], ["global", "r2_global"]].forEach(function (pair) {
      setFilter("r2", pair[0]);
      var cells = document.querySelectorAll("#leaderboard td[data-metric]");
      var r2 = Array.prototype.filter.call(cells, function (c) { return isR2(c.getAttribute("data-metric")); });
      var wrong = r2.filter(function (c) { return c.getAttribute("data-metric") !== pair[1]; });
      var expected = DATA.cells.some(function (c) {
        return c.metric === pair[1] && c.split === state.split && headlineRank(c.probe, c.metric) >= 0;
      });
      check("filter R² " + pair[0], wrong.length === 0 && (r2.length > 0) === expected,
        r2.length + " R² cells, " + wrong.length + " of another definition");
    });
    var families = unique(DATA.cells.map(function (c) { return c.family; }));
    if (families.length) {
      var chosen = String(families[0]);
      setFilter("protocol", chosen);
      var cells = document.querySelectorAll("#leaderboard td[data-protocol]");
      var wrong = Array.prototype.filter.call(cells, function (c) { return c.getAttribute("data-protocol") !== chosen; });
      check("filter protocol " + (DATA.family_labels[families[0]] || chosen), wrong.length === 0 && cells.length > 0,
        cells.length + " cells, " + wrong.length + " of another protocol");
    }
    document.getElementById("filter-reset").click();
    check("reset shows every group", leaderboardRows().length === DATA.groups.length);
    var box = document.getElementById("selftest");
    var failed = checks.filter(function (c) { return !c.ok; });
    box.setAttribute("data-outcome", failed.length ? "fail" : "pass");
    box.setAttribute("data-checks", String(checks.length));
    box.textContent = JSON.stringify(checks);
  }

  // ------------------------------------------------------------------ live refresh

  function poll() {
    var live = window.DASHBOARD_LIVE;
    fetch(live.url, { cache: "no-store" }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (next) {
      if (next.version !== DATA.version) {
        DATA = next;
        return renderAll();
      }
    }).then(function () {
      document.body.setAttribute("data-polled", new Date().toISOString());
    }, function (error) {
      document.getElementById("updated").textContent = "Live: cannot reach the server (" + error.message + ").";
    }).then(function () { setTimeout(poll, live.interval_ms); });
  }

  renderAll().then(function () {
    document.body.setAttribute("data-ready", "1");
    if (window.location.hash === "#selftest") selftest();
    if (window.DASHBOARD_LIVE) setTimeout(poll, window.DASHBOARD_LIVE.interval_ms);
  });
})();
