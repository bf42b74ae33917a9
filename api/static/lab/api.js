// The JSON API the CLI uses, with the signed-in token as `Authorization: Bearer`. The token lives in
// sessionStorage only: it is gone when the browser session ends, and never sent anywhere else.

const KEY = "task_scheduler.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

// The API is served where the page is: /lab's folder (a proxy's prefix included).
const base = new URL(".", document.baseURI);

function message(status, body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (detail && detail.message) return detail.message;
  if (Array.isArray(detail)) return detail.map((p) => `${(p.loc || []).join(".")}: ${p.msg}`).join("; ");
  return `the API answered ${status}`;
}

async function send(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const value = options.token || token.get();
  if (value) headers.Authorization = `Bearer ${value}`;
  let response;
  try {
    response = await fetch(new URL(path, base), { ...options, headers, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, `the API does not answer (${error.message})`);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, message(response.status, body));
  }
  return response;
}

/** GET a JSON answer; `params` become the query string (empty ones left out). */
export async function get(path, params = {}, options = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const text = query.toString();
  return (await send(text ? `${path}?${text}` : path, options)).json();
}

export async function getText(path, params = {}) {
  const query = new URLSearchParams(params).toString();
  return (await send(query ? `${path}?${query}` : path, { headers: { Accept: "image/svg+xml" } })).text();
}

export async function post(path, body) {
  const options = { method: "POST", headers: { "Content-Type": "application/json" } };
  return (await send(path, { ...options, body: JSON.stringify(body || {}) })).json();
}

export const taskPath = (id) => `tasks/${encodeURIComponent(id)}`;
