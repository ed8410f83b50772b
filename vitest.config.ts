import { defineConfig } from 'vitest/config';

// The type tests (test/*.test-d.ts) are compiled by `pnpm typecheck`, whose program includes them:
// an assertion that does not hold is a type error there, so they are not compiled a second time here.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'contract',
          include: ['spec/test/**/*.test.ts', 'scripts/test/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'client',
          root: 'packages/client',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'server',
          root: 'packages/server',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'simulator',
          root: 'packages/simulator',
          include: ['test/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'conformance',
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
