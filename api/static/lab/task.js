// One task: its steps (times, waits, outcome, message, output, the driver's log lines), the operators'
// decisions, and the link to the same task in the Temporal UI.

import { get, post, taskPath } from "./api.js";
import { badge, clock, duration, h, put } from "./dom.js";

export async function readTask(taskId) {
  return get(taskPath(taskId));
}

function field(label, value) {
  return value === null || value === undefined || value === "" ? null : h("div", { class: "field" },
    h("span", { class: "label" }, label), h("span", {}, value));
}

function summary(task) {
  const position = task.current_step !== null && task.current_step !== undefined
    ? `step ${task.current_step + 1} of ${task.steps_total ?? "?"}` : null;
  const args = Object.keys(task.args || {}).length ? JSON.stringify(task.args) : null;
  return h("div", { class: "fields" },
    field("State", badge(task.state)),
    field("Workflow", task.workflow_name),
    field("At", position),
    field("Node", task.current_node),
    field("Started", clock(task.started_at)),
    field("Closed", clock(task.closed_at)),
    field("Arguments", args),
    field("Reason", task.reason),
    field("Temporal UI", task.ui_url ? h("a", { href: task.ui_url, target: "_blank", rel: "noopener noreferrer" },
      "open this task in the Temporal UI") : null));
}

function runTime(step) {
  if (!step.started_at) return "";
  const end = step.finished_at ? new Date(step.finished_at) : new Date();
  return duration((end - new Date(step.started_at)) / 1000);
}

/** A step's own id, when it has one besides its number (a protocol's steps: "A", "settle"). */
export function stepName(step) {
  return step.id && step.id !== String(step.index + 1) ? step.id : "";
}

/** A running wait: when it ends, and how long is left. */
export function waitLeft(step) {
  if (!step.ends_at || step.finished_at || step.outcome !== "RUNNING") return "";
  const left = Math.max(0, (new Date(step.ends_at) - new Date()) / 1000);
  return `ends ${clock(step.ends_at)}, ${duration(left)} left`;
}

/** A wait that runs: an operator may end it now (the steps after it start). */
export function runningWait(step) {
  return Boolean(step) && !step.node && step.outcome === "RUNNING" && !step.finished_at;
}

// The End wait commands of this page, by task and step ("<task id> <step id>"): the page is drawn again
// every 2 s, and a button keeps its state through that: off while its command is on its way, then the
// API's refusal beside it (until it is pressed again).
const endings = new Map();

/** "End wait" for a running wait: POST /tasks/{id}/continue {"mode": "next", "step": <its id>}, as
 * `task continue ID --mode next --step STEP` does; `done` hears of the answer (and of a 401). */
export function endWait(task, step, done, text = "End wait") {
  const box = h("span", { class: "wait-end", dataset: { wait: `${task.task_id} ${step.id}`, text } });
  return fillEndWait(box, task, step, done);
}

function fillEndWait(box, task, step, done) {
  const sent = endings.get(box.dataset.wait) || {};
  const name = stepName(step) || `step ${step.index + 1}`;
  const button = h("button", { type: "button", class: "act end-wait", disabled: Boolean(sent.busy),
    "aria-label": `End wait ${name} of ${task.task_id}`,
    title: "End this wait now: the steps after it start (continue --mode next)",
    on: { click: () => sendEndWait(box.dataset.wait, task, step, done) } }, box.dataset.text);
  return put(box, button, sent.error ? h("span", { class: "error small", role: "alert" }, sent.error) : null);
}

/** Every End wait button of this wait on the page, drawn again from its state. */
function redrawEndWait(key, task, step, done) {
  document.querySelectorAll("span.wait-end").forEach((box) => {
    if (box.dataset.wait === key) fillEndWait(box, task, step, done);
  });
}

async function sendEndWait(key, task, step, done) {
  endings.set(key, { busy: true });
  redrawEndWait(key, task, step, done);
  try {
    await post(`${taskPath(task.task_id)}/continue`, { mode: "next", step: step.id });
    endings.delete(key);
    done({ text: `End wait ${step.id} of ${task.task_id}: sent`, task: task.task_id });
  } catch (failure) {
    endings.set(key, { error: failure.message });
    if (failure.status === 401) done({ failure });
  }
  redrawEndWait(key, task, step, done);
}

function stepRow(step, task, done) {
  const name = stepName(step);
  const left = waitLeft(step);
  return h("tr", { class: `step outcome-${step.outcome}` },
    h("td", {}, String(step.index + 1), name ? h("span", { class: "muted" }, ` ${name}`) : ""),
    h("td", {}, step.node || h("span", { class: "muted" }, "wait")),
    h("td", {}, badge(step.outcome), step.waiting_position ? ` ${step.waiting_position} in line` : ""),
    h("td", {}, clock(step.requested_at)),
    h("td", {}, step.waited_s !== null && step.waited_s !== undefined ? duration(step.waited_s) : ""),
    h("td", {}, clock(step.started_at)),
    h("td", {}, runTime(step)),
    h("td", {}, step.attempts > 1 ? `${step.attempts}` : step.attempts ? "1" : ""),
    h("td", { class: "message" }, left || step.message || "",
      done && runningWait(step) ? [left ? " " : "", endWait(task, step, done)] : null));
}

const lines = (n) => `${n} line${n === 1 ? "" : "s"}`;

function stepDetails(step, opened) {
  const output = Object.keys(step.output || {}).length ? JSON.stringify(step.output, null, 2) : null;
  if (!output && !(step.logs || []).length) return null;
  return h("tr", { class: "step-details" }, h("td"), h("td", { colspan: 8 },
    h("details", { open: opened.has(String(step.index)), dataset: { step: String(step.index) } },
      h("summary", {}, `step ${step.index + 1}: output and driver log (${lines((step.logs || []).length)})`),
      output ? h("pre", { class: "output" }, output) : null,
      (step.logs || []).length ? h("pre", { class: "logs" }, step.logs.join("\n")) : null)));
}

function steps(task, opened, done) {
  const head = ["#", "Node", "Outcome", "Requested", "Waited", "Started", "Ran", "Attempts", "Message"];
  const note = task.steps_offset || (task.steps_total && task.steps.length < task.steps_total)
    ? h("p", { class: "muted" }, `steps ${task.steps_offset + 1} to ${task.steps_offset + task.steps.length} of ${task.steps_total}`)
    : null;
  return [h("h3", {}, "Steps"), note, h("table", { class: "grid steps" },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, task.steps.flatMap((step) => [stepRow(step, task, done), stepDetails(step, opened)])))];
}

function decisions(task) {
  if (!task.decisions.length) return [h("h3", {}, "Decisions"), h("p", { class: "muted" }, "No operator command yet.")];
  return [h("h3", {}, "Decisions"), h("ul", { class: "decisions" }, task.decisions.map((d) => h("li", {},
    h("span", { class: "muted" }, clock(d.at)), ` ${d.by || "someone"}: ${d.command}`,
    d.mode ? ` (${d.mode})` : "", d.step !== null && d.step !== undefined ? ` at step ${d.step + 1}` : "",
    ` while ${d.state}`, d.reason ? `: “${d.reason}”` : "")))];
}

/** The task's page; `done`, for an operator (null for a viewer): a running wait gets its End wait button,
 * and `done` hears of its answer. */
export function drawTask(task, done = null) {
  const body = document.getElementById("task-body");
  // A redraw keeps the step details a user opened (a failed step's are open at first).
  const same = body.dataset.task === task.task_id;
  const opened = new Set(same
    ? [...body.querySelectorAll("details[open]")].map((d) => d.dataset.step)
    : task.steps.filter((st) => st.outcome === "FAILED").map((st) => String(st.index)));
  body.dataset.task = task.task_id;
  put(document.getElementById("task-title"), `Task ${task.task_id}`);
  put(body, summary(task), steps(task, opened, done), decisions(task));
}

export function drawTaskError(taskId, failure) {
  put(document.getElementById("task-title"), `Task ${taskId}`);
  put(document.getElementById("task-body"), h("p", { class: "error", role: "alert" }, failure.message));
}
