// A Cloudflare Worker made of the published packages (bundled as wrangler bundles them, with the
// workerd, worker and browser conditions): the server stub answers the API, and POST /__client
// runs the client inside the worker against the service whose connection string the request's
// body names: a createCall, or a hangupCall of the call it names.
import { createCallAutomationClient } from '@call-automation/client';
import { createCallBody, createStubApp, summary } from './stub.mjs';

const app = createStubApp();

export default {
  async fetch(request) {
    if (new URL(request.url).pathname !== '/__client') return app.fetch(request);
    const { connectionString, callbackUri, hangup } = await request.json();
    const client = createCallAutomationClient(connectionString, { retry: false });
    if (hangup) return Response.json(summary(await client.hangupCall(hangup)));
    const created = await client.createCall(createCallBody(callbackUri));
    return Response.json({ ...summary(created), callLegId: created.data?.callLegId ?? null });
  },
};
