// A Cloudflare Worker made of the published packages (bundled as wrangler bundles them, with the
// workerd, worker and browser conditions, and no nodejs_compat):
// - the server stub answers the API, delivering its callbacks with the runtime-neutral
//   `#pinned-fetch`; the delivery is made in the handler of the stub's first request (one made at
//   the module's top level works too: GET /__top-level says so), and each request keeps its
//   deliveries running with `ctx.waitUntil(delivery.drain())`, since workerd ends a request's
//   work once it has answered. POST /__reset makes the next request make a new stub; GET
//   /__delivery-log answers what the delivery could not do;
// - POST /__client runs the client inside the Worker against the service whose connection string
//   the request's body names: a createCall, or a hangupCall of the call it names.
import { createCallAutomationClient } from '@call-automation/client';
import { createCallbackDelivery } from '@call-automation/server';
import { callbackSecret, createCallBody, createLoopbackDelivery, createStubApp, summary } from './stub.mjs';

// What a Worker that makes its delivery at the top level meets.
let topLevel = { created: true };
try {
  createCallbackDelivery({ secret: callbackSecret });
} catch (error) {
  topLevel = { created: false, error: String(error) };
}

let stub;

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname === '/__top-level') return Response.json(topLevel);
    if (pathname === '/__reset') return (stub = undefined), new Response(null, { status: 204 });
    if (pathname === '/__delivery-log') return Response.json(stub?.callbacks.log ?? []);
    if (pathname === '/__client') {
      const { connectionString, callbackUri, hangup } = await request.json();
      const client = createCallAutomationClient(connectionString, { retry: false });
      if (hangup) return Response.json(summary(await client.hangupCall(hangup)));
      const created = await client.createCall(createCallBody(callbackUri));
      return Response.json({ ...summary(created), callLegId: created.data?.callLegId ?? null });
    }
    if (!stub) {
      const callbacks = createLoopbackDelivery();
      stub = { app: createStubApp(callbacks), callbacks };
    }
    const response = await stub.app.fetch(request);
    ctx.waitUntil(stub.callbacks.delivery.drain());
    return response;
  },
};
