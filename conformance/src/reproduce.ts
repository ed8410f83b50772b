/** A request as the suite sent it: enough to send the same bytes again. */
export interface SentRequest {
  /** The operation the request was for, when it was one of the spec's. */
  operationId?: string;
  method: string;
  /** The absolute URL, as fetch normalised it. */
  url: string;
  /**
   * The headers the suite set, names in lower case, including the signed x-ms-date,
   * x-ms-content-sha256 and Authorization. fetch adds its own (Host, Content-Length, Accept,
   * User-Agent), which nothing signs.
   */
  headers: Array<[string, string]>;
  /** The body's bytes, when it had one. */
  body?: Uint8Array;
}

/** How to see a failure again. */
export interface Reproduction {
  /** The command line that runs just the failed check again, with the same seed (secrets left out). */
  command: string;
  /** A shell script that sends again the request whose answer broke the contract, signature and all. */
  curl?: string;
}

/** Bodies up to this size are printed in the curl line; larger ones are made again by shell commands. */
export const maxInlineBody = 4096;

const bare = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Quotes a string for a POSIX shell: as it is when nothing in it is special, else in single
 * quotes, inside which only ' itself needs care (close, an escaped quote, reopen).
 */
export function shellQuote(text: string): string {
  if (bare.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes as text that a shell can quote (valid UTF-8, no NUL), or undefined. */
function asShellText(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** printf's format escapes for arbitrary bytes (octal: portable across shells' printf). */
function octal(bytes: Uint8Array): string {
  return `printf '${Array.from(bytes, (b) => `\\${b.toString(8).padStart(3, '0')}`).join('')}'`;
}

/** Commands that print `bytes` exactly, runs of one byte made by head and tr rather than spelled out. */
function bodyCommands(bytes: Uint8Array): { commands: string[]; printed: number } {
  const commands: string[] = [];
  let printed = 0;
  const literal = (from: number, to: number) => {
    if (from >= to) return;
    const slice = bytes.subarray(from, to);
    const text = asShellText(slice);
    commands.push(text === undefined ? octal(slice) : `printf '%s' ${shellQuote(text)}`);
    printed += to - from;
  };
  let start = 0;
  let i = 0;
  while (i < bytes.length) {
    let j = i + 1;
    while (j < bytes.length && bytes[j] === bytes[i]) j++;
    if (j - i >= 256) {
      literal(start, i);
      const byte = bytes[i]!;
      const char = String.fromCharCode(byte);
      commands.push(byte === 0 ? `head -c ${j - i} /dev/zero` : `head -c ${j - i} /dev/zero | tr '\\0' ${/[A-Za-z0-9]/.test(char) ? char : `'\\${byte.toString(8).padStart(3, '0')}'`}`);
      start = j;
    }
    i = j;
  }
  literal(start, bytes.length);
  return { commands, printed };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * A shell script that sends `request` again with curl: the method, the URL and the headers as
 * sent, the signature included (so it holds while x-ms-date is within the service's 15-minute
 * window), and the body byte for byte. Large bodies are made again by commands piped into curl.
 */
export async function curlCommand(request: SentRequest): Promise<string> {
  const lines: string[] = [];
  const date = request.headers.find(([name]) => name === 'x-ms-date')?.[1];
  if (date) lines.push(`# signed with x-ms-date ${date}: valid for the 15-minute signature window from then`);
  const args = ['curl', '-sS', '-i'];
  if (request.method === 'HEAD') args.push('--head');
  else args.push('-X', shellQuote(request.method));
  // curl would otherwise treat [ ] { } in the URL as globs.
  if (/[[\]{}]/.test(request.url)) args.push('--globoff');
  args.push(shellQuote(request.url));
  const header = (name: string, value: string) => `-H ${shellQuote(value === '' ? `${name};` : `${name}: ${value}`)}`;
  const signed = ['x-ms-date', 'x-ms-content-sha256', 'authorization'];
  const options = request.headers.filter(([name]) => !signed.includes(name)).map(([name, value]) => header(name, value));
  const body = request.body;
  const hasType = request.headers.some(([name]) => name === 'content-type');
  // curl's defaults that fetch does not send: a form Content-Type with a body, no length without one.
  if (body && !hasType) options.push(`-H ${shellQuote('content-type:')}`);
  if (!body && ['POST', 'PUT', 'PATCH'].includes(request.method)) options.push(`-H ${shellQuote('content-length: 0')}`);
  // The signature last, in the order of its string to sign: the part that expires.
  for (const name of signed) {
    const found = request.headers.find(([n]) => n === name);
    if (found) options.push(header(...found));
  }
  let pipe = '';
  if (body) {
    const text = asShellText(body);
    if (text !== undefined && body.length <= maxInlineBody && !text.startsWith('@')) {
      options.push(`--data-binary ${shellQuote(text)}`);
    } else {
      const { commands, printed } = bodyCommands(body);
      if (printed > maxInlineBody) {
        lines.push(`# the body (${body.length} bytes, sha256 ${await sha256(body)}) is too large to print: put it in body.bin`);
        options.push('--data-binary @body.bin');
      } else {
        if (body.length > maxInlineBody) lines.push(`# the body: ${body.length} bytes (sha256 ${await sha256(body)}), made again by the commands piped into curl`);
        pipe = commands.length === 1 ? `${commands[0]} | ` : `{ ${commands.join('; ')}; } | `;
        options.push('--data-binary @-');
      }
    }
  }
  lines.push([`${pipe}${args.join(' ')}`, ...options].join(' \\\n  '));
  return lines.join('\n');
}
