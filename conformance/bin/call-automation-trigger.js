#!/usr/bin/env node
// In the workspace the trigger runs from its TypeScript source; the published package's bin is dist/trigger-cli.js.
const { register } = await import('tsx/esm/api');
register();
await import('../src/trigger-cli.ts');
