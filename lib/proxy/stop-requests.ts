// What asks one proxy process to stop: a shutdown signal, or in a worker the
// primary's word (it got the signal), and then another that does not wait.
//
// A worker stops at once only on the primary's word: a terminal's Ctrl+C
// reaches every process of the group, and the worker can read the primary's
// SHUTDOWN before its own SIGINT, which is no second request.
//
// A worker hears the primary's words for its whole life, not only once its
// stop is under way: both words can come in one read of the IPC channel, and
// Node emits them one after the other before any code awaiting the first runs.
// A listener added only then would miss the second while another 'message'
// listener (--config's reload) took it.
import { FORCE_STOP, SHUTDOWN } from './workers';

interface WorkerMessage {
  type?: string;
  signal?: NodeJS.Signals;
}

export class StopRequests {
  /** The first request: the signal (in a worker, its own or the one the primary got, whichever came first). */
  readonly first: Promise<NodeJS.Signals>;
  /** Another after it: a second signal; in a worker, the primary's FORCE_STOP only. */
  readonly again: Promise<void>;
  readonly #signals: readonly NodeJS.Signals[];
  readonly #worker: boolean;
  #stopping = false;
  #resolveFirst: (signal: NodeJS.Signals) => void = () => {};
  #resolveAgain: () => void = () => {};

  /** Hears the primary's words at once when `worker`; signals once hearSignals() is called. */
  constructor(signals: readonly NodeJS.Signals[], { worker }: { worker: boolean }) {
    this.#signals = signals;
    this.#worker = worker;
    this.first = new Promise((resolve) => (this.#resolveFirst = resolve));
    this.again = new Promise((resolve) => (this.#resolveAgain = resolve));
    if (worker) process.on('message', this.#onMessage);
  }

  /** From here on a signal asks too (before, it ends the process as it would by default). Called once. */
  hearSignals(): void {
    for (const name of this.#signals) process.on(name, this.#onSignal);
  }

  /** Hears nothing more: the process leaves no listener behind. */
  close(): void {
    process.off('message', this.#onMessage);
    for (const name of this.#signals) process.off(name, this.#onSignal);
  }

  #begin(signal: NodeJS.Signals): void {
    this.#stopping = true;
    this.#resolveFirst(signal);
  }

  // In a worker only the primary says "at once": its own signal may be the same Ctrl+C as the primary's SHUTDOWN,
  // read after it. A second Ctrl+C reaches the primary too, which then says FORCE_STOP.
  #onSignal = (signal: NodeJS.Signals): void => {
    if (!this.#stopping) this.#begin(signal);
    else if (!this.#worker) this.#resolveAgain();
  };

  // The primary's SHUTDOWN after the worker's own signal (Ctrl+C reaches the whole process group) is the same request.
  #onMessage = (message: WorkerMessage): void => {
    if (message?.type === SHUTDOWN && !this.#stopping) this.#begin(message.signal ?? 'SIGTERM');
    if (message?.type !== FORCE_STOP) return;
    if (!this.#stopping) this.#begin('SIGTERM');
    this.#resolveAgain();
  };
}
