// A cursor over untrusted bytes that cannot read past its end: every read
// checks first, and a short or inconsistent input stops the parse with
// Malformed (or Short), which the parser's entry turns into a typed result.
// Only these two are caught there, so a bug (a TypeError) still surfaces.

/** The input contradicts itself (a length past its container, a bad value). */
export class Malformed {
  constructor(readonly reason: string) {}
}

/** The input ends early: a prefix that more bytes could complete. */
export class Short {}

export class Reader {
  private pos: number;

  /** Reads `bytes[start, end)`; `onShort` decides whether running out is Short or Malformed. */
  constructor(
    private readonly bytes: Uint8Array,
    start = 0,
    private readonly end = bytes.length,
    private readonly onShort: 'short' | 'malformed' = 'malformed',
  ) {
    this.pos = start;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (n > this.end - this.pos) throw this.onShort === 'short' ? new Short() : new Malformed('truncated');
  }

  u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const value = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += 2;
    return value;
  }

  u24(): number {
    this.need(3);
    const value = (this.bytes[this.pos]! << 16) | (this.bytes[this.pos + 1]! << 8) | this.bytes[this.pos + 2]!;
    this.pos += 3;
    return value;
  }

  u32(): number {
    return this.u16() * 0x10000 + this.u16();
  }

  /** A QUIC variable-length integer (RFC 9000 16); values past 2^53 cannot be lengths here, so they are Malformed. */
  varint(): number {
    const first = this.u8();
    const size = 1 << (first >> 6);
    this.need(size - 1);
    let value = first & 0x3f;
    for (let i = 1; i < size; i++) value = value * 256 + this.bytes[this.pos++]!;
    if (!Number.isSafeInteger(value)) throw new Malformed('varint-too-large');
    return value;
  }

  /** The next `n` bytes, as a view (no copy). */
  take(n: number): Uint8Array {
    this.need(n);
    const view = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return view;
  }

  /** A reader over the next `n` bytes, which this one skips: for a length-prefixed structure. */
  sub(n: number): Reader {
    this.need(n);
    const inner = new Reader(this.bytes, this.pos, this.pos + n, 'malformed');
    this.pos += n;
    return inner;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }
}

/** Throws TypeError unless `value` is bytes: the one caller mistake the parsers refuse. */
export function requireBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Buffer or Uint8Array`);
}
