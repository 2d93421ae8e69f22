// One API token: general, modules, details and audit trail tabs; edit, rotate, disable/enable
// and delete.

import { API_ROOT } from "../api.js";
import { h, append, clear, exactTime, relativeTime, statusBadge, leakedBadge, nextId } from "../dom.js";
import { announce, confirmAction, copyText, flash, messageBox } from "../ui.js";
import { openEditDialog } from "./edit.js";
import { openRotateDialog } from "./rotate.js";
import { allowlistView, expiresSoon, soonBadge } from "../lifecycle.js";
import { describeRateLimit } from "../ratelimit.js";
import { DEFAULT_SIZE, RecordList } from "../audit.js";
import { eqFilter } from "../rql.js";

const LEAKED_TEXT = "Disabled because its secret was reported as leaked — rotate it, then enable.";

const TABS = [
  { key: "general", label: "General" },
  { key: "modules", label: "Modules" },
  { key: "details", label: "Details" },
  { key: "audit", label: "Audit trail" },
];

function tabOf(params) {
  const tab = params.get("tab");
  return TABS.some((t) => t.key === tab) ? tab : "general";
}

export class DetailsView {
  constructor(ctx, id, params) {
    this.ctx = ctx;
    this.id = id;
    this.tab = tabOf(params);
    this.token = null;
    this.heading = h("h1", { tabindex: "-1" }, id);
    this.crumb = h("li", { "aria-current": "page" }, id);
    this.statusSlot = h("span");
    this.actions = h("div", { class: "page-head__actions" });
    this.notes = h("div");
    this.body = h("div", { class: "card" }, h("p", { class: "tab-panel muted" }, "Loading…"));
    this.el = h("section", { class: "page page--details" },
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h("ol", {},
          h("li", {}, "Settings"),
          h("li", {}, h("a", { href: ctx.listHash, id: "back-to-list" }, "API tokens")),
          this.crumb)),
      h("div", { class: "page-head" },
        h("div", { class: "page-head__text" },
          h("div", { class: "title-row" }, this.heading, this.statusSlot),
          h("p", { class: "mono small" }, id)),
        this.actions),
      this.notes,
      this.body);
    this.load();
  }

  focusHeading() {
    this.heading.focus();
  }

  destroy() {
    if (this.trail) this.trail.destroy();
  }

  update(params) {
    const tab = tabOf(params);
    if (tab !== this.tab) {
      this.tab = tab;
      if (this.token) this.renderTabs();
    }
  }

  async load() {
    let token;
    try {
      token = await this.ctx.api.get(`/api-tokens/${this.id}`);
    } catch (error) {
      const back = h("a", { href: this.ctx.listHash, class: "btn btn--small" }, "Back to API tokens");
      clear(this.body).append(h("div", { class: "tab-panel" },
        messageBox("error", "This API token could not be loaded.", { error, actions: [back] })));
      return;
    }
    this.show(token);
  }

  show(token) {
    delete token.token; // a GET with this very token returns its secret: never shown here
    this.token = token;
    this.render();
  }

  get isSelf() {
    return this.token && this.token.id === this.ctx.me.id;
  }

  /** Disabled by the service after a leak report: enabled only once rotated. */
  get isLeaked() {
    return this.token && this.token.status === "Disabled" && this.token.statusReason === "Leaked";
  }

  // -- rendering ------------------------------------------------------------------------

  render() {
    const { token } = this;
    document.title = `${token.name} · API tokens · tokenhouse`;
    this.heading.textContent = token.name;
    this.crumb.textContent = token.name;
    clear(this.statusSlot).append(statusBadge(token.status), " ", leakedBadge(token) || "",
      soonBadge(token) || "");
    this.renderActions();
    clear(this.notes);
    if (this.isSelf) {
      this.notes.append(messageBox("info", "This is the API token you are signed in with."));
    }
    if (token.status === "Deleted") {
      this.notes.append(messageBox("warning", "This API token is deleted: it authenticates nothing and cannot be changed."));
    } else if (this.isLeaked) {
      this.notes.append(this.leakedNote());
    } else if (token.status === "Disabled") {
      this.notes.append(messageBox("warning", "This API token is disabled: requests made with it are refused until it is enabled again."));
    } else if (token.status === "Expired") {
      this.notes.append(messageBox("warning", `This API token expired on ${exactTime(token.expiresAt)}: `
        + "it authenticates nothing. Rotate it to give it a new secret and a new expiry."));
    } else if (expiresSoon(token)) {
      this.notes.append(messageBox("warning", `This API token expires ${relativeTime(token.expiresAt)}, `
        + `on ${exactTime(token.expiresAt)}. Rotate it, or give it a later expiry with Edit, before then.`));
    }
    if (token.previousSecret && token.status !== "Deleted") this.notes.append(this.previousNote());
    this.renderTabs();
  }

  renderActions() {
    const { token } = this;
    clear(this.actions);
    if (token.status === "Deleted") return;
    this.editButton = h("button", { type: "button", class: "btn" }, "Edit");
    this.editButton.addEventListener("click", () => this.edit());
    this.rotateButton = h("button", { type: "button", class: "btn" }, "Rotate");
    this.rotateButton.addEventListener("click", () => this.rotate());
    this.actions.append(this.editButton, this.rotateButton);
    // An expired token cannot be enabled (or disabled): rotating gives it a new life.
    if (token.status !== "Expired") {
      const disabling = token.status === "Active";
      this.toggleButton = h("button", { type: "button", class: "btn" }, disabling ? "Disable" : "Enable");
      this.toggleButton.addEventListener("click", () => this.setStatus(disabling ? "disable" : "enable"));
      this.actions.append(this.toggleButton);
    }
    this.deleteButton = h("button", { type: "button", class: "btn btn--danger-outline" }, "Delete");
    this.deleteButton.addEventListener("click", () => this.remove());
    this.actions.append(this.deleteButton);
  }

  /** Why a leaked token is disabled, and the way back: a rotation, then Enable. */
  leakedNote() {
    const rotate = h("button", { type: "button", class: "btn btn--small", id: "rotate-leaked" },
      "Rotate now");
    rotate.addEventListener("click", () => this.rotate());
    return messageBox("error", LEAKED_TEXT, {
      title: "Its secret was reported as leaked",
      actions: [h("span", { class: "muted small" }, "Anyone may have the old secret: "
        + "it never works again. Rotating gives the token a new secret; then enable it. "),
      rotate] });
  }

  /** The secret replaced by the last rotation, while it still works: until when, and a way
   * to end it now. */
  previousNote() {
    const previous = this.token.previousSecret;
    const revoke = h("button", { type: "button", class: "btn btn--small btn--danger-outline",
      id: "revoke-previous" }, "Revoke the old secret now");
    revoke.addEventListener("click", () => this.revokePrevious());
    const used = previous.lastAccessAt
      ? `It was last used ${relativeTime(previous.lastAccessAt)} (${exactTime(previous.lastAccessAt)}).`
      : "It has not been used since the rotation.";
    return messageBox("info",
      `The secret replaced by the last rotation keeps working until ${exactTime(previous.expiresAt)} `
      + `(${relativeTime(previous.expiresAt)}). ${used}`,
      { title: "The old secret still works", actions: [revoke] });
  }

  renderTabs() {
    if (this.trail) this.trail.destroy(); // a page of records still on its way is dropped
    this.trail = null;
    const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "API token" });
    const panels = [];
    const buttons = [];
    for (const tab of TABS) {
      const tabId = nextId(`tab-${tab.key}`);
      const panelId = nextId(`panel-${tab.key}`);
      const selected = tab.key === this.tab;
      const button = h("button", { type: "button", role: "tab", class: "tab", id: tabId,
        "aria-selected": String(selected), "aria-controls": panelId,
        tabindex: selected ? "0" : "-1", dataset: { tab: tab.key } }, tab.label);
      button.addEventListener("click", () => this.selectTab(tab.key));
      buttons.push(button);
      tablist.append(button);
      const panel = h("div", { class: "tab-panel", role: "tabpanel", id: panelId,
        "aria-labelledby": tabId, tabindex: "0", hidden: !selected });
      if (selected) append(panel, this.panel(tab.key));
      panels.push(panel);
    }
    // Arrow keys move between tabs (and show them), Home/End to the ends.
    tablist.addEventListener("keydown", (event) => {
      const index = buttons.indexOf(document.activeElement);
      if (index < 0) return;
      let next = null;
      if (event.key === "ArrowRight") next = (index + 1) % buttons.length;
      else if (event.key === "ArrowLeft") next = (index - 1 + buttons.length) % buttons.length;
      else if (event.key === "Home") next = 0;
      else if (event.key === "End") next = buttons.length - 1;
      if (next === null) return;
      event.preventDefault();
      this.selectTab(TABS[next].key);
    });
    clear(this.body).append(tablist, ...panels);
  }

  /** The token's records (its object id), newest first, paged here (not in the address). */
  auditPanel() {
    const filters = [eqFilter("object.id", this.id)];
    const trail = new RecordList(this.ctx, {
      showObject: false,
      sizes: false,
      emptyText: "No records about this API token.",
      onPage: (page, size) => trail.load(filters, page, size),
    });
    this.trail = trail;
    trail.load(filters, 1, DEFAULT_SIZE);
    return [h("p", { class: "muted" }, "What happened to this API token, newest first: "
      + "who changed it, from which address, and when."), trail.el];
  }

  selectTab(key) {
    this.tab = key;
    const hash = `#/tokens/${this.id}${key === "general" ? "" : `?tab=${key}`}`;
    this.ctx.navigate(hash, { replace: true });
    this.renderTabs();
    // The tabs were rebuilt: the focus goes back to the selected one.
    const tab = this.body.querySelector(`[role="tab"][data-tab="${key}"]`);
    if (tab) tab.focus();
  }

  panel(key) {
    const { token } = this;
    if (key === "audit") return this.auditPanel();
    if (key === "modules") {
      const modules = [...(token.modules || [])].sort((a, b) => a.name.localeCompare(b.name));
      if (!modules.length) return h("p", { class: "empty-note" }, "No modules.");
      return [
        h("p", { class: "muted" }, `This token may use ${modules.length} module${modules.length === 1 ? "" : "s"}.`),
        h("ul", { class: "module-list" }, modules.map((m) => h("li", {},
          h("div", { class: "module-name" }, m.name),
          m.description ? h("div", {}, m.description) : null,
          h("div", { class: "module-meta" }, `${m.id} · for ${(m.accountTypes || []).join(", ")} accounts`)))),
      ];
    }
    if (key === "details") {
      const audit = token.audit || {};
      const created = audit.created || {};
      const updated = audit.updated || {};
      return h("dl", { class: "props" },
        prop("Created", when(created.at)),
        prop("Created by", actor(created.by)),
        prop("Last updated", updated.at ? when(updated.at) : h("span", { class: "muted" }, "Never changed")),
        prop("Updated by", updated.at ? actor(updated.by) : h("span", { class: "muted" }, "—")),
        prop("Last access", token.lastAccessAt ? when(token.lastAccessAt) : h("span", { class: "muted" }, "Never used")),
        prop("Last-used addresses", addresses(token.lastAccessIps)),
        prop("Revision", String(token.revision)));
    }
    const endpoint = `${location.origin}${API_ROOT}`;
    return h("dl", { class: "props" },
      prop("Description", token.description
        ? h("span", { class: "pre-line" }, token.description)
        : h("span", { class: "muted" }, "No description")),
      prop("ID", copyLine(token.id, "Copy ID")),
      prop("Account", [h("span", {}, token.account.name), " ",
        h("span", { class: "muted small" }, `${token.account.type} · ${token.account.id}`)]),
      prop("API endpoint", [copyLine(endpoint, "Copy endpoint"),
        h("p", { class: "muted small" }, "Call the API there with the header Authorization: Bearer <token>.")]),
      prop("Status", [statusBadge(token.status), " ", leakedBadge(token) || ""]),
      prop("Expires", token.expiresAt
        ? [when(token.expiresAt), " ", soonBadge(token)]
        : h("span", { class: "muted" }, "Never")),
      prop("IP allowlist", allowlistView(token.ipAllowlist)),
      prop("Rate limit", token.rateLimit ? describeRateLimit(token.rateLimit)
        : h("span", { class: "muted" }, "No limit")));
  }

  // -- actions --------------------------------------------------------------------------

  async edit() {
    const updated = await openEditDialog(this.ctx, this.token);
    if (!updated) return;
    if (updated.stale) {
      // Changed by someone else meanwhile: show the current version.
      await this.load();
      flash("info", "This API token was changed meanwhile; its current version is shown.");
      this.editButton.focus();
      return;
    }
    this.show(updated);
    flash("success", `Saved the changes to “${updated.name}”.`);
    if (this.isSelf) await this.ctx.refreshMe().catch(() => {});
    this.editButton.focus();
  }

  async rotate() {
    const rotated = await openRotateDialog(this.ctx, this.token, { self: this.isSelf });
    if (!rotated) return;
    const wasLeaked = this.isLeaked;
    this.show(rotated);
    flash("success", `Rotated the secret of “${rotated.name}”.`
      + (wasLeaked && rotated.status === "Disabled" ? " It can be enabled again now." : ""));
    if (this.isSelf) await this.ctx.refreshMe().catch(() => {});
    this.rotateButton.focus();
  }

  async revokePrevious() {
    const { token } = this;
    const done = await confirmAction({
      title: "Revoke the old secret now?",
      text: `The secret of “${token.name}” that the last rotation replaced will stop working at `
        + "once. The current secret keeps working.",
      confirmLabel: "Revoke",
      busyLabel: "Revoking…",
      danger: true,
      action: () => this.ctx.api.post(`/api-tokens/${token.id}/revoke-previous-secret`),
    });
    if (!done) return;
    this.show(done.result);
    flash("success", `The old secret of “${done.result.name}” no longer works.`);
    announce("The old secret no longer works.");
    this.rotateButton.focus();
  }

  async setStatus(kind) {
    const { token } = this;
    const disable = kind === "disable";
    const self = this.isSelf;
    const done = await confirmAction({
      title: disable ? "Disable this API token?" : "Enable this API token?",
      text: disable
        ? `“${token.name}” will stop authenticating requests until it is enabled again.`
        : `“${token.name}” will authenticate requests again.`,
      note: self && disable ? "This is the token you are signed in with: you will be signed out."
        : !disable && this.isLeaked ? "Its secret was reported as leaked: it cannot be enabled "
          + "before it is rotated." : null,
      confirmLabel: disable ? "Disable" : "Enable",
      busyLabel: disable ? "Disabling…" : "Enabling…",
      danger: disable,
      action: () => this.ctx.api.post(`/api-tokens/${token.id}/${kind}`),
      // A 409 says why in its detail, which the dialog shows (reported as leaked, expired,
      // changed meanwhile): the page behind is brought up to date, its banner included.
      onError: (error) => {
        if (error.status === 409) this.load();
      },
    });
    if (!done) {
      // Redrawn behind the dialog (a 409): the button that opened it is gone.
      if (!document.activeElement || document.activeElement === document.body) this.focusHeading();
      return;
    }
    if (self && disable) {
      this.ctx.signOut({ message: "You disabled the API token you were signed in with, so you have been signed out." });
      return;
    }
    this.show(done.result);
    flash("success", `“${done.result.name}” is now ${done.result.status.toLowerCase()}.`);
    announce(`The API token is now ${done.result.status.toLowerCase()}.`);
    this.toggleButton.focus();
  }

  async remove() {
    const { token } = this;
    const self = this.isSelf;
    const done = await confirmAction({
      title: "Delete this API token?",
      text: `“${token.name}” will stop working at once. Deleting cannot be undone.`,
      note: self ? "This is the token you are signed in with: you will be signed out." : null,
      confirmLabel: "Delete",
      busyLabel: "Deleting…",
      danger: true,
      action: () => this.ctx.api.del(`/api-tokens/${token.id}`),
    });
    if (!done) return;
    if (self) {
      this.ctx.signOut({ message: "You deleted the API token you were signed in with, so you have been signed out." });
      return;
    }
    flash("success", `Deleted “${token.name}”.`, { keep: true });
    this.ctx.navigate(this.ctx.listHash);
  }
}

function prop(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function addresses(list) {
  if (!list || !list.length) return h("span", { class: "muted" }, "None recorded");
  return h("ul", { class: "addresses" }, list.map((entry) => h("li", {},
    h("code", {}, entry.ip), " ", h("span", { class: "muted small" }, when(entry.at)))));
}

function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return [h("time", { datetime: iso }, exactTime(iso)), " ",
    h("span", { class: "muted" }, `(${relativeTime(iso)})`)];
}

function actor(by) {
  if (!by) return h("span", { class: "muted" }, "—");
  return [h("span", {}, by.name || by.id), by.id ? h("span", { class: "muted small" }, ` · ${by.id}`) : null];
}

function copyLine(text, label) {
  const code = h("code", {}, text);
  const status = h("span", { class: "visually-hidden", role: "status" });
  const button = h("button", { type: "button", class: "btn btn--small btn--link" }, "Copy");
  button.setAttribute("aria-label", label);
  button.addEventListener("click", async () => {
    await copyText(code, status);
    button.textContent = status.textContent.startsWith("Copied") ? "Copied" : "Copy";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  });
  return h("span", { class: "copy-line" }, code, button, status);
}

