// Settings > API tokens: sign-in, hash routing and the shared context of the views.
//
// Routes (the address bar keeps the state, so a view can be bookmarked and reloaded):
//   #/tokens?q=…&status=…&account=…&order=…&page=…&size=…   the list
//   #/tokens/TKN-1234-5678?tab=general|modules|details|audit one token
//   #/audit?event=…&object=…&from=…&to=…&page=…&size=…       Settings > Audit trail
// The secret lives in sessionStorage only (this tab), never in a cookie or the URL.

import { createClient, tokenIdOf, ApiError } from "./api.js";
import { clear, exactTime, relativeTime } from "./dom.js";
import { SOON } from "./lifecycle.js";
import { announce, clearFlash, expireFlash } from "./ui.js";
import { renderSignIn } from "./views/signin.js";
import { ListView } from "./views/list.js";
import { DetailsView } from "./views/details.js";
import { AuditView, AUDIT_HASH } from "./views/audit.js";

const STORAGE_KEY = "tokenhouse.portal.secret";
const LIST_HASH = "#/tokens";

const view = document.getElementById("view");
const sessionBox = document.getElementById("session");
const settingsNav = document.getElementById("settings-nav");

let session = null; // {api, me, isOps}
let current = null; // {key, view}
let lastRouted = null;

// -- the context the views share -------------------------------------------------------

const ctx = {
  get api() { return session.api; },
  get me() { return session.me; },
  get isOps() { return session.isOps; },
  listHash: LIST_HASH,

  navigate(hash, { replace = false } = {}) {
    if (hash !== location.hash) {
      if (replace) history.replaceState(history.state, "", hash);
      else history.pushState(null, "", hash);
    }
    route();
  },

  /** The modules the signed-in token may give a token of an `accountType` account (the ones
   * it holds itself that this account type may use), plus `keep` (a token's own). */
  grantableModules(accountType, keep = []) {
    const byId = new Map();
    for (const module of session.me.modules || []) {
      if ((module.accountTypes || []).includes(accountType)) byId.set(module.id, module);
    }
    for (const module of keep) if (!byId.has(module.id)) byId.set(module.id, module);
    return [...byId.values()].sort((a, b) => a.name.localeCompare(b.name));
  },

  /** Accounts to choose from (Operations): the first 100 by name, loaded once. */
  accounts() {
    if (!session.accounts) {
      session.accounts = session.api
        .get("/accounts", "order=name&limit=100&select=-*,+id,+name,+type,+status")
        .then((page) => ({ items: page.data, total: page.$meta.pagination.total }))
        .catch((error) => {
          session.accounts = null;
          throw error;
        });
    }
    return session.accounts;
  },

  /** Re-read the signed-in token (after it was changed here). */
  async refreshMe() {
    const me = await session.api.get(`/api-tokens/${session.me.id}`);
    delete me.token;
    session.me = me;
    showSession();
  },

  /** Go on with `secret` (the signed-in token was rotated here: its old secret may stop). */
  replaceSecret(secret) {
    session.api = createClient(secret, { onUnauthorized: sessionEnded });
    sessionStorage.setItem(STORAGE_KEY, secret);
  },

  signOut,
};

// -- session ---------------------------------------------------------------------------

async function establish(secret) {
  const id = tokenIdOf(secret);
  if (!id) {
    throw new Error("This is not an API token. A token looks like "
      + "idt:TKN-1234-5678:… — paste the whole value.");
  }
  const api = createClient(secret, { onUnauthorized: sessionEnded });
  const me = await createClient(secret).get(`/api-tokens/${id}`);
  delete me.token; // the page never shows (or keeps) the secret it got back
  session = { api, me, isOps: me.account && me.account.type === "Operations", accounts: null };
  return session;
}

function showSession() {
  document.getElementById("session-account").textContent = session.me.account.name;
  document.getElementById("session-type").textContent = session.me.account.type;
  // The signed-in token expiring soon: said in the top bar, on every page.
  const expiry = document.getElementById("session-expiry");
  const expiresAt = session.me.expiresAt;
  const left = expiresAt ? new Date(expiresAt).getTime() - Date.now() : Infinity;
  expiry.hidden = !(left > 0 && left <= SOON);
  expiry.textContent = expiry.hidden ? "" : `Your token expires ${relativeTime(expiresAt)}`;
  expiry.title = expiry.hidden ? "" : exactTime(expiresAt);
  sessionBox.hidden = false;
}

function sessionEnded(error) {
  if (!session) return;
  signOut({ message: "Your session has ended: the API token no longer signs in.", error });
}

function signOut({ message = null, error = null, kind = "info" } = {}) {
  sessionStorage.removeItem(STORAGE_KEY);
  session = null;
  if (current && current.view.destroy) current.view.destroy();
  current = null;
  lastRouted = null;
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  sessionBox.hidden = true;
  settingsNav.hidden = true;
  clearFlash();
  showSignIn({ message, error, kind });
}

function showSignIn({ message = null, error = null, kind = "info" } = {}) {
  current = null;
  document.title = "Sign in · API tokens · tokenhouse";
  renderSignIn(clear(view), {
    message, error, kind,
    async onSubmit(secret) {
      await establish(secret);
      sessionStorage.setItem(STORAGE_KEY, secret);
      showSession();
      lastRouted = null;
      route({ focus: true });
      announce(`Signed in to ${session.me.account.name}.`);
    },
  });
}

// -- routing ---------------------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#/, "");
  const at = raw.indexOf("?");
  const path = at < 0 ? raw : raw.slice(0, at);
  const params = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
  return { path: path || "/tokens", params };
}

function route({ focus = false } = {}) {
  if (!session) return;
  if (location.hash === lastRouted && current) return;
  lastRouted = location.hash;
  expireFlash();
  const { path, params } = parseHash();
  const match = path.match(/^\/tokens\/(TKN-\d{4}-\d{4})$/);
  // The Settings pages' own navigation, on the pages of the sections (a token's page has its
  // breadcrumb back to the list, and its own Audit trail tab).
  settingsNav.hidden = Boolean(match);
  if (match) {
    const key = `details:${match[1]}`;
    if (current && current.key === key) {
      current.view.update(params);
    } else {
      mount(key, new DetailsView(ctx, match[1], params), focus || current !== null);
    }
    return;
  }
  if (path === "/audit") {
    showSection("audit");
    if (current && current.key === "audit") {
      current.view.update(params);
    } else {
      mount("audit", new AuditView(ctx, params), focus || current !== null);
    }
    return;
  }
  if (path !== "/tokens") {
    history.replaceState(history.state, "", LIST_HASH);
    lastRouted = LIST_HASH;
  }
  ctx.listHash = location.hash || LIST_HASH;
  showSection("tokens");
  if (current && current.key === "list") {
    current.view.update(params);
  } else {
    mount("list", new ListView(ctx, params), focus || current !== null);
  }
}

/** Mark the section shown in the Settings navigation; its tokens link keeps the list's state. */
function showSection(key) {
  const tokens = document.getElementById("nav-tokens");
  const audit = document.getElementById("nav-audit");
  tokens.href = ctx.listHash;
  audit.href = AUDIT_HASH;
  for (const [link, own] of [[tokens, "tokens"], [audit, "audit"]]) {
    if (own === key) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function mount(key, instance, focus) {
  if (current && current.view.destroy) current.view.destroy();
  current = { key, view: instance };
  clear(view).append(instance.el);
  // Moving between pages puts the focus on the new page's heading.
  if (focus && instance.focusHeading) instance.focusHeading();
}

// -- start -----------------------------------------------------------------------------

document.getElementById("sign-out").addEventListener("click", () => {
  signOut({ message: "You have signed out.", kind: "success" });
  history.replaceState(null, "", LIST_HASH);
});

document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  const heading = view.querySelector("h1");
  (heading || document.getElementById("main")).focus();
});

window.addEventListener("hashchange", () => route({ focus: true }));
window.addEventListener("popstate", () => route({ focus: true }));

async function start() {
  const secret = sessionStorage.getItem(STORAGE_KEY);
  if (!secret) {
    showSignIn();
    return;
  }
  try {
    await establish(secret);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) {
      sessionStorage.removeItem(STORAGE_KEY);
      showSignIn({ message: "Please sign in again.", error, kind: "error" });
    } else {
      showSignIn({ message: "Could not restore your session. Reload the page to try again, "
        + "or sign in.", error, kind: "error" });
    }
    return;
  }
  showSession();
  route();
}

start();
