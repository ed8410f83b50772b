/**
 * The fixture's stub served from a process of its own, so that client and server run at once as
 * they do in production: in one process, a client writes a whole upload before the server reads
 * a byte of it, which hides how the server answers an upload it refuses part-way.
 * Prints the URL on its first line; stops on SIGTERM.
 */
import { createCallAutomationApp, createCallAutomationService } from '../src/index.ts';
import { serveApp } from '../src/node.ts';
import { accessKey, memoryHandlers } from './fixture.ts';

const service = createCallAutomationService({ handlers: memoryHandlers().handlers, auth: { accessKeys: [accessKey] } });
const discardMs = Number(process.env.DISCARD_MS) || undefined;
const server = await serveApp(process.env.THROUGH_HONO ? createCallAutomationApp(service) : service, { discardUpload: { ms: discardMs } });
console.log(server.url);
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
