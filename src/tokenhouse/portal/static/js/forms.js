// Labelled form fields with inline errors, and the module checklist.

import { h, nextId, clear } from "./dom.js";

function wireError(input, wrap, hintId) {
  const errorId = nextId("error");
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  wrap.append(error);
  const describe = (withError) => {
    const ids = [hintId, withError ? errorId : null].filter(Boolean).join(" ");
    if (ids) input.setAttribute("aria-describedby", ids);
    else input.removeAttribute("aria-describedby");
  };
  describe(false);
  return {
    setError(message) {
      error.textContent = message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      describe(true);
    },
    clearError() {
      error.textContent = "";
      error.hidden = true;
      input.removeAttribute("aria-invalid");
      describe(false);
    },
  };
}

/** A labelled <input>/<textarea>: {wrap, input, setError, clearError}. */
export function textField({ label, name, value = "", required = false, maxlength = null,
  hint = null, multiline = false, autocomplete = "off", type = "text", extraClass = null }) {
  const id = nextId(name);
  const hintId = hint ? nextId("hint") : null;
  const input = multiline
    ? h("textarea", { id, name, maxlength, rows: 3, required })
    : h("input", { id, name, type, maxlength, required, autocomplete, spellcheck: "false" });
  input.value = value || "";
  const wrap = h("div", { class: ["field", extraClass] },
    h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    input);
  return { wrap, input, ...wireError(input, wrap, hintId) };
}

/** A labelled <select> of [{value, label}]: {wrap, select, setOptions, setError, clearError}. */
export function selectField({ label, name, options = [], value = "", hint = null,
  required = false, extraClass = null }) {
  const id = nextId(name);
  const hintId = hint ? nextId("hint") : null;
  const select = h("select", { id, name, required });
  const wrap = h("div", { class: ["field", extraClass] },
    h("label", { for: id }, label, required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    select);
  const setOptions = (list, selected = select.value) => {
    clear(select);
    for (const option of list) {
      select.append(h("option", { value: option.value, disabled: option.disabled }, option.label));
    }
    select.value = selected;
    if (select.value !== selected && list.length) select.selectedIndex = 0;
  };
  setOptions(options, value);
  return { wrap, select, setOptions, ...wireError(select, wrap, hintId) };
}

/** setError/clearError of a fieldset whose error paragraph is `error`. */
function fieldsetError(fieldset, error) {
  return {
    setError(message) {
      error.textContent = message;
      error.hidden = false;
      fieldset.setAttribute("aria-invalid", "true");
    },
    clearError() {
      error.hidden = true;
      error.textContent = "";
      fieldset.removeAttribute("aria-invalid");
    },
  };
}

/**
 * Checkboxes for modules: [{id, name, description}], `selected` a Set of ids.
 * Returns {wrap, selected(): string[], setError, clearError, focus()}.
 */
export function moduleChecklist({ modules, selected, legend, hint = null }) {
  const hintId = hint ? nextId("hint") : null;
  const errorId = nextId("error");
  const boxes = [];
  const list = h("ul", { class: "checklist" });
  for (const module of modules) {
    const box = h("input", { type: "checkbox", name: "modules", value: module.id,
      checked: selected.has(module.id) });
    boxes.push(box);
    list.append(h("li", {},
      h("label", {}, box,
        h("span", {},
          h("span", { class: "opt-name" }, module.name),
          module.description ? h("span", { class: "opt-desc" }, module.description) : null))));
  }
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const selectAll = h("button", { type: "button", class: "btn btn--link btn--small" }, "Select all");
  const selectNone = h("button", { type: "button", class: "btn btn--link btn--small" }, "Clear");
  selectAll.addEventListener("click", () => boxes.forEach((b) => { b.checked = true; }));
  selectNone.addEventListener("click", () => boxes.forEach((b) => { b.checked = false; }));
  const fieldset = h("fieldset", {
    "aria-describedby": [hintId, errorId].filter(Boolean).join(" "),
  },
  h("legend", {}, legend),
  hint ? h("p", { class: "hint muted small", id: hintId }, hint) : null,
  modules.length > 1 ? h("div", { class: "checklist-tools" }, selectAll, selectNone) : null,
  list, error);
  const wrap = h("div", { class: "field" }, fieldset);
  return {
    wrap,
    selected: () => boxes.filter((b) => b.checked).map((b) => b.value),
    ...fieldsetError(fieldset, error),
    focus() {
      (boxes.find((b) => b.checked) || boxes[0] || selectAll).focus();
    },
  };
}

/**
 * A group of radio buttons [{value, label, note}] (`note`: smaller text after the label).
 * Returns {wrap, value(), setValue(v), onChange(fn), setError, clearError, focus()}.
 */
export function choiceField({ legend, name, options, value, hint = null, extraClass = null }) {
  const hintId = hint ? nextId("hint") : null;
  const errorId = nextId("error");
  const group = nextId(name);
  const radios = [];
  const list = h("div", { class: "choices" });
  for (const option of options) {
    const radio = h("input", { type: "radio", name: group, value: option.value,
      checked: option.value === value });
    radios.push(radio);
    list.append(h("label", { class: "choice" }, radio,
      h("span", {}, option.label,
        option.note ? h("span", { class: "choice__note" }, option.note) : null)));
  }
  const error = h("p", { class: "field-error", id: errorId, hidden: true });
  const fieldset = h("fieldset", { "aria-describedby": [hintId, errorId].filter(Boolean).join(" ") },
    h("legend", {}, legend),
    hint ? h("p", { class: "hint muted small", id: hintId }, hint) : null,
    list);
  const wrap = h("div", { class: ["field", extraClass] }, fieldset, error);
  return {
    wrap,
    value: () => (radios.find((r) => r.checked) || {}).value,
    setValue(v) {
      for (const r of radios) r.checked = r.value === v;
    },
    onChange(fn) {
      for (const r of radios) r.addEventListener("change", () => fn(r.value));
    },
    ...fieldsetError(fieldset, error),
    focus() {
      (radios.find((r) => r.checked) || radios[0]).focus();
    },
  };
}
