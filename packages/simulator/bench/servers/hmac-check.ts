import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The same HMAC checks the stub makes (date window, content hash, signature), for the baselines. */
export function hmacCheck(key: Buffer, method: string, pathAndQuery: string, host: string, headers: Record<string, string | string[] | undefined>, body: string): boolean {
  const authorization = String(headers.authorization ?? '');
  const match = /^HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=([A-Za-z0-9+/]+={0,2})$/.exec(authorization);
  const date = String(headers['x-ms-date'] ?? '');
  if (!match || Math.abs(Date.now() - Date.parse(date)) > 15 * 60_000) return false;
  const hash = createHash('sha256').update(body).digest('base64');
  if (hash !== headers['x-ms-content-sha256']) return false;
  const expected = Buffer.from(createHmac('sha256', key).update(`${method}\n${pathAndQuery}\n${date};${host};${hash}`).digest('base64'));
  const given = Buffer.from(match[1]!);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export const benchKey = Buffer.from('Q2FsbEF1dG9tYXRpb25Eb2NzRXhhbXBsZUtleTAwMDA=', 'base64');

export function announce(port: number) {
  process.stdout.write(`LISTENING ${port}\n`);
}
