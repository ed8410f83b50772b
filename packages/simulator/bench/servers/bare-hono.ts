import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { announce } from './hmac-check.ts';

const app = new Hono();
app.post('/calls', async (c) => {
  const body = JSON.parse(await c.req.text()) as { targets?: unknown };
  if (!Array.isArray(body.targets)) return c.json({ code: 'ValidationFailed', message: 'no' }, 400);
  return c.json({ callLegId: crypto.randomUUID() });
});
const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => announce(info.port));
void server;
