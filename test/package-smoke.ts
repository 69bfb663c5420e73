// Run as a script (not by mocha) by test/package.check.ts, in whichever Node
// is under test (Linux x64, Linux arm64 under qemu-user, Windows node.exe
// under Wine), against an installed copy of the package:
//   node dist-test/package-smoke.js <package folder> <result file>
// It loads the package, looks up an accepted socket's OS handle, asks for its
// original destination, and makes a connectRedirected round trip, then writes
// what it saw as JSON to <result file> (a file: under Wine a pipe breaks
// console.log).
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

type Package = typeof import('..');

async function smoke(dir: string): Promise<Record<string, unknown>> {
  const pkg = require(dir) as Package;
  const { binding } = require(join(dir, 'dist', 'native')) as typeof import('../dist/native');
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const client = pkg.connectRedirected({ host: '127.0.0.1', port });
    // connectRedirected reports failures (the addon's too) as an 'error' event, as net.connect does.
    await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
    const peer = await accepted;
    peer.pipe(peer); // an echo
    const handle = pkg.getSocketHandle(peer);
    const originalDestination = await pkg.getOriginalDestination(peer).then(
      (found) => ({ found }),
      (error: { code?: string }) => ({ code: error.code }),
    );
    client.write('ping over connectRedirected');
    const echoed = await new Promise<string>((resolve) => client.once('data', (data) => resolve(String(data))));
    client.destroy();
    peer.destroy();
    return { arch: process.arch, platform: process.platform, build: binding.build, handleType: typeof handle, originalDestination, echoed };
  } finally {
    server.close();
  }
}

const [dir, out] = process.argv.slice(2);
smoke(dir!).then(
  (result) => writeFileSync(out!, JSON.stringify(result)),
  (error: Error & { code?: string }) => writeFileSync(out!, JSON.stringify({ error: `${error.code ?? ''} ${error.message}` })),
);
