// The lab page: sign in with a token, then keep the views fresh by polling the API (nodes and tasks
// every 2 s, the rest slower), and not at all while the tab is hidden.

import { ApiError, get, token } from "./api.js";
import { drawStats, drawTimeline } from "./charts.js";
import { clock, h, put } from "./dom.js";
import { drawNeeds, drawNodes, drawRecent, drawRunning, fillWorkflows, readNeeds, readRecent, readRunning } from "./overview.js";
import { drawTask, drawTaskError, readTask } from "./task.js";

const FAST_MS = 2000;
const RECENT_MS = 10000;
const PICTURES_MS = 30000;
const TITLE = "Lab · task_scheduler";

const $ = (id) => document.getElementById(id);
let me = null;
let since = "2h";
const pollers = [];

class Poller {
  constructor(run, everyMs) {
    this.run = run;
    this.everyMs = everyMs;
    this.timer = null;
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

  /** Refresh at once (after the running refresh, if one runs), then every `everyMs`. */
  async now() {
    if (!this.on) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.busy = true;
    try {
      await this.run();
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
      this.timer = setTimeout(() => this.now(), this.everyMs);
    }
  }
}

const canCommand = () => me && (me.role === "operator" || me.role === "admin");

function taskRoute() {
  const match = location.hash.match(/^#\/task\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

/** After an operator's command: say so (or sign out on a 401), and refresh at once. */
function done(text, failure) {
  if (failure) return signOut(failure.message);
  put($("action-result"), text);
  fast.now();
  recent.now();
}

function showNeeds(count) {
  document.title = count ? `(${count}) needs an operator · ${TITLE}` : TITLE;
  const alert = $("alert");
  alert.hidden = count === 0;
  put(alert, count ? h("a", { href: "#needs" }, `${count} task${count > 1 ? "s need" : " needs"} an operator`) : null);
}

async function refreshFast() {
  const taskId = taskRoute();
  const [needs, nodes, workers, running, task] = await Promise.all([
    readNeeds(), get("nodes"), get("workers"), readRunning(),
    taskId ? readTask(taskId).catch((failure) => failure) : null,
  ]);
  showNeeds(drawNeeds(needs, canCommand(), done));
  drawNodes(nodes, workers, canCommand(), done);
  drawRunning(running);
  if (task instanceof ApiError && task.status === 401) throw task;
  if (task) (task instanceof Error ? drawTaskError(taskId, task) : drawTask(task));
  put($("updated"), `updated ${clock(new Date().toISOString())}`);
}

const fast = new Poller(refreshFast, FAST_MS);
const recent = new Poller(async () => drawRecent(await readRecent()), RECENT_MS);
const timeline = new Poller(() => drawTimeline(since), PICTURES_MS);
const stats = new Poller(() => drawStats(), PICTURES_MS * 2);
pollers.push(fast, recent, timeline, stats);

function route() {
  const taskId = taskRoute();
  $("overview").hidden = Boolean(taskId);
  $("task").hidden = !taskId;
  if (taskId) {
    put($("task-title"), `Task ${taskId}`);
    put($("task-body"), h("p", { class: "muted" }, "Loading…"));
    delete $("task-body").dataset.task;
  }
  if (me) fast.now();
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
  $("recent-filters").addEventListener("change", () => recent.now());
  document.querySelectorAll("button.window").forEach((button) => button.addEventListener("click", () => {
    since = button.dataset.since;
    timeline.now();
  }));
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => (document.hidden ? stopPolling() : me && startPolling()));
}

wire();
const saved = token.get();
if (saved) signIn(saved);
else showSignIn();
