// A token's lifecycle on the page: its expiry (chosen in the wizard, the edit and the rotate
// dialogs), its IP allowlist, and how soon it expires.

import { h, exactTime, relativeTime } from "./dom.js";
import { choiceField, textField } from "./forms.js";

const DAY = 86400 * 1000;
/** A token that expires within this is flagged in the list, the details and the top bar. */
export const SOON = 7 * DAY;
export const DEFAULT_EXPIRY = "90";
const PERIODS = ["30", "90", "365"];
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** Whether an Active token expires within seven days (an Expired one says so by its status). */
export function expiresSoon(token, now = Date.now()) {
  if (!token.expiresAt || token.status !== "Active") return false;
  const left = new Date(token.expiresAt).getTime() - now;
  return left > 0 && left <= SOON;
}

/** "Expires in 3 days" as a badge for a token that expires soon, else null. */
export function soonBadge(token) {
  if (!expiresSoon(token)) return null;
  return h("span", { class: "badge badge--soon", title: exactTime(token.expiresAt) },
    `Expires ${relativeTime(token.expiresAt).replace("just now", "now")}`);
}

/** "Mar 1, 2027, 10:00:00 UTC (in 90 days)" or "Never". */
export function describeExpiry(iso) {
  if (!iso) return "Never";
  return `${exactTime(iso)} (${relativeTime(iso)})`;
}

function localDate(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * The expiry as radio buttons: 30, 90 or 365 days from now, a date, or never; `keep` (an
 * option {label, note}) adds "leave it as it is" first. `state` ({choice, date}) is what was
 * chosen before. Returns the field and read() -> {ok, keep, expiresAt}.
 */
export function expiryField({ legend = "Expiry", keep = null, state = null, hint = null }) {
  const now = Date.now();
  const options = [];
  if (keep) options.push({ value: "keep", label: keep.label, note: keep.note });
  for (const days of PERIODS) {
    options.push({ value: days, label: `${days} days`,
      note: dateFormat.format(new Date(now + Number(days) * DAY)) });
  }
  options.push({ value: "date", label: "A date" }, { value: "never", label: "Never" });
  const initial = state ? state.choice : (keep ? "keep" : DEFAULT_EXPIRY);
  const choice = choiceField({ legend, name: "expiry", options, value: initial, hint,
    extraClass: "field--expiry" });
  const date = textField({ label: "Expiry date", name: "expiry-date", type: "date",
    value: state ? state.date : "",
    hint: "The token stops working at the start of this day (your time zone).",
    extraClass: "field--date" });
  date.input.min = localDate(new Date(now + DAY));
  date.wrap.hidden = initial !== "date";
  choice.onChange((value) => {
    date.wrap.hidden = value !== "date";
    choice.clearError();
    date.clearError();
    if (value === "date") date.input.focus();
  });
  const wrap = h("div", { class: "expiry" }, choice.wrap, date.wrap);

  return {
    wrap,
    focus: () => choice.focus(),
    state: () => ({ choice: choice.value(), date: date.input.value }),
    clearError() {
      choice.clearError();
      date.clearError();
    },
    /** Show the API's messages about expiresAt next to the field; true if there were any. */
    showApiError(error) {
      const messages = fieldMessages(error, "expiresAt");
      if (!messages.length) return false;
      if (choice.value() === "date") date.setError(messages.join(" "));
      else choice.setError(messages.join(" "));
      return true;
    },
    /** {ok: true, keep, expiresAt} (an ISO timestamp or null), or {ok: false} with the error shown. */
    read() {
      this.clearError();
      const result = expiryOf(this.state());
      if (result.error) {
        date.setError(result.error);
        date.input.focus();
        return { ok: false };
      }
      return { ok: true, ...result };
    },
  };
}

/**
 * The expiry a choice ({choice, date}) means now: {keep, expiresAt} (an ISO timestamp, null
 * for never, undefined to keep it), or {error} for a missing or past date.
 */
export function expiryOf({ choice, date }, now = Date.now()) {
  if (choice === "keep") return { keep: true, expiresAt: undefined };
  if (choice === "never") return { keep: false, expiresAt: null };
  if (PERIODS.includes(choice)) {
    return { keep: false, expiresAt: new Date(now + Number(choice) * DAY).toISOString() };
  }
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date || "");
  if (!match) return { error: "Choose the date the token expires." };
  const at = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  if (at.getTime() <= now) return { error: "Choose a date in the future." };
  return { keep: false, expiresAt: at.toISOString() };
}

/** The choice in words, for a review: "In 90 days (Mar 1, 2027)", "Never", a date. */
export function describeChoice(state, now = Date.now()) {
  const { expiresAt, keep } = expiryOf(state, now);
  if (keep) return "Unchanged";
  if (expiresAt === null) return "Never";
  if (!expiresAt) return "—";
  if (PERIODS.includes(state.choice)) {
    return `In ${state.choice} days (${dateFormat.format(new Date(expiresAt))})`;
  }
  return exactTime(expiresAt);
}

/** The allowlist as typed: networks separated by new lines, spaces or commas. */
export function parseAllowlist(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** A textarea of networks, one a line. read() -> a list, or null (any address). */
export function allowlistField({ text = "" } = {}) {
  const field = textField({ label: "IP allowlist", name: "ipAllowlist", value: text,
    multiline: true, extraClass: "field--allowlist",
    hint: "The networks the token may be used from, one a line, such as 203.0.113.0/24 or "
      + "2001:db8::/32 (a single address is one host). Leave it empty to allow any address." });
  field.input.classList.add("mono");
  field.input.setAttribute("autocapitalize", "off");
  return {
    wrap: field.wrap,
    input: field.input,
    text: () => field.input.value,
    read() {
      field.clearError();
      const entries = parseAllowlist(field.input.value);
      return entries.length ? entries : null;
    },
    clearError: () => field.clearError(),
    /** Show the API's messages about ipAllowlist (or one of its entries); true if any. */
    showApiError(error) {
      const entries = parseAllowlist(field.input.value);
      const lines = [];
      for (const e of error.fieldErrors || []) {
        const match = /^ipAllowlist(?:\[(\d+)\])?/.exec(e.field);
        if (!match) continue;
        const entry = match[1] !== undefined ? entries[Number(match[1])] : undefined;
        // The entry is named unless the message does so already.
        lines.push(entry !== undefined && !e.message.includes(entry)
          ? `“${entry}”: ${e.message}` : e.message);
      }
      if (!lines.length) return false;
      field.setError(lines.join(" "));
      return true;
    },
  };
}

/** The allowlist of a token as the text of the field. */
export function allowlistText(list) {
  return (list || []).join("\n");
}

/** The allowlist shown: chips of networks, or "Any address". */
export function allowlistView(list) {
  if (!list || !list.length) return h("span", { class: "muted" }, "Any address");
  return h("ul", { class: "chips chips--mono" }, list.map((net) => h("li", { class: "chip" }, net)));
}

function fieldMessages(error, name) {
  return (error && error.fieldErrors ? error.fieldErrors : [])
    .filter((e) => e.field.split(/[.[]/)[0] === name).map((e) => e.message);
}
