// The tests of bad-input.test.ts, on Hono's own request path: what apps with middleware, and other
// runtimes, go through.
import { serveThroughHono } from './fixture.ts';
import './bad-input.test.ts';

serveThroughHono();
