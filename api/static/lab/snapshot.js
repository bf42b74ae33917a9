// One reading of everything the overview shows about tasks, reconciled so that a task shows one state
// in every panel. The lists come from Temporal's visibility, which may lag a moment behind a task (a
// task just retried can still be listed in ERROR), while a task's own status (GET /tasks/{id}) is read
// from the task itself: where both are read, the task's own wins, and each panel takes its tasks from
// that one reconciled state.

import { get, taskPath } from "./api.js";

export const DETAILS_MAX = 20; // tasks of a panel whose full status is read at each refresh
const LIST_MAX = 100;
const RECENT_MAX = 30;
const NEEDS = ["ERROR", "PAUSED"]; // in the order the cards come
const OVER = new Set(["FINISHED", "CANCELLED"]);

const list = (state) => get("tasks", { state, page_size: LIST_MAX });

/** Every listing of a task, by task id, in the order: ERROR, PAUSED, ACTIVE, then the recent ones. */
function listings(pages) {
  const found = new Map();
  for (const summary of pages.flatMap((page) => page.tasks)) {
    if (!found.has(summary.task_id)) found.set(summary.task_id, []);
    found.get(summary.task_id).push(summary);
  }
  return found;
}

/** From its listings alone: a state the task cannot leave if one says so, else the first. */
function listedAs(summaries) {
  return summaries.find((s) => OVER.has(s.state)) || summaries[0];
}

/** The tasks whose own status is read: those a panel of commands or progress shows (DETAILS_MAX of
 * each), those listed in two states, and the task whose page is open. */
function wanted(found, taskId) {
  const states = [...found].map(([id, summaries]) => [id, new Set(summaries.map((s) => s.state)), listedAs(summaries)]);
  const shownIn = (panel) => states.filter(([, , t]) => panel.includes(t.state)).slice(0, DETAILS_MAX).map(([id]) => id);
  const torn = states.filter(([, seen]) => seen.size > 1).map(([id]) => id);
  return new Set([...shownIn(NEEDS), ...shownIn(["ACTIVE"]), ...torn, ...(taskId ? [taskId] : [])]);
}

async function readDetails(ids) {
  const read = await Promise.all([...ids].map(async (id) => [id, await get(taskPath(id)).catch((failure) => failure)]));
  return new Map(read);
}

const inState = (tasks, states) => [...tasks.values()].filter((t) => states.includes(t.state));

/**
 * The overview at one moment: `needs` (the tasks in ERROR, then PAUSED, DETAILS_MAX at most, and how many
 * more), `running` (ACTIVE), `recent` (the newest, as `filters` select them), the nodes and workers, and
 * the open task page's status (or its error). Each task is the same object in every panel it is in.
 */
export async function readSnapshot(filters, taskId) {
  const [errors, paused, active, recent, nodes, workers] = await Promise.all([
    list("ERROR"), list("PAUSED"), list("ACTIVE"), get("tasks", { ...filters, page_size: RECENT_MAX }),
    get("nodes"), get("workers"),
  ]);
  const found = listings([errors, paused, active, recent]);
  const details = await readDetails(wanted(found, taskId));
  const tasks = new Map([...found].map(([id, summaries]) => {
    const own = details.get(id);
    return [id, own && !(own instanceof Error) ? own : { ...listedAs(summaries), steps: [] }];
  }));
  const needs = NEEDS.flatMap((state) => inState(tasks, [state]));
  return {
    tasks,
    needs: { tasks: needs.slice(0, DETAILS_MAX), more: Math.max(0, needs.length - DETAILS_MAX) },
    running: inState(tasks, ["ACTIVE"]).slice(0, DETAILS_MAX),
    recent: recent.tasks.map((summary) => tasks.get(summary.task_id)),
    nodes,
    workers,
    page: taskId ? details.get(taskId) : null,
  };
}

/** What changes when a task changes state: the pictures are read again when it does. */
export function signature(snapshot) {
  return [...snapshot.tasks.values()].map((t) => `${t.task_id}=${t.state}`).sort().join(" ");
}
