import assert from 'node:assert/strict';
import { getOriginalDestination, WfpRedirectError } from '..';
import { isWindows, listenOrSkip, LOOPBACK, Loopback, rejection, type Family } from './helpers';

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
