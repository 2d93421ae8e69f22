// Building RQL filters (see the README's query-language table) from what a person typed.

/**
 * A quoted `ilike` pattern matching values that contain `text`: `*` and `\` in the text are
 * escaped (`\*`, `\\`) so they match themselves, and the value is wrapped in the quote the
 * text does not contain (RQL quotes have no escape). A text with both kinds of quote cannot be
 * quoted exactly: its double quotes become `*` (any run), a slightly wider match.
 */
export function containsPattern(text) {
  let escaped = text.replace(/\\/g, "\\\\").replace(/\*/g, "\\*");
  let quote = "'";
  if (escaped.includes("'")) {
    quote = '"';
    if (escaped.includes('"')) escaped = escaped.replace(/"/g, "*");
  }
  return `${quote}*${escaped}*${quote}`;
}

/** Percent-encode a value for the query string (the server decodes before parsing). */
export function encodeValue(value) {
  return encodeURIComponent(value);
}

/** `or(ilike(name,'*x*'),ilike(description,'*x*'))`, percent-encoded. */
export function searchFilter(text) {
  const pattern = encodeValue(containsPattern(text));
  return `or(ilike(name,${pattern}),ilike(description,${pattern}))`;
}

/** `ilike(path,'*x*')`, percent-encoded. */
export function containsFilter(path, text) {
  return `ilike(${path},${encodeValue(containsPattern(text))})`;
}

/** `eq(path,'value')`, percent-encoded (for IDs and enumerations: no quote inside). */
export function eqFilter(path, value) {
  const quote = String(value).includes("'") ? '"' : "'";
  return `eq(${path},${encodeValue(`${quote}${value}${quote}`)})`;
}
