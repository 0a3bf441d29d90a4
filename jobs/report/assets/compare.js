// lie-sweep comparison page: the stores of script#lie-sweep-data side by side. The store checkboxes choose which
// stores every panel shows; the matrix follows the checkpoint selector. Plain JavaScript, no network.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("lie-sweep-data").textContent);
  const CONFIG = { displaylogo: false, responsive: true };
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2430" };
  const COLORS = ["#2458a6", "#b2182b", "#1b7837", "#8a4b00", "#6a3d9a", "#01665e", "#c51b7d", "#525252"];
  const SEQ = [[0, "#f7fbff"], [0.5, "#6baed6"], [1, "#08306b"]];
  const S = D.stores, score = D.score;
  const shown = S.map(() => true);
  const el = (id) => document.getElementById(id);
  function fmt(x) {
    if (x === null || x === undefined || !isFinite(x)) return "–";
    if (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3)) return x.toExponential(2);
    return String(Number(x.toPrecision(3)));
  }
  // every string reaches the page as text (DOM text nodes, never parsed as HTML); Plotly renders a subset of HTML
  // in labels, titles and hover texts, so strings taken from the stores go to Plotly entity-escaped
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  function text(tag, content, cls) { const e = document.createElement(tag); e.textContent = content; if (cls) e.className = cls; return e; }
  const layout = (extra) => Object.assign({ margin: { l: 60, r: 12, t: 8, b: 44 }, height: 320, font: FONT,
    legend: { orientation: "h", y: -0.25 } }, extra);

  function header() {
    el("subtitle").textContent = `${S.length} stores; score: ${score.help} (pairs table column ${score.column})` +
      (D.varies.length ? `; they differ in ${D.varies.join(", ")}` : "") + `; made ${D.made}`;
    el("shared-note").textContent = `shared: ${D.shared.examples} examples, ${D.shared.pairs} pairs, ` +
      `${D.shared.steps.length} checkpoints (steps ${D.shared.steps.join(", ") || "none"})`;
    const box = el("store-select");
    S.forEach((s, k) => {
      const label = document.createElement("label"), cb = document.createElement("input");
      cb.type = "checkbox"; cb.checked = true; cb.dataset.store = k;
      cb.addEventListener("change", () => { shown[k] = cb.checked; drawAll(); });
      label.appendChild(cb);
      label.appendChild(text("span", ` ${s.label}` + (s.complete ? "" : " (in progress)")));
      label.style.color = COLORS[k % COLORS.length];
      label.title = `${s.full}\n${s.path}: effects ${s.effects.join(", ")}, ${s.n_examples} examples, ${s.n_pairs} pairs`;
      box.appendChild(label);
    });
    const list = el("store-list");  // the full description of each store, where its label is short
    S.forEach((s) => { if (s.label !== s.full) list.appendChild(text("li", `${s.label}: ${s.full} (${s.path})`)); });
    list.hidden = !list.children.length;
  }
  function lines(key, plotId, yTitle, dash) {
    const traces = [];
    S.forEach((s, k) => {
      if (!shown[k]) return;
      traces.push({ x: s.steps, y: s[key], name: esc(s.label), mode: "lines+markers", line: { color: COLORS[k % COLORS.length] } });
      if (dash) traces.push({ x: s.steps, y: s[dash], name: `${esc(s.label)} (90th percentile)`, mode: "lines",
        line: { color: COLORS[k % COLORS.length], dash: "dot" } });
    });
    Plotly.react(el(plotId), traces, layout({ xaxis: { title: "step" }, yaxis: { title: yTitle, type: "log" } }), CONFIG);
  }
  function matrices() {
    const view = Number(el("view-select").value), ex = D.matrix.examples.map(String), box = el("matrix-plots");
    box.replaceChildren();
    const divs = S.map((s, k) => {  // every cell first, so that each plot is drawn at its cell's final width
      if (!shown[k]) return null;
      const div = document.createElement("div");
      div.className = "plot matrix"; div.dataset.store = k;
      box.appendChild(div);
      return div;
    });
    S.forEach((s, k) => {
      if (!shown[k]) return;
      const div = divs[k];
      Plotly.newPlot(div, [{ type: "heatmap", z: D.matrix.views[k][view], x: ex, y: ex, colorscale: SEQ,
        hovertemplate: `${esc(s.label)}<br>(%{y}, %{x}): %{z:.3g}<extra></extra>` }],
        layout({ height: 340, title: { text: esc(s.label), font: { size: 13 } }, margin: { l: 44, r: 8, t: 30, b: 40 },
          xaxis: { type: "category", title: "j" }, yaxis: { type: "category", title: "i", autorange: "reversed" } }), CONFIG);
    });
    el("matrix-caption").textContent = `${score.column} of each pair among the ${ex.length} shared examples whose ` +
      "pairs score highest over all stores (each store's scores divided by its median, so that every store counts); " +
      "each store has its own colour scale; blank: a pair that store does not hold.";
  }
  function scatter() {
    const a = Number(el("scatter-x").value), b = Number(el("scatter-y").value);
    const xs = D.scatter.values[a], ys = D.scatter.values[b];
    Plotly.react(el("scatter-plot"), [{ x: xs, y: ys, mode: "markers", type: "scattergl", marker: { size: 5, color: "#2458a6" },
      text: D.scatter.pairs.map((p) => `(${p[0]}, ${p[1]})`), hovertemplate: "%{text}: %{x:.3g}, %{y:.3g}<extra></extra>" }],
      layout({ showlegend: false, xaxis: { title: esc(S[a].label), type: "log" }, yaxis: { title: esc(S[b].label), type: "log" } }), CONFIG);
    el("scatter-caption").textContent = `${D.scatter.pairs.length} shared pairs, ${score.column} averaged over ` +
      `checkpoints; Spearman's rho ${fmt(D.rank_corr[a][b])}.`;
  }
  function corrTable() {
    const t = el("rank-corr"); t.replaceChildren();
    const head = document.createElement("tr"); head.appendChild(text("th", ""));
    S.forEach((s, k) => { if (shown[k]) head.appendChild(text("th", s.label)); });
    t.appendChild(head);
    S.forEach((s, a) => {
      if (!shown[a]) return;
      const tr = document.createElement("tr"); tr.appendChild(text("th", s.label));
      S.forEach((_, b) => { if (shown[b]) tr.appendChild(text("td", fmt(D.rank_corr[a][b]))); });
      t.appendChild(tr);
    });
  }
  function rankings() {
    const t = el("rankings"); t.replaceChildren();
    const ks = S.map((_, k) => k).filter((k) => shown[k]);
    const head = document.createElement("tr"); head.appendChild(text("th", "rank"));
    ks.forEach((k) => { head.appendChild(text("th", `${S[k].label}: pair`)); head.appendChild(text("th", score.column)); });
    t.appendChild(head);
    const rows = Math.max.apply(null, ks.map((k) => D.rankings[k].length).concat([0]));
    for (let r = 0; r < rows; r++) {
      const tr = document.createElement("tr"); tr.appendChild(text("td", String(r + 1)));
      ks.forEach((k) => {
        const p = D.rankings[k][r];
        tr.appendChild(text("td", p ? `(${p.i}, ${p.j})` : "")); tr.appendChild(text("td", p ? fmt(p.score) : ""));
      });
      t.appendChild(tr);
    }
    el("rankings-caption").textContent = "Each store's own top pairs (its whole grid, not only the shared pairs).";
  }
  function drawAll() {
    lines("loss", "loss-plot", "mean loss");
    lines("median", "score-plot", `median ${score.column}`, "q90");
    matrices(); scatter(); corrTable(); rankings();
  }
  function init() {
    header();
    const views = el("view-select");
    D.shared.steps.forEach((s, k) => views.appendChild(new Option(`step ${s}`, String(k))));
    views.appendChild(new Option("mean over checkpoints", String(D.shared.steps.length), true, true));
    views.addEventListener("change", matrices);
    ["scatter-x", "scatter-y"].forEach((id, n) => {
      S.forEach((s, k) => el(id).appendChild(new Option(s.label, String(k))));
      el(id).value = String(Math.min(n, S.length - 1));
      el(id).addEventListener("change", scatter);
    });
    el("score-title").textContent = `Per-checkpoint ${score.name} score`;
    el("score-caption").textContent = `Median (solid) and 90th percentile (dotted) of ${score.column} over each ` +
      "store's pairs at each checkpoint.";
    drawAll();
    performance.mark("lie-sweep-ready");
    document.body.dataset.ready = "true";
  }
  init();
})();
