// What counts as a server name: a DNS host name in ASCII (IDNs arrive as
// A-labels, "xn--"), lowercased. Underscores are let through because real
// names carry them (service records, some CDNs) even though RFC 1123 does not.

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const ASCII_PRINTABLE = /^[\x21-\x7e]*$/;
const ALL_DIGITS = /^[0-9]+$/;

export type NameCheck = { ok: true; name: string } | { ok: false; reason: 'bad-name' | 'ip-literal' };

/**
 * The lowercased host name in `raw`, or why it is not one. A dotted-quad (or
 * any name whose last label is all digits, which RFC 1123 rules out for a
 * top-level label) is an IP literal, which SNI must not carry (RFC 6066 3).
 * `trailingDot` allows one final "." (an absolute name: HTTP allows it, SNI does not).
 */
export function checkHostName(raw: string, trailingDot: boolean): NameCheck {
  // ASCII first: toLowerCase maps some non-ASCII letters to ASCII ones.
  if (!ASCII_PRINTABLE.test(raw)) return { ok: false, reason: 'bad-name' };
  let name = raw.toLowerCase();
  if (trailingDot && name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return { ok: false, reason: 'bad-name' };
  const labels = name.split('.');
  if (!labels.every((label) => LABEL.test(label))) return { ok: false, reason: 'bad-name' };
  if (ALL_DIGITS.test(labels[labels.length - 1]!)) return { ok: false, reason: 'ip-literal' };
  return { ok: true, name };
}
