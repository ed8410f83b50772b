import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, relative } from 'node:path';
import { redocly } from './redocly.ts';

/**
 * Builds the API reference as one self-contained HTML page: Redoc's script is inlined
 * (`--inlineBundle`), so the page renders offline, with no script or style from a CDN.
 */
export async function buildDocs(root: string, outFile: string): Promise<{ bytes: number }> {
  await mkdir(dirname(outFile), { recursive: true });
  const result = await redocly(
    ['build-docs', 'spec/dist/openapi.yaml', '--inlineBundle', '--title', 'Call Automation API', '-o', relative(root, outFile)],
    root,
  );
  if (result.code !== 0) throw new Error(`redocly build-docs failed:\n${result.stdout}\n${result.stderr}`);
  // Redoc's attribution shows a logo from its CDN: the one request the page would still make.
  // The logo is swapped for an inline wordmark so that the page asks the network for nothing.
  const html = (await readFile(outFile, 'utf8')).replace(/https:\/\/cdn\.redoc\.ly\/redoc\/logo-mini(?:-full)?\.svg/g, redoclyWordmark);
  await writeFile(outFile, html);
  const external = findExternalResources(html);
  if (external.length > 0) {
    throw new Error(`The docs page loads resources from the network, so it would not render offline: ${external.join(', ')}`);
  }
  return { bytes: Buffer.byteLength(html) };
}

const redoclyWordmark = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="72" height="18"><text x="0" y="14" font-family="sans-serif" font-size="14" fill="#0044d4">Redocly</text></svg>',
)}`;

/** Scripts, styles and fonts that a page would fetch from another origin. */
export function findExternalResources(html: string): string[] {
  const found = new Set<string>();
  for (const match of html.matchAll(/<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?((?:https?:)?\/\/[^"'\s>]+)/gi)) {
    found.add(match[1]!);
  }
  for (const match of html.matchAll(/@import\s+(?:url\()?["']?((?:https?:)?\/\/[^"')\s]+)/gi)) found.add(match[1]!);
  return [...found];
}
