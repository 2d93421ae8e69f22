// Settings > Audit trail: the account's records (Operations: every account's), filtered by
// event, object and date and paged by the server (RQL), the state in the address bar:
//   #/audit?event=…&object=…&from=YYYY-MM-DD&to=YYYY-MM-DD&page=…&size=…

import { h, nextId } from "../dom.js";
import { containsFilter, eqFilter, encodeValue } from "../rql.js";
import { selectField } from "../forms.js";
import { DEFAULT_SIZE, RecordList, SIZES, lacksAudit } from "../audit.js";

export const AUDIT_HASH = "#/audit";
const DATE = /^\d{4}-\d{2}-\d{2}$/;
// An event key as the API takes it (audit/service.EVENT_KEY): no quote, no bracket.
const EVENT_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,254}$/;
const EVENT_TYPE_PAGES = 10;

function validDate(text) {
  return DATE.test(text) && !Number.isNaN(new Date(`${text}T00:00:00`).getTime()) ? text : "";
}

/** The page's state from the address bar (anything invalid falls back to the default). */
export function readState(params) {
  const event = params.get("event") || "";
  const page = Number.parseInt(params.get("page") || "1", 10);
  const size = Number.parseInt(params.get("size") || String(DEFAULT_SIZE), 10);
  return {
    event: EVENT_KEY.test(event) ? event : "",
    object: (params.get("object") || "").trim().slice(0, 255),
    from: validDate(params.get("from") || ""),
    to: validDate(params.get("to") || ""),
    page: Number.isFinite(page) && page > 0 ? page : 1,
    size: SIZES.includes(size) ? size : DEFAULT_SIZE,
  };
}

export function stateHash(state) {
  const params = new URLSearchParams();
  for (const key of ["event", "object", "from", "to"]) if (state[key]) params.set(key, state[key]);
  if (state.page > 1) params.set("page", String(state.page));
  if (state.size !== DEFAULT_SIZE) params.set("size", String(state.size));
  const query = params.toString();
  return `${AUDIT_HASH}${query ? `?${query}` : ""}`;
}

/** The start of a day of the person's own calendar (their time zone), as an instant. */
function dayStart(date, plusDays = 0) {
  const day = new Date(`${date}T00:00:00`);
  day.setDate(day.getDate() + plusDays);
  return encodeValue(day.toISOString());
}

/** The RQL filters of a state: an event, an object (its ID or part of its name), days. */
export function filtersOf(state) {
  const filters = [];
  if (state.event) filters.push(eqFilter("event", state.event));
  if (state.object) {
    filters.push(`or(${eqFilter("object.id", state.object)},${containsFilter("object.name", state.object)})`);
  }
  if (state.from) filters.push(`ge(timestamp,${dayStart(state.from)})`);
  if (state.to) filters.push(`lt(timestamp,${dayStart(state.to, 1)})`);
  return filters;
}

export class AuditView {
  constructor(ctx, params) {
    this.ctx = ctx;
    this.state = readState(params);
    this.eventTypes = null;
    this.build();
    this.loadEventTypes();
    this.update(params);
  }

  build() {
    const { ctx } = this;
    this.heading = h("h1", { tabindex: "-1", id: "audit-title" }, "Audit trail");

    this.event = selectField({ label: "Event", name: "event", extraClass: "field--event",
      options: [{ value: "", label: "All events" }] });
    this.event.select.addEventListener("change", () => this.change({
      event: this.event.select.value, page: 1 }));

    const objectId = nextId("object");
    this.object = h("input", { id: objectId, type: "search", name: "object",
      placeholder: "ID or name", autocomplete: "off", spellcheck: "false" });
    this.object.addEventListener("input", () => {
      clearTimeout(this.typing);
      this.typing = setTimeout(() => this.applyObject(), 350);
    });

    const fromId = nextId("from");
    const toId = nextId("to");
    this.from = h("input", { id: fromId, type: "date", name: "from" });
    this.to = h("input", { id: toId, type: "date", name: "to" });
    this.from.addEventListener("change", () => this.change({ from: validDate(this.from.value),
      page: 1 }));
    this.to.addEventListener("change", () => this.change({ to: validDate(this.to.value),
      page: 1 }));

    this.clearButton = h("button", { type: "button", class: "btn btn--link filters__clear" },
      "Clear filters");
    this.clearButton.addEventListener("click", () => this.clearFilters());

    const form = h("form", { role: "search", class: "filters",
      "aria-label": "Filter audit records" },
    this.event.wrap,
    h("div", { class: "field field--object" },
      h("label", { for: objectId }, "Object"), this.object),
    h("div", { class: "field field--day" }, h("label", { for: fromId }, "From"), this.from),
    h("div", { class: "field field--day" }, h("label", { for: toId }, "To"), this.to),
    this.clearButton);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyObject();
    });

    this.records = new RecordList(ctx, {
      emptyText: "There are no audit records yet.",
      filteredText: "No audit records match these filters.",
      onClearFilters: () => this.clearFilters(),
      onPage: (page, size) => this.change({ page, size }),
    });

    this.el = h("section", { class: "page page--audit", "aria-labelledby": "audit-title" },
      h("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h("ol", {}, h("li", {}, "Settings"), h("li", { "aria-current": "page" }, "Audit trail"))),
      h("div", { class: "page-head" },
        h("div", { class: "page-head__text" }, this.heading,
          h("p", {}, ctx.isOps
            ? "Who changed what, when, and from where: the records of every account, newest first, as the platform operator sees them."
            : `Who changed what, when, and from where in ${ctx.me.account.name}: its API tokens, the account, and what its integrations recorded, newest first.`))),
      h("div", { class: "card" }, form, this.records.el));
  }

  focusHeading() {
    this.heading.focus();
  }

  destroy() {
    clearTimeout(this.typing);
    this.records.destroy();
  }

  update(params) {
    document.title = "Audit trail · tokenhouse";
    this.state = readState(params);
    this.syncControls();
    this.load();
  }

  change(patch) {
    const state = { ...this.state, ...patch };
    // Typing replaces the entry; other changes make a history entry.
    this.ctx.navigate(stateHash(state), { replace: "object" in patch && Object.keys(patch).length <= 2 });
  }

  applyObject() {
    clearTimeout(this.typing);
    const object = this.object.value.trim();
    if (object !== this.state.object) this.change({ object, page: 1 });
  }

  clearFilters() {
    this.object.value = "";
    this.change({ event: "", object: "", from: "", to: "", page: 1 });
    this.event.select.focus();
  }

  syncControls() {
    const { state } = this;
    if (document.activeElement !== this.object) this.object.value = state.object;
    this.from.value = state.from;
    this.to.value = state.to;
    this.to.min = state.from;
    this.from.max = state.to;
    this.showEventOptions();
    this.clearButton.hidden = !(state.event || state.object || state.from || state.to);
  }

  /** The event choices: the catalog by name (and a chosen key it does not list). */
  showEventOptions() {
    const wanted = this.state.event;
    const types = this.eventTypes || [];
    const options = [{ value: "", label: "All events" },
      ...types.map((t) => ({ value: t.key, label: t.name === t.key ? t.key : `${t.name} (${t.key})` }))];
    if (wanted && !types.some((t) => t.key === wanted)) options.push({ value: wanted, label: wanted });
    this.event.setOptions(options, wanted);
  }

  async loadEventTypes() {
    const types = [];
    try {
      for (let page = 0; page < EVENT_TYPE_PAGES; page += 1) {
        const result = await this.ctx.api.audit("/event-types",
          `order=name&limit=100&offset=${page * 100}&select=-description`);
        types.push(...result.data);
        if (types.length >= result.$meta.pagination.total || !result.data.length) break;
      }
    } catch (error) {
      // Without the Audit module the records' own answer says so; other failures leave the
      // choice at "All events" and the key of the address bar.
      if (!lacksAudit(error)) this.event.setError("The events could not be loaded.");
      return;
    }
    this.eventTypes = types;
    this.showEventOptions();
  }

  async load() {
    const { state } = this;
    const shown = await this.records.load(filtersOf(state), state.page, state.size);
    if (shown && state.page > shown.pages && shown.total > 0 && this.state === state) {
      // Past the end (a stale bookmark): the last page instead.
      this.ctx.navigate(stateHash({ ...state, page: shown.pages }), { replace: true });
    }
  }
}
