// Proxy processes for the tests: bin/wfp-redirect-proxy (or another script)
// started as its own process, an echo server, and clients that check every byte.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';

export const root = join(__dirname, '..');
export const CLI = join(root, 'bin', 'wfp-redirect-proxy');

/** A server that sends back whatever it receives, and ends when its client ends. */
export async function echoServer(): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

export interface Running {
  child: ChildProcess;
  port: number;
  stdout: string[];
  stderr: string[];
}

/**
 * `args` with `--relay ENGINE` added when the CLI is started and
 * WFP_REDIRECT_TEST_RELAY=ENGINE is set: the same specs run against that relay
 * (the default run uses the CLI's default, auto: native on Linux, streams in
 * node.exe; `WFP_REDIRECT_TEST_RELAY=streams` runs them on streams on Linux).
 */
function withRelay(args: string[]): string[] {
  const engine = process.env.WFP_REDIRECT_TEST_RELAY;
  if (!engine || args[0] !== CLI || args.includes('--relay')) return args;
  return [...args, '--relay', engine];
}

/** Starts a proxy process (node with `args`, or `command`; `detached`: in a process group of its own) and waits for the line that gives its port. */
export async function start(
  args: string[],
  portLine: RegExp,
  options: { ipc?: boolean; command?: string; env?: NodeJS.ProcessEnv; detached?: boolean } = {},
): Promise<Running> {
  const stdio: StdioOptions = options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'];
  const child = spawn(options.command ?? process.execPath, withRelay(args), { cwd: root, stdio, env: options.env ?? process.env, detached: options.detached });
  const running: Running = { child, port: 0, stdout: [], stderr: [] };
  const collect = (into: string[]) => (chunk: Buffer) => into.push(...String(chunk).split('\n').filter(Boolean));
  child.stdout!.on('data', collect(running.stdout));
  child.stderr!.on('data', collect(running.stderr));
  running.port = await new Promise<number>((resolve, reject) => {
    const look = () => {
      const match = [...running.stdout, ...running.stderr].map((line) => portLine.exec(line)).find(Boolean);
      if (match) resolve(Number(match[1]));
    };
    child.stdout!.on('data', look);
    child.stderr!.on('data', look);
    child.once('exit', (code) => reject(new Error(`exited with ${code} before listening: ${running.stderr.join('\n')}`)));
  });
  return running;
}

let nextQuestion = 0;

/** Asks a proxy started with `ipc` (and a --require'd script that answers) over its IPC channel; resolves to the answer. */
export function askProxy<T>(proxy: Running, message: object): Promise<T> {
  const id = ++nextQuestion;
  return new Promise((resolve, reject) => {
    const onExit = () => reject(new Error(`the proxy exited before answering: ${proxy.stderr.join('\n')}`));
    const onMessage = (answer: { id: number } & T) => {
      if (answer.id !== id) return;
      proxy.child.off('message', onMessage).off('exit', onExit);
      resolve(answer);
    };
    proxy.child.on('message', onMessage).once('exit', onExit);
    proxy.child.send({ id, ...message }, (error) => error && reject(error));
  });
}

/** SIGTERM, and SIGKILL if the process has not exited 20 s later (a test must end even when the proxy does not). */
export async function stop(running: Running): Promise<void> {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return;
  const exited = once(running.child, 'exit');
  running.child.kill();
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

export function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  return once(socket, 'connect').then(() => socket);
}

/** Sends `megabytes` through the proxy to the echo server and checks every byte comes back. */
export async function roundTrip(port: number, megabytes: number): Promise<void> {
  const client = await connect(port);
  const bytes = megabytes * 1024 * 1024;
  const echo = new EchoCheck(client);
  await Promise.all([echo.send(bytes), echo.received]);
  if (echo.count !== bytes || !echo.intact) throw new Error(`${echo.count} of ${bytes} bytes came back, intact: ${echo.intact}`);
}

/** Sends a known stream and checks that what returns equals it, byte for byte. */
export class EchoCheck {
  count = 0;
  intact = true;
  private sentSoFar: Buffer[] = [];
  readonly received: Promise<void>;

  constructor(private readonly socket: net.Socket) {
    let pending = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      while (this.sentSoFar.length && pending.length >= this.sentSoFar[0].length) {
        const expected = this.sentSoFar.shift()!;
        if (!pending.subarray(0, expected.length).equals(expected)) this.intact = false;
        this.count += expected.length;
        pending = pending.subarray(expected.length);
      }
    });
    this.received = once(socket, 'end').then(() => undefined);
  }

  async send(bytes: number): Promise<void> {
    const piece = 256 * 1024;
    for (let sent = 0, n = 0; sent < bytes; sent += piece, n++) {
      const chunk = Buffer.alloc(Math.min(piece, bytes - sent), n & 0xff);
      chunk.writeUInt32LE(n, 0);
      this.sentSoFar.push(chunk);
      if (!this.socket.write(chunk)) await once(this.socket, 'drain');
    }
    // End only once everything has come back: Wine's Winsock can drop data
    // still in flight at a shutdown (plain net.connect too), and each hop of
    // the proxy would pass such an early end on.
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.count < bytes && this.socket.readable) return;
        this.socket.off('data', check).off('end', check).off('close', check);
        resolve();
      };
      this.socket.on('data', check).on('end', check).on('close', check);
      check();
    });
    this.socket.end();
  }
}
