// Choosing an account (Operations tokens): a <select> of the accounts by name. When there are
// more than one page of them, a "find" box narrows the choice on the server (ilike on name).

import { h, nextId } from "../dom.js";
import { containsFilter } from "../rql.js";
import { selectField } from "../forms.js";

const PAGE = 100;
const SELECT = "select=-*,+id,+name,+type,+status";

export function accountLabel(account) {
  return `${account.name} (${account.type})`;
}

/**
 * {wrap, select, ready, account(), setError, clearError}. `emptyLabel` is the first option
 * ("All accounts" for a filter, "Choose an account" for a required choice).
 */
export function accountPicker(ctx, { label = "Account", emptyLabel, value = "", hint = null,
  required = false, extraClass = null, onError = () => {} }) {
  const field = selectField({ label, name: "account", required, hint, extraClass,
    options: [{ value: "", label: "Loading accounts…" }] });
  const { select } = field;
  select.disabled = true;
  const known = new Map();
  let wanted = value;

  const finderId = nextId("find-account");
  const finder = h("input", { id: finderId, type: "search", autocomplete: "off",
    placeholder: "Type to narrow the list", "aria-controls": select.id });
  const finderWrap = h("div", { class: "account-finder", hidden: true },
    h("label", { for: finderId, class: "visually-hidden" }, `Find an account (${label})`), finder);
  field.wrap.insertBefore(finderWrap, select);

  const show = (items) => {
    for (const account of items) known.set(account.id, account);
    const current = select.value || wanted;
    const options = [{ value: "", label: emptyLabel },
      ...items.map((a) => ({ value: a.id, label: accountLabel(a) }))];
    if (current && !items.some((a) => a.id === current) && known.has(current)) {
      options.push({ value: current, label: accountLabel(known.get(current)) });
    }
    field.setOptions(options, current);
  };

  async function ensureWanted() {
    // A chosen account beyond the first page (a bookmark): name it if it can be read.
    if (!wanted || known.has(wanted)) return;
    try {
      known.set(wanted, await ctx.api.get(`/accounts/${wanted}`, SELECT));
    } catch {
      known.set(wanted, { id: wanted, name: wanted, type: "unknown account" });
    }
  }

  let typing = null;
  let seq = 0;
  finder.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(async () => {
      const mine = ++seq;
      const text = finder.value.trim();
      try {
        const page = text
          ? await ctx.api.get("/accounts", `order=name&limit=${PAGE}&${SELECT}&${containsFilter("name", text)}`)
          : await ctx.api.get("/accounts", `order=name&limit=${PAGE}&${SELECT}`);
        if (mine === seq) show(page.data);
      } catch (error) {
        onError(error);
      }
    }, 300);
  });

  const ready = (async () => {
    try {
      const { items, total } = await ctx.accounts();
      await ensureWanted();
      show(items);
      if (total > items.length) {
        finderWrap.hidden = false;
        field.wrap.append(h("p", { class: "hint" },
          `${total} accounts: the first ${items.length} by name are listed; type to find others.`));
      }
      select.disabled = false;
    } catch (error) {
      field.setOptions([{ value: "", label: emptyLabel }]);
      select.disabled = false;
      onError(error);
    }
  })();

  return {
    ...field,
    ready,
    account: () => known.get(select.value) || null,
    async setValue(id) {
      wanted = id;
      await ready;
      await ensureWanted();
      if (id && ![...select.options].some((o) => o.value === id)) {
        select.append(h("option", { value: id }, accountLabel(known.get(id))));
      }
      select.value = id;
    },
  };
}
