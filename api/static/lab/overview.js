// The overview: what needs an operator, the nodes, the running tasks and the recent ones, each drawn from
// one reading of the lab (snapshot.js), so that a task shows the same state in every panel.

import { get, post, taskPath } from "./api.js";
import { ago, badge, clock, h, keyed, put, taskLink } from "./dom.js";
import { endWait, runningWait, stepName, waitLeft } from "./task.js";

export const ACK_MS = 8000; // an acknowledgement stays this long at most

/** The record of the step a task is at (its current one), if the status holds it. */
export function currentStep(task) {
  if (task.current_step === null || task.current_step === undefined) return null;
  return (task.steps || []).find((step) => step.index === task.current_step) || null;
}

function stepLine(task) {
  const step = currentStep(task);
  const total = task.steps_total ?? "?";
  const where = step && !step.node ? `: a wait${waitLeft(step) ? `, ${waitLeft(step)}` : ""}`
    : step ? ` on ${step.node}` : task.current_node ? ` on ${task.current_node}` : "";
  const number = task.current_step !== null && task.current_step !== undefined ? task.current_step + 1 : "?";
  const name = step && stepName(step) ? ` (${stepName(step)})` : "";
  return `step ${number}${name} of ${total}${where}`;
}

/** An operator's command on a task: the buttons are off while it is sent; the API's refusal is shown in
 * place; `done` hears of the answer (and of a 401). */
async function command(card, path, body, done, what, taskId) {
  const buttons = card.querySelectorAll("button");
  const error = card.querySelector(".card-error");
  buttons.forEach((b) => { b.disabled = true; });
  put(error);
  try {
    await post(path, body);
    done({ text: `${what}: sent`, task: taskId });
  } catch (failure) {
    put(error, failure.message);
    if (failure.status === 401) done({ failure });
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function commandForm(task, done) {
  const reason = h("input", { type: "text", class: "reason", placeholder: "reason (kept in the task's decisions)",
    "aria-label": `Reason for ${task.task_id}`, maxlength: 1000 });
  const card = () => reason.closest(".card");
  const path = taskPath(task.task_id);
  const why = () => reason.value.trim() || null;
  const act = (label, action) => h("button", { type: "button", class: `act ${action}`, on: { click: () => {
    // In ERROR, the decision is about the step the task shows (a protocol may have several failed).
    const about = task.state === "ERROR" && currentStep(task) ? { step: currentStep(task).id } : {};
    const body = action === "cancel" ? { reason: why() }
      : { mode: action === "retry" ? "retry" : "next", reason: why(), ...about };
    command(card(), `${path}/${action === "cancel" ? "cancel" : "continue"}`, body, done, `${label} ${task.task_id}`, task.task_id);
  } } }, label);
  const paused = task.state === "PAUSED";
  return h("div", { class: "commands" }, reason, h("div", { class: "buttons" },
    act(paused ? "Resume" : "Retry", "retry"), act("Skip", "next"), act("Cancel", "cancel")));
}

function needsInfo(task) {
  const step = currentStep(task);
  // The task's reason usually quotes its step's message: say each thing once.
  const message = step && step.message;
  const unique = task.reason && message && task.reason.includes(message) ? [task.reason]
    : [message, task.reason].filter(Boolean);
  return [
    h("div", { class: "card-head" }, badge(task.state), " ", taskLink(task.task_id),
      h("span", { class: "muted" }, ` ${task.workflow_name || ""}`)),
    h("div", { class: "card-step" }, stepLine(task), step && step.outcome ? ` · ${step.outcome}` : ""),
    ...unique.map((text) => h("div", { class: "card-message" }, text)),
  ];
}

export function drawNeeds(read, canCommand, done) {
  const list = document.getElementById("needs-list");
  list.querySelectorAll(".more").forEach((el) => el.remove());
  keyed(list, read.tasks, (t) => t.task_id,
    (task) => h("article", { class: "card", "aria-label": `task ${task.task_id}` },
      h("div", { class: "card-info" }), canCommand ? commandForm(task, done) : null,
      h("p", { class: "card-error error", role: "alert" })),
    (el, task) => put(el.querySelector(".card-info"), needsInfo(task)));
  document.getElementById("needs-none").hidden = read.tasks.length > 0;
  document.getElementById("needs").classList.toggle("urgent", read.tasks.length > 0);
  if (read.more > 0) list.append(h("p", { class: "muted more" }, `and ${read.more} more (see Recent tasks, state ERROR)`));
  return read.tasks.length + read.more;
}

function workerCell(node, workers) {
  const worker = workers.get(node.worker ?? null);
  const host = node.worker_host || (worker && worker.host);
  const name = node.worker || "worker";
  const status = node.online
    ? h("span", { class: "online" }, "● online")
    : h("span", { class: "offline" }, `○ offline${node.offline_since ? ` since ${clock(node.offline_since)}` : ""}`);
  return [name, host ? h("span", { class: "muted" }, ` on ${host}`) : "", h("br"), status];
}

/** Every step holding the node (a hold: kept for a step running on another node), and its places. */
function holderCell(node) {
  const holders = node.holders || (node.holder ? [node.holder] : []);
  const cells = holders.flatMap((holder, i) => [
    i ? h("br") : "",
    taskLink(holder.key.task_id), ` step ${holder.key.step_index + 1}${holder.hold ? " (hold)" : ""}`, h("br"),
    h("span", { class: "muted" }, `since ${clock(holder.since)} (${ago(holder.since)})`)]);
  const capacity = node.capacity || 1;
  if (capacity > 1) cells.push(h("br"), h("span", { class: "muted" }, `${holders.length} of ${capacity} places`));
  return cells;
}

/** A node's acknowledgement, in its own row, for ACK_MS. */
function acknowledge(row, text) {
  const ack = row.querySelector(".row-ack");
  put(ack, text);
  clearTimeout(Number(ack.dataset.timer));
  ack.dataset.timer = String(setTimeout(() => put(ack), ACK_MS));
}

function restartButton(node, done) {
  return h("button", { type: "button", class: "act restart", "aria-label": `Restart ${node.id}`, on: { click: async (event) => {
    const button = event.currentTarget;
    const row = button.closest("tr");
    button.disabled = true;
    put(row.querySelector(".row-error"));
    put(row.querySelector(".row-ack"));
    try {
      await post(`nodes/${encodeURIComponent(node.id)}/restart`);
      acknowledge(row, "restarted");
      done({ node: node.id });
    } catch (failure) {
      put(row.querySelector(".row-error"), failure.message);
      if (failure.status === 401) done({ failure });
    } finally {
      button.disabled = false;
    }
  } } }, "Restart");
}

export function drawNodes(nodes, workers, canCommand, done) {
  const byName = new Map(workers.map((w) => [w.name ?? null, w]));
  keyed(document.getElementById("nodes-body"), nodes, (n) => n.id,
    (node) => h("tr", {}, h("td", { class: "node-id" }), h("td", { class: "node-state" }), h("td", { class: "node-worker" }),
      h("td", { class: "node-holder" }), h("td", { class: "node-waiting" }),
      h("td", {}, canCommand ? restartButton(node, done) : null, h("div", { class: "row-ack muted small", role: "status" }),
        h("div", { class: "row-error error", role: "alert" }))),
    (row, node) => {
      put(row.querySelector(".node-id"), h("strong", {}, node.id), h("br"), h("span", { class: "muted" }, node.name));
      put(row.querySelector(".node-state"), badge(node.state || "OFFLINE"),
        node.reason ? h("div", { class: "small" }, node.reason) : null);
      put(row.querySelector(".node-worker"), workerCell(node, byName));
      put(row.querySelector(".node-holder"), holderCell(node));
      const waiting = node.waiting_tasks.flatMap((id, i) => (i ? [", ", taskLink(id)] : [taskLink(id)]));
      put(row.querySelector(".node-waiting"), waiting.length ? waiting : h("span", { class: "muted" }, "none"));
      row.dataset.state = node.state || "OFFLINE";
    });
}

function progress(task) {
  const total = task.steps_total || 0;
  const done = task.current_step ?? 0;
  const step = currentStep(task);
  const waiting = step && step.outcome === "WAITING"
    ? ` · waiting${step.waiting_position ? ` (${step.waiting_position} in line)` : ""}` : "";
  const bar = h("progress", { max: total || 1, value: done, "aria-label": `progress of ${task.task_id}` });
  return [bar, ` ${stepLine(task).replace(/ on .*/, "")}${waiting}`];
}

// A table of tasks, a row per task kept by its id: its link, workflow and state, then `more` cells.
function drawTasks(bodyId, tasks, more) {
  keyed(document.getElementById(bodyId), tasks, (t) => t.task_id,
    () => h("tr", {}, ...Array.from({ length: 3 + more.length }, () => h("td"))),
    (row, task) => {
      const cells = row.children;
      put(cells[0], taskLink(task.task_id));
      put(cells[1], task.workflow_name || "");
      put(cells[2], badge(task.state));
      more.forEach((cell, i) => put(cells[3 + i], cell(task)));
    });
}

/** A task's running waits, each with its End wait button (named by its step when there are several). */
function waitButtons(task, done) {
  const waits = (task.steps || []).filter(runningWait);
  if (!done || !waits.length) return null;
  const text = (step) => (waits.length > 1 ? `End wait ${stepName(step) || step.index + 1}` : "End wait");
  return h("div", { class: "wait-ends" }, waits.map((step) => endWait(task, step, done, text(step))));
}

/** The Running panel; `done`, for an operator (null for a viewer): a task's running waits get their
 * End wait buttons, and `done` hears of the answers. */
export function drawRunning(tasks, done = null) {
  drawTasks("running-body", tasks, [
    (task) => [...progress(task), waitButtons(task, done)],
    (task) => (currentStep(task) || {}).node || task.current_node || "",
    (task) => clock(task.started_at),
  ]);
  document.getElementById("running-none").hidden = tasks.length > 0;
  document.getElementById("running-body").closest("table").hidden = tasks.length === 0;
}

/** The Recent tasks filters, as the API's query parameters. */
export function recentFilters() {
  const form = document.getElementById("recent-filters");
  return { state: form.state.value, workflow_name: form.workflow_name.value };
}

export function drawRecent(tasks) {
  drawTasks("recent-body", tasks, [
    (task) => task.current_node || "",
    (task) => clock(task.started_at),
    (task) => clock(task.closed_at),
  ]);
}

export async function fillWorkflows() {
  const select = document.getElementById("filter-workflow");
  const workflows = await get("workflows");
  for (const workflow of workflows) select.append(h("option", { value: workflow.name }, workflow.name));
}
