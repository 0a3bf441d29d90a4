// lie-sweep report: wires the embedded data (script#lie-sweep-data) to Plotly charts, the checkpoint
// slider and the pair matrix's clicks. Every panel follows the slider. Plain JavaScript, no network.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("lie-sweep-data").textContent);
  const info = D.info;
  const CONFIG = { displaylogo: false, responsive: true };
  const FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2430" };
  // ColorBrewer RdBu: negative blue, 0 white, positive red (Plotly's own "RdBu" has a grey middle)
  const DIVERGING = [[0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1, "#b2182b"]];

  // ---- decoding (the encodings of jobs/report/encode.py) -----------------------------------------------
  const F16 = (function () {
    const t = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
      t[h] = e === 0 ? s * f * Math.pow(2, -24) : e === 31 ? (f ? NaN : s * Infinity) : s * Math.pow(2, e - 15) * (1 + f / 1024);
    }
    return t;
  })();
  function bytesOf(b64) {
    const s = atob(b64), u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return u;
  }
  function decode(o) {
    if (!o) return null;
    const u = bytesOf(o.data), n = o.shape.reduce((a, b) => a * b, 1);
    let out;
    if (o.enc === "f32") out = new Float32Array(u.buffer, 0, n);
    else if (o.enc === "i32") out = new Int32Array(u.buffer, 0, n);
    else {
      const scale = decode(o.scale).data;
      const block = o.shape.slice(o.shape.length - o.block_dims).reduce((a, b) => a * b, 1);
      out = new Float32Array(n);
      if (o.enc === "f16s") {
        const h = new Uint16Array(u.buffer, 0, n);
        for (let i = 0; i < n; i++) out[i] = F16[h[i]] * scale[Math.floor(i / block)];
      } else {
        const q = new Int8Array(u.buffer, 0, n);
        for (let i = 0; i < n; i++) out[i] = q[i] === -128 ? NaN : (q[i] / 127) * scale[Math.floor(i / block)];
      }
    }
    return { shape: o.shape, data: out };
  }
  const num = (x) => (x === null || x === undefined || !isFinite(x) ? null : x);
  // every string reaches the page as text (DOM text nodes, never parsed as HTML); Plotly renders a subset of HTML
  // in labels, titles and hover texts, so strings taken from the store go to Plotly entity-escaped
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  function node(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
  function richLine(text) {  // an <li> of text in which our own "_{...}" marks subscripts (stored values stay text)
    const li = document.createElement("li");
    text.split(/(_\{[^}]*\})/).forEach((part) => {
      if (/^_\{[^}]*\}$/.test(part)) li.appendChild(node("sub", part.slice(2, -1)));
      else if (part) li.appendChild(document.createTextNode(part));
    });
    return li;
  }
  function fmt(x, d) {  // 3 significant digits (d + 1 when given), exponent outside [1e-3, 1e4)
    if (num(x) === null) return "–";
    const digits = d === undefined ? 3 : d + 1;
    if (x !== 0 && (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3)) return x.toExponential(digits - 1);
    return String(Number(x.toPrecision(digits)));
  }
  function logTicks(values) {  // labelled ticks at the decades in range, or at the ends when it spans less than two
    const v = values.filter((x) => isFinite(x) && x > 0);
    if (v.length < 2) return {};
    const lo = Math.min.apply(null, v), hi = Math.max.apply(null, v), ticks = [];
    for (let k = Math.ceil(Math.log10(lo)); k <= Math.floor(Math.log10(hi)); k++) ticks.push(Math.pow(10, k));
    if (ticks.length < 2) { ticks.push(Number(lo.toPrecision(2)), Number(hi.toPrecision(2))); ticks.sort((a, b) => a - b); }
    return { tickmode: "array", tickvals: ticks, ticktext: ticks.map((t) => fmt(t, Number.isInteger(Math.log10(t)) ? 0 : 1)) };
  }

  // ---- data ---------------------------------------------------------------------------------------------
  const steps = D.steps, C = steps.length;
  const pairsArr = decode(D.pairs).data, Ps = D.pairs.shape[0];
  const pairs = [], pairIndex = new Map();
  for (let p = 0; p < Ps; p++) {
    pairs.push([pairsArr[2 * p], pairsArr[2 * p + 1]]);
    pairIndex.set(pairsArr[2 * p] + "," + pairsArr[2 * p + 1], p);
  }
  const done = decode(D.done).data;
  const scores = {};
  for (const k in D.scores) scores[k] = decode(D.scores[k]).data;
  const logits = decode(D.logits), swapLogits = decode(D.swap_logits);
  const effects = info.effects || ["bracket"];
  const hasBracket = effects.indexOf("bracket") >= 0, hasOrder = effects.indexOf("order") >= 0, hasSwap = effects.indexOf("swap") >= 0;
  // the logit deltas each effect's views read: the exact swap's, or the stored expansion's (the bracket's
  // ε²J_f[u_i,u_j], or under field=optimizer J_f(εΔ₁ + ε²Δ₂); a store holds one of those two)
  function logitsOf(effect) {
    if (effect === "swap") return swapLogits;
    if (effect === "order") return logits;
    return hasOrder ? null : logits;
  }
  const EFFECT_TEXT = { swap: "exact swap θ_ij − θ_ji", bracket: "leading order ε²[u_i, u_j]", order: "optimizer expansion εΔ₁ + ε²Δ₂" };
  const B = info.eval_examples.length, O = info.outputs.length;
  const T = D.tensors.length;
  const rmsBracket = decode(D.rms_bracket).data, rmsGrad = decode(D.rms_grad).data;
  const ckpt = {};
  for (const k in D.ckpt) ckpt[k] = Array.from(decode(D.ckpt[k]).data, num);
  const lossMean = Array.from(decode(D.loss.mean).data, num), lossQ10 = Array.from(decode(D.loss.q10).data, num);
  const lossQ90 = Array.from(decode(D.loss.q90).data, num), lossValues = decode(D.loss.values).data;
  const outputs = decode(D.outputs);
  const images = D.images.examples, texts = D.images.texts || {};
  // what the evaluation batch measures: logits, outputs, or a language model's log p(next token) per position
  const MEASURE = info.measures || "logit", PER_POSITION = MEASURE.startsWith("log p");
  const shown = D.shown, K = shown.length, shownIndex = new Map(shown.map((e, a) => [e, a]));
  const at2 = (arr, c, p) => arr[c * Ps + p];
  const isDone = (c, p) => done[c * Ps + p] === 1;

  // signed scores from the logit deltas: mean over evaluation examples (of one output, or of all)
  const signedCache = new Map();
  function signedMeans(c) {  // Float64Array (Ps, O + 1): per output, then over all outputs, of the effect's logit deltas
    const key = state.effect + ":" + c, logits = logitsOf(state.effect);
    if (signedCache.has(key)) return signedCache.get(key);
    const out = new Float64Array(Ps * (O + 1)).fill(NaN);
    if (logits) {
      for (let p = 0; p < Ps; p++) {
        if (!isDone(c, p)) continue;
        const base = (c * Ps + p) * B * O;
        let all = 0;
        for (let o = 0; o < O; o++) {
          let s = 0;
          for (let e = 0; e < B; e++) s += logits.data[base + e * O + o];
          out[p * (O + 1) + o] = s / B;
          all += s;
        }
        out[p * (O + 1) + O] = all / (B * O);
      }
    }
    signedCache.set(key, out);
    return out;
  }

  // ---- state --------------------------------------------------------------------------------------------
  // the exact swap is the answer where the store has it; the leading order and the expansion approximate it
  const state = { c: C - 1, sel: null, effect: hasSwap ? "swap" : hasOrder && !hasBracket ? "order" : "bracket", score: null };
  function scoreKeys(effect) {  // the matrix's scores for an effect: signed from its logit deltas, then magnitudes
    const mags = { bracket: ["norm", "c", "logit_rms"], swap: ["swap_norm", "swap_logit_rms", "lead_rel_err", "lead_logit_rel_err"],
                   order: ["order_rel_err"] }[effect].filter((k) => k in scores && (k !== "logit_rms" || logitsOf("bracket")));
    return (logitsOf(effect) ? ["signed:all"].concat(info.outputs.map((_, o) => "signed:" + o)) : []).concat(mags.map((k) => "mag:" + k));
  }
  state.score = scoreKeys(state.effect)[0] || "mag:norm";
  for (let c = C - 1; c >= 0; c--) { let any = false; for (let p = 0; p < Ps; p++) any = any || isDone(c, p); if (any) { state.c = c; break; } }

  function scoreOf(c, p, key) {  // value for the stored orientation (i, j)
    if (!isDone(c, p)) return NaN;
    if (key.startsWith("signed:")) {
      const o = key === "signed:all" ? O : parseInt(key.slice(7), 10);
      return signedMeans(c)[p * (O + 1) + o];
    }
    return at2(scores[key.slice(4)], c, p);
  }
  const SCORE_TEXT = {
    "signed:all": "Δ " + MEASURE + ", mean over evaluation examples and " + (PER_POSITION ? "positions" : "outputs") + " (signed)",
    "mag:norm": "‖[u_i, u_j]‖ (magnitude: same for (i, j) and (j, i))",
    "mag:logit_rms": "logit-delta RMS (magnitude: same for (i, j) and (j, i))",
    "mag:c": "slope-1 fit constant c (magnitude: same for (i, j) and (j, i))",
    "mag:swap_norm": "‖θ_ij − θ_ji‖, the exact swap (magnitude: same for (i, j) and (j, i))",
    "mag:swap_logit_rms": "RMS of the exact logit deltas f(θ_ij) − f(θ_ji) (magnitude)",
    "mag:lead_rel_err": "trust map: the leading order's relative error ‖Δ − ε²[u_i,u_j]‖ / ‖Δ‖ against the exact swap Δ",
    "mag:lead_logit_rel_err": "trust map of the logits: ‖δf − ε²J_f[u_i,u_j]‖ / ‖δf‖ against the exact logit deltas δf",
    "mag:order_rel_err": "the optimizer expansion's relative error ‖Δ − εΔ₁ − ε²Δ₂‖ / ‖Δ‖ against the exact swap Δ",
  };
  function scoreText(key) {
    const of = key.startsWith("signed:") ? " (" + EFFECT_TEXT[state.effect] + ")" : "";
    return (key.startsWith("signed:") && key !== "signed:all"
      ? "Δ " + MEASURE + " of " + info.outputs[parseInt(key.slice(7), 10)] + ", mean over evaluation examples (signed)"
      : SCORE_TEXT[key]) + of;
  }
  const label = (e) => "#" + e;

  // ---- header, slider, conventions ----------------------------------------------------------------------
  function header() {
    const field = { adam: "Adam-preconditioned field", optimizer: "SGD bracket + the saved optimizer's expansion" }[info.field] || "SGD field";
    document.getElementById("subtitle").textContent =
      `${info.store} · ${C} checkpoints (steps ${steps[0]}–${steps[C - 1]}) × ${info.n_pairs} pairs of ` +
      `${info.n_examples} ${info.unit === "batch" ? "minibatches" : "examples"} (${info.grid} grid) · ${field} · ${info.n_params.toLocaleString()} parameters` +
      (info.compression_ratio ? ` · compression ${fmt(info.compression_ratio)}×` : "") +
      (info.pairs_per_second ? ` · ${fmt(info.pairs_per_second)} pairs/s` : "") + ` · made ${D.made}`;
    if (!info.complete) {
      const b = document.getElementById("progress-banner");
      b.hidden = false;
      b.textContent = `Store still being written: ${info.tasks_done} of ${info.n_tasks} tasks complete when this page was ` +
        `made (${D.made}). Every panel shows completed tasks only; blank cells are pairs not computed yet.`;
    }
    const notes = [D.selection.text];
    if (D.selection.budget_note) notes.push(D.selection.budget_note);
    if (D.images.note) notes.push(D.images.note);
    document.getElementById("selection-note").textContent = notes.join(" · ");
    const slider = document.getElementById("ckpt-slider");
    slider.max = String(C - 1);
    slider.value = String(state.c);
    slider.addEventListener("input", () => setCheckpoint(parseInt(slider.value, 10)));
    document.getElementById("prev").addEventListener("click", () => setCheckpoint(Math.max(0, state.c - 1)));
    document.getElementById("next").addEventListener("click", () => setCheckpoint(Math.min(C - 1, state.c + 1)));
    if (!hasBracket) document.getElementById("scatter-title").textContent = "Exact swap RMS against gradient RMS, per tensor";
    const effectSel = document.getElementById("effect-select");
    for (const e of ["swap", "bracket", "order"].filter((e) => effects.indexOf(e) >= 0)) {
      const opt = document.createElement("option"); opt.value = e; opt.textContent = EFFECT_TEXT[e]; effectSel.appendChild(opt);
    }
    effectSel.value = state.effect;
    effectSel.parentElement.hidden = effects.length < 2;
    effectSel.addEventListener("change", () => { setEffect(effectSel.value); });
    fillScores();
    document.getElementById("score-select").addEventListener("change", (ev) => { state.score = ev.target.value; drawMatrix(); });
    const conv = [
      "θ_{ij} − θ_{ji} = ε²[u_{i}, u_{j}] + O(ε³): the bracket is the leading-order difference between training on i then j and on j then i, one step of size ε each.",
    ].concat(hasSwap ? [
      `Exact swap: θ_{ij} − θ_{ji} itself, two real steps in each order (${info.swap_rule || "field"}) at ε = ${info.swap_epsilon}, no expansion; its logit deltas f(θ_{ij}) − f(θ_{ji}) are exact too. The trust map is the leading order's relative error against it.`,
    ] : []).concat([
      "Sign: a signed cell in row i, column j, and the heatmap titled “i → j”, show order i-then-j minus order j-then-i. Cell (j, i) is the negative of cell (i, j), since [u_{j}, u_{i}] = −[u_{i}, u_{j}].",
      hasBracket ? `Logit deltas: f(θ_{ij}) − f(θ_{ji}) ≈ ε² J_{f}(θ)[u_{i}, u_{j}] on ${B} evaluation examples, ε = ${info.epsilon}.` : null,
      "Magnitudes: ‖[u_{i}, u_{j}]‖, RMS values, the fit constant c and logit-delta RMS do not change sign when i and j swap; views of them are symmetric and say so.",
      `Field: ${info.field_text}.`,
      "BatchNorm runs in eval mode (running statistics) while brackets are computed, so each example's loss is well defined.",
      hasBracket ? "Slope-1 fit, per pair across tensors: log RMS[u_{i}, u_{j}] = log c + log RMS g, with RMS g = √(RMS g_{i} · RMS g_{j}); R² of that constrained fit can be negative." : null,
      `Effective rank: exp(entropy of the normalised singular values of the per-example gradient matrix), ${D.rank_scope || "n/a"}.`,
      `Stored as ${info.dtype}, codec ${info.codec}${info.keepbits ? " (keepbits " + info.keepbits + ")" : ""}. Embedded here: logit deltas ${D.logit_precision || "(none)"}; other values float32.`,
      `Store schema ${info.schema}, lie-sweep ${info.package_version}; model ${info.model}, data ${info.data}.`,
    ]).filter((line) => line);
    document.getElementById("conventions").replaceChildren(...conv.map(richLine));
  }

  function fillScores() {  // the score menu of the chosen effect
    const sel = document.getElementById("score-select");
    sel.replaceChildren();
    for (const k of scoreKeys(state.effect)) { const opt = document.createElement("option"); opt.value = k; opt.textContent = scoreText(k); sel.appendChild(opt); }
    sel.value = state.score;
  }
  function setEffect(effect) {
    state.effect = effect;
    state.score = scoreKeys(effect)[0] || state.score;
    document.getElementById("effect-select").value = effect;
    fillScores();
    return Promise.all([drawMatrix(), drawHeatmap()]);
  }

  function checkpointLabel() {
    let n = 0; for (let p = 0; p < Ps; p++) n += isDone(state.c, p) ? 1 : 0;
    document.getElementById("ckpt-label").textContent =
      `checkpoint step ${steps[state.c]} (${state.c + 1} of ${C})` + (info.complete ? "" : ` · ${n} of ${Ps} shown pairs complete`);
  }

  const stepAxis = C <= 12 ? { tickvals: steps } : {};  // label each checkpoint's step when there are few
  const marker = (x) => ({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: "#2458a6", width: 2, dash: "dot" } });

  // ---- loss history ---------------------------------------------------------------------------------------
  function drawLoss() {
    const traces = [
      { x: steps, y: lossQ10, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
      { x: steps, y: lossQ90, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(36,88,166,0.12)", name: "10–90% of examples", hoverinfo: "skip" },
    ];
    const sel = state.sel ? pairs[state.sel.p] : [];
    D.loss.examples.forEach((e, k) => {
      const y = Array.from(lossValues.slice(k * C, (k + 1) * C), num);
      const hi = sel.indexOf(e) >= 0;
      traces.push({ x: steps, y, mode: "lines", name: label(e), showlegend: hi, line: { width: hi ? 2.5 : 0.8, color: hi ? (e === sel[0] ? "#c0392b" : "#1e8449") : "rgba(90,100,115,0.45)" },
                    hovertemplate: label(e) + " step %{x}: loss %{y:.4f}<extra></extra>" });
    });
    traces.push({ x: steps, y: lossMean, mode: "lines+markers", name: "mean over all examples", line: { width: 3, color: "#2458a6" }, hovertemplate: "step %{x}: mean loss %{y:.4f}<extra></extra>" });
    const layout = { font: FONT, height: 300, margin: { l: 56, r: 12, t: 8, b: 40 }, xaxis: Object.assign({ title: { text: "training step" } }, stepAxis),
                     yaxis: { title: { text: "loss" } }, shapes: [marker(steps[state.c])], legend: { orientation: "h", y: 1.12 }, hovermode: "closest" };
    return Plotly.react("loss-plot", traces, layout, CONFIG);
  }

  // ---- per-checkpoint statistics ------------------------------------------------------------------------
  function drawCheckpointStats() {
    const t = (y, axis, name, color) => ({ x: steps, y, xaxis: "x", yaxis: axis, mode: "lines+markers", name, line: { color }, hovertemplate: name + " at step %{x}: %{y:.3g}<extra></extra>" });
    // stacked panels, each where the store has it: effective rank, the bracket's fit constant and norm, the
    // exact swap's norm and the leading order's error against it
    const series = [["effective_rank", "effective rank of the Gram matrix", "eff. rank", "#6c3483", false],
                    ["median_c", "median c", "median c", "#b9770e", true], ["mean_norm", "mean ‖[u_i,u_j]‖", "‖[u,u]‖", "#2458a6", true],
                    ["mean_swap", "mean ‖θ_ij − θ_ji‖", "‖swap‖", "#1e8449", true],
                    ["median_lead_err", "median leading-order error", "lead err", "#c0392b", true]].filter((v) => ckpt[v[0]]);
    const n = series.length, gap = 0.06, h = (1 - gap * (n - 1)) / n;
    const layout = { font: FONT, height: 110 + 70 * n, margin: { l: 64, r: 12, t: 8, b: 40 }, showlegend: false, hovermode: "closest",
                     xaxis: Object.assign({ title: { text: "training step" }, anchor: "y" + (n > 1 ? n : "") }, stepAxis), shapes: [marker(steps[state.c])] };
    const traces = series.map((v, k) => {
      const axis = "yaxis" + (k ? k + 1 : ""), top = 1 - k * (h + gap);
      layout[axis] = Object.assign({ domain: [Math.max(0, top - h), top], title: { text: v[2] } }, v[4] ? Object.assign({ type: "log" }, logTicks(ckpt[v[0]])) : {});
      return t(ckpt[v[0]], "y" + (k ? k + 1 : ""), v[1], v[3]);
    });
    document.getElementById("ckpt-caption").textContent = `At step ${steps[state.c]} (${D.rank_scope || "n/a"} for the rank): ` +
      series.map((v) => `${v[1]} ${v[0] === "median_lead_err" ? fmt(100 * ckpt[v[0]][state.c]) + "%" : fmt(ckpt[v[0]][state.c])}`).join(", ") +
      ` over ${ckpt.n_pairs[state.c] || 0} completed pairs.`;
    return Plotly.react("ckpt-plot", traces, layout, CONFIG);
  }

  // ---- pair matrix ------------------------------------------------------------------------------------------
  function headerImages() {  // thumbnails in the cells left of column 0 and above row 0 (data coordinates)
    const out = [];
    shown.forEach((e, a) => {
      const src = images[String(e)];
      if (!src) return;
      out.push({ source: src, xref: "x", yref: "y", x: a, y: -1, sizex: 0.9, sizey: 0.9, xanchor: "center", yanchor: "middle", layer: "above" });
      out.push({ source: src, xref: "x", yref: "y", x: -1, y: a, sizex: 0.9, sizey: 0.9, xanchor: "center", yanchor: "middle", layer: "above" });
    });
    return out;
  }
  // a matrix of many examples takes the whole row, and grows with them
  const matrixHeight = K > 24 ? Math.min(1200, 15 * K + 160) : 560;
  if (K > 24) document.getElementById("panel-matrix").classList.add("full");
  function drawMatrix() {
    const signed = state.score.startsWith("signed:");
    const z = shown.map(() => shown.map(() => null)), text = shown.map(() => shown.map(() => ""));
    shown.forEach((e, a) => { z[a][a] = 0; text[a][a] = `[u_${e}, u_${e}] = 0`; });
    for (let a = 0; a < K; a++) for (let b = 0; b < K; b++) if (a !== b) text[a][b] = `${label(shown[a])}, ${label(shown[b])}: not in the grid`;
    let peak = 0;
    for (let p = 0; p < Ps; p++) {
      const [i, j] = pairs[p];
      if (!shownIndex.has(i) || !shownIndex.has(j)) continue;
      const a = shownIndex.get(i), b = shownIndex.get(j);
      const v = scoreOf(state.c, p, state.score);
      if (!isFinite(v)) {
        text[a][b] = text[b][a] = `${label(i)}, ${label(j)}: not computed yet`;
        continue;
      }
      z[a][b] = v;
      z[b][a] = signed ? -v : v;
      text[a][b] = signed ? `row ${label(i)} → column ${label(j)} (order ${i} then ${j} minus ${j} then ${i}): ${fmt(v)}` : `${label(i)}, ${label(j)}: ${fmt(v)} (magnitude)`;
      text[b][a] = signed ? `row ${label(j)} → column ${label(i)} (order ${j} then ${i} minus ${i} then ${j}): ${fmt(-v)}` : `${label(j)}, ${label(i)}: ${fmt(v)} (magnitude)`;
      peak = Math.max(peak, Math.abs(v));
    }
    const trace = {
      type: "heatmap", z, text, x: shown.map((_, b) => b), y: shown.map((_, a) => a), hoverongaps: false, xgap: 1, ygap: 1,
      hovertemplate: "%{text}<extra></extra>",
      colorscale: signed ? DIVERGING : "Viridis",
      colorbar: { title: { text: signed ? "signed" : "magnitude", side: "right" }, thickness: 12, exponentformat: "e" },
    };
    if (signed) Object.assign(trace, { zmid: 0, zmin: -(peak || 1), zmax: peak || 1 });
    const relative = /_rel_err$/.test(state.score);  // a trust map: colours capped at 100% error, so small errors show
    if (relative) Object.assign(trace, { zmin: 0, zmax: 1, colorbar: Object.assign(trace.colorbar, { title: { text: "rel. error (capped at 1)", side: "right" } }) });
    const sel = state.sel ? pairs[state.sel.p] : null;
    const shapes = [];
    if (sel && shownIndex.has(sel[0]) && shownIndex.has(sel[1])) {
      const [r, c] = state.sel.flip ? [shownIndex.get(sel[1]), shownIndex.get(sel[0])] : [shownIndex.get(sel[0]), shownIndex.get(sel[1])];
      shapes.push({ type: "rect", x0: c - 0.5, x1: c + 0.5, y0: r - 0.5, y1: r + 0.5, line: { color: "#111", width: 2.5 } });
    }
    const lo = Object.keys(images).length ? -1.5 : -0.5;  // a row and a column of thumbnails before the cells
    const ticks = { tickvals: shown.map((_, a) => a), ticktext: shown.map(label), tickfont: { size: K > 40 ? 8 : K > 24 ? 9 : 11 },
                    showgrid: false, zeroline: false, constrain: "domain" };
    const layout = {
      font: FONT, height: matrixHeight, margin: { l: 64, r: 12, t: 12, b: 56 }, shapes, plot_bgcolor: "#fff",
      xaxis: Object.assign({ title: { text: "column j" }, range: [lo, K - 0.5], tickangle: K > 16 ? -90 : 0 }, ticks),
      yaxis: Object.assign({ title: { text: "row i" }, range: [K - 0.5, lo], scaleanchor: "x" }, ticks),
      images: headerImages(),
    };
    document.getElementById("matrix-caption").textContent =
      `Cell (row i, column j) at step ${steps[state.c]}: ${scoreText(state.score)}.` +
      (signed ? " Cell (j, i) is the negative of cell (i, j); the colour scale is centred at 0." : " Magnitudes: the matrix is symmetric by construction.") +
      (relative ? " Colours stop at 1 (100% error); hover for the value." : "") +
      " Click a cell to select the pair.";
    return Plotly.react("matrix-plot", [trace], layout, CONFIG);
  }

  // ---- selected pair: logit-delta heatmap and per-tensor scatter ----------------------------------------
  function oriented() {  // [first, second, sign]: the heatmap shows order first→second
    const [i, j] = pairs[state.sel.p];
    return state.sel.flip ? [j, i, -1] : [i, j, 1];
  }
  function drawHeatmap() {
    const el = "heatmap-plot";
    const caption = document.getElementById("heatmap-caption");
    const empty = (msg) => Plotly.react(el, [], { font: FONT, height: 560, xaxis: { visible: false }, yaxis: { visible: false },
      annotations: [{ text: msg, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 14, color: "#5b6473" } }] }, CONFIG);
    if (!state.sel) { document.getElementById("pair-title").textContent = "Selected pair"; caption.textContent = ""; drawTexts(null); return empty("click a cell of the pair matrix"); }
    const [a, b, sign] = oriented(), p = state.sel.p;
    document.getElementById("pair-title").textContent = `Selected pair: ${label(a)} → ${label(b)} at step ${steps[state.c]}`;
    const logits = logitsOf(state.effect);
    if (!logits) {
      const why = !B ? "This store holds no logit deltas (derived.eval_count = 0)." :
        "The stored logit deltas are the optimizer expansion's: pick that effect, or the exact swap.";
      caption.textContent = why; drawTexts(null); return empty(B ? "no logit deltas of the " + EFFECT_TEXT[state.effect] : "no logit deltas in this store");
    }
    if (!isDone(state.c, p)) { caption.textContent = ""; drawTexts(null); return empty(`pair (${a}, ${b}) not computed yet at step ${steps[state.c]}`); }
    const base = (state.c * Ps + p) * B * O;
    const z = [];
    let peak = 0;
    for (let e = 0; e < B; e++) {
      const row = [];
      for (let o = 0; o < O; o++) { const v = sign * logits.data[base + e * O + o]; row.push(num(v)); peak = Math.max(peak, Math.abs(v) || 0); }
      z.push(row);
    }
    const evalImages = [];
    info.eval_examples.forEach((e, r) => {
      const src = images[String(e)];
      if (src) evalImages.push({ source: src, xref: "x", yref: "y", x: -1, y: r, sizex: 0.95, sizey: 0.95, xanchor: "center", yanchor: "middle", layer: "above" });
    });
    const trace = {
      type: "heatmap", z, x: info.outputs.map((_, o) => o), y: info.eval_examples.map((_, r) => r), zmid: 0, zmin: -(peak || 1), zmax: peak || 1,
      colorscale: DIVERGING, xgap: 0.5, ygap: 0.5,
      customdata: info.eval_examples.map((e) => info.outputs.map((name) => [e, esc(name)])),
      hovertemplate: "eval #%{customdata[0]}, %{customdata[1]}: %{z:.3e}<extra></extra>",
      colorbar: { title: { text: "Δ " + esc(MEASURE), side: "right" }, thickness: 12, exponentformat: "e" },
    };
    const layout = {
      font: FONT, height: 560, margin: { l: 60, r: 12, t: 8, b: 130 }, plot_bgcolor: "#fff",
      xaxis: { tickangle: -60, tickfont: { size: O > 24 ? 9.5 : 11 }, automargin: true, title: { text: PER_POSITION ? "position of the predicted token" : "model output" },
               tickvals: info.outputs.map((_, o) => o), ticktext: info.outputs.map(esc), range: [evalImages.length ? -1.5 : -0.5, O - 0.5],
               showgrid: false, zeroline: false },
      yaxis: { range: [B - 0.5, -0.5], tickvals: info.eval_examples.map((_, r) => r), ticktext: info.eval_examples.map(label),
               tickfont: { size: B > 24 ? 9 : 11 }, title: { text: "evaluation example" }, showgrid: false, zeroline: false },
      images: evalImages,
    };
    const how = { swap: `exactly (two real steps each way, ${info.swap_rule || "field"}), ε = ${info.swap_epsilon}`,
                  bracket: `≈ ε²·J_f[u_${a}, u_${b}], ε = ${info.epsilon}`, order: `≈ J_f(εΔ₁ + ε²Δ₂), ε = ${info.epsilon}` }[state.effect];
    caption.textContent = `f(θ after ${a} then ${b}) − f(θ after ${b} then ${a}) ${how}, per evaluation example and output; ` +
      `signed, colour scale centred at 0 (largest |Δ| ${fmt(peak)}). Embedded as ${D.logit_precision}.`;
    drawTexts(z);
    return Plotly.react(el, [trace], layout, CONFIG);
  }
  // a language model's evaluation sequences as text, each token coloured by the change of its log-probability
  // (measured at the position that predicts it) under the selected swap: red up, blue down, white unchanged
  function drawTexts(z) {
    const box = document.getElementById("text-view"), panel = document.getElementById("panel-text");
    if (!PER_POSITION || !Object.keys(texts).length) { panel.hidden = true; return; }
    panel.hidden = false;
    box.replaceChildren();
    if (!z) return;
    let peak = 0;
    z.forEach((row) => row.forEach((v) => { peak = Math.max(peak, Math.abs(v || 0)); }));
    info.eval_examples.forEach((e, r) => {
      const line = node("div", undefined, "sequence");
      line.appendChild(node("span", label(e) + " ", "seq-label"));
      (texts[String(e)] || []).forEach((tok, k) => {
        const span = node("span", tok, "tok");
        const v = k > 0 ? z[r][k - 1] : null;
        if (v !== null && v !== undefined && peak > 0) {
          const a = Math.min(1, Math.abs(v) / peak);
          span.style.backgroundColor = v > 0 ? `rgba(178,24,43,${a.toFixed(3)})` : `rgba(33,102,172,${a.toFixed(3)})`;
          span.title = `Δ log p(${JSON.stringify(tok)}) = ${fmt(v)}`;
        }
        line.appendChild(span);
      });
      box.appendChild(line);
    });
    document.getElementById("text-caption").textContent = `Each evaluation sequence's tokens, coloured by how the ` +
      `selected order changes the log-probability the model gives that token (${EFFECT_TEXT[state.effect]}; largest ` +
      `|Δ| ${fmt(peak)}); hover a token for its value.`;
  }
  function drawScatter() {
    const el = "scatter-plot", caption = document.getElementById("scatter-caption");
    if (!state.sel || !isDone(state.c, state.sel.p)) {
      caption.textContent = "";
      return Plotly.react(el, [], { font: FONT, height: 360, xaxis: { visible: false }, yaxis: { visible: false },
        annotations: [{ text: state.sel ? "not computed yet at this checkpoint" : "select a pair", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] }, CONFIG);
    }
    const p = state.sel.p, [a, b] = oriented();
    const x = [], y = [], names = [];
    for (let t = 0; t < T; t++) {
      const k = (state.c * Ps + p) * T + t;
      if (isFinite(rmsGrad[k]) && isFinite(rmsBracket[k]) && rmsGrad[k] > 0 && rmsBracket[k] > 0) { x.push(rmsGrad[k]); y.push(rmsBracket[k]); names.push(esc(D.tensors[t])); }
    }
    const c = scores.c ? at2(scores.c, state.c, p) : NaN, r2 = scores.r2 ? at2(scores.r2, state.c, p) : NaN;
    const what = hasBracket ? "[u_i, u_j]" : "θ_ij − θ_ji";
    const traces = [{ x, y, text: names, mode: "markers", type: "scatter", name: "tensors", marker: { size: 8, color: "#2458a6", opacity: 0.8 },
                      hovertemplate: "%{text}<br>RMS g %{x:.3e}<br>RMS " + what + " %{y:.3e}<extra></extra>" }];
    if (x.length && isFinite(c)) {
      const lo = Math.min.apply(null, x), hi = Math.max.apply(null, x);
      traces.push({ x: [lo, hi], y: [c * lo, c * hi], mode: "lines", name: `slope-1 fit: c = ${fmt(c)}, R² = ${fmt(r2, 2)}`, line: { color: "#c0392b", dash: "dash" }, hoverinfo: "skip" });
    }
    const layout = { font: FONT, height: 360, margin: { l: 70, r: 12, t: 28, b: 52 }, legend: { x: 0.01, y: 0.99 },
                     xaxis: Object.assign({ type: "log", title: { text: "RMS gradient √(RMS g_i · RMS g_j) per tensor" } }, logTicks(x)),
                     yaxis: Object.assign({ type: "log", title: { text: "RMS " + what + " per tensor" } }, logTicks(y)) };
    caption.textContent = `Pair ${label(a)}, ${label(b)} at step ${steps[state.c]}: ${x.length} tensors` +
      (hasBracket ? `; c = ${fmt(c)}, R² = ${fmt(r2, 2)}. ` : ` (the exact swap at ε = ${info.swap_epsilon}; this store has no bracket). `) +
      "RMS values are magnitudes: the same for (i, j) and (j, i).";
    return Plotly.react(el, traces, layout, CONFIG);
  }

  // ---- outputs and rankings -----------------------------------------------------------------------------
  function drawOutputs() {
    const caption = document.getElementById("outputs-caption");
    if (!outputs) { caption.textContent = "This store holds no logit deltas."; return Plotly.react("outputs-plot", [], { font: FONT, height: 360 }, CONFIG); }
    const row = Array.from(outputs.data.slice(state.c * O, (state.c + 1) * O));
    const order = row.map((v, o) => [v, o]).filter((t) => isFinite(t[0])).sort((u, v) => v[0] - u[0]).slice(0, 15).reverse();
    const trace = { type: "bar", orientation: "h", x: order.map((t) => t[0]), y: order.map((t) => esc(info.outputs[t[1]])), marker: { color: "#b9770e" },
                    hovertemplate: "%{y}: %{x:.3e}<extra></extra>" };
    const layout = { font: FONT, height: 360, margin: { l: 150, r: 12, t: 8, b: 48 }, xaxis: { title: { text: "mean |Δ " + esc(MEASURE) + "| (magnitude)" }, exponentformat: "e" }, yaxis: { automargin: true } };
    caption.textContent = `Mean |${info.outputs_exact ? "f(θ_ij) − f(θ_ji)| (exact swaps, ε = " + info.swap_epsilon + ")" : "ε²·J_f[u_i,u_j]|"} over the ${D.outputs_pairs[state.c] || 0} completed pairs of the whole sweep and ${B} evaluation examples at step ${steps[state.c]}; a magnitude.`;
    return Plotly.react("outputs-plot", [trace], layout, CONFIG);
  }
  function drawVerify() {
    const V = D.verify, caption = document.getElementById("verify-caption");
    if (!V) {
      caption.textContent = "Not measured yet: `lie-sweep verify " + info.store + "` takes real two-step swaps at ε = lr × " +
        "{1, 1/4, 1/16, 1/64, 1/256} and measures how far the stored leading order holds; make the page again after it.";
      document.getElementById("verify-plot").style.display = "none";
      return Promise.resolve();
    }
    const traces = V.steps.map((s, k) => ({ x: V.epsilons, y: V.rel_theta[k], mode: "lines+markers", name: "step " + s,
      line: { width: s === steps[state.c] ? 3.5 : 1.2 }, opacity: s === steps[state.c] ? 1 : 0.55,
      hovertemplate: "step " + s + ", ε %{x:.3g}: median relative error %{y:.3g}<extra></extra>" }));
    const all = [].concat.apply([], V.rel_theta).filter((v) => v > 0);
    const layout = { font: FONT, height: 340, margin: { l: 70, r: 12, t: 8, b: 48 }, hovermode: "closest",
      xaxis: Object.assign({ type: "log", title: { text: "step size ε" } }, logTicks(V.epsilons)),
      yaxis: Object.assign({ type: "log", title: { text: "median ‖Δ_real − ε²[u_i,u_j]‖ / ‖Δ_real‖" } }, logTicks(all)),
      shapes: [{ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: 0.1, y1: 0.1, line: { color: "#c0392b", dash: "dash" } }],
      annotations: [{ text: "10%", xref: "paper", yref: "y", x: 0.01, y: Math.log10(0.1), showarrow: false, yshift: 8, font: { color: "#c0392b" } }] };
    const row = V.summary.find((r) => r.step === steps[state.c]);
    caption.textContent = row
      ? `At step ${row.step}: at ε = ${fmt(row.lr)} (the training learning rate) the leading order is off by ${fmt(100 * row.at_lr)}% ` +
        `(median of ${row.pairs} pairs, worst ${fmt(100 * row.max_rel_at_lr)}%); ` +
        (row.within_10pct === null ? "not within 10% at any ε tried" : `within 10% at ε ≤ ${fmt(row.within_10pct)}`) +
        (row.relu_switch_at_lr === null ? "" : `; ${fmt(100 * row.relu_switch_at_lr)}% of ReLU inputs switch sign within one step at lr`) + "."
      : `Checkpoint step ${steps[state.c]} was not verified.`;
    return Plotly.react("verify-plot", traces, layout, CONFIG);
  }
  function drawSimilarity() {
    const S = D.similarity, caption = document.getElementById("similarity-caption");
    const row = S ? S.steps[state.c] : null;
    if (!row || row.pairs.length < 2) {
      caption.textContent = S ? `Fewer than two completed pairs at step ${steps[state.c]}.` :
        "This store keeps no direction of its order effects (storage.keep=summary without storage.sketch, or full arrays too large " +
        "to read for a page): run the sweep with storage.sketch=1024 to see which effects point the same way.";
      document.getElementById("similarity-plot").style.display = S ? "" : "none";
      return S ? Plotly.react("similarity-plot", [], { font: FONT, height: 380 }, CONFIG) : Promise.resolve();
    }
    const labels = row.pairs.map((p) => "(" + p[0] + ", " + p[1] + ")");
    const what = S.effect === "swap" ? "θ_ij − θ_ji" : "[u_i,u_j]";
    const trace = { type: "heatmap", z: row.cos, x: labels, y: labels, zmin: -1, zmax: 1, colorscale: DIVERGING,
      customdata: row.cos.map((r, a) => r.map((_, b) => [row.cos_mean[a], row.cos_mean[b]])),
      hovertemplate: "%{y} · %{x}: cos %{z:.2f}<br>cos with the mean gradient: %{customdata[0]:.2f}, %{customdata[1]:.2f}<extra></extra>",
      colorbar: { title: { text: "cos", side: "right" }, thickness: 12 } };
    const layout = { font: FONT, height: 380, margin: { l: 80, r: 12, t: 8, b: 80 },
      xaxis: { type: "category", tickangle: -45 }, yaxis: { type: "category", autorange: "reversed" } };
    const src = S.source === "sketch" ? `their sketches (k = ${S.k}; each cosine within about ±${fmt(Math.sqrt(2 / S.k), 1)} in standard deviation)` : "the full stored vectors";
    const mean = row.cos_mean.filter((v) => v !== null);
    caption.textContent = `Cosines between the order effects ${what} of the ${row.pairs.length} largest pairs at step ${steps[state.c]}, ` +
      `ordered so that effects pointing the same way sit together (average linkage), from ${src}. ` +
      `Their cosines with the checkpoint's mean gradient range over [${fmt(Math.min(...mean), 1)}, ${fmt(Math.max(...mean), 1)}] ` +
      "(positive: i then j ends at a higher mean loss than j then i, to first order).";
    return Plotly.react("similarity-plot", [trace], layout, CONFIG);
  }
  const PAIR_COLUMNS = [["norm", "‖[u_i,u_j]‖"], ["c", "c"], ["r2", "R²"], ["logit_rms", "logit RMS"], ["swap_norm", "‖θ_ij − θ_ji‖"],
                        ["swap_logit_rms", "exact logit RMS"], ["lead_rel_err", "lead err"]];
  const BY_TEXT = {
    norm: { pair: "‖[u_i,u_j]‖", example: "mean ‖[u_e,u_j]‖ over partners" }, rms: { pair: "bracket RMS", example: "RMS of ‖[u_e,u_j]‖ over partners" },
    c: { pair: "c", example: "mean c over partners" }, logit_rms: { pair: "logit RMS", example: "mean logit RMS over partners" },
    swap: { pair: "the exact swap ‖θ_ij − θ_ji‖", example: "mean ‖θ_ej − θ_je‖ over partners (exact swaps)" },
    swap_logit_rms: { pair: "exact logit RMS", example: "mean exact logit RMS over partners" },
  };
  function exampleCell(e) {  // a table cell: the example's thumbnail (where the page has one) and its index
    const td = node("td", undefined, "ex"), src = images[String(e)];
    if (src) { const img = document.createElement("img"); img.src = src; img.alt = "example " + e; td.appendChild(img); }
    td.appendChild(document.createTextNode(String(e)));
    if (texts[String(e)]) {  // a sequence: its first characters, the whole of it on hover
      const whole = texts[String(e)].join("");
      td.appendChild(node("span", " " + JSON.stringify(whole.slice(0, 24)) + (whole.length > 24 ? "…" : ""), "snippet"));
      td.title = whole;
    }
    return td;
  }
  function headerRow(titles) { const tr = document.createElement("tr"); titles.forEach((t) => tr.appendChild(node("th", t))); return tr; }
  function drawTables() {
    const r = D.rankings[state.c];
    const tp = document.getElementById("top-pairs");
    // with the exact swap: the bracket's norm beside the swap's (c and R² are in the scatter's caption)
    const cols = PAIR_COLUMNS.filter((col) => r.pairs.length && col[0] in r.pairs[0] && !(hasSwap && (col[0] === "c" || col[0] === "r2")));
    tp.replaceChildren(headerRow(["i", "j"].concat(cols.map((col) => col[1]))));
    for (const row of r.pairs) {
      const tr = document.createElement("tr");
      const embedded = pairIndex.has(row.i + "," + row.j);
      tr.className = embedded ? "clickable" : "absent";
      if (state.sel && embedded && pairIndex.get(row.i + "," + row.j) === state.sel.p) tr.className += " selected";
      tr.title = embedded ? "show this pair" : "not on this page: rerun report with --examples " + row.i + "," + row.j;
      tr.append(exampleCell(row.i), exampleCell(row.j), ...cols.map((col) => node("td", fmt(row[col[0]], col[0] === "r2" ? 2 : undefined))));
      if (embedded) tr.addEventListener("click", () => select(row.i, row.j));
      tp.appendChild(tr);
    }
    document.getElementById("top-pairs-caption").textContent = `Over all completed pairs of the sweep at step ${steps[state.c]}, by ${BY_TEXT[info.by].pair}; magnitudes. Click a row to select it.`;
    const te = document.getElementById("top-examples");
    te.replaceChildren(headerRow(["example", "score", "± s.e.", "partners"].concat(hasBracket ? ["mean c"] : [], ["loss"])));
    for (const row of r.examples) {
      const tr = document.createElement("tr");
      tr.append(exampleCell(row.example), node("td", fmt(row.score)), node("td", fmt(row.se)), node("td", String(row.partners)),
                ...(hasBracket ? [node("td", fmt(row.mean_c))] : []), node("td", fmt(row.loss)));
      te.appendChild(tr);
    }
    const what = BY_TEXT[info.by].example;
    document.getElementById("top-examples-caption").textContent = `Score: ${what}, with its standard error; magnitudes.`;
  }

  // ---- wiring -------------------------------------------------------------------------------------------------
  function select(i, j) {
    if (i === j) return;
    if (pairIndex.has(i + "," + j)) state.sel = { p: pairIndex.get(i + "," + j), flip: false };
    else if (pairIndex.has(j + "," + i)) state.sel = { p: pairIndex.get(j + "," + i), flip: true };
    else return;
    return Promise.all([drawHeatmap(), drawScatter(), drawMatrix(), drawLoss()]).then(drawTables);
  }
  function setCheckpoint(c) {
    state.c = c;
    document.getElementById("ckpt-slider").value = String(c);
    checkpointLabel();
    drawTables();
    return Promise.all([drawLoss(), drawCheckpointStats(), drawMatrix(), drawHeatmap(), drawScatter(), drawOutputs(), drawVerify(),
                        drawSimilarity()]);
  }
  function defaultPair() {
    for (const row of D.rankings[state.c].pairs) if (pairIndex.has(row.i + "," + row.j)) return [row.i, row.j];
    for (let p = 0; p < Ps; p++) if (isDone(state.c, p)) return pairs[p];
    return null;
  }

  if (PER_POSITION) {
    document.querySelector("#panel-outputs h2").textContent = "Positions whose log p(next token) moves most";
  }
  header();
  const first = defaultPair();
  if (first) state.sel = { p: pairIndex.get(first[0] + "," + first[1]), flip: false };
  checkpointLabel();
  drawTables();
  const ready = Promise.all([drawLoss(), drawCheckpointStats(), drawMatrix(), drawHeatmap(), drawScatter(), drawOutputs(), drawVerify(),
                             drawSimilarity()]).then(() => {
    document.getElementById("matrix-plot").on("plotly_click", (ev) => {
      const pt = ev.points[0];
      select(shown[Math.round(pt.y)], shown[Math.round(pt.x)]);
    });
    document.getElementById("loss-plot").on("plotly_click", (ev) => {
      const c = steps.indexOf(ev.points[0].x);
      if (c >= 0) setCheckpoint(c);
    });
    performance.mark("lie-sweep-ready");
    document.body.dataset.ready = "true";
  });
  window.lieSweep = { data: D, state, select, setCheckpoint, setEffect, ready, decode, scoreOf };
})();
