// Rotate a token's secret: a new secret (shown once, here), the old one kept working for a
// grace period of the user's choice so that whatever uses it can be switched over.

import { h, clear, nextId } from "../dom.js";
import { Modal, announce, copyText, messageBox } from "../ui.js";
import { choiceField } from "../forms.js";
import { describeExpiry, expiryField } from "../lifecycle.js";

const GRACE = [
  { value: "0", label: "No, it stops now" },
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "24 hours" },
  { value: "604800", label: "7 days" },
];

/** Resolves with the rotated token (without its secret), or null when nothing was rotated. */
export function openRotateDialog(ctx, token, { self = false } = {}) {
  const modal = new Modal({ title: `Rotate the secret of “${token.name}”`, wide: true });
  let rotated = null;

  // A token that works now gets a day to switch over by default; one that does not (disabled
  // after a leak, expired) has nothing to keep working.
  const grace = choiceField({ legend: "Keep the old secret working", name: "grace",
    options: GRACE, value: token.status === "Active" ? "86400" : "0",
    hint: "Time to give the new secret to whatever uses the token while the old one still works." });
  const firstUseId = nextId("first-use");
  const firstUse = h("input", { type: "checkbox", id: firstUseId, name: "retirePreviousOnFirstUse" });
  const firstUseWrap = h("div", { class: "field field--check" },
    h("label", { for: firstUseId }, firstUse,
      h("span", {}, "Stop the old secret as soon as the new one is first used")));
  const syncFirstUse = (value) => {
    firstUse.disabled = value === "0";
    if (firstUse.disabled) firstUse.checked = false;
  };
  syncFirstUse(grace.value());
  grace.onChange(syncFirstUse);
  const expiry = expiryField({ legend: "Expiry of the new secret",
    // A token rotating itself keeps its expiry (it may not move it later).
    keep: !token.expiresAt ? { label: "Never, as now" }
      : self ? { label: "Same expiry", note: "a token rotating itself cannot move it later" }
        : { label: "Same lifetime", note: "as long as the token has had, counted from now" } });

  const form = h("form", { novalidate: true, id: nextId("rotate") },
    h("p", {}, "A new secret replaces the current one. It is shown once, here. The token keeps "
      + "its ID, modules and settings."),
    self ? messageBox("info", "This is the API token you are signed in with: the page goes on with the new secret.") : null,
    token.previousSecret
      ? messageBox("warning", "The secret replaced by the last rotation still works; rotating "
        + "again stops it at once.")
      : null,
    grace.wrap, firstUseWrap, expiry.wrap);
  modal.body.append(form);
  const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
  const submit = h("button", { type: "submit", class: "btn btn--primary", form: form.id },
    "Rotate secret");
  cancel.addEventListener("click", () => modal.close());
  modal.footer.append(cancel, submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    modal.clearError();
    const chosen = expiry.read();
    if (!chosen.ok) return;
    const body = { gracePeriodSeconds: Number(grace.value()) };
    if (firstUse.checked) body.retirePreviousOnFirstUse = true;
    if (!chosen.keep) body.expiresAt = chosen.expiresAt;
    // A token rotating itself needs no module for it.
    const path = self ? "/api-tokens/self/rotate" : `/api-tokens/${token.id}/rotate`;
    let result;
    try {
      result = await modal.run(submit, "Rotating…", () => ctx.api.post(path, body), [cancel]);
    } catch (error) {
      modal.showError(error, "The secret could not be rotated.");
      expiry.showApiError(error);
      submit.focus();
      return;
    }
    const secret = result.token;
    delete result.token; // the page keeps no secret beyond this dialog
    rotated = result;
    if (self) ctx.replaceSecret(secret);
    showSecret(modal, result, secret, body);
  });
  modal.show(grace.wrap.querySelector("input:checked"));
  return modal.closed.then(() => rotated);
}

function showSecret(modal, token, secret, sent) {
  const secretId = nextId("secret");
  const warningId = nextId("warning");
  const input = h("input", { id: secretId, type: "text", class: "secret", readonly: true,
    value: secret, spellcheck: "false", autocomplete: "off", "aria-describedby": warningId });
  const status = h("p", { class: "copy-status", role: "status" });
  const copy = h("button", { type: "button", class: "btn btn--primary" }, "Copy");
  copy.addEventListener("click", () => copyText(input, status));
  input.addEventListener("focus", () => input.select());
  const previous = token.previousSecret;
  let old = "It no longer works.";
  if (previous) {
    old = `It keeps working until ${describeExpiry(previous.expiresAt)}`
      + (sent.retirePreviousOnFirstUse ? ", or until the new secret is first used." : ".");
  }
  const heading = h("h3", { class: "step-title", tabindex: "-1" }, "Secret rotated");
  clear(modal.body).append(
    heading,
    h("p", { class: "success-mark" }, h("span", {}, "“", token.name, "” has a new secret.")),
    h("div", { id: warningId },
      messageBox("warning", "This is the only time the new secret is shown. Copy it now and "
        + "keep it somewhere safe: it cannot be shown again.", { title: "Copy the secret now" })),
    h("div", { class: "field secret-box" },
      h("label", { for: secretId }, "New secret"),
      h("div", { class: "input-row" }, input, copy),
      status),
    h("dl", { class: "review" },
      h("dt", {}, "Old secret"), h("dd", {}, old),
      h("dt", {}, "Expires"), h("dd", {}, describeExpiry(token.expiresAt))));
  const done = h("button", { type: "button", class: "btn btn--primary" }, "Done");
  done.addEventListener("click", () => modal.close());
  clear(modal.footer).append(done);
  heading.focus();
  announce("The secret was rotated. Copy the new secret now: it will not be shown again.");
}
