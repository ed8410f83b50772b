#!/usr/bin/env node
// In the workspace the suite runs from its TypeScript source; the published package's bin is dist/cli.js.
const { register } = await import('tsx/esm/api');
register();
await import('../src/cli.ts');
