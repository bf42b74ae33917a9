// The timeline (the API's own SVG, GET /timeline.svg) and the statistics (GET /stats) as small SVG
// charts drawn here. No chart library: a few bars and labels.

import { ApiError, get, getText } from "./api.js";
import { duration, h, put, s } from "./dom.js";

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

export async function drawTimeline(since) {
  const box = document.getElementById("timeline");
  document.querySelectorAll("button.window").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.since === since)));
  try {
    put(box, safeSvg(await getText("timeline.svg", { since })));
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) throw failure;
    put(box, h("p", { class: "muted" }, `timeline unavailable: ${failure.message}`));
  }
}

const LABEL_W = 170;
const VALUE_W = 290;
const CHART_W = 700;
const ROW_H = 26;

/** One row per item: a label, bars from `segments` ([value, colour, tooltip]) scaled to `max`, a text. */
function barChart(title, rows, max) {
  const height = rows.length * ROW_H + 8;
  const plot = CHART_W - LABEL_W - VALUE_W;
  const svg = s("svg", { viewBox: `0 0 ${CHART_W} ${height}`, class: "chart", role: "img", "aria-label": title });
  rows.forEach((row, i) => {
    const y = 4 + i * ROW_H;
    const g = s("g", { class: "row" }, s("title", {}, `${row.label}: ${row.text}`));
    g.append(s("text", { x: LABEL_W - 8, y: y + 16, "text-anchor": "end", class: "label" }, row.label));
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
    g.append(s("text", { x: LABEL_W + plot + 8, y: y + 16, class: "value" }, row.text));
    svg.append(g);
  });
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), svg);
}

function successChart(nodes) {
  return barChart("Success rate per node", nodes.map((n) => ({
    label: n.node,
    segments: [[n.successes / (n.calls || 1), COLOURS.SUCCEEDED, `${n.successes} succeeded`],
      [n.failures / (n.calls || 1), COLOURS.FAILED, `${n.failures} failed`], [n.lost / (n.calls || 1), COLOURS.LOST, `${n.lost} lost`]],
    text: n.calls ? `${Math.round((n.success_rate ?? 0) * 100)}% of ${n.calls} calls` + (n.failures ? `, ${n.failures} failed` : "")
      : "no calls",
  })), 1);
}

function durationChart(nodes) {
  const max = Math.max(0, ...nodes.map((n) => n.duration_s.max ?? 0));
  return barChart("Step duration per node (bar: mean, lines: p95 and max)", nodes.map((n) => ({
    label: n.node,
    segments: n.duration_s.mean === null ? [] : [[n.duration_s.mean, "#1f6fd1", `mean ${duration(n.duration_s.mean)}`]],
    marks: n.duration_s.max === null ? [] : [[n.duration_s.p95, `p95 ${duration(n.duration_s.p95)}`], [n.duration_s.max, `max ${duration(n.duration_s.max)}`]],
    text: n.duration_s.mean === null ? "no runs"
      : `mean ${duration(n.duration_s.mean)}, p95 ${duration(n.duration_s.p95)}, max ${duration(n.duration_s.max)}`,
  })), max);
}

function outcomesChart(workflows) {
  const max = Math.max(0, ...workflows.map((w) => w.tasks));
  return barChart("Outcomes per workflow", workflows.map((w) => {
    const outcomes = Object.entries(w.outcomes).filter(([, n]) => n > 0);
    return {
      label: w.workflow,
      segments: outcomes.map(([state, n]) => [n, COLOURS[state] || "#999", `${n} ${state}`]),
      text: `${w.tasks} task${w.tasks === 1 ? "" : "s"}: ${outcomes.map(([state, n]) => `${n} ${state}`).join(", ")}`,
    };
  }), max);
}

function weeksChart(weeks) {
  const max = Math.max(0, ...weeks.map((w) => w.tasks));
  return barChart("Tasks per week", weeks.map((w) => ({
    label: `${w.week} (${w.start})`, segments: [[w.tasks, "#1f6fd1", `${w.tasks} tasks`]], text: `${w.tasks} tasks`,
  })), max);
}

const day = (iso) => new Date(iso).toLocaleDateString("en-CA"); // 2026-11-25, in local time

function waitChart(nodes) {
  const max = Math.max(0, ...nodes.map((n) => n.waited_s.total));
  return barChart("Time tasks waited for each node", nodes.map((n) => ({
    label: n.node, segments: [[n.waited_s.total, COLOURS.PAUSED, `waited ${duration(n.waited_s.total)} in all`]],
    text: n.waited_s.total ? `${duration(n.waited_s.total)} in all, at most ${duration(n.waited_s.max)}` : "none",
  })), max);
}

export async function drawStats() {
  const box = document.getElementById("stats");
  let stats;
  try {
    stats = await get("stats");
  } catch (failure) {
    if (failure.status === 401) throw failure;
    put(box, h("p", { class: "muted" }, `statistics unavailable: ${failure.message}`));
    return;
  }
  put(document.getElementById("stats-window"), `${day(stats.since)} to ${day(stats.until)}`);
  const notes = stats.nodes.filter((n) => n.note).map((n) => h("p", { class: "muted small" }, `${n.node}: ${n.note}`));
  put(box, stats.nodes.length ? [successChart(stats.nodes), durationChart(stats.nodes), waitChart(stats.nodes)] : h("p", { class: "muted" }, "No node was called in this window."),
    stats.workflows.length ? outcomesChart(stats.workflows) : null, stats.tasks_per_week.length ? weeksChart(stats.tasks_per_week) : null, notes);
}
