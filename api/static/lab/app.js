// The lab page: sign in with a token, then keep the views fresh by polling the API: every panel that
// shows tasks and nodes at once every 2 s (one reading, so a task shows one state everywhere), the
// pictures slower and whenever a task shown changes state; nothing while the tab is hidden.

import { ApiError, get, token } from "./api.js";
import { drawStats, drawTimeline, redrawStats } from "./charts.js";
import { clock, h, put } from "./dom.js";
import { ACK_MS, drawNeeds, drawNodes, drawRecent, drawRunning, fillWorkflows, recentFilters } from "./overview.js";
import { readSnapshot, signature } from "./snapshot.js";
import { drawTask, drawTaskError } from "./task.js";

const FAST_MS = 2000;
const PICTURES_MS = 30000;
const PICTURES_AFTER_CHANGE_MS = 3000; // the pictures follow a task's change of state this soon at most
const RESIZE_MS = 300;
const TITLE = "Lab · task_scheduler";

const $ = (id) => document.getElementById(id);
let me = null;
let since = "fit";
let commandAt = -Infinity; // performance.now() when the latest command was answered
let shown = null; // the signature of the task states drawn last
let ack = null; // the acknowledgement shown under "Needs an operator": { task, timer }
let needed = new Set(); // the tasks under "Needs an operator", as drawn last
const pollers = [];

class Poller {
  constructor(run, everyMs) {
    this.run = run;
    this.everyMs = everyMs;
    this.timer = null;
    this.due = Infinity;
    this.startedAt = -Infinity;
    this.on = false;
    this.busy = false;
    this.again = false;
  }

  start() {
    this.on = true;
    this.now();
  }

  stop() {
    this.on = false;
    clearTimeout(this.timer);
  }

  later(ms) {
    clearTimeout(this.timer);
    this.due = performance.now() + ms;
    this.timer = setTimeout(() => this.now(), ms);
  }

  /** Refresh at once, or `gapMs` after the last refresh began if that is later (never two at once). */
  soon(gapMs) {
    if (!this.on) return;
    const wait = this.startedAt + gapMs - performance.now();
    if (wait <= 0) this.now();
    else if (performance.now() + wait < this.due) this.later(wait);
  }

  /** Refresh at once (after the running refresh, if one runs), then every `everyMs`. */
  async now() {
    if (!this.on) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.due = Infinity;
    this.busy = true;
    this.startedAt = performance.now();
    try {
      await this.run(this.startedAt);
      $("offline").hidden = true;
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 401) return signOut(failure.message);
      put($("offline"), `Cannot refresh: ${failure.message}. Trying again…`);
      $("offline").hidden = false;
    } finally {
      this.busy = false;
    }
    if (!this.on) return;
    if (this.again) {
      this.again = false;
      this.now();
    } else {
      this.later(this.everyMs);
    }
  }
}

const canCommand = () => me && (me.role === "operator" || me.role === "admin");

function taskRoute() {
  const match = location.hash.match(/^#\/task\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

function showAck(text, taskId) {
  clearAck();
  put($("action-result"), text);
  ack = { task: taskId, timer: setTimeout(clearAck, ACK_MS) };
}

function clearAck() {
  if (ack) clearTimeout(ack.timer);
  ack = null;
  put($("action-result"));
}

/** Everything that shows tasks and nodes, read again at once. */
function refreshAll() {
  overview.now();
  timeline.now();
  stats.now();
}

/** An operator's command was answered: say so while its task is still under "Needs an operator" (once
 * gone, its leaving says it), and read every panel again at once; what was read before the answer is
 * not drawn. A 401 signs out. */
function done({ text, task, failure }) {
  if (failure) return signOut(failure.message);
  commandAt = performance.now();
  if (text && needed.has(task)) showAck(text, task);
  refreshAll();
}

function showNeeds(count) {
  document.title = count ? `(${count}) needs an operator · ${TITLE}` : TITLE;
  const alert = $("alert");
  alert.hidden = count === 0;
  put(alert, count ? h("a", { href: "#needs" }, `${count} task${count > 1 ? "s need" : " needs"} an operator`) : null);
}

/** Every panel from one reading, drawn in one go: no moment shows a task in two states. */
async function refreshOverview(startedAt) {
  const taskId = taskRoute();
  const snapshot = await readSnapshot(recentFilters(), taskId);
  if (startedAt < commandAt || taskId !== taskRoute()) return; // read before a command's answer: stale
  const { needs, page } = snapshot;
  showNeeds(drawNeeds(needs, canCommand(), done));
  needed = new Set(needs.tasks.map((t) => t.task_id));
  if (ack && !needed.has(ack.task)) clearAck(); // its task left the panel
  drawNodes(snapshot.nodes, snapshot.workers, canCommand(), done);
  drawRunning(snapshot.running, canCommand() ? done : null);
  drawRecent(snapshot.recent);
  if (page instanceof ApiError && page.status === 401) throw page;
  if (page) (page instanceof Error ? drawTaskError(taskId, page) : drawTask(page, canCommand() ? done : null));
  put($("updated"), `updated ${clock(new Date().toISOString())}`);
  const states = signature(snapshot);
  if (shown !== null && states !== shown) {
    timeline.soon(PICTURES_AFTER_CHANGE_MS);
    stats.soon(PICTURES_AFTER_CHANGE_MS);
  }
  shown = states;
}

const overview = new Poller(refreshOverview, FAST_MS);
const timeline = new Poller(() => drawTimeline(since), PICTURES_MS);
const stats = new Poller(() => drawStats(), PICTURES_MS * 2);
pollers.push(overview, timeline, stats);

function route() {
  const taskId = taskRoute();
  $("overview").hidden = Boolean(taskId);
  $("task").hidden = !taskId;
  if (taskId) {
    put($("task-title"), `Task ${taskId}`);
    put($("task-body"), h("p", { class: "muted" }, "Loading…"));
    delete $("task-body").dataset.task;
  }
  if (me) refreshAll();
}

function startPolling() {
  if (!document.hidden) pollers.forEach((p) => p.start());
}

function stopPolling() {
  pollers.forEach((p) => p.stop());
}

function showSignIn(message) {
  $("app").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").hidden = !message;
  put($("sign-in-error"), message || "");
  document.title = TITLE;
  $("token-input").focus();
}

function signOut(message) {
  stopPolling();
  token.clear();
  me = null;
  shown = null;
  needed = new Set();
  clearAck();
  put($("needs-list"));
  put($("nodes-body"));
  showSignIn(message);
}

async function signIn(value) {
  try {
    me = await get("me", {}, { token: value });
  } catch (failure) {
    token.clear();
    return showSignIn(failure.message);
  }
  token.set(value);
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("app").dataset.role = me.role;
  put($("who"), `${me.name} · ${me.role}`);
  $("who").title = `token valid until ${new Date(me.expires_at).toLocaleString()}`;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  fillWorkflows().catch(() => {});
  route();
  startPolling();
}

function wire() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    $("token-input").value = "";
    signIn(value);
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("recent-filters").addEventListener("change", () => overview.now());
  document.querySelectorAll("button.window").forEach((button) => button.addEventListener("click", () => {
    since = button.dataset.since;
    timeline.now();
  }));
  let resized = null;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => {
      if (!me) return;
      timeline.now(); // drawn for its new width
      redrawStats();
    }, RESIZE_MS);
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => (document.hidden ? stopPolling() : me && startPolling()));
}

wire();
const saved = token.get();
if (saved) signIn(saved);
else showSignIn();
