// IP addresses and CIDR blocks as the rule matcher compares them: an address
// as four 32-bit words (IPv4 in the last word, with its own family), parsed
// once per connection, and a block as words and a prefix, so that a match is
// a few integer comparisons and allocates nothing. An IPv4-mapped IPv6
// address (::ffff:a.b.c.d, what a dual-stack socket reports) is its IPv4
// address, and a block written inside ::ffff:0:0/96 is the IPv4 block.
import net from 'node:net';

export interface ParsedAddress {
  family: 4 | 6;
  /** Big-endian 32-bit words; IPv4 uses words[3] alone. */
  words: Uint32Array;
}

export interface Cidr {
  family: 4 | 6;
  words: Uint32Array;
  prefix: number;
}

function ipv4Word(text: string): number {
  const parts = text.split('.');
  return (((Number(parts[0]) << 24) | (Number(parts[1]) << 16) | (Number(parts[2]) << 8) | Number(parts[3])) >>> 0);
}

/** The eight 16-bit groups of a valid IPv6 address (net.isIPv6 checked), an embedded IPv4 tail included. */
function ipv6Groups(text: string): number[] {
  const scope = text.indexOf('%');
  const plain = scope === -1 ? text : text.slice(0, scope);
  const [head, tail] = plain.includes('::') ? plain.split('::') : [plain, undefined];
  const expand = (part: string): number[] => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const word = ipv4Word(piece);
        groups.push(word >>> 16, word & 0xffff);
      } else groups.push(parseInt(piece, 16));
    }
    return groups;
  };
  const first = expand(head);
  if (tail === undefined) return first;
  const last = expand(tail);
  return [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
}

/** An IP address (v4, v6, v4-mapped v6 as v4), or undefined for anything else (a host name). */
export function parseAddress(text: string): ParsedAddress | undefined {
  const family = net.isIP(text);
  if (family === 4) return { family: 4, words: Uint32Array.of(0, 0, 0, ipv4Word(text)) };
  if (family !== 6) return undefined;
  const groups = ipv6Groups(text);
  const words = Uint32Array.of(((groups[0] << 16) | groups[1]) >>> 0, ((groups[2] << 16) | groups[3]) >>> 0, ((groups[4] << 16) | groups[5]) >>> 0, ((groups[6] << 16) | groups[7]) >>> 0);
  if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { family: 4, words: Uint32Array.of(0, 0, 0, words[3]) };
  return { family: 6, words };
}

/** "a.b.c.d/n", "x::y/n" or a bare address (a /32 or /128); a reason string when it is none of these. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const family = net.isIP(addressText);
  if (family === 0 || addressText.includes('%')) return `"${addressText}" is not an IP address`;
  const most = family === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(most) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > most) return `the prefix "${prefixText}" is not a whole number from 0 to ${most}`;
  let prefix = Number(prefixText);
  const address = parseAddress(addressText)!;
  if (family === 6 && address.family === 4) {
    // Inside ::ffff:0:0/96: the IPv4 block it spells; a shorter prefix also covers IPv6 addresses, which a v4 block cannot say.
    if (prefix < 96) return `an IPv4-mapped block needs a prefix of at least 96 (it is the IPv4 block of prefix - 96); write ::/${prefix} for more`;
    prefix -= 96;
  }
  const words = address.words;
  const offset = address.family === 4 ? 96 : 0;
  for (let bit = 0; bit < 128; bit += 32) {
    const index = bit / 32;
    const keep = Math.max(0, Math.min(32, prefix + offset - bit));
    const mask = keep === 0 ? 0 : keep === 32 ? 0xffffffff : (0xffffffff << (32 - keep)) >>> 0;
    if (address.family === 4 && index < 3) continue;
    if ((words[index] & ~mask) >>> 0 !== 0) return `host bits are set past the prefix /${slash === -1 ? most : prefixText}: write the block's first address`;
  }
  return { family: address.family, words, prefix };
}

/** Whether `address` lies in `cidr` (same family only: IPv4-mapped addresses were made IPv4 when parsed). */
export function inCidr(address: ParsedAddress, cidr: Cidr): boolean {
  if (address.family !== cidr.family) return false;
  let remaining = cidr.prefix;
  for (let index = cidr.family === 4 ? 3 : 0; index < 4 && remaining > 0; index++, remaining -= 32) {
    const keep = remaining >= 32 ? 32 : remaining;
    const mask = keep === 32 ? 0xffffffff : (0xffffffff << (32 - keep)) >>> 0;
    if (((address.words[index] ^ cidr.words[index]) & mask) >>> 0 !== 0) return false;
  }
  return true;
}
