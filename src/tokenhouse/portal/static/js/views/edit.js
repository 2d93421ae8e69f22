// Edit an API token: name, description, modules, expiry, IP allowlist and rate limit. Sends the revision it read, so a change made
// meanwhile by someone else is a 409 (shown as such) rather than silently overwritten.

import { h, exactTime } from "../dom.js";
import { Modal, messageBox } from "../ui.js";
import { textField, moduleChecklist } from "../forms.js";
import { allowlistField, allowlistText, expiryField } from "../lifecycle.js";
import { rateLimitField, sameRateLimit } from "../ratelimit.js";

export function openEditDialog(ctx, token) {
  const modal = new Modal({ title: `Edit “${token.name}”`, wide: true });
  const name = textField({ label: "Name", name: "name", value: token.name, required: true,
    maxlength: 255 });
  const description = textField({ label: "Description", name: "description",
    value: token.description || "", multiline: true, maxlength: 2000 });
  const modules = moduleChecklist({
    modules: ctx.grantableModules(token.account.type, token.modules || []),
    selected: new Set((token.modules || []).map((m) => m.id)),
    legend: "Modules",
    hint: `Modules that your token holds and that a ${token.account.type} account may use, and the modules this token has now.`,
  });
  // An expired token's expiry cannot be moved (the API refuses: rotate it instead).
  const expired = token.status === "Expired";
  const expiry = expired ? null : expiryField({ legend: "Expiry",
    keep: { label: "No change",
      note: token.expiresAt ? `expires ${exactTime(token.expiresAt)}` : "never expires" },
    hint: "A new expiry counts from now." });
  const allowlist = allowlistField({ text: allowlistText(token.ipAllowlist) });
  const rateLimit = rateLimitField({ current: token.rateLimit || null });
  let stale = false;
  const form = h("form", { novalidate: true, id: `edit-${token.id}` },
    name.wrap, description.wrap, modules.wrap,
    expiry ? expiry.wrap : messageBox("info", "This API token has expired, so its expiry "
      + "cannot be changed here: rotate it to give it a new secret and a new expiry."),
    allowlist.wrap, rateLimit.wrap);
  modal.body.append(form);
  const cancel = h("button", { type: "button", class: "btn" }, "Cancel");
  const save = h("button", { type: "submit", class: "btn btn--primary", form: form.id },
    "Save changes");
  cancel.addEventListener("click", () => modal.close());
  modal.footer.append(cancel, save);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    name.clearError();
    modules.clearError();
    const chosen = modules.selected();
    const newExpiry = expiry ? expiry.read() : { ok: true, keep: true };
    const networks = allowlist.read();
    const limit = rateLimit.read();
    let invalid = null;
    if (!name.input.value.trim()) {
      name.setError("Enter a name.");
      invalid = invalid || name.input;
    }
    if (!chosen.length) {
      modules.setError("Choose at least one module.");
      invalid = invalid || { focus: () => modules.focus() };
    }
    if (!newExpiry.ok || !limit.ok) invalid = invalid || { focus: () => {} };
    if (invalid) {
      modal.showError(null, "Please correct the highlighted fields.");
      invalid.focus();
      return;
    }
    const body = {
      name: name.input.value.trim(),
      description: description.input.value.trim() || null,
      modules: chosen.map((id) => ({ id })),
      revision: token.revision,
    };
    // Only what changed: an unchanged expiry, allowlist or rate limit is not sent again.
    if (!newExpiry.keep) body.expiresAt = newExpiry.expiresAt;
    if (allowlistText(networks) !== allowlistText(token.ipAllowlist)) body.ipAllowlist = networks;
    if (!sameRateLimit(limit.rateLimit, token.rateLimit)) body.rateLimit = limit.rateLimit;
    try {
      const updated = await modal.run(save, "Saving…",
        () => ctx.api.put(`/api-tokens/${token.id}`, body), [cancel]);
      modal.close(updated);
    } catch (error) {
      if (error.status === 409 && /revision/i.test(error.message)) {
        stale = true;
        modal.showError(error, "Someone else changed this API token after you opened it. "
          + "Close this dialog, look at the current version and make your change again.");
      } else {
        modal.showError(error, "The changes could not be saved.");
        if (error.fieldsNamed && error.fieldsNamed("name")) name.setError(fieldMessage(error, "name"));
        if (error.fieldsNamed && error.fieldsNamed("modules")) modules.setError(fieldMessage(error, "modules"));
        if (expiry) expiry.showApiError(error);
        allowlist.showApiError(error);
        rateLimit.showApiError(error);
      }
      save.focus();
    }
  });
  modal.show(name.input);
  // Resolves with the changed token; {stale: true} when it changed meanwhile; else nothing.
  return modal.closed.then((updated) => updated || (stale ? { stale: true } : null));
}

function fieldMessage(error, field) {
  return error.fieldErrors.filter((e) => e.field.split(/[.[]/)[0] === field)
    .map((e) => e.message).join(" ");
}
