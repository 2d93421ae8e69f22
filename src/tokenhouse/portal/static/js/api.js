// The public API, as every other client uses it: Bearer secret, JSON, RFC 7807 problems.

export const API_ROOT = "/public/v1";
const BASE = `${API_ROOT}/accounts`;
const AUDIT_BASE = `${API_ROOT}/audit`;

const FIELD_LABELS = {
  name: "Name", description: "Description", modules: "Modules", account: "Account",
  icon: "Icon", revision: "Revision", query: "Search", status: "Status",
  expiresAt: "Expiry", ipAllowlist: "IP allowlist", gracePeriodSeconds: "Grace period",
};

/** An error of the API (or of the way to it), with a message a person can read. */
export class ApiError extends Error {
  constructor(status, problem, fallback) {
    const detail = problem && typeof problem.detail === "string" ? problem.detail : "";
    super(detail || fallback || describeStatus(status));
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || null;
    this.traceId = problem && problem.traceId ? problem.traceId : null;
    // [{field: "name", label: "Name", message: "..."}]
    this.fieldErrors = [];
    const errors = problem && problem.errors && typeof problem.errors === "object"
      ? problem.errors : {};
    for (const [field, messages] of Object.entries(errors)) {
      for (const message of [messages].flat()) {
        this.fieldErrors.push({ field, label: fieldLabel(field), message: String(message) });
      }
    }
  }

  /** Messages of the `errors` member that do not just repeat `detail`. */
  get extraMessages() {
    return this.fieldErrors
      .filter((e) => e.message !== this.message)
      .map((e) => (e.field === "query" ? e.message : `${e.label}: ${e.message}`));
  }

  fieldsNamed(...names) {
    return this.fieldErrors.some((e) => names.includes(e.field.split(/[.[]/)[0]));
  }
}

function fieldLabel(path) {
  const head = path.split(/[.[]/)[0];
  return FIELD_LABELS[head] || path;
}

function describeStatus(status) {
  switch (status) {
    case 0: return "The server could not be reached. Check the connection and try again.";
    case 401: return "The API token is not valid (any more).";
    case 403: return "Your API token is not allowed to do this.";
    case 404: return "Not found: it may have been deleted, or you cannot see it.";
    case 409: return "This conflicts with the current state of the token. Reload and try again.";
    default:
      return status >= 500
        ? `The server failed to answer (HTTP ${status}). Try again in a moment.`
        : `The request was refused (HTTP ${status}).`;
  }
}

/** The token ID inside a secret `idt:TKN-1234-5678:<random>` (as mpt-cli reads it). */
export function tokenIdOf(secret) {
  const parts = secret.split(":");
  if (parts.length < 3 || parts[0] !== "idt" || !/^TKN-\d{4}-\d{4}$/.test(parts[1]) || !parts[2]) {
    return null;
  }
  return parts[1];
}

/**
 * A client of the API for one secret. `onUnauthorized(error)` is called on any 401 (the
 * token was disabled, deleted or its account disabled while signed in).
 */
export function createClient(secret, { onUnauthorized } = {}) {
  async function request(method, path, { query = "", body, base = BASE } = {}) {
    const headers = { Authorization: `Bearer ${secret}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit",
      redirect: "error", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${base}${path}${query ? `?${query}` : ""}`, init);
    } catch {
      throw new ApiError(0, null);
    }
    const text = response.status === 204 ? "" : await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status,
        data && typeof data === "object" && !Array.isArray(data) ? data : null);
      if (response.status === 401 && onUnauthorized) onUnauthorized(error);
      throw error;
    }
    return data;
  }

  return {
    get: (path, query) => request("GET", path, { query }),
    post: (path, body) => request("POST", path, { body }),
    put: (path, body) => request("PUT", path, { body }),
    del: (path) => request("DELETE", path),
    /** A read of the Audit API (/public/v1/audit…): records and event types. */
    audit: (path, query) => request("GET", path, { query, base: AUDIT_BASE }),
  };
}
