// Add an API token: General -> Modules -> Security (expiry, IP allowlist, rate limit) -> Overview ->
// Summary (the secret, shown once).

import { h, clear, nextId } from "../dom.js";
import { Modal, announce, copyText, messageBox } from "../ui.js";
import { textField, moduleChecklist } from "../forms.js";
import { accountPicker } from "./accounts.js";
import { allowlistField, allowlistView, describeChoice, describeExpiry, expiryField, expiryOf,
  parseAllowlist, DEFAULT_EXPIRY } from "../lifecycle.js";
import { describeRateChoice, describeRateLimit, rateLimitField, rateLimitOf } from "../ratelimit.js";

const STEPS = ["General", "Modules", "Security", "Overview", "Summary"];
const SECURITY = 2;
const OVERVIEW = 3;
const SUMMARY = 4;

export function openWizard(ctx, { onCreated = () => {} } = {}) {
  const wizard = new Wizard(ctx, onCreated);
  return wizard.modal.closed;
}

class Wizard {
  constructor(ctx, onCreated) {
    this.ctx = ctx;
    this.onCreated = onCreated;
    this.step = 0;
    this.created = null;
    this.data = {
      account: ctx.isOps ? null : ctx.me.account,
      name: "",
      description: "",
      modules: new Set(),
      expiry: { choice: DEFAULT_EXPIRY, date: "" },
      allowlist: "",
      rateLimit: null, // the field's state; null: not chosen yet (the server's default)
    };
    this.modal = new Modal({ title: "Add API token", wide: true });
    this.modal.dialog.classList.add("wizard");
    this.stepList = h("ol", { class: "steps", "aria-label": "Steps" },
      STEPS.map((label) => h("li", {}, label)));
    this.modal.dialog.insertBefore(this.stepList, this.modal.alert);

    this.cancel = h("button", { type: "button", class: "btn" }, "Cancel");
    this.back = h("button", { type: "button", class: "btn" }, "Back");
    this.next = h("button", { type: "button", class: "btn btn--primary" }, "Next");
    this.cancel.addEventListener("click", () => this.modal.close());
    this.back.addEventListener("click", () => this.go(this.step - 1));
    this.next.addEventListener("click", () => this.forward());
    this.modal.footer.append(this.cancel, h("span", { class: "spacer" }), this.back, this.next);
    // Enter in a single-line field moves on, as in a form.
    this.modal.body.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && event.target.tagName === "INPUT"
        && event.target.type !== "checkbox" && this.step < OVERVIEW) {
        event.preventDefault();
        this.forward();
      }
    });
    this.modal.show();
    this.render({ focusField: true });
  }

  // -- navigation -----------------------------------------------------------------------

  async forward() {
    if (this.step === 0 && !this.readGeneral()) return;
    if (this.step === 1 && !this.readModules()) return;
    if (this.step === SECURITY && !this.readSecurity()) return;
    if (this.step === OVERVIEW) {
      await this.create();
      return;
    }
    if (this.step === SUMMARY) {
      this.modal.close(this.created);
      return;
    }
    this.go(this.step + 1);
  }

  go(step, { error = null } = {}) {
    if (step < 0 || step > SUMMARY) return;
    if (this.step < OVERVIEW) this.keep();
    this.step = step;
    this.modal.clearError();
    this.render({ focusField: false });
    if (error) {
      this.modal.showError(error, "The API token could not be created.");
      if (step === SECURITY) {
        // The API's words next to the field they are about (what was typed stays).
        this.expiry.showApiError(error);
        this.allowlist.showApiError(error);
        this.rateLimit.showApiError(error);
      }
    }
  }

  keep() {
    // Remember what was typed when leaving a step by "Back".
    if (this.step === 0 && this.fields) {
      this.data.name = this.fields.name.input.value;
      this.data.description = this.fields.description.input.value;
    }
    if (this.step === 1 && this.checklist) this.data.modules = new Set(this.checklist.selected());
    if (this.step === SECURITY && this.expiry) {
      this.data.expiry = this.expiry.state();
      this.data.allowlist = this.allowlist.text();
      this.data.rateLimit = this.rateLimit.state();
    }
  }

  // -- steps ----------------------------------------------------------------------------

  render({ focusField }) {
    this.next.disabled = false;
    const items = [...this.stepList.children];
    items.forEach((li, index) => {
      li.classList.toggle("is-done", index < this.step);
      if (index === this.step) li.setAttribute("aria-current", "step");
      else li.removeAttribute("aria-current");
    });
    const titleId = nextId("step-title");
    this.stepHeading = h("h3", { class: "step-title", id: titleId, tabindex: "-1" },
      h("span", { class: "visually-hidden" }, `Step ${this.step + 1} of ${STEPS.length}: `),
      this.step === SUMMARY ? "API token created" : STEPS[this.step]);
    const section = h("section", { "aria-labelledby": titleId }, this.stepHeading);
    clear(this.modal.body).append(section);
    this.back.hidden = this.step === 0 || this.step === SUMMARY;
    this.cancel.hidden = this.step === SUMMARY;
    this.next.textContent = ["Next", "Next", "Next", "Create token", "Done"][this.step];
    [this.renderGeneral, this.renderModules, this.renderSecurity, this.renderOverview,
      this.renderSummary][this.step].call(this, section);
    // Each new step: its heading gets the focus (screen readers read "Step 2 of 4: …"); the
    // first step starts in its first field.
    if (focusField && this.firstField) this.firstField.focus();
    else this.stepHeading.focus();
  }

  renderGeneral(section) {
    section.append(h("p", { class: "step-intro" },
      "Name the token after what will use it, so that it can be recognised later."));
    this.fields = {};
    if (this.ctx.isOps) {
      const account = accountPicker(this.ctx, { label: "Account", emptyLabel: "Choose an account",
        required: true, hint: "The account the token acts for.",
        value: this.data.account ? this.data.account.id : "",
        onError: (error) => this.modal.showError(error, "The accounts could not be loaded.") });
      this.fields.account = account;
      section.append(account.wrap);
      account.ready.then(() => {
        // The select was disabled while loading: give it the focus unless the user moved on.
        const active = document.activeElement;
        if (this.step === 0 && (!active || !/^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName))) {
          account.select.focus();
        }
      });
    } else {
      section.append(h("dl", { class: "review" },
        h("dt", {}, "Account"), h("dd", {}, `${this.ctx.me.account.name} (${this.ctx.me.account.type})`)));
    }
    const name = textField({ label: "Name", name: "name", value: this.data.name, required: true,
      maxlength: 255, hint: "For example: CI pipeline, ERP integration." });
    const description = textField({ label: "Description", name: "description",
      value: this.data.description, multiline: true, maxlength: 2000 });
    this.fields.name = name;
    this.fields.description = description;
    section.append(name.wrap, description.wrap);
    this.firstField = this.ctx.isOps ? this.fields.account.select : name.input;
  }

  readGeneral() {
    const { fields } = this;
    let invalid = null;
    fields.name.clearError();
    if (fields.account) {
      fields.account.clearError();
      const account = fields.account.account();
      if (!account) {
        fields.account.setError("Choose the account the token is for.");
        invalid = fields.account.select;
      } else {
        if (this.data.account && this.data.account.type !== account.type) {
          // Another account type: keep only the modules it may use.
          const allowed = new Set(this.ctx.grantableModules(account.type).map((m) => m.id));
          this.data.modules = new Set([...this.data.modules].filter((m) => allowed.has(m)));
        }
        this.data.account = account;
      }
    }
    if (!fields.name.input.value.trim()) {
      fields.name.setError("Enter a name.");
      invalid = invalid || fields.name.input;
    }
    if (invalid) {
      invalid.focus();
      return false;
    }
    this.data.name = fields.name.input.value.trim();
    this.data.description = fields.description.input.value.trim();
    return true;
  }

  renderModules(section) {
    const { type } = this.data.account;
    const modules = this.ctx.grantableModules(type);
    this.checklist = null;
    if (!modules.length) {
      section.append(messageBox("warning",
        `Your API token holds no module that a ${type} account may use, so it cannot give one.`));
      this.next.disabled = true;
      return;
    }
    this.next.disabled = false;
    // Nothing is chosen for the user: a token gets only what it needs.
    section.append(h("p", { class: "step-intro" },
      "Choose only what the token needs. Listed are the modules your own token holds that "
      + `a ${type} account may use.`));
    this.checklist = moduleChecklist({ modules, selected: this.data.modules,
      legend: "Modules the token may use" });
    section.append(this.checklist.wrap);
  }

  readModules() {
    if (!this.checklist) return false;
    this.checklist.clearError();
    const chosen = this.checklist.selected();
    if (!chosen.length) {
      this.checklist.setError("Choose at least one module.");
      this.checklist.focus();
      return false;
    }
    this.data.modules = new Set(chosen);
    return true;
  }

  renderSecurity(section) {
    section.append(h("p", { class: "step-intro" },
      "A token that expires and works only from known networks does less harm if it leaks."));
    this.expiry = expiryField({ state: this.data.expiry,
      hint: "Once expired, the token authenticates nothing; rotating it gives it a new secret and a new expiry." });
    this.allowlist = allowlistField({ text: this.data.allowlist });
    this.rateLimit = rateLimitField({ state: this.data.rateLimit });
    section.append(this.expiry.wrap, this.allowlist.wrap, this.rateLimit.wrap);
  }

  readSecurity() {
    this.allowlist.clearError();
    const expiry = this.expiry.read();
    if (!expiry.ok) return false;
    if (!this.rateLimit.read().ok) return false;
    this.data.expiry = this.expiry.state();
    this.data.allowlist = this.allowlist.text();
    this.data.rateLimit = this.rateLimit.state();
    return true;
  }

  renderOverview(section) {
    this.next.disabled = false;
    const { account, name, description } = this.data;
    const networks = parseAllowlist(this.data.allowlist);
    const byId = new Map(this.ctx.grantableModules(account.type).map((m) => [m.id, m]));
    const modules = [...this.data.modules].map((id) => byId.get(id)).filter(Boolean);
    section.append(
      h("p", { class: "step-intro" }, "Check the token before it is created."),
      h("dl", { class: "review" },
        h("dt", {}, "Account"), h("dd", {}, `${account.name} (${account.type}) · ${account.id}`),
        h("dt", {}, "Name"), h("dd", {}, name),
        h("dt", {}, "Description"),
        h("dd", {}, description ? h("span", { class: "pre-line" }, description) : h("span", { class: "muted" }, "None")),
        h("dt", {}, "Modules"),
        h("dd", {}, h("ul", { class: "chips" }, modules.map((m) => h("li", { class: "chip" }, m.name)))),
        h("dt", {}, "Expires"), h("dd", {}, describeChoice(this.data.expiry)),
        h("dt", {}, "IP allowlist"), h("dd", {}, allowlistView(networks)),
        h("dt", {}, "Rate limit"),
        h("dd", {}, this.data.rateLimit ? describeRateChoice(this.data.rateLimit)
          : "The server's default")));
  }

  async create() {
    const { account, name, description } = this.data;
    const body = { name, account: { id: account.id },
      modules: [...this.data.modules].map((id) => ({ id })) };
    if (description) body.description = description;
    // "In 90 days" counts from now, when the token is created.
    const expiry = expiryOf(this.data.expiry);
    if (expiry.error) {
      this.go(SECURITY);
      this.expiry.read();
      return;
    }
    body.expiresAt = expiry.expiresAt;
    const networks = parseAllowlist(this.data.allowlist);
    if (networks.length) body.ipAllowlist = networks;
    // Left out: the server's default (TOKENHOUSE_DEFAULT_RATE_LIMIT); null: no limit at all.
    const limit = this.data.rateLimit ? rateLimitOf(this.data.rateLimit) : { given: false };
    if (limit.given) body.rateLimit = limit.rateLimit;
    let token;
    try {
      token = await this.modal.run(this.next, "Creating…",
        () => this.ctx.api.post("/api-tokens", body), [this.back, this.cancel]);
    } catch (error) {
      // Back to the step the problem is about, with the API's words.
      const step = error.fieldsNamed && error.fieldsNamed("name", "description", "account") ? 0
        : error.fieldsNamed && error.fieldsNamed("modules") ? 1
          : error.fieldsNamed && error.fieldsNamed("expiresAt", "ipAllowlist", "rateLimit")
            ? SECURITY
            : OVERVIEW;
      this.go(step, { error });
      return;
    }
    this.created = token;
    this.onCreated(token);
    this.go(SUMMARY);
    announce("The API token was created. Copy it now: it will not be shown again.");
  }

  renderSummary(section) {
    const token = this.created;
    const secretId = nextId("secret");
    const warningId = nextId("warning");
    const secret = h("input", { id: secretId, type: "text", class: "secret", readonly: true,
      value: token.token, spellcheck: "false", autocomplete: "off",
      "aria-describedby": warningId });
    const status = h("p", { class: "copy-status", role: "status" });
    const copy = h("button", { type: "button", class: "btn btn--primary" }, "Copy");
    copy.addEventListener("click", () => copyText(secret, status));
    secret.addEventListener("focus", () => secret.select());
    section.append(
      h("p", { class: "success-mark" },
        h("span", {}, "“", token.name, "” was created for ", token.account.name, ".")),
      h("div", { id: warningId },
        messageBox("warning", "This is the only time the token is shown. Copy it now and keep it somewhere safe: it cannot be shown again, and a lost token can only be replaced by a new one.",
          { title: "Copy the token now" })),
      h("div", { class: "field secret-box" },
        h("label", { for: secretId }, "Your new API token"),
        h("div", { class: "input-row" }, secret, copy),
        status),
      h("dl", { class: "review" },
        h("dt", {}, "Token ID"), h("dd", {}, h("code", {}, token.id)),
        h("dt", {}, "Status"), h("dd", {}, token.status),
        h("dt", {}, "Expires"), h("dd", {}, describeExpiry(token.expiresAt)),
        h("dt", {}, "Rate limit"), h("dd", {}, describeRateLimit(token.rateLimit))));
    const view = h("a", { href: `#/tokens/${token.id}`, class: "btn" }, "View token");
    view.addEventListener("click", () => this.modal.close(token));
    this.modal.footer.insertBefore(view, this.next);
    this.viewLink = view;
  }
}
