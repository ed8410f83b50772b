// A user's program on Bun or Deno, with the published packages installed: the server stub served
// by the runtime's own HTTP server (Bun.serve, Deno.serve) through the Hono adapter, delivering
// signed callbacks to the callbackUri it is given (its second argument) with the runtime's
// `#pinned-fetch`, and the client signing calls against it. The client then places a call on the
// service whose connection string is its first argument (the simulator the test runs on Node). It
// prints one JSON line of what it saw, and exits.
import { createCallAutomationClient, packageVersion } from '@call-automation/client';
import { accessKey, createCallBody, createLoopbackDelivery, createStubApp, summary } from './stub.mjs';

const { Bun, Deno } = globalThis;
const runtime = Bun ? `bun ${Bun.version}` : Deno ? `deno ${Deno.version.deno}` : 'unknown';
const [remote, callbackUri] = Deno ? Deno.args : process.argv.slice(2);
const callbacks = createLoopbackDelivery();
const app = createStubApp(callbacks);

/** Serves the app on 127.0.0.1, on a free port, with the runtime's own server. */
function serve() {
  if (Bun) {
    const server = Bun.serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    return { port: server.port, stop: () => server.stop(true) };
  }
  if (Deno) {
    const server = Deno.serve({ port: 0, hostname: '127.0.0.1', onListen() {} }, app.fetch);
    return { port: server.addr.port, stop: () => server.shutdown() };
  }
  throw new Error('This program runs on Bun or Deno.');
}

const server = serve();
const report = { runtime, packageVersion };
try {
  const url = `http://127.0.0.1:${server.port}`;
  const client = createCallAutomationClient(`endpoint=${url}/;accesskey=${accessKey}`, { retry: false });
  const created = await client.createCall(createCallBody(callbackUri));
  const callLegId = created.data?.callLegId;
  const hungUp = callLegId ? await client.hangupCall(callLegId) : undefined;
  const again = callLegId ? await client.hangupCall(callLegId) : undefined;
  const otherKey = btoa('another key of 32 bytes, not it.');
  const wrongKey = await createCallAutomationClient(`endpoint=${url}/;accesskey=${otherKey}`, { retry: false }).createCall(createCallBody(callbackUri));
  const unsigned = await fetch(`${url}/calls`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(createCallBody(callbackUri)) });
  report.stub = {
    created: { ...summary(created), callLegId: callLegId ?? null },
    hangup: hungUp && summary(hungUp),
    again: again && summary(again),
    wrongKey: summary(wrongKey),
    unsigned: { status: unsigned.status, error: (await unsigned.json()).code },
  };
  const simulated = await createCallAutomationClient(remote, { retry: false }).createCall(createCallBody(callbackUri));
  report.simulator = { ...summary(simulated), callLegId: simulated.data?.callLegId ?? null };
} finally {
  await server.stop();
  // The stub's callbacks all delivered (or failed, in the log) before the program ends.
  await callbacks.delivery.close(5000);
}
report.deliveryLog = callbacks.log;
console.log(JSON.stringify(report));
