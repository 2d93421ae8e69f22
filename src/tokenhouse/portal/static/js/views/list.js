// The list of API tokens: search, filters, sorting and paging, all done by the server (RQL).

import { h, clear, timeEl, statusBadge, leakedBadge, nextId } from "../dom.js";
import { searchFilter, eqFilter } from "../rql.js";
import { announce, messageBox } from "../ui.js";
import { selectField } from "../forms.js";
import { openWizard } from "./wizard.js";
import { accountPicker } from "./accounts.js";
import { soonBadge } from "../lifecycle.js";

export const DEFAULT_ORDER = "-audit.created.at";
const SIZES = [10, 25, 50, 100];
const DEFAULT_SIZE = 10;
const STATUSES = ["Active", "Disabled", "Expired", "Deleted"];
const SORT_KEYS = ["name", "account.name", "status", "expiresAt", "audit.created.at",
  "lastAccessAt"];
const MODULE_CHIPS = 3;

const COLUMNS = [
  { key: "name", label: "Name", sort: "name" },
  { key: "account", label: "Account", sort: "account.name", ops: true },
  { key: "status", label: "Status", sort: "status" },
  { key: "modules", label: "Modules" },
  { key: "expires", label: "Expires", sort: "expiresAt" },
  { key: "created", label: "Created", sort: "audit.created.at", descFirst: true },
  { key: "lastAccess", label: "Last access", sort: "lastAccessAt", descFirst: true },
];

/** The list's state from the address bar (anything invalid falls back to the default). */
export function readState(params, isOps) {
  const status = params.get("status") || "";
  const account = params.get("account") || "";
  const order = params.get("order") || "";
  const page = Number.parseInt(params.get("page") || "1", 10);
  const size = Number.parseInt(params.get("size") || String(DEFAULT_SIZE), 10);
  return {
    q: (params.get("q") || "").trim(),
    status: STATUSES.includes(status) && (isOps || status !== "Deleted") ? status : "",
    account: isOps && /^ACC-\d{4}-\d{4}$/.test(account) ? account : "",
    order: SORT_KEYS.includes(order.replace(/^-/, "")) ? order : DEFAULT_ORDER,
    page: Number.isFinite(page) && page > 0 ? page : 1,
    size: SIZES.includes(size) ? size : DEFAULT_SIZE,
  };
}

export function stateHash(state) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.status) params.set("status", state.status);
  if (state.account) params.set("account", state.account);
  if (state.order !== DEFAULT_ORDER) params.set("order", state.order);
  if (state.page > 1) params.set("page", String(state.page));
  if (state.size !== DEFAULT_SIZE) params.set("size", String(state.size));
  const query = params.toString();
  return `#/tokens${query ? `?${query}` : ""}`;
}

export class ListView {
  constructor(ctx, params) {
    this.ctx = ctx;
    this.seq = 0;
    this.columns = COLUMNS.filter((c) => !c.ops || ctx.isOps);
    this.state = readState(params, ctx.isOps);
    this.build();
    this.update(params);
  }

  // -- structure (built once: typing in the search box never loses focus) ---------------

  build() {
    const { ctx } = this;
    this.heading = h("h1", { tabindex: "-1" }, "API tokens");
    const add = h("button", { type: "button", class: "btn btn--primary", id: "add-token" },
      "Add API token");
    add.addEventListener("click", () => openWizard(ctx, {
      onCreated: () => this.load(),
    }));

    // Filters.
    const searchId = nextId("search");
    this.search = h("input", { id: searchId, type: "search", name: "q",
      placeholder: "Name or description", autocomplete: "off", spellcheck: "false",
      "aria-controls": "token-table" });
    this.search.addEventListener("input", () => {
      clearTimeout(this.typing);
      this.typing = setTimeout(() => this.applySearch(), 350);
    });
    const statusOptions = [{ value: "", label: "All statuses" },
      ...STATUSES.filter((s) => ctx.isOps || s !== "Deleted").map((s) => ({ value: s, label: s }))];
    this.status = selectField({ label: "Status", name: "status", options: statusOptions,
      extraClass: "field--status" });
    this.status.select.addEventListener("change", () => this.change({
      status: this.status.select.value, page: 1 }));
    if (ctx.isOps) {
      this.account = accountPicker(ctx, { label: "Account", emptyLabel: "All accounts",
        value: this.state.account, extraClass: "field--account",
        onError: (error) => this.errorArea.replaceChildren(
          messageBox("error", "The accounts for the filter could not be loaded.", { error })) });
      this.account.select.addEventListener("change", () => this.change({
        account: this.account.select.value, page: 1 }));
    }
    this.clearButton = h("button", { type: "button", class: "btn btn--link filters__clear" },
      "Clear filters");
    this.clearButton.addEventListener("click", () => {
      this.search.value = "";
      this.change({ q: "", status: "", account: "", page: 1 });
      this.search.focus();
    });
    const searchForm = h("form", { role: "search", class: "filters",
      "aria-label": "Filter API tokens" },
    h("div", { class: "field field--search" },
      h("label", { for: searchId }, "Search"), this.search),
    this.status.wrap,
    this.account ? this.account.wrap : null,
    this.clearButton);
    searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applySearch();
    });

    // Table.
    this.caption = h("caption", { class: "visually-hidden" });
    this.headers = new Map();
    const headRow = h("tr");
    for (const column of this.columns) {
      const th = h("th", { scope: "col", class: [`col-${column.key}`, column.sort && "is-sortable"] });
      if (column.sort) {
        const icon = h("span", { class: "sort-icon", "aria-hidden": "true" }, "↕");
        const button = h("button", { type: "button", class: "sort-btn",
          dataset: { sort: column.sort } }, column.label, icon);
        button.addEventListener("click", () => this.sortBy(column));
        th.append(button);
        this.headers.set(column.sort, { th, icon, button });
      } else {
        th.textContent = column.label;
      }
      headRow.append(th);
    }
    this.tbody = h("tbody");
    this.table = h("table", { class: "tokens", id: "token-table" },
      this.caption, h("thead", {}, headRow), this.tbody);
    this.errorArea = h("div", { class: "list-error" });

    // Paging.
    this.rangeText = h("p", { class: "muted small", id: nextId("range") });
    this.prev = h("button", { type: "button", class: "btn btn--small" }, "‹ Previous");
    this.next = h("button", { type: "button", class: "btn btn--small" }, "Next ›");
    this.pageText = h("span", { class: "small" });
    this.prev.addEventListener("click", () => this.change({ page: this.state.page - 1 }));
    this.next.addEventListener("click", () => this.change({ page: this.state.page + 1 }));
    this.sizeField = selectField({ label: "Rows per page", name: "size",
      options: SIZES.map((s) => ({ value: String(s), label: String(s) })) });
    this.sizeField.select.addEventListener("change", () => this.change({
      size: Number(this.sizeField.select.value), page: 1 }));
    this.sizeField.wrap.className = "page-size";

    this.el = h("section", { class: "page page--list", "aria-labelledby": "list-title" },
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h("ol", {}, h("li", {}, "Settings"), h("li", { "aria-current": "page" }, "API tokens"))),
      h("div", { class: "page-head" },
        h("div", { class: "page-head__text" }, this.heading,
          h("p", {}, ctx.isOps
            ? "Credentials that scripts and integrations use to call the Marketplace API. As the platform operator you see the tokens of every account."
            : `Credentials that scripts and integrations use to call the Marketplace API on behalf of ${ctx.me.account.name}.`)),
        h("div", { class: "page-head__actions" }, add)),
      h("div", { class: "card" },
        searchForm,
        this.errorArea,
        h("div", { class: "table-wrap" }, this.table),
        h("div", { class: "list-foot" },
          this.rangeText,
          h("nav", { class: "pager", "aria-label": "Pages" },
            this.sizeField.wrap, this.prev, this.pageText, this.next))));
    this.heading.id = "list-title";
  }

  focusHeading() {
    this.heading.focus();
  }

  destroy() {
    clearTimeout(this.typing);
    this.seq += 1;
  }

  // -- state ----------------------------------------------------------------------------

  update(params) {
    document.title = "API tokens · tokenhouse";
    this.state = readState(params, this.ctx.isOps);
    this.syncControls();
    this.load();
  }

  change(patch) {
    const state = { ...this.state, ...patch };
    // Typing and paging replace the entry; other changes make a history entry.
    this.ctx.navigate(stateHash(state), { replace: "q" in patch && Object.keys(patch).length <= 2 });
  }

  applySearch() {
    clearTimeout(this.typing);
    const q = this.search.value.trim();
    if (q !== this.state.q) this.change({ q, page: 1 });
  }

  sortBy(column) {
    const current = this.state.order;
    const key = current.replace(/^-/, "");
    const descending = current.startsWith("-");
    let order;
    if (key === column.sort) order = descending ? column.sort : `-${column.sort}`;
    else order = column.descFirst ? `-${column.sort}` : column.sort;
    this.change({ order, page: 1 });
    // The header stays in place: keep the focus on its button.
    this.headers.get(column.sort).button.focus();
  }

  syncControls() {
    const { state } = this;
    if (document.activeElement !== this.search) this.search.value = state.q;
    this.status.select.value = state.status;
    this.sizeField.select.value = String(state.size);
    if (this.account) this.account.setValue(state.account);
    this.clearButton.hidden = !(state.q || state.status || state.account);
    const key = state.order.replace(/^-/, "");
    const direction = state.order.startsWith("-") ? "descending" : "ascending";
    for (const [sort, { th, icon }] of this.headers) {
      if (sort === key) {
        th.setAttribute("aria-sort", direction);
        icon.textContent = direction === "ascending" ? "▲" : "▼";
      } else {
        th.removeAttribute("aria-sort");
        icon.textContent = "↕";
      }
    }
    const column = this.columns.find((c) => c.sort === key);
    this.caption.textContent = `API tokens, sorted by ${column ? column.label : key}, ${direction}`;
  }

  // -- data -----------------------------------------------------------------------------

  query() {
    const { state } = this;
    const filters = [];
    if (state.q) filters.push(searchFilter(state.q));
    if (state.status) filters.push(eqFilter("status", state.status));
    if (state.account) filters.push(eqFilter("account.id", state.account));
    return [`limit=${state.size}`, `offset=${(state.page - 1) * state.size}`,
      `order=${state.order}`, "select=+audit", ...filters].join("&");
  }

  async load() {
    const seq = ++this.seq;
    const { state } = this;
    this.table.setAttribute("aria-busy", "true");
    if (!this.tbody.childElementCount) this.showState("Loading API tokens…");
    let page;
    try {
      page = await this.ctx.api.get("/api-tokens", this.query());
    } catch (error) {
      if (seq !== this.seq) return;
      this.table.removeAttribute("aria-busy");
      const retry = h("button", { type: "button", class: "btn btn--small" }, "Try again");
      retry.addEventListener("click", () => this.load());
      clear(this.errorArea).append(messageBox("error", "The API tokens could not be loaded.",
        { error, actions: [retry] }));
      clear(this.tbody);
      this.showState("No API tokens to show.");
      this.renderPaging(0);
      return;
    }
    if (seq !== this.seq) return;
    clear(this.errorArea);
    this.table.removeAttribute("aria-busy");
    const { total } = page.$meta.pagination;
    const pages = Math.max(1, Math.ceil(total / state.size));
    if (state.page > pages && total > 0) {
      // Past the end (tokens were deleted, or a stale bookmark): the last page instead.
      this.ctx.navigate(stateHash({ ...state, page: pages }), { replace: true });
      return;
    }
    this.renderRows(page.data);
    this.renderPaging(total);
    const filtered = state.q || state.status || state.account;
    announce(`${total} API token${total === 1 ? "" : "s"}${filtered ? " match the filters" : ""}.`
      + (total > state.size ? ` Page ${state.page} of ${pages}.` : ""));
  }

  showState(text, action = null) {
    clear(this.tbody).append(h("tr", {}, h("td", { class: "table-state",
      colspan: String(this.columns.length) }, h("p", {}, text), action)));
  }

  renderRows(tokens) {
    clear(this.tbody);
    if (!tokens.length) {
      const { q, status, account } = this.state;
      if (q || status || account) {
        const reset = h("button", { type: "button", class: "btn btn--small" }, "Clear filters");
        reset.addEventListener("click", () => this.clearButton.click());
        this.showState("No API tokens match these filters.", reset);
      } else {
        this.showState("There are no API tokens yet. Add one to let a script or integration call the API.");
      }
      return;
    }
    for (const token of tokens) {
      const row = h("tr", { dataset: { id: token.id } });
      for (const column of this.columns) {
        row.append(h("td", { class: `col-${column.key}`, "data-label": column.label },
          h("div", { class: "cell" }, this.cell(column.key, token))));
      }
      this.tbody.append(row);
    }
  }

  cell(key, token) {
    switch (key) {
      case "name":
        return [h("a", { href: `#/tokens/${token.id}`, class: "token-link" }, token.name),
          h("span", { class: "token-sub" }, token.id)];
      case "account":
        return [h("span", {}, token.account.name),
          h("span", { class: "token-sub" }, `${token.account.type} · `,
            h("span", { class: "id" }, token.account.id))];
      case "status":
        return [statusBadge(token.status), leakedBadge(token)];
      case "modules": {
        const modules = [...(token.modules || [])].sort((a, b) => a.name.localeCompare(b.name));
        const shown = modules.slice(0, MODULE_CHIPS);
        const rest = modules.slice(MODULE_CHIPS);
        return h("ul", { class: "chips" },
          shown.map((m) => h("li", { class: "chip" }, m.name)),
          rest.length ? h("li", { class: "chip chip--more",
            title: rest.map((m) => m.name).join(", ") }, `+${rest.length} more`) : null);
      }
      case "created":
        return timeEl(token.audit && token.audit.created ? token.audit.created.at : null,
          { mode: "date", never: "—" });
      case "expires":
        return h("span", { class: "expiry-cell" },
          timeEl(token.expiresAt, { mode: "date", never: "Never" }), soonBadge(token));
      case "lastAccess":
        return timeEl(token.lastAccessAt);
      default:
        return "";
    }
  }

  renderPaging(total) {
    const { page, size } = this.state;
    const pages = Math.max(1, Math.ceil(total / size));
    const first = total ? (page - 1) * size + 1 : 0;
    const last = Math.min(total, page * size);
    this.rangeText.textContent = total
      ? `Showing ${first}–${last} of ${total} API token${total === 1 ? "" : "s"}`
      : "No API tokens";
    this.pageText.textContent = `Page ${Math.min(page, pages)} of ${pages}`;
    const focused = document.activeElement;
    this.prev.disabled = page <= 1;
    this.next.disabled = page >= pages;
    // A pager button that just became disabled hands the focus to its sibling.
    if (focused === this.next && this.next.disabled && !this.prev.disabled) this.prev.focus();
    if (focused === this.prev && this.prev.disabled && !this.next.disabled) this.next.focus();
  }
}
