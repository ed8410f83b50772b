/**
 * The simulator on Redis in a process of its own, to be killed (SIGKILL) as a crash would.
 * Options come as JSON in SIMULATOR_OPTIONS; prints `{ url, controlUrl }` on its first line.
 */
import { runSimulator, type RunOptions } from '../src/index.ts';

const options = JSON.parse(process.env.SIMULATOR_OPTIONS!) as RunOptions;
const running = await runSimulator({ ...options, log: () => {} });
console.log(JSON.stringify({ url: running.url, controlUrl: running.controlUrl }));
process.once('SIGTERM', () => void running.stop().then(() => process.exit(0)));
