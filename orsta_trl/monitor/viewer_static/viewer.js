// orsta-trl rollout viewer. Reads the JSON in #data; the filters live in the URL hash
// (#source=a&split=train&steps=3:7&reason=no_answer&rmin=0&rmax=0.5&truncated=1&toolfail=1&follow=src␟id&page=2),
// so a view can be linked, and a headless browser can be pointed at one. Every text from the data is set with
// textContent or setAttribute, never parsed as HTML.
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const PAGE = 20;
const SVG = "http://www.w3.org/2000/svg";
const KEYS = ["source", "split", "steps", "reason", "rmin", "rmax", "truncated", "toolfail", "follow", "page"];

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function readState() {
  const params = new URLSearchParams(location.hash.replace(/^#/, "") || location.search.replace(/^\?/, ""));
  const state = {};
  for (const k of KEYS) state[k] = params.get(k) || "";
  if (!location.hash && !location.search) Object.assign(state, D.initial || {});
  return state;
}

function writeState(state) {
  const params = new URLSearchParams();
  for (const k of KEYS) if (state[k]) params.set(k, state[k]);
  location.hash = params.toString();
}

function stepRange(text) {
  if (!text) return [-Infinity, Infinity];
  const [a, b] = text.includes(":") ? text.split(":") : [text, text];
  return [a.trim() === "" ? -Infinity : Number(a), b.trim() === "" ? Infinity : Number(b)];
}

function rowMatches(row, s) {
  if (s.reason && (row.reason || "none") !== s.reason) return false;
  if (s.rmin !== "" && row.reward < Number(s.rmin)) return false;
  if (s.rmax !== "" && row.reward > Number(s.rmax)) return false;
  if (s.truncated === "1" && !row.truncated) return false;
  if (s.toolfail === "1" && !row.tool_failed) return false;
  return true;
}

// Groups: the completions of one prompt at one step (one record at one evaluation).
const GROUPS = (() => {
  const map = new Map();
  D.rows.forEach((row, i) => {
    const key = [row.split, row.step, row.src, row.id, row.group === null ? "" : row.group].join("\u241f");
    if (!map.has(key)) map.set(key, { split: row.split, step: row.step, src: row.src, id: row.id, rows: [] });
    map.get(key).rows.push(i);
  });
  return [...map.values()].sort((a, b) => a.step - b.step || a.split.localeCompare(b.split) ||
    a.src.localeCompare(b.src) || a.id.localeCompare(b.id));
})();

function selectGroups(s) {
  const [lo, hi] = stepRange(s.steps);
  const out = [];
  for (const g of GROUPS) {
    if (s.source && g.src !== s.source) continue;
    if (s.split && g.split !== s.split) continue;
    if (g.step < lo || g.step > hi) continue;
    if (s.follow && `${g.src}\u241f${g.id}` !== s.follow) continue;
    const matching = g.rows.filter((i) => rowMatches(D.rows[i], s));
    if (matching.length) out.push({ group: g, matching: new Set(matching) });
  }
  return out;
}

function figure(record, row) {
  const image = record.images[0];
  if (!image) return null;
  const w = image.w || 100, h = image.h || 100;
  const svg = el("svg:svg", { class: "figure", viewBox: `0 0 ${w} ${h}`, "data-w": w, "data-h": h });
  if (image.hash) {
    svg.appendChild(el("svg:image", { href: D.images[image.hash], x: 0, y: 0, width: w, height: h,
      preserveAspectRatio: "none" }));
  } else {
    svg.classList.add("missing");
    svg.appendChild(el("svg:text", { class: "missing", x: 4, y: Math.min(16, h - 2), "font-size": Math.max(6, w / 25) },
      `image missing: ${image.missing}`));
  }
  const draw = (boxes, kind) => (boxes || []).forEach((b, k) => {
    const rect = el("svg:rect", { class: kind, x: b[0], y: b[1], width: +(b[2] - b[0]).toFixed(2),
      height: +(b[3] - b[1]).toFixed(2), "data-index": k });
    rect.appendChild(el("svg:title", {}, `${kind === "gt" ? "ground truth" : "prediction"} ${b[4] || ""} ` +
      `[${b.slice(0, 4).join(", ")}] (original pixels)`));
    svg.appendChild(rect);
  });
  draw(record.gt_boxes, "gt");
  if (row) draw(row.boxes, "pred");
  return svg;
}

function fmt(v) {
  if (v === null || v === undefined) return "\u2014";
  return typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : String(v);
}

function statsTable(row) {
  const table = el("table");
  const add = (k, v) => { const tr = el("tr"); tr.append(el("td", {}, k), el("td", {}, fmt(v))); table.appendChild(tr); };
  add("reward", row.reward); add("accuracy", row.accuracy); add("format", row.format);
  add("advantage", row.advantage); add("length", row.length);
  for (const [k, v] of Object.entries(row.parts)) add(k, v);
  if (row.boxes) add("boxes", `${row.boxes.length} drawn, ${row.invalid} invalid${row.box_note ? ", " + row.box_note : ""}`);
  return table;
}

function transcript(row) {
  const list = el("ol", { class: "calls" });
  for (const call of row.calls) {
    const li = el("li", { class: call.ok === false ? "failed" : "ok" });
    li.appendChild(el("b", {}, call.name));
    li.appendChild(document.createTextNode(`(${JSON.stringify(call.args)}) \u2192 ${call.ok === false ? "failed" : call.ok ? "ok" : "?"}`));
    if (call.result !== null) li.appendChild(el("pre", {}, call.result));
    if (call.image) li.appendChild(el("img", { src: D.images[call.image], alt: `${call.name} result` }));
    list.appendChild(li);
  }
  return list;
}

function completionCard(i, matched, best) {
  const row = D.rows[i];
  const record = D.records[`${row.src}\u241f${row.id}`];
  const card = el("div", { class: "completion" + (matched ? " match" : " dim") + (best ? " best" : ""), "data-row": i,
    "data-step": row.step, "data-split": row.split, "data-src": row.src, "data-id": row.id, "data-reward": row.reward,
    "data-reason": row.reason || "none", "data-truncated": row.truncated ? 1 : 0, "data-toolfail": row.tool_failed ? 1 : 0 });
  const fig = figure(record, row);
  if (fig) card.appendChild(fig);
  const flags = el("div");
  flags.appendChild(el("span", { class: "flag reason" }, row.reason || "ok"));
  if (row.truncated) flags.appendChild(el("span", { class: "flag trunc" }, "truncated"));
  if (row.tool_failed) flags.appendChild(el("span", { class: "flag fail" }, "tool failure"));
  card.append(flags, statsTable(row));
  if (row.calls && row.calls.length) card.appendChild(transcript(row));
  card.appendChild(el("pre", { class: "text" }, row.text));
  return card;
}

function groupSection(item, state) {
  const g = item.group;
  const record = D.records[`${g.src}\u241f${g.id}`];
  const first = D.rows[g.rows[0]];
  const section = el("section", { class: "group", "data-step": g.step, "data-split": g.split, "data-src": g.src, "data-id": g.id });
  const head = el("header");
  head.appendChild(el("span", { class: `split-${g.split}` }, g.split === "eval" ? "held-out eval" : "train"));
  head.appendChild(document.createTextNode(` \u00b7 step ${g.step} \u00b7 ${g.src} \u00b7 ${g.id}`));
  const follow = el("a", { class: "follow", "data-follow": `${g.src}\u241f${g.id}` }, state.follow ? "stop following" : "follow this record");
  follow.onclick = () => writeState({ ...state, follow: state.follow ? "" : `${g.src}\u241f${g.id}`, page: "" });
  head.appendChild(follow);
  section.append(head, el("div", { class: "prompt" }, D.prompts[first.prompt]));
  if (!record.known) section.appendChild(el("div", { class: "gt-text" }, "record not found: no image or ground truth"));
  if (record.gt_text) section.appendChild(el("div", { class: "gt-text" }, `ground truth: ${record.gt_text}`));
  const row = el("div", { class: "row" });
  const rewards = g.rows.map((i) => D.rows[i].reward);
  const best = Math.max(...rewards), spread = best > Math.min(...rewards); // frame the best only when it stands out
  for (const i of g.rows) row.appendChild(completionCard(i, item.matching.has(i), spread && D.rows[i].reward === best));
  section.appendChild(row);
  return section;
}

function curveStrip(source, state) {
  const series = D.curves[source] || {};
  const names = Object.keys(series);
  const box = el("div", { class: "curve", "data-src": source });
  box.appendChild(el("div", { class: "name" }, source));
  if (!names.length) { box.appendChild(el("div", {}, "no curves logged")); return box; }
  const all = names.flatMap((n) => series[n]);
  const x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]), x0 + 1);
  const top = Math.max(1, ...all.map((p) => p[1])), W = 260, H = 50;
  const svg = el("svg:svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}` });
  const colours = ["#0b62c4", "#2a8a3e", "#b8860b", "#7a3db8", "#b42318"];
  const legend = el("div", { class: "legend" });
  names.forEach((n, k) => {
    const pts = series[n].map((p) => `${((p[0] - x0) / (x1 - x0) * (W - 4) + 2).toFixed(1)},${(H - 2 - p[1] / top * (H - 4)).toFixed(1)}`);
    svg.appendChild(el("svg:polyline", { points: pts.join(" "), fill: "none", stroke: colours[k % 5], "stroke-width": 1.5, "data-series": n }));
    legend.appendChild(el("span", { style: `color:${colours[k % 5]}` }, n));
  });
  svg.onclick = (ev) => {
    const step = Math.round(x0 + (ev.offsetX - 2) / (W - 4) * (x1 - x0));
    writeState({ ...state, source, steps: `${step - 2}:${step + 2}`, page: "" });
  };
  box.append(svg, legend);
  return box;
}

function setupControls(state) {
  const fill = (id, values) => {
    const select = document.getElementById(id);
    if (select.options.length > 1) return;
    for (const v of values) select.appendChild(el("option", { value: v }, v));
  };
  fill("f-source", D.sources);
  fill("f-reason", [...new Set(D.rows.map((r) => r.reason || "none"))].sort());
  const bind = { "f-source": "source", "f-split": "split", "f-steps": "steps", "f-reason": "reason", "f-rmin": "rmin", "f-rmax": "rmax" };
  for (const [id, key] of Object.entries(bind)) {
    const input = document.getElementById(id);
    input.value = state[key];
    input.onchange = () => writeState({ ...readState(), [key]: input.value, page: "" });
  }
  for (const key of ["truncated", "toolfail"]) {
    const box = document.getElementById(`f-${key}`);
    box.checked = state[key] === "1";
    box.onchange = () => writeState({ ...readState(), [key]: box.checked ? "1" : "", page: "" });
  }
  document.getElementById("f-clear").onclick = () => writeState({});
  const followBox = document.getElementById("follow-box");
  followBox.textContent = state.follow ? `following ${state.follow.replace("\u241f", " / ")}` : "";
}

function followTable(groups) {
  const table = el("table", { class: "follow-table" });
  const head = el("tr");
  head.append(el("th", {}, "split"), el("th", {}, "step"), el("th", {}, "mean reward"), el("th", {}, "best"));
  table.appendChild(head);
  for (const { group } of groups) {
    const rewards = group.rows.map((i) => D.rows[i].reward);
    const tr = el("tr");
    tr.append(el("td", {}, group.split), el("td", {}, group.step),
      el("td", {}, fmt(rewards.reduce((a, b) => a + b, 0) / rewards.length)), el("td", {}, fmt(Math.max(...rewards))));
    table.appendChild(tr);
  }
  return table;
}

function render() {
  const state = readState();
  document.getElementById("title").textContent = `orsta-trl rollouts: ${D.title}`;
  setupControls(state);
  const curves = document.getElementById("curves");
  curves.replaceChildren(...D.sources.filter((s) => !state.source || s === state.source).map((s) => curveStrip(s, state)));
  const groups = selectGroups(state);
  const pages = Math.max(1, Math.ceil(groups.length / PAGE));
  const page = Math.min(pages, Math.max(1, Number(state.page) || 1));
  const shown = groups.slice((page - 1) * PAGE, page * PAGE);
  const completions = groups.reduce((n, g) => n + g.matching.size, 0);
  const summary = document.getElementById("summary");
  summary.textContent = `${completions} of ${D.rows.length} completions match, in ${groups.length} groups; page ${page} of ${pages}`;
  summary.setAttribute("data-matching", completions);
  const pager = document.getElementById("pager");
  pager.replaceChildren();
  for (const [label, target] of [["\u2190 previous", page - 1], ["next \u2192", page + 1]]) {
    const button = el("button", { type: "button" }, label);
    button.disabled = target < 1 || target > pages;
    button.onclick = () => writeState({ ...state, page: String(target) });
    pager.appendChild(button);
  }
  const main = document.getElementById("groups");
  main.replaceChildren(...(state.follow ? [followTable(groups)] : []), ...shown.map((g) => groupSection(g, state)));
  document.body.setAttribute("data-rendered", "1");
}

window.addEventListener("hashchange", render);
render();
document.body.setAttribute("data-load-ms", performance.now().toFixed(0)); // navigation start to first render
window.addEventListener("load", () => document.body.setAttribute("data-loaded-ms", performance.now().toFixed(0)));
