import type { CheckResult } from './runner.ts';

const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A failure's message and how to reproduce it: what a CI's test view shows under the failed case. */
function failureText(result: CheckResult): string {
  const parts = [result.message ?? ''];
  if (result.reproduce) parts.push(`re-run it:\n  ${result.reproduce.command}`);
  if (result.reproduce?.curl) parts.push(`the request:\n${result.reproduce.curl}`);
  return parts.join('\n\n');
}

/** JUnit XML, one testcase per check; a skip is a <skipped>, never a pass. */
export function toJUnit(results: CheckResult[], suite = 'call-automation-conformance'): string {
  const failures = results.filter((r) => r.status === 'failed').length;
  const skipped = results.filter((r) => r.status === 'skipped').length;
  const time = results.reduce((sum, r) => sum + r.durationMs, 0) / 1000;
  const cases = results.map((r) => {
    const body =
      r.status === 'failed'
        ? `<failure message="${escapeXml(r.message!.split('\n')[0]!)}">${escapeXml(failureText(r))}</failure>`
        : r.status === 'skipped'
          ? `<skipped message="${escapeXml(r.message ?? '')}"/>`
          : '';
    const notes = r.notes?.length ? `<system-out>${escapeXml(r.notes.join('\n'))}</system-out>` : '';
    return `  <testcase classname="${escapeXml(r.id.split('.')[0]!)}" name="${escapeXml(`${r.id}: ${r.title}`)}" time="${(r.durationMs / 1000).toFixed(3)}">${body}${notes}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="${suite}" tests="${results.length}" failures="${failures}" skipped="${skipped}" time="${time.toFixed(3)}">\n${cases.join('\n')}\n</testsuite>\n`;
}

/** The summary table: one row per group of checks, with passed, failed and skipped counts. */
export function summaryTable(results: CheckResult[]): string {
  const groups = new Map<string, { passed: number; failed: number; skipped: number }>();
  for (const r of results) {
    const group = r.id.split('.')[0]!;
    const row = groups.get(group) ?? { passed: 0, failed: 0, skipped: 0 };
    row[r.status]++;
    groups.set(group, row);
  }
  const rows = [['check', 'passed', 'failed', 'skipped'], ...[...groups].map(([group, row]) => [group, String(row.passed), String(row.failed), String(row.skipped)])];
  const total = results.reduce((t, r) => (t[r.status]++, t), { passed: 0, failed: 0, skipped: 0 });
  rows.push(['total', String(total.passed), String(total.failed), String(total.skipped)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row, r) => `${row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')}${r === 0 ? `\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : ''}`).join('\n');
}
