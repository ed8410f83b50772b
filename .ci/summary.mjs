// Prints the closing line CI reads, "N passed, N failed", from vitest's JSON report. A failure
// outside vitest (lint, drift check, typecheck) counts as one failed check.
import { existsSync, readFileSync } from 'node:fs';

const [reportPath, statusText] = process.argv.slice(2);
const status = Number(statusText);
let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(reportPath)) {
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  passed = report.numPassedTests;
  failed = report.numFailedTests;
  skipped = report.numPendingTests + report.numTodoTests;
  for (const file of report.testResults) {
    if (file.status === 'failed' && file.assertionResults.every((t) => t.status !== 'failed')) {
      console.log(`failed to run: ${file.name}: ${file.message}`);
      failed += 1;
    }
  }
} else if (status !== 0) {
  console.log('pnpm test failed before the tests ran (see lint, drift check or typecheck above).');
}
if (status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
