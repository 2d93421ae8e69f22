// Messages (errors from the API as readable text), the live region, and modal dialogs.

import { ApiError } from "./api.js";
import { h, clear, nextId } from "./dom.js";

const announcer = () => document.getElementById("announcer");

/** Say `text` to screen readers (polite). */
export function announce(text) {
  const region = announcer();
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick, so that the same message is read again.
  setTimeout(() => { region.textContent = text; }, 50);
}

/** The readable parts of an error: a sentence, and the details of the problem's `errors`. */
export function describeError(error) {
  if (error instanceof ApiError) {
    return { text: error.message, items: error.extraMessages, trace: error.traceId };
  }
  return { text: error && error.message ? error.message : String(error), items: [], trace: null };
}

/**
 * A message box. kind: error | success | info | warning. `error` (optional) adds the API's
 * readable detail and errors. Errors are role=alert, the rest role=status.
 */
export function messageBox(kind, text, { error = null, title = null, onDismiss = null,
  actions = [] } = {}) {
  const body = h("div", { class: "message__body" });
  if (title) body.append(h("p", { class: "message__title" }, title));
  if (text) body.append(h("p", {}, text));
  if (error) {
    const { text: detail, items, trace } = describeError(error);
    const line = h("p", { class: "message__detail" }, detail);
    // The trace id helps whoever reads the server log; it is not the message.
    if (trace) line.title = `Trace ID ${trace}`;
    body.append(line);
    if (items.length) body.append(h("ul", {}, items.map((item) => h("li", {}, item))));
  }
  if (actions.length) body.append(h("p", { class: "message__actions" }, actions));
  const box = h("div", {
    class: ["message", `message--${kind}`],
    role: kind === "error" ? "alert" : "status",
  }, body);
  if (onDismiss) {
    box.append(h("button", {
      type: "button", class: "btn btn--icon", "aria-label": "Dismiss message",
      onclick: onDismiss,
    }, "×"));
  }
  return box;
}

// -- page-level messages ------------------------------------------------------------------

let keepFlash = false;

/** Show a message at the top of the page until the next navigation (`keep`: the one after). */
export function flash(kind, text, { keep = false, ...options } = {}) {
  const area = document.getElementById("flash");
  const box = messageBox(kind, text, { ...options, onDismiss: () => box.remove() });
  clear(area).append(box);
  keepFlash = keep;
}

/** Called on each navigation: drop the message unless it was just set for this page. */
export function expireFlash() {
  if (keepFlash) {
    keepFlash = false;
    return;
  }
  clear(document.getElementById("flash"));
}

export function clearFlash() {
  keepFlash = false;
  clear(document.getElementById("flash"));
}

// -- modal dialogs ------------------------------------------------------------------------

/**
 * A modal <dialog>: title, an alert area, a body and a footer. Focus goes into it on show
 * and back to the element that opened it on close. Escape closes it (unless busy).
 */
export class Modal {
  constructor({ title, wide = false, label = null }) {
    this.opener = document.activeElement;
    this.titleId = nextId("dialog-title");
    this.busy = false;
    this.dialog = h("dialog", {
      class: ["modal", wide && "modal--wide"],
      "aria-labelledby": this.titleId,
      "aria-label": label,
    });
    this.heading = h("h2", { id: this.titleId, tabindex: "-1" }, title);
    this.alert = h("div", { class: "modal__alert" });
    this.body = h("div", { class: "modal__body" });
    this.footer = h("div", { class: "modal__footer" });
    this.dialog.append(
      h("div", { class: "modal__header" }, this.heading,
        h("button", { type: "button", class: "btn btn--icon", "aria-label": "Close",
          onclick: () => this.close() }, "×")),
      this.alert, this.body, this.footer);
    this.closed = new Promise((resolve) => {
      this.dialog.addEventListener("close", () => {
        this.dialog.remove();
        const back = this.returnFocus || this.opener;
        if (back && back.isConnected && typeof back.focus === "function") back.focus();
        resolve(this.result);
      });
    });
    this.dialog.addEventListener("cancel", (event) => {
      if (this.busy) event.preventDefault();
    });
  }

  show(focus = null) {
    document.body.append(this.dialog);
    this.dialog.showModal();
    (focus || this.heading).focus();
    return this;
  }

  close(result = undefined) {
    if (this.busy) return;
    this.result = result;
    this.dialog.close();
  }

  showError(error, text = null) {
    clear(this.alert).append(messageBox("error", text, { error }));
  }

  clearError() {
    clear(this.alert);
  }

  /** Run `work` with the given buttons disabled and `button` showing `busyLabel`. */
  async run(button, busyLabel, work, buttons = []) {
    const label = button.textContent;
    this.busy = true;
    this.clearError();
    for (const b of [button, ...buttons]) b.disabled = true;
    button.textContent = busyLabel;
    this.dialog.setAttribute("aria-busy", "true");
    try {
      return await work();
    } finally {
      this.busy = false;
      this.dialog.removeAttribute("aria-busy");
      button.textContent = label;
      for (const b of [button, ...buttons]) b.disabled = false;
    }
  }
}

/**
 * Ask to confirm an action; on "confirm" run `action` inside the dialog (errors stay in the
 * dialog, with the API's detail; `onError(error)` is told of them too). Resolves with the
 * action's result, or undefined when cancelled.
 */
export function confirmAction({ title, text, note = null, confirmLabel, busyLabel,
  danger = false, action, onError = null }) {
  const modal = new Modal({ title });
  modal.dialog.setAttribute("role", "alertdialog");
  const descId = nextId("dialog-desc");
  modal.dialog.setAttribute("aria-describedby", descId);
  modal.body.append(h("div", { id: descId },
    h("p", { class: "confirm-text" }, text),
    note ? messageBox("warning", note) : null));
  const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
  const confirm = h("button", { type: "button", class: ["btn", danger ? "btn--danger" : "btn--primary"] },
    confirmLabel);
  cancel.addEventListener("click", () => modal.close());
  confirm.addEventListener("click", async () => {
    try {
      const result = await modal.run(confirm, busyLabel || `${confirmLabel}…`, action, [cancel]);
      modal.close({ done: true, result });
    } catch (error) {
      modal.showError(error, `Could not ${confirmLabel.toLowerCase()}:`);
      if (onError) onError(error);
      confirm.focus();
    }
  });
  modal.footer.append(cancel, confirm);
  // The safe choice has the focus.
  modal.show(cancel);
  return modal.closed.then((value) => (value && value.done ? value : undefined));
}

/** Copy `input`'s text; where the clipboard is not available, select it for Ctrl+C. */
export async function copyText(input, status) {
  const text = input.value !== undefined ? input.value : input.textContent;
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied to the clipboard.";
  } catch {
    if (typeof input.select === "function") {
      input.focus();
      input.select();
    } else {
      const range = document.createRange();
      range.selectNodeContents(input);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    status.textContent = "Copying is not available here: the text is selected, press Ctrl+C (⌘C on a Mac) to copy it.";
  }
}
