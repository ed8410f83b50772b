import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { buildDocs, findExternalResources } from '../lib/docs.ts';
import { hasChromium, launchChromium, chromiumPath } from '../lib/chromium.ts';
import { repoRoot } from '../lib/paths.ts';

// Sidebar group → the summaries of what it lists, as the spec names them.
const operations: Array<[string, string]> = [
  ['Calls', 'Create a call'],
  ['Calls', 'Hang up a call'],
  ['Media', 'Play audio in a call'],
  ['Media', 'Cancel media processing'],
  ['Participants', 'Invite participants'],
  ['Participants', 'Remove a participant'],
];
const events: Array<[string, string]> = [
  ['Callback events', "The call's state changed"],
  ['Callback events', 'The participants changed'],
  ['Callback events', 'A DTMF tone was received'],
  ['Callback events', 'A play ended'],
  ['Callback events', 'An invitation settled'],
];

const runInBrowser = hasChromium() || process.env.CI === 'true';
if (!runInBrowser) {
  console.warn(`Skipping the docs page in Chromium: no Chromium at ${chromiumPath} (install it with \`apt-get install -y chromium\`; under CI=true this fails instead).`);
}

describe('the docs page', () => {
  let dir: string;
  let html: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-docs-'));
    await buildDocs(repoRoot, join(dir, 'index.html'));
    html = await readFile(join(dir, 'index.html'), 'utf8');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('is one file that loads nothing from the network', () => {
    expect(findExternalResources(html)).toEqual([]);
    expect(findExternalResources('<script src="https://cdn.example/redoc.js"></script>')).toEqual(['https://cdn.example/redoc.js']);
  });

  describe.skipIf(!runInBrowser)('in Chromium, offline', () => {
    let server: Server;
    let origin: string;
    let browser: Browser;
    let page: Page;
    const blocked: string[] = [];

    beforeAll(async () => {
      server = createServer((req, res) => {
        res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' }).end(req.url === '/' ? html : '');
      });
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      // Everything but the page itself is refused and recorded: the page must not need it.
      await page.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith(origin) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
        blocked.push(url);
        return route.abort();
      });
      await page.goto(origin, { waitUntil: 'load' });
      await page.getByRole('heading', { name: 'Call Automation API (1.0.0)' }).waitFor({ timeout: 20_000 });
    });

    /** Opens a sidebar entry the way a reader does (Redoc renders sections as they are reached). */
    async function open(group: string, summary: string) {
      // Before its section renders, the first element with the summary's text is the sidebar's entry.
      const entry = page.getByText(summary, { exact: true }).first();
      if (!(await entry.isVisible())) await page.getByText(group, { exact: true }).first().click();
      await entry.click();
      return heading(summary);
    }

    /** A heading's accessible name starts with its anchor's label ("link to …"); a webhook's ends with a badge. */
    function heading(text: string) {
      const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      return page.getByRole('heading', { name: new RegExp(`${escaped}(\\s*Webhook)?$`) }).first();
    }

    afterAll(async () => {
      await browser?.close();
      await new Promise((done) => server?.close(done));
    });

    it.each(operations)('renders the %s operation "%s"', async (group, summary) => {
      const heading = await open(group, summary);
      await heading.waitFor({ timeout: 10_000 });
      await expect(heading.isVisible()).resolves.toBe(true);
    });

    it.each(events)('renders the %s webhook "%s"', async (group, summary) => {
      const heading = await open(group, summary);
      await heading.waitFor({ timeout: 10_000 });
      await expect(heading.isVisible()).resolves.toBe(true);
    });

    it('renders the Authentication section the errors table points to, with the worked example', async () => {
      const section = heading('Authentication');
      await section.waitFor({ timeout: 10_000 });
      await section.scrollIntoViewIfNeeded();
      await expect(section.isVisible()).resolves.toBe(true);
      // The HMAC scheme's worked example renders inside it.
      const example = page.getByText(/xyRZGWm\+KJYeUsecMD2XqP\/MzevqkUGU0UeZiAmm0k8=/).first();
      await example.waitFor({ timeout: 10_000 });
      await example.scrollIntoViewIfNeeded();
      await expect(example.isVisible()).resolves.toBe(true);
    });

    it("renders createCall's callbacks", async () => {
      await (await open('Calls', 'Create a call')).waitFor({ timeout: 10_000 });
      await heading('Callbacks').waitFor({ timeout: 10_000 });
      await expect(page.getByText('A call event', { exact: true }).first().isVisible()).resolves.toBe(true);
    });

    it('asked for nothing outside the page, and writes a screenshot', async () => {
      expect(blocked).toEqual([]);
      const file = join(repoRoot, 'reports', 'docs.png');
      await page.screenshot({ path: file });
      expect((await readFile(file)).subarray(1, 4).toString()).toBe('PNG');
    });
  });
});
