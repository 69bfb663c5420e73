// The reading half of a proxy handshake, as a synchronous state machine: the
// protocol is a generator that yields what it waits for (exactly N bytes, or
// bytes through a separator within a limit) and is resumed with those bytes.
// Synchronous on purpose: the bytes after the handshake are handed back inside
// the same 'readable' event that brought them, before the stream can emit
// 'end', so none is lost and none is read twice.

/** What a step waits for: exactly `n` bytes, or the bytes up to and including `through`, which must end within `limit`. */
export type Need = number | { through: Buffer; limit: number; tooLarge: () => Error };

/** A protocol's handshake: yields Needs, is resumed with the bytes, returns its result. */
export type Steps<T> = Generator<Need, T, Buffer>;

const EMPTY = Buffer.alloc(0);

export class Exchange<T> {
  #buffered: Buffer = EMPTY;
  #need: Need = 0;
  /** How far the current separator search has looked, so a trickle is not searched again from the start. */
  #searched = 0;
  #result: { value: T; rest: Buffer } | undefined;

  constructor(private readonly steps: Steps<T>) {
    this.#advance(steps.next());
  }

  /** The protocol's result and the bytes that came after it, once done. */
  get result(): { value: T; rest: Buffer } | undefined {
    return this.#result;
  }

  /** Bytes received and not yet consumed by a step. */
  get pending(): number {
    return this.#buffered.length;
  }

  /** Takes bytes from the upstream; true once the handshake is done. Throws the protocol's errors. */
  feed(chunk: Buffer): boolean {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    while (this.#result === undefined) {
      const taken = this.#take(this.#need);
      if (taken === undefined) return false;
      this.#advance(this.steps.next(taken));
    }
    return true;
  }

  #advance(step: IteratorResult<Need, T>): void {
    if (step.done) {
      this.#result = { value: step.value, rest: this.#buffered };
      this.#buffered = EMPTY;
    } else {
      this.#need = step.value;
      this.#searched = 0;
    }
  }

  #take(need: Need): Buffer | undefined {
    if (typeof need === 'number') return this.#buffered.length >= need ? this.#split(need) : undefined;
    const from = Math.max(0, this.#searched - need.through.length + 1);
    const at = this.#buffered.subarray(0, need.limit).indexOf(need.through, from);
    if (at !== -1) return this.#split(at + need.through.length);
    if (this.#buffered.length >= need.limit) throw need.tooLarge();
    this.#searched = this.#buffered.length;
    return undefined;
  }

  #split(length: number): Buffer {
    const head = this.#buffered.subarray(0, length);
    this.#buffered = this.#buffered.subarray(length);
    return head;
  }
}
