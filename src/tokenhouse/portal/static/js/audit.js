// The audit trail's records as the page shows them (Settings > Audit trail, and a token's
// Audit trail tab): a paged list read from the Audit API, newest first, each record with its
// rendered details and, on demand, its JSON.
//
// Records hold text that integrations wrote (summary, details, object names, payloads): like
// everything else it reaches the page as text nodes only (dom.js), never as markup.

import { ApiError } from "./api.js";
import { h, clear, exactTime, relativeTime, nextId } from "./dom.js";
import { announce, messageBox } from "./ui.js";
import { selectField } from "./forms.js";

export const DEFAULT_SIZE = 10;
export const SIZES = [10, 25, 50, 100];

export const LACKS_AUDIT = "This API token lacks the Audit module, so it cannot read the "
  + "audit trail. Sign in with a token that has the Audit module to see it.";

/** The API's 403: the signed-in token does not hold the Audit module. */
export function lacksAudit(error) {
  return error instanceof ApiError && error.status === 403;
}

function lacksAuditNote() {
  return messageBox("warning", LACKS_AUDIT, { title: "No access to the audit trail" });
}

/** The query of one page: the filters, render() for readable details, newest first. */
export function recordsQuery(filters, page, size) {
  return [...filters, "render()", "order=-timestamp", `limit=${size}`,
    `offset=${(page - 1) * size}`].join("&");
}

/**
 * A paged list of records. `onPage(page, size)` is called by its pager; `load(filters, page,
 * size)` shows that page (the latest call wins) and resolves to {total, pages} or null when
 * it could not be read.
 */
export class RecordList {
  constructor(ctx, { showObject = true, sizes = true, onPage, emptyText, filteredText = null,
    onClearFilters = null }) {
    this.ctx = ctx;
    this.seq = 0;
    this.showObject = showObject;
    this.emptyText = emptyText;
    this.filteredText = filteredText;
    this.onClearFilters = onClearFilters;
    this.page = 1;
    this.size = DEFAULT_SIZE;
    this.errorArea = h("div", { class: "list-error" });
    this.list = h("ol", { class: "audit-list", "aria-label": "Audit records" });
    this.state = h("div", { class: "table-state" }, h("p", {}, "Loading the audit trail…"));

    this.rangeText = h("p", { class: "muted small" });
    this.prev = h("button", { type: "button", class: "btn btn--small" }, "‹ Previous");
    this.next = h("button", { type: "button", class: "btn btn--small" }, "Next ›");
    this.pageText = h("span", { class: "small" });
    this.prev.addEventListener("click", () => onPage(this.page - 1, this.size));
    this.next.addEventListener("click", () => onPage(this.page + 1, this.size));
    if (sizes) {
      this.sizeField = selectField({ label: "Records per page", name: "size",
        options: SIZES.map((s) => ({ value: String(s), label: String(s) })) });
      this.sizeField.select.addEventListener("change", () => onPage(1,
        Number(this.sizeField.select.value)));
      this.sizeField.wrap.className = "page-size";
    }
    this.foot = h("div", { class: "list-foot" }, this.rangeText,
      h("nav", { class: "pager", "aria-label": "Pages of records" },
        this.sizeField ? this.sizeField.wrap : null, this.prev, this.pageText, this.next));
    this.el = h("div", { class: "audit-trail" }, this.errorArea, this.state, this.list,
      this.foot);
  }

  destroy() {
    this.seq += 1;
  }

  async load(filters, page, size) {
    const seq = ++this.seq;
    this.page = page;
    this.size = size;
    if (this.sizeField) this.sizeField.select.value = String(size);
    this.list.setAttribute("aria-busy", "true");
    let result;
    try {
      result = await this.ctx.api.audit("/records", recordsQuery(filters, page, size));
    } catch (error) {
      if (seq !== this.seq) return null;
      this.list.removeAttribute("aria-busy");
      clear(this.list);
      this.foot.hidden = true;
      this.state.hidden = true;
      if (lacksAudit(error)) {
        clear(this.errorArea).append(lacksAuditNote());
      } else {
        const retry = h("button", { type: "button", class: "btn btn--small" }, "Try again");
        retry.addEventListener("click", () => this.load(filters, page, size));
        clear(this.errorArea).append(messageBox("error", "The audit trail could not be loaded.",
          { error, actions: [retry] }));
      }
      return null;
    }
    if (seq !== this.seq) return null;
    clear(this.errorArea);
    this.list.removeAttribute("aria-busy");
    const { total } = result.$meta.pagination;
    const pages = Math.max(1, Math.ceil(total / size));
    this.render(result.data, filters.length > 0);
    this.renderPaging(total);
    return { total, pages };
  }

  render(records, filtered) {
    clear(this.list);
    this.state.hidden = records.length > 0;
    if (!records.length) {
      const reset = filtered && this.onClearFilters
        ? h("button", { type: "button", class: "btn btn--small",
          onclick: this.onClearFilters }, "Clear filters") : null;
      clear(this.state).append(h("p", {}, filtered && this.filteredText
        ? this.filteredText : this.emptyText), reset);
    }
    for (const record of records) this.list.append(recordItem(record, this.showObject));
  }

  renderPaging(total) {
    const { page, size } = this;
    const pages = Math.max(1, Math.ceil(total / size));
    const first = total ? (page - 1) * size + 1 : 0;
    const last = Math.min(total, page * size);
    this.foot.hidden = false;
    this.rangeText.textContent = total
      ? `Showing ${first}–${last} of ${total} record${total === 1 ? "" : "s"}`
      : "No records";
    this.pageText.textContent = `Page ${Math.min(page, pages)} of ${pages}`;
    const focused = document.activeElement;
    this.prev.disabled = page <= 1;
    this.next.disabled = page >= pages;
    // A pager button that just became disabled hands the focus to its sibling.
    if (focused === this.next && this.next.disabled && !this.prev.disabled) this.prev.focus();
    if (focused === this.prev && this.prev.disabled && !this.next.disabled) this.next.focus();
    announce(`${total} record${total === 1 ? "" : "s"}.`
      + (total > size ? ` Page ${page} of ${pages}.` : ""));
  }
}

/** One record: time, event, summary, rendered details, actor (and object); its JSON on
 * demand (a <details>: expandable by keyboard and screen readers without script). */
export function recordItem(record, showObject = true) {
  const headId = nextId("record");
  const meta = h("dl", { class: "audit-record__meta" },
    h("div", {}, h("dt", {}, "By"), h("dd", {}, actorView(record.actor))));
  if (showObject && record.object) {
    meta.append(h("div", {}, h("dt", {}, "Object"), h("dd", {}, objectView(record.object))));
  }
  const request = record.request && record.request.api;
  if (request && request.ip) {
    meta.append(h("div", {}, h("dt", {}, "From"), h("dd", {}, h("code", {}, request.ip))));
  }
  return h("li", { class: "audit-record", "aria-labelledby": headId,
    dataset: { id: record.id, event: record.event } },
  h("div", { class: "audit-record__head" },
    h("p", { class: "audit-record__summary", id: headId }, record.summary),
    h("time", { class: "audit-record__time", datetime: record.timestamp,
      title: relativeTime(record.timestamp) }, exactTime(record.timestamp))),
  h("p", { class: "audit-record__event" }, h("code", {}, record.event),
    record.type === "Private" ? [" ", h("span", { class: "badge badge--neutral",
      title: "Seen by Operations only" }, "Private")] : null),
  record.details ? h("p", { class: "audit-record__details pre-line" }, record.details) : null,
  changesView(record.documents && record.documents.changes),
  meta,
  h("details", { class: "audit-record__json" },
    h("summary", {}, "Show JSON"),
    h("pre", { class: "json", tabindex: "0", "aria-label": `JSON of ${record.id}` },
      JSON.stringify(record, null, 2))));
}

/** An update's changes, one line a field: `name: "old" → "new"` (values as JSON text). */
function changesView(changes) {
  if (!changes || typeof changes !== "object" || Array.isArray(changes)) return null;
  const fields = Object.entries(changes).filter(([, change]) => change
    && typeof change === "object" && ("from" in change || "to" in change));
  if (!fields.length) return null;
  return h("ul", { class: "audit-changes", "aria-label": "Changes" },
    fields.map(([field, change]) => h("li", {}, `${field}: `,
      h("code", {}, shortJson(change.from)), " → ", h("code", {}, shortJson(change.to)))));
}

function shortJson(value) {
  const text = value === undefined ? "null" : JSON.stringify(value);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

function actorView(actor) {
  if (!actor) return h("span", { class: "muted" }, "—");
  const account = actor.account;
  return [h("span", { class: "audit-actor" }, actor.name || actor.id),
    actor.id && actor.name ? h("span", { class: "muted small" }, ` · ${actor.id}`) : null,
    account && account.name ? h("span", { class: "muted small" }, ` · ${account.name}`) : null];
}

function objectView(object) {
  const label = object.name || object.id;
  const named = object.objectType === "ApiToken" && /^TKN-\d{4}-\d{4}$/.test(object.id)
    ? h("a", { href: `#/tokens/${object.id}` }, label)
    : h("span", {}, label);
  return [named, h("span", { class: "muted small" },
    ` · ${object.objectType || "Object"}${object.name ? ` · ${object.id}` : ""}`)];
}
