/** A callback receiver in a process of its own (DELAY_MS, STATUS), so that its timers share no event loop with the sender measured. */
import { startReceiver } from './receiver.ts';

const receiver = await startReceiver({ delayMs: Number(process.env.DELAY_MS ?? 0), status: Number(process.env.STATUS ?? 204) });
process.stdout.write(`READY ${JSON.stringify({ url: receiver.url })}\n`);
process.once('SIGTERM', () => void receiver.close().then(() => process.exit(0)));
