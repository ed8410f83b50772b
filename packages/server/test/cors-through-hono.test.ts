// The tests of cors.test.ts, on Hono's own request path: what apps with middleware, and other
// runtimes, go through.
import { serveThroughHono } from './fixture.ts';
import './cors.test.ts';

serveThroughHono();
