// Sign in by pasting an API token.

import { h, nextId } from "../dom.js";
import { messageBox } from "../ui.js";

export function renderSignIn(container, { onSubmit, message = null, error = null, kind = "info" }) {
  const inputId = nextId("secret");
  const hintId = nextId("hint");
  const input = h("input", {
    id: inputId, name: "secret", type: "password", class: "secret", required: true,
    autocomplete: "off", spellcheck: "false", autocapitalize: "off",
    "aria-describedby": hintId, placeholder: "idt:TKN-1234-5678:…",
  });
  const reveal = h("button", { type: "button", class: "btn", "aria-pressed": "false",
    "aria-controls": inputId }, "Show");
  reveal.addEventListener("click", () => {
    const shown = input.type === "text";
    input.type = shown ? "password" : "text";
    reveal.setAttribute("aria-pressed", String(!shown));
    reveal.textContent = shown ? "Show" : "Hide";
  });
  const alert = h("div", { class: "signin__alert" });
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Sign in");
  const form = h("form", { novalidate: true, "aria-labelledby": "signin-title" },
    h("div", { class: "field" },
      h("label", { for: inputId }, "API token"),
      h("div", { class: "input-row" }, input, reveal),
      h("p", { class: "hint", id: hintId },
        "Paste a token of your account (idt:TKN-…:…). It is kept in this browser tab only "
        + "and sent only to this server's API.")),
    alert,
    submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.replaceChildren();
    const secret = input.value.trim();
    if (!secret) {
      alert.append(messageBox("error", "Paste your API token to sign in."));
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      await onSubmit(secret);
    } catch (err) {
      input.setAttribute("aria-invalid", "true");
      alert.append(messageBox("error", "Could not sign in.", { error: err }));
      input.focus();
      input.select();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });

  container.append(h("section", { class: "signin" },
    h("div", { class: "card" },
      h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to API tokens"),
      h("p", { class: "lead" },
        "Manage the API tokens of your account: the credentials that scripts and "
        + "integrations use to call the Marketplace API."),
      message ? messageBox(kind, message, { error }) : null,
      form)));
  document.title = "Sign in · API tokens · tokenhouse";
  input.focus();
}
