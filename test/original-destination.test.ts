import assert from 'node:assert/strict';
import type net from 'node:net';
import { encodeSockaddr, getOriginalDestination, WfpRedirectError } from '..';
import { isWindows, listenOrSkip, LOOPBACK, Loopback, rejection, spy, type Family, type Spied } from './helpers';

for (const family of ['IPv4', 'IPv6'] as Family[]) {
  describe(`getOriginalDestination on a connection nobody redirected (${family})`, function () {
    let loopback: Loopback;
    before(async function () {
      loopback = await listenOrSkip(this, family, 'getOriginalDestination');
    });
    after(async () => loopback?.close());

    if (!isWindows) {
      it('rejects with ERR_NOT_REDIRECTED, saying why', async function () {
        const { accepted } = await loopback.pair();
        const error = await rejection(getOriginalDestination(accepted));
        assert.ok(error instanceof WfpRedirectError, String(error));
        assert.equal(error.code, 'ERR_NOT_REDIRECTED');
        assert.match(error.message, /^The connection was not redirected: netfilter/);
      });

      it('with { tproxy: true } answers the local address, as a TPROXY socket needs', async function () {
        const { accepted } = await loopback.pair();
        assert.deepEqual(await getOriginalDestination(accepted, { tproxy: true }), {
          family,
          address: LOOPBACK[family],
          port: loopback.port,
        });
      });
    } else {
      it(`rejects with a typed error from the WFP context query${process.env.WFP_REDIRECT_UNDER_WINE === '1' ? ' (WSAEOPNOTSUPP under Wine)' : ''}`, async function () {
        const { accepted } = await loopback.pair();
        const error = await rejection(getOriginalDestination(accepted));
        assert.ok(error instanceof WfpRedirectError, String(error));
        if (process.env.WFP_REDIRECT_UNDER_WINE === '1') assert.equal(error.code, 'WSAEOPNOTSUPP');
        else assert.equal(error.code, 'ERR_NOT_REDIRECTED');
      });
    }
  });
}

// The Windows path with the addon's context query answered at the binding, as
// a callout driver would fill it: decoding, offsets, the decode option, and
// "not redirected". Windows only (the path is chosen by platform); pending,
// with a notice, elsewhere.
describe('getOriginalDestination on Windows, with the WFP context answered at the binding', function () {
  let loopback: Loopback;
  let accepted: net.Socket;
  let answered: Spied | undefined;
  const answer = (reply: () => Buffer) => {
    answered?.restore();
    answered = spy('queryRedirectContext', () => reply());
  };

  before(async function () {
    if (!isWindows) {
      console.warn('    !!! not Windows: these tests are NOT run here; `npm run test:win32` runs them in Windows node.exe under Wine');
      this.skip();
    }
    loopback = await Loopback.listen('IPv4');
    ({ accepted } = await loopback.pair());
  });
  afterEach(() => {
    answered?.restore();
    answered = undefined;
  });
  after(async () => loopback?.close());

  it('decodes a SOCKADDR_IN6 at offset 0, and one at contextOffset', async function () {
    answer(() => encodeSockaddr({ address: '2001:db8::7', port: 8443 }));
    assert.deepEqual(await getOriginalDestination(accepted), { family: 'IPv6', address: '2001:db8::7', port: 8443 });
    answer(() => Buffer.concat([Buffer.from('hdr!'), encodeSockaddr({ address: '192.0.2.9', port: 80 })]));
    assert.deepEqual(await getOriginalDestination(accepted, { contextOffset: 4 }), { family: 'IPv4', address: '192.0.2.9', port: 80 });
  });

  it('hands the context to `decode`, deriving the family from the address or taking the one given', async function () {
    answer(() => Buffer.from('10.1.2.3:8080'));
    const decode = (context: Buffer) => {
      const [address, port] = context.toString().split(':');
      return { address, port: Number(port) };
    };
    assert.deepEqual(await getOriginalDestination(accepted, { decode }), { family: 'IPv4', address: '10.1.2.3', port: 8080 });
    answer(() => Buffer.from('example.com'));
    assert.deepEqual(await getOriginalDestination(accepted, { decode: () => ({ address: 'example.com', port: 443, family: 'IPv6' as const }) }), {
      family: 'IPv6',
      address: 'example.com',
      port: 443,
    });
  });

  it('refuses what `decode` returns when it is not an address and port: TypeError ERR_INVALID_RETURN_VALUE', async function () {
    answer(() => Buffer.from('x'));
    const bad: Array<() => unknown> = [
      () => ({ host: '10.0.0.1', port: 80 }),
      () => ({ address: '10.0.0.1', port: 70000 }),
      () => ({ address: 'example.com', port: 80 }),
      () => ({ address: '10.0.0.1', port: 80, family: 'IPv6' }),
      () => undefined,
    ];
    for (const decode of bad) {
      const error = await rejection(getOriginalDestination(accepted, { decode: decode as never }));
      assert.ok(error instanceof TypeError, String(error));
      assert.equal((error as { code?: string }).code, 'ERR_INVALID_RETURN_VALUE');
    }
  });

  it('rejects with ERR_NOT_REDIRECTED, the WSAEINVAL as its cause, for a socket no callout redirected', async function () {
    const wsaeinval = new WfpRedirectError('SIO_QUERY_WFP_CONNECTION_REDIRECT_CONTEXT failed with WSAEINVAL', { code: 'WSAEINVAL', errno: 10022, syscall: 'WSAIoctl' });
    answer(() => {
      throw wsaeinval;
    });
    const error = await rejection(getOriginalDestination(accepted));
    assert.ok(error instanceof WfpRedirectError, String(error));
    assert.equal(error.code, 'ERR_NOT_REDIRECTED');
    assert.equal(error.cause, wsaeinval);
    answer(() => Buffer.alloc(0));
    assert.equal((await rejection(getOriginalDestination(accepted))).code, 'ERR_NOT_REDIRECTED');
  });
});
