// A token's rate limit on the page: chosen in the wizard (the server's default, none, a
// preset or a custom one) and the edit dialog, and described in words.

import { h } from "./dom.js";
import { choiceField, selectField, textField } from "./forms.js";

// The API's bounds (tokens/schemas.RateLimitIn).
export const MAX_LIMIT = 1000000;
export const MAX_WINDOW = 86400;
const PRESET = { limit: 600, windowSeconds: 60 };
const UNITS = [
  { value: "1", label: "seconds", one: "second" },
  { value: "60", label: "minutes", one: "minute" },
  { value: "3600", label: "hours", one: "hour" },
];
const numbers = new Intl.NumberFormat("en-US");

/** "600 requests per minute", "1 request per 90 seconds", "No limit". */
export function describeRateLimit(rateLimit) {
  if (!rateLimit) return "No limit";
  const { limit, windowSeconds } = rateLimit;
  const requests = `${numbers.format(limit)} request${limit === 1 ? "" : "s"}`;
  return `${requests} per ${describeWindow(windowSeconds)}`;
}

function describeWindow(seconds) {
  if (seconds === 86400) return "day";
  for (const unit of [...UNITS].reverse()) {
    const size = Number(unit.value);
    if (seconds % size === 0) {
      const count = seconds / size;
      return count === 1 ? unit.one : `${numbers.format(count)} ${unit.label}`;
    }
  }
  return `${seconds} seconds`;
}

/** The custom fields' values for a limit: the window in its largest whole unit. */
function customOf(rateLimit) {
  if (!rateLimit) return { limit: "", window: "1", unit: "60" };
  const unit = [...UNITS].reverse().find((u) => rateLimit.windowSeconds % Number(u.value) === 0);
  return { limit: String(rateLimit.limit),
    window: String(rateLimit.windowSeconds / Number(unit.value)), unit: unit.value };
}

function isPreset(rateLimit) {
  return Boolean(rateLimit) && rateLimit.limit === PRESET.limit
    && rateLimit.windowSeconds === PRESET.windowSeconds;
}

/**
 * The rate limit as radio buttons, and the fields of a custom one. `current` (the edit
 * dialog): the token's limit, chosen at first; without it (the wizard) "Server default"
 * comes first and means leaving the property out. `state` is what was chosen before.
 * Returns the field and read() -> {ok, given, rateLimit}.
 */
export function rateLimitField({ current, state = null }) {
  const creating = current === undefined;
  const options = [];
  if (creating) {
    options.push({ value: "default", label: "Server default",
      note: "the limit this server gives new tokens, if any" });
  }
  options.push({ value: "none", label: "No limit" },
    { value: "preset", label: "600 per minute" },
    { value: "custom", label: "Custom" });
  let initial;
  if (state) initial = state.choice;
  else if (creating) initial = "default";
  else if (!current) initial = "none";
  else initial = isPreset(current) ? "preset" : "custom";
  const custom = state || customOf(creating ? null : current);
  const choice = choiceField({ legend: "Rate limit", name: "rate-limit", options,
    value: initial, extraClass: "field--rate",
    hint: "At most this many requests in any such window; past it, requests are refused "
      + "with 429 until the window allows more." });
  const limit = textField({ label: "Requests", name: "rate-limit-requests", type: "number",
    value: custom.limit, extraClass: "field--rate-requests" });
  limit.input.min = "1";
  limit.input.max = String(MAX_LIMIT);
  limit.input.step = "1";
  limit.input.inputMode = "numeric";
  const per = textField({ label: "Per", name: "rate-limit-window", type: "number",
    value: custom.window, extraClass: "field--rate-window" });
  per.input.min = "1";
  per.input.step = "1";
  per.input.inputMode = "numeric";
  const unit = selectField({ label: "Unit", name: "rate-limit-unit",
    options: UNITS.map((u) => ({ value: u.value, label: u.label })), value: custom.unit,
    extraClass: "field--rate-unit" });
  const customWrap = h("div", { class: "rate-custom" }, limit.wrap, per.wrap, unit.wrap);
  customWrap.hidden = initial !== "custom";
  choice.onChange((value) => {
    customWrap.hidden = value !== "custom";
    clearErrors();
    if (value === "custom") limit.input.focus();
  });
  const wrap = h("div", { class: "rate-limit" }, choice.wrap, customWrap);

  function clearErrors() {
    choice.clearError();
    limit.clearError();
    per.clearError();
  }

  const field = {
    wrap,
    focus: () => choice.focus(),
    state: () => ({ choice: choice.value(), limit: limit.input.value, window: per.input.value,
      unit: unit.select.value }),
    clearError: clearErrors,
    /** Show the API's messages about rateLimit next to the field; true if there were any. */
    showApiError(error) {
      let shown = false;
      for (const e of (error && error.fieldErrors) || []) {
        if (e.field.split(/[.[]/)[0] !== "rateLimit") continue;
        shown = true;
        if (choice.value() !== "custom") choice.setError(e.message);
        else if (e.field === "rateLimit.windowSeconds") per.setError(e.message);
        else limit.setError(e.message);
      }
      return shown;
    },
    /** {ok: true, given, rateLimit} (`given` false: leave it out), or {ok: false} with the
     * error shown next to the field. */
    read() {
      clearErrors();
      const result = rateLimitOf(field.state());
      if (result.error) {
        const target = result.error.field === "window" ? per : limit;
        target.setError(result.error.message);
        target.input.focus();
        return { ok: false };
      }
      return { ok: true, ...result };
    },
  };
  return field;
}

/**
 * What a choice ({choice, limit, window, unit}) means: {given, rateLimit} (given false: the
 * server's default), or {error: {field, message}} for a custom limit out of the API's bounds.
 */
export function rateLimitOf({ choice, limit, window: per, unit }) {
  if (choice === "default") return { given: false, rateLimit: undefined };
  if (choice === "none") return { given: true, rateLimit: null };
  if (choice === "preset") return { given: true, rateLimit: { ...PRESET } };
  const requests = wholeNumber(limit);
  if (requests === null || requests < 1 || requests > MAX_LIMIT) {
    return { error: { field: "limit",
      message: `Enter a whole number of requests from 1 to ${numbers.format(MAX_LIMIT)}.` } };
  }
  const count = wholeNumber(per);
  const seconds = count === null ? null : count * Number(unit);
  if (seconds === null || seconds < 1 || seconds > MAX_WINDOW) {
    return { error: { field: "window",
      message: "Enter a whole window from 1 second to 24 hours." } };
  }
  return { given: true, rateLimit: { limit: requests, windowSeconds: seconds } };
}

function wholeNumber(text) {
  return /^\s*\d+\s*$/.test(text || "") ? Number(text) : null;
}

/** The choice in words, for the wizard's review. */
export function describeRateChoice(state) {
  const result = rateLimitOf(state);
  if (result.error) return "—";
  if (!result.given) return "The server's default";
  return describeRateLimit(result.rateLimit);
}

/** Whether two limits (objects or null) are the same. */
export function sameRateLimit(a, b) {
  if (!a || !b) return !a && !b;
  return a.limit === b.limit && a.windowSeconds === b.windowSeconds;
}
