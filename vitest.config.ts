import { defineConfig } from 'vitest/config';

// The type tests (test/*.test-d.ts) are compiled by `pnpm typecheck`, whose program includes them:
// an assertion that does not hold is a type error there, so they are not compiled a second time here.
//
// A worker's test files share one module graph (isolate: false), but the server's: every file
// used to evaluate the packages and the generated contract anew. Tests leave no global state
// behind them: fake timers are restored after each test, servers and processes stopped, and no
// test replaces a global.
const shared = { isolate: false };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'contract',
          ...shared,
          include: ['spec/test/**/*.test.ts', 'scripts/test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'client',
          ...shared,
          root: 'packages/client',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'server',
          // Isolated: its *-through-hono files run another file's tests again by importing it,
          // after switching the fixture (module state) to Hono's request path.
          isolate: true,
          root: 'packages/server',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'simulator',
          ...shared,
          root: 'packages/simulator',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'conformance',
          ...shared,
          root: 'conformance',
          include: ['test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
    // Two test files at a time: CI machines have two cores, and most files wait on real servers,
    // processes and the network rather than on the CPU.
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: 'reports/vitest.json' },
  },
});
