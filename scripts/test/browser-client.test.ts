// The client in Chromium, as a web app ships it: the published package (packed as for publication,
// so from dist) bundled by esbuild for the browser, on a page served by the simulator itself
// (from the same origin as the API, as its docs page is), signing createCall with Web Crypto
// against the simulator this test runs on 127.0.0.1. The test reads the callLegId from the page
// and asks the simulator's control surface whether the call exists. The same page on another
// loopback origin calls it too, as `pnpm start` allows any origin (CORS); a simulator that allows
// only other origins is refused by Chromium before the request is sent.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSimulator, type RunningSimulator } from '@call-automation/simulator';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumPath, hasChromium, launchChromium } from '../lib/chromium.ts';
import { repoRoot } from './packing.ts';
import { installPublished, type InstalledProject } from './runtimes/installed.ts';

const runInBrowser = hasChromium() || process.env.CI === 'true';
if (!runInBrowser) {
  console.warn(`Skipping the client in Chromium: no Chromium at ${chromiumPath} (install it with \`apt-get install -y chromium\`; under CI=true this fails instead).`);
}

const accessKey = Buffer.from('the simulator key, 32 bytes long').toString('base64');
const callbackSecret = `whsec_${Buffer.from('the callback secret, 32 bytes...').toString('base64')}`;

/** The page's script, bundled with the client: `placeCall` signs and sends a createCall, and shows its outcome. */
const pageScript = `import { createCallAutomationClient } from '@call-automation/client';

window.placeCall = async (connectionString, callbackUri) => {
  const output = document.getElementById('result');
  try {
    const client = createCallAutomationClient(connectionString, { retry: false });
    const created = await client.createCall({
      targets: [{ phoneNumber: { value: '+14251001000' } }],
      callbackUri,
      requestedModalities: ['audio'],
      requestedCallEvents: ['participantsUpdated'],
    });
    output.dataset.status = String(created.response.status);
    output.textContent = created.data ? created.data.callLegId : 'error: ' + created.error.code;
  } catch (error) {
    output.dataset.status = 'threw';
    output.textContent = String(error);
  }
  return { status: output.dataset.status, text: output.textContent };
};
`;

/** Counts the page's calls of Web Crypto's HMAC signing and digests, before any script of the page runs. */
const countWebCrypto = `(() => {
  const counts = (window.webCryptoCalls = { sign: 0, digest: 0 });
  const subtle = crypto.subtle;
  const sign = subtle.sign.bind(subtle);
  const digest = subtle.digest.bind(subtle);
  subtle.sign = (...args) => (counts.sign++, sign(...args));
  subtle.digest = (...args) => (counts.digest++, digest(...args));
})();`;

describe.skipIf(!runInBrowser)('the client in Chromium', () => {
  let project: InstalledProject;
  let dir: string;
  let simulator: RunningSimulator;
  /** Where the simulator sends the calls' callbacks (so that it has none left to send when it stops). */
  let receiver: Server;
  let callbackUri: string;
  let browser: Browser;
  let page: Page;
  let bundle: string;
  let html: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'call-automation-browser-'));
    project = await installPublished('call-automation-browser-client-');
    const built = await build({
      stdin: { contents: pageScript, resolveDir: project.dir, sourcefile: 'page.js' },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    bundle = built.outputFiles[0]!.text;
    html = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Call Automation client</title></head>
<body>
<output id="result"></output>
<script type="module">
${bundle}
</script>
</body>
</html>
`;
    // The simulator serves its docs page beside the API: here, this page, from the API's origin.
    const docs = join(dir, 'index.html');
    await writeFile(docs, html);
    receiver = createServer((req, res) => void req.resume().on('end', () => res.writeHead(204).end()));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    callbackUri = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/callbacks`;
    const spec = join(repoRoot, 'spec', 'openapi.yaml');
    simulator = await runSimulator({
      host: '127.0.0.1',
      port: 0,
      controlPort: 0,
      accessKey,
      callbackSecret,
      allowLoopback: true,
      // As `pnpm start` runs it: pages on any origin may call its API.
      cors: { origins: '*' },
      files: { docs, specJson: spec, specYaml: spec },
      log: () => {},
    });
    browser = await launchChromium();
    page = await browser.newPage();
    await page.addInitScript(countWebCrypto);
    // The page may reach its own origin and nothing else.
    await page.route((url) => url.origin !== simulator.url, (route) => route.abort());
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await simulator?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
    if (dir) await rm(dir, { recursive: true, force: true });
    await project?.remove();
  });

  async function simulatorCalls(): Promise<string[]> {
    const response = await fetch(`${simulator.controlUrl}/calls`);
    return ((await response.json()) as Array<{ callLegId: string }>).map((call) => call.callLegId);
  }

  it("bundles the package's browser build: Web Crypto only, none of the node:crypto path", () => {
    expect(bundle).toContain('crypto.subtle');
    expect(bundle).not.toMatch(/node:crypto|getBuiltinModule/);
    // Inlined in the page, nothing in it may end its script element.
    expect(bundle).not.toMatch(/<\/script/i);
  });

  it('signs createCall with Web Crypto from a page on the API origin, and the simulator has the call', async () => {
    await page.goto(`${simulator.url}/docs`, { waitUntil: 'load' });
    await page.waitForFunction(() => typeof (window as unknown as { placeCall?: unknown }).placeCall === 'function');
    const connectionString = `endpoint=${simulator.url}/;accesskey=${accessKey}`;
    await page.evaluate(({ cs, uri }) => (window as unknown as { placeCall(cs: string, uri: string): Promise<unknown> }).placeCall(cs, uri), { cs: connectionString, uri: callbackUri });
    const result = page.locator('#result');
    await expect(result.getAttribute('data-status')).resolves.toBe('200');
    const callLegId = (await result.textContent()) ?? '';
    expect(callLegId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await simulatorCalls()).toContain(callLegId);
    // The body's SHA-256 and the HMAC were Web Crypto's.
    const counts = await page.evaluate(() => (window as unknown as { webCryptoCalls: { sign: number; digest: number } }).webCryptoCalls);
    expect(counts.sign).toBeGreaterThanOrEqual(1);
    expect(counts.digest).toBeGreaterThanOrEqual(1);
  });

  describe('from another origin', () => {
    let other: Server;
    let otherOrigin: string;
    /** Simulators started by a test, stopped after it. */
    const started: RunningSimulator[] = [];

    beforeAll(async () => {
      other = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html));
      await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
      otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await Promise.all(started.map((running) => running.stop()));
      await new Promise((resolve) => other?.close(resolve));
    });

    /** What Chromium asks before the client's cross-origin createCall. */
    const preflight = (url: string) =>
      fetch(`${url}/calls`, {
        method: 'OPTIONS',
        headers: {
          origin: otherOrigin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type,repeatability-first-sent,repeatability-request-id,x-ms-content-sha256,x-ms-date',
        },
      });

    /** Loads the page from the other origin and places a call against `url`; what the page showed, and the console's errors. */
    async function placeCallFromOtherOrigin(url: string): Promise<{ status: string; text: string; errors: string[] }> {
      const crossPage = await browser.newPage();
      try {
        const errors: string[] = [];
        crossPage.on('console', (message) => {
          if (message.type() === 'error') errors.push(message.text());
        });
        // No routing on this page: once Playwright routes any request of a page, it answers CORS
        // preflights itself, and the simulator's own answer would go untested.
        await crossPage.goto(otherOrigin, { waitUntil: 'load' });
        await crossPage.waitForFunction(() => typeof (window as unknown as { placeCall?: unknown }).placeCall === 'function');
        const outcome = await crossPage.evaluate(
          ({ cs, uri }) => (window as unknown as { placeCall(cs: string, uri: string): Promise<{ status: string; text: string }> }).placeCall(cs, uri),
          { cs: `endpoint=${url}/;accesskey=${accessKey}`, uri: callbackUri },
        );
        return { ...outcome, errors };
      } finally {
        await crossPage.close();
      }
    }

    it('signs createCall from a page on another loopback origin: the simulator answers its CORS preflight, and has the call', async () => {
      const answered = await preflight(simulator.url);
      expect({ status: answered.status, allowOrigin: answered.headers.get('access-control-allow-origin'), allowMethods: answered.headers.get('access-control-allow-methods') }).toEqual({
        status: 204,
        allowOrigin: otherOrigin,
        allowMethods: 'POST',
      });

      const outcome = await placeCallFromOtherOrigin(simulator.url);
      expect(outcome.errors.join('\n')).not.toMatch(/CORS/);
      expect(outcome.status).toBe('200');
      expect(outcome.text).toMatch(/^[0-9a-f-]{36}$/);
      expect(await simulatorCalls()).toContain(outcome.text);
    });

    it('is refused by Chromium, before the createCall is sent, when the simulator allows only other origins', async () => {
      const spec = join(repoRoot, 'spec', 'openapi.yaml');
      const restricted = await runSimulator({
        host: '127.0.0.1',
        port: 0,
        controlPort: 0,
        accessKey,
        callbackSecret,
        allowLoopback: true,
        cors: { origins: ['http://localhost:5173'] },
        files: { docs: join(dir, 'index.html'), specJson: spec, specYaml: spec },
        log: () => {},
      });
      started.push(restricted);
      const answered = await preflight(restricted.url);
      expect({ status: answered.status, allowOrigin: answered.headers.get('access-control-allow-origin') }).toEqual({ status: 403, allowOrigin: null });

      const outcome = await placeCallFromOtherOrigin(restricted.url);
      // A network error, as fetch reports a refused preflight: the client throws it (no HTTP answer to give).
      expect(outcome.status).toBe('threw');
      expect(outcome.text).toMatch(/^TypeError: .*Failed to fetch$/);
      expect(outcome.errors.join('\n')).toMatch(/blocked by CORS policy/);
      const calls = (await (await fetch(`${restricted.controlUrl}/calls`)).json()) as unknown[];
      expect(calls).toEqual([]);
    });
  });
});
