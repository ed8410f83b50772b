import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { ApiError, type CallbackDelivery } from '@call-automation/server';
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { FaultControl } from './faults.ts';
import type { Journal, JournalEntry } from './journal.ts';
import type { Simulator } from './simulator.ts';

// The keys a participant can press: the spec's Tone.
const spec = createRequire(import.meta.url)('@call-automation/contract/openapi.json') as { components: { schemas: { Tone: { enum: string[] } } } };
const tones = new Set(spec.components.schemas.Tone.enum);

/** The inspector's page, read once. */
let inspectorPage: string | undefined;

/**
 * The control surface, for a loopback port apart from the API: the inspector (a page, and its
 * journal as Server-Sent Events), and the routes that make participants act, list and redrive dead
 * letters, and set faults. Every act is journaled.
 */
export function createControlApp({ simulator, delivery, journal, faults }: { simulator: Simulator; delivery: CallbackDelivery; journal: Journal; faults: FaultControl }): Hono {
  const control = new Hono();
  control.onError((error, c) =>
    error instanceof ApiError ? c.json(error.body, error.status as 404, error.options.headers) : c.json({ code: 'InternalServerError', message: String(error) }, 500),
  );
  control.get('/', async (c) => c.html((inspectorPage ??= await readFile(new URL('../inspector/index.html', import.meta.url), 'utf8'))));
  // The journal as Server-Sent Events: what is kept, then each entry as it comes; a reconnecting
  // page gets only what it missed (Last-Event-ID).
  control.get('/stream', (c) =>
    streamSSE(c, async (stream) => {
      const after = Number(c.req.header('last-event-id')) || 0;
      const queue: JournalEntry[] = journal.list(after);
      let wake: (() => void) | undefined;
      const stop = journal.follow((entry) => {
        queue.push(entry);
        wake?.();
      });
      stream.onAbort(() => {
        stop();
        wake?.();
      });
      try {
        while (!stream.aborted && !stream.closed) {
          while (queue.length) {
            const entry = queue.shift()!;
            await stream.writeSSE({ id: String(entry.seq), data: JSON.stringify(entry) });
          }
          // A comment now and then keeps proxies from closing a quiet stream.
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 15_000).unref?.();
          });
          if (!queue.length && !stream.aborted) await stream.write(': keep-alive\n\n');
        }
      } finally {
        stop();
      }
    }),
  );
  control.get('/faults', (c) => c.json(faults.current));
  control.post('/faults', async (c) => {
    const body = await c.req.json<unknown>().catch(() => {
      throw new ApiError(400, 'InvalidJson', 'The faults must be a JSON object, e.g. {"seed": 7, "operations": {"playAudio": {"status": 503, "rate": 0.5}}}.');
    });
    const set = await faults.set(body);
    journal.add({ kind: 'faults', faults: set });
    return c.json(set);
  });
  control.delete('/faults', (c) => {
    faults.clear();
    journal.add({ kind: 'faults', faults: {} });
    return c.body(null, 204);
  });
  control.get('/calls', async (c) => c.json(await simulator.listCalls()));
  control.post('/calls/:callId/hangup', async (c) => {
    await simulator.hangUp(c.req.param('callId'));
    journal.add({ kind: 'control', callLegId: c.req.param('callId'), action: 'hang up' });
    return c.body(null, 202);
  });
  control.post('/calls/:callId/dtmf', async (c) => {
    const { tones: pressed } = await c.req.json<{ tones?: unknown }>().catch(() => ({ tones: undefined }));
    if (!Array.isArray(pressed) || pressed.length === 0 || !pressed.every((t) => tones.has(t as string))) {
      throw new ApiError(400, 'ValidationFailed', `tones must be a list of ${[...tones].join(', ')}.`, { target: '/tones' });
    }
    await simulator.pressTones(c.req.param('callId'), pressed);
    journal.add({ kind: 'control', callLegId: c.req.param('callId'), action: 'pressed', detail: pressed.join(' ') });
    return c.body(null, 202);
  });
  control.post('/calls/:callId/participants/:participantId/leave', async (c) => {
    await simulator.leave(c.req.param('callId'), c.req.param('participantId'));
    journal.add({ kind: 'control', callLegId: c.req.param('callId'), action: 'participant left', detail: c.req.param('participantId') });
    return c.body(null, 202);
  });
  control.post('/invitations/decline', async (c) => {
    const { rawId } = await c.req.json<{ rawId?: unknown }>().catch(() => ({ rawId: undefined }));
    if (typeof rawId !== 'string' || !rawId) throw new ApiError(400, 'ValidationFailed', 'rawId must name the identifier, e.g. "4:+14251001000".', { target: '/rawId' });
    await simulator.declineInvitations(rawId);
    return c.body(null, 202);
  });
  control.get('/dead-letters', async (c) => c.json(await delivery.deadLetters()));
  control.post('/dead-letters/:id/redrive', async (c) => {
    if (!(await delivery.redrive(c.req.param('id')))) throw new ApiError(404, 'NotFound', `No dead letter with id ${c.req.param('id')}.`, { target: 'id' });
    return c.body(null, 202);
  });
  control.notFound((c) =>
    c.json(
      {
        code: 'NotFound',
        message: 'Control routes: GET / (the inspector), GET /stream, GET|POST|DELETE /faults, GET /calls, POST /calls/{id}/hangup, POST /calls/{id}/dtmf, POST /calls/{id}/participants/{pid}/leave, POST /invitations/decline, GET /dead-letters, POST /dead-letters/{id}/redrive.',
      },
      404,
    ),
  );

  return control;
}
