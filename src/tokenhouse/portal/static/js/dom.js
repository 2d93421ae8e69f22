// DOM helpers. Everything the API returns reaches the page as text nodes or attribute values,
// never as markup: there is no innerHTML anywhere in the portal.

const PROPERTIES = new Set(["value", "checked", "selected", "indeterminate"]);

/** h("button", {class: "btn", onclick: fn}, "Label", child...) -> an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (PROPERTIES.has(key)) {
      el[key] = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, arrays of them; null/false skipped) as nodes/text. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let uid = 0;
/** A document-unique id for label/aria wiring. */
export function nextId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// -- time -------------------------------------------------------------------------------

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const exactFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium", timeStyle: "long",
});
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const UNITS = [
  ["year", 365 * 86400], ["month", 30 * 86400], ["week", 7 * 86400], ["day", 86400],
  ["hour", 3600], ["minute", 60],
];

/** "2 hours ago", "in 3 minutes", "just now". */
export function relativeTime(iso, now = Date.now()) {
  const seconds = (new Date(iso).getTime() - now) / 1000;
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  for (const [unit, size] of UNITS) {
    if (abs >= size || unit === "minute") {
      const amount = Math.max(1, Math.round(abs / size));
      return relative.format(seconds < 0 ? -amount : amount, unit);
    }
  }
  return "";
}

export function exactTime(iso) {
  return exactFormat.format(new Date(iso));
}

/** A <time> element: relative text ("2 hours ago") or a date, the exact time on hover. */
export function timeEl(iso, { mode = "relative", never = "Never" } = {}) {
  if (!iso) return h("span", { class: "muted" }, never);
  const text = mode === "date" ? dateFormat.format(new Date(iso)) : relativeTime(iso);
  return h("time", { datetime: iso, title: exactTime(iso) }, text);
}

// -- small pieces ------------------------------------------------------------------------

const STATUS_CLASSES = { active: "badge--active", disabled: "badge--disabled",
  deleted: "badge--deleted", enabled: "badge--active", expired: "badge--expired" };

export function statusBadge(status) {
  const cls = STATUS_CLASSES[String(status).toLowerCase()] || "badge--neutral";
  return h("span", { class: ["badge", cls] }, status);
}

/** "Leaked" beside the status of a token the service disabled after a leak report, else null. */
export function leakedBadge(token) {
  if (token.statusReason !== "Leaked") return null;
  return h("span", { class: "badge badge--leaked", title: "Its secret was reported as leaked" },
    "Leaked");
}
