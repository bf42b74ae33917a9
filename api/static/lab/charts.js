// The timeline (the API's own SVG, GET /timeline.svg, drawn for the width of its box) and the statistics
// (GET /stats) as small SVG charts drawn here, also for their width, so that their text keeps its size
// on any screen. No chart library: a few bars and labels.

import { ApiError, get, getText } from "./api.js";
import { count, duration, h, put, s } from "./dom.js";

const COLOURS = {
  FINISHED: "#2e9d4f", SUCCEEDED: "#2e9d4f", CANCELLED: "#7f7f7f", ERROR: "#d62828", FAILED: "#d62828",
  LOST: "#8e44ad", ACTIVE: "#1f6fd1", PAUSED: "#e08a1e", PENDING: "#b0b0b0",
};
const FORBIDDEN = "script, foreignObject, iframe, object, embed, a";

/** The API's SVG, parsed as XML (which runs nothing) and stripped of anything active before it joins
 * the page: only shapes, text and tooltips remain. */
function safeSvg(text) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (root.nodeName !== "svg") throw new Error("the timeline is not an SVG picture");
  root.querySelectorAll(FORBIDDEN).forEach((el) => el.remove());
  for (const el of [root, ...root.querySelectorAll("*")]) {
    for (const attr of [...el.attributes]) {
      if (/^on/i.test(attr.name) || /href$/i.test(attr.name)) el.removeAttribute(attr.name);
    }
  }
  const svg = document.importNode(root, true);
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "timeline of tasks on nodes");
  return svg;
}

const TIMELINE_WIDTH = { min: 480, max: 4000 }; // what GET /timeline.svg draws

export async function drawTimeline(since) {
  const box = document.getElementById("timeline");
  document.querySelectorAll("button.window").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.since === since)));
  if (!box.clientWidth) return; // not on screen (a task's page is open): drawn when the lab is back
  const width = Math.min(TIMELINE_WIDTH.max, Math.max(TIMELINE_WIDTH.min, Math.floor(box.clientWidth)));
  try {
    put(box, safeSvg(await getText("timeline.svg", { since, width })));
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) throw failure;
    put(box, h("p", { class: "muted" }, `timeline unavailable: ${failure.message}`));
  }
}

const CHART_MIN_W = 560; // lab.css: .charts columns are at least this wide, 24 px apart
const CHART_GAP = 24;
const LABEL_W = 170;
const ROW_H = 26;
const LINE_H = 16; // a value's further lines
const FONT_PX = 13; // lab.css: svg.chart's font size

/** The width of one chart: the width of a column of the charts' grid, as lab.css lays it out. */
function chartWidth() {
  const width = document.getElementById("stats").clientWidth || 2 * CHART_MIN_W;
  const columns = Math.max(1, Math.floor((width + CHART_GAP) / (CHART_MIN_W + CHART_GAP)));
  return Math.max(320, Math.floor((width - (columns - 1) * CHART_GAP) / columns));
}

let pen = null;

/** How wide a chart's text is drawn, in pixels (measured in the page's own font). */
function textWidth(text) {
  if (!pen) {
    pen = document.createElement("canvas").getContext("2d");
    pen.font = `${FONT_PX}px ${getComputedStyle(document.documentElement).fontFamily}`;
  }
  return pen.measureText(text).width;
}

/** `text` in lines at most `width` pixels wide, broken after a comma where it can be, else at a space. */
function wrap(text, width) {
  const lines = [];
  let line = "";
  const add = (piece, joint) => {
    const longer = line ? `${line}${joint}${piece}` : piece;
    if (!line || textWidth(longer) <= width) line = longer;
    else {
      lines.push(line);
      line = piece;
    }
  };
  for (const phrase of text.split(", ").map((p, i, all) => (i < all.length - 1 ? `${p},` : p))) {
    if (textWidth(phrase) <= width) add(phrase, " ");
    else phrase.split(" ").forEach((word) => add(word, " "));
  }
  return [...lines, line];
}

/** A label cut to what fits left of the bars (the whole label is the row's tooltip). */
function fitted(label) {
  let cut = label;
  while (cut.length > 1 && textWidth(cut === label ? cut : `${cut}…`) > LABEL_W - 12) cut = cut.slice(0, -1);
  return cut === label ? label : `${cut}…`;
}

/** One row per item: a label, bars from `segments` ([value, colour, tooltip]) scaled to `max`, a text
 * (on more lines when it is long). Drawn `width` pixels wide, for the text to keep its size. */
function barChart(title, rows, max, width) {
  const valueW = Math.round(Math.min(360, Math.max(190, width * 0.42)));
  const plot = width - LABEL_W - valueW;
  const texts = rows.map((row) => wrap(row.text, valueW - 12));
  const height = 8 + texts.reduce((sum, lines) => sum + ROW_H + (lines.length - 1) * LINE_H, 0);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart", role: "img", "aria-label": title });
  let y = 4;
  rows.forEach((row, i) => {
    const g = s("g", { class: "row" }, s("title", {}, `${row.label}: ${row.text}`));
    g.append(s("text", { x: LABEL_W - 8, y: y + 16, "text-anchor": "end", class: "label" }, fitted(row.label)));
    g.append(s("rect", { x: LABEL_W, y: y + 4, width: plot, height: 16, class: "track" }));
    let x = LABEL_W;
    for (const [value, colour, tip] of row.segments) {
      const w = max > 0 ? (value / max) * plot : 0;
      if (w > 0) g.append(s("rect", { x, y: y + 4, width: Math.max(w, 1), height: 16, fill: colour, class: "bar" }, s("title", {}, tip)));
      x += w;
    }
    if (row.marks) for (const [value, tip] of row.marks) {
      const mx = LABEL_W + (max > 0 ? (value / max) * plot : 0);
      g.append(s("line", { x1: mx, x2: mx, y1: y + 1, y2: y + 23, class: "mark" }, s("title", {}, tip)));
    }
    g.append(s("text", { x: LABEL_W + plot + 8, y: y + 16, class: "value" },
      texts[i].map((line, n) => s("tspan", { x: LABEL_W + plot + 8, dy: n ? LINE_H : 0 }, line))));
    svg.append(g);
    y += ROW_H + (texts[i].length - 1) * LINE_H;
  });
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg);
}

/** Each node's calls as one bar: succeeded, failed, cancelled by an operator (apart: a cancel says
 * nothing of the node, and the rate leaves it out), lost. */
function successChart(nodes, width) {
  return barChart("Success rate per node", nodes.map((n) => {
    const part = (k) => (n[k] ?? 0) / (n.calls || 1);
    const cancelled = n.cancelled ?? 0;
    const extra = [n.failures ? `${n.failures} failed` : "", cancelled ? `${cancelled} cancelled` : ""].filter(Boolean);
    return {
      label: n.node,
      segments: [[part("successes"), COLOURS.SUCCEEDED, `${n.successes} succeeded`],
        [part("failures"), COLOURS.FAILED, `${n.failures} failed`],
        [part("cancelled"), COLOURS.CANCELLED, `${cancelled} cancelled`], [part("lost"), COLOURS.LOST, `${n.lost} lost`]],
      text: n.calls ? `${Math.round((n.success_rate ?? 0) * 100)}% of ${count(n.calls, "call")}` + extra.map((e) => `, ${e}`).join("")
        : "no calls",
    };
  }), 1, width);
}

function durationChart(nodes, width) {
  const max = Math.max(0, ...nodes.map((n) => n.duration_s.max ?? 0));
  return barChart("Step duration per node (bar: mean, lines: p95 and max)", nodes.map((n) => ({
    label: n.node,
    segments: n.duration_s.mean === null ? [] : [[n.duration_s.mean, "#1f6fd1", `mean ${duration(n.duration_s.mean)}`]],
    marks: n.duration_s.max === null ? [] : [[n.duration_s.p95, `p95 ${duration(n.duration_s.p95)}`], [n.duration_s.max, `max ${duration(n.duration_s.max)}`]],
    text: n.duration_s.mean === null ? "no runs"
      : `mean ${duration(n.duration_s.mean)}, p95 ${duration(n.duration_s.p95)}, max ${duration(n.duration_s.max)}`,
  })), max, width);
}

function outcomesChart(workflows, width) {
  const max = Math.max(0, ...workflows.map((w) => w.tasks));
  return barChart("Outcomes per workflow", workflows.map((w) => {
    const outcomes = Object.entries(w.outcomes).filter(([, n]) => n > 0);
    const states = outcomes.map(([state, n]) => `${n} ${state}`).join(", ");
    return {
      label: w.workflow,
      segments: outcomes.map(([state, n]) => [n, COLOURS[state] || "#999", `${n} ${state}`]),
      text: w.tasks ? `${count(w.tasks, "task")}${states ? `: ${states}` : ""}` : "no task",
    };
  }), max, width);
}

function weeksChart(weeks, width) {
  const max = Math.max(0, ...weeks.map((w) => w.tasks));
  return barChart("Tasks per week", weeks.map((w) => ({
    label: `${w.week} (${w.start})`, segments: [[w.tasks, "#1f6fd1", count(w.tasks, "task")]],
    text: w.tasks ? count(w.tasks, "task") : "no task",
  })), max, width);
}

const day = (iso) => new Date(iso).toLocaleDateString("en-CA"); // 2026-11-25, in local time

function waitChart(nodes, width) {
  const max = Math.max(0, ...nodes.map((n) => n.waited_s.total));
  return barChart("Time tasks waited for each node", nodes.map((n) => ({
    label: n.node, segments: [[n.waited_s.total, COLOURS.PAUSED, `waited ${duration(n.waited_s.total)} in all`]],
    text: n.waited_s.total ? `${duration(n.waited_s.total)} in all, at most ${duration(n.waited_s.max)}` : "none",
  })), max, width);
}

let last = null; // the statistics drawn last, drawn again for a new width

export async function drawStats() {
  const box = document.getElementById("stats");
  try {
    last = await get("stats");
  } catch (failure) {
    if (failure.status === 401) throw failure;
    put(box, h("p", { class: "muted" }, `statistics unavailable: ${failure.message}`));
    return;
  }
  redrawStats();
}

export function redrawStats() {
  const box = document.getElementById("stats");
  if (!last || !box.clientWidth) return;
  const stats = last;
  const width = chartWidth();
  put(document.getElementById("stats-window"), `${day(stats.since)} to ${day(stats.until)}`);
  const notes = stats.nodes.filter((n) => n.note).map((n) => h("p", { class: "muted small" }, `${n.node}: ${n.note}`));
  put(box, stats.nodes.length ? [successChart(stats.nodes, width), durationChart(stats.nodes, width), waitChart(stats.nodes, width)]
    : h("p", { class: "muted" }, "No node was called in this window."),
  stats.workflows.length ? outcomesChart(stats.workflows, width) : null,
  stats.tasks_per_week.length ? weeksChart(stats.tasks_per_week, width) : null, notes);
}
