// The tests of repeatability.test.ts, on Hono's own request path.
import { serveThroughHono } from './fixture.ts';
import './repeatability.test.ts';

serveThroughHono();
