// What slowloris-style holding costs the proxy CLI with its defaults: N
// clients (default 1,024, the default --max-connections) each connect through
// `wfp-redirect-proxy --upstream` to a server that keeps every connection,
// and send one byte now and then, well inside the 300 s idle timeout. Then:
// the proxy's RSS and descriptors, and what a new client gets. Part of
// `npm run bench` (after the relay); `--quick` holds 64 connections.
//
//   node dist-bench/hold.js [--quick] [--connections N]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

const CLI = join(__dirname, '..', 'bin', 'wfp-redirect-proxy');
const argument = (name: string) => process.argv[process.argv.indexOf(name) + 1];
const COUNT = process.argv.includes('--connections') ? Number(argument('--connections')) : process.argv.includes('--quick') ? 64 : 1024;

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

async function main(): Promise<void> {
  if (process.platform !== 'linux') {
    console.log('hold: needs Linux (/proc) to read the proxy\'s memory and descriptors; NOT run');
    return;
  }
  const held = new Set<net.Socket>();
  const server = net.createServer((socket) => held.add(socket.on('error', () => {})));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${(server.address() as net.AddressInfo).port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proxy.stderr!.on('data', (chunk) => (stderr += chunk));
  while (!/listening on [^:]+:(\d+)/.test(stderr)) await new Promise((resolve) => setTimeout(resolve, 20));
  const port = Number(/listening on [^:]+:(\d+)/.exec(stderr)![1]);
  const pid = proxy.pid!;
  const idle = { rss: rssMb(pid), fds: fds(pid) };

  const clients: net.Socket[] = [];
  for (let i = 0; i < COUNT; i++) {
    const client = net.connect(port, '127.0.0.1').on('error', () => {});
    await once(client, 'connect');
    client.write('x');
    clients.push(client);
  }
  while (held.size < COUNT) await new Promise((resolve) => setTimeout(resolve, 20));
  // A byte each, as a slowloris client sends before the idle timeout would close it.
  for (const client of clients) client.write('x');
  await new Promise((resolve) => setTimeout(resolve, 500));
  const holding = { rss: rssMb(pid), fds: fds(pid) };

  const late = net.connect(port, '127.0.0.1');
  const answer = await new Promise<string>((resolve) => {
    late.on('error', (error: NodeJS.ErrnoException) => resolve(`refused (${error.code})`));
    late.on('close', () => resolve('closed at once (the connection cap)'));
    late.on('connect', () => {
      late.write('x');
      setTimeout(() => resolve(held.size > COUNT ? 'relayed' : 'accepted, not relayed within 1 s'), 1000);
    });
  });
  late.destroy();

  console.log(`\nhold: ${COUNT} connections held open through wfp-redirect-proxy --upstream with its defaults (one byte each now and then)`);
  console.log(`  proxy RSS ${idle.rss.toFixed(1)} MB idle -> ${holding.rss.toFixed(1)} MB holding: ${(((holding.rss - idle.rss) * 1024) / COUNT).toFixed(1)} KB per held connection`);
  console.log(`  proxy descriptors ${idle.fds} -> ${holding.fds} (${((holding.fds - idle.fds) / COUNT).toFixed(2)} per held connection)`);
  console.log(`  a new client, while they are held: ${answer}`);
  for (const client of clients) client.destroy();
  proxy.kill();
  await once(proxy, 'exit');
  for (const socket of held) socket.destroy();
  server.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
