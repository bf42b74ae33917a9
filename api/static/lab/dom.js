// Building the page: elements made with createElement and filled with textContent, never innerHTML,
// so nothing the API sends can become markup. Plus the small formatters every view shares.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: h("td", {class: "x"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, for the charts. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace a node's children. */
export function put(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** The state badge every view uses: its colour comes from lab.css (class state-<STATE>). */
export function badge(state) {
  const text = state || "?";
  return h("span", { class: `badge state-${text}` }, text);
}

export function taskLink(taskId) {
  return h("a", { href: `#/task/${encodeURIComponent(taskId)}`, class: "task-link" }, taskId);
}

/** "14:03:12" today, "Nov 28 14:03" before; local time, as a lab clock reads. */
export function clock(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  const today = new Date().toDateString() === when.toDateString();
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return today ? time : `${when.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/** "1 task", "3 tasks": a count and its noun, singular when it is one. */
export function count(n, noun) {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** "3 s", "4 min 10 s", "2 h 5 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds); // rounded first: 599.6 s is "10 min 0 s", never "9 min 60 s"
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** How long ago an ISO time was, for "since". */
export function ago(iso) {
  return iso ? duration(Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000)) : "";
}

/**
 * Keep one element per item, in order, made once by `create(item)` and refreshed by `update(el, item)`:
 * what a user is typing (a reason) survives every refresh.
 */
export function keyed(container, items, key, create, update) {
  const old = new Map([...container.children].map((el) => [el.dataset.key, el]));
  const kept = items.map((item) => {
    const id = key(item);
    let el = old.get(id);
    if (!el) {
      el = create(item);
      el.dataset.key = id;
    }
    update(el, item);
    old.delete(id);
    return el;
  });
  for (const el of old.values()) el.remove();
  kept.forEach((el, i) => {
    if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null);
  });
}
