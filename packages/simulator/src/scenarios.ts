import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { CommunicationIdentifier, EventData } from '@call-automation/server';

type Tone = EventData<'DtmfReceived'>['toneInfo']['tone'];

/** What an identifier does when a call or an invitation reaches it. */
export interface Behaviour {
  /** Says what it is for (shown nowhere; for the file's reader). */
  description?: string;
  /**
   * answer (the default), decline (603), busy (486), or noAnswer: it rings until the ring timeout,
   * then the call or invitation fails (408).
   */
  outcome?: 'answer' | 'decline' | 'busy' | 'noAnswer';
  /** How long it rings before it answers, declines or is busy, in ms. Default: the simulator's answer delay. */
  ringMs?: number;
  /** Keys it presses once it has answered, each `afterMs` after the answer. */
  tones?: Array<{ afterMs: number; tone: Tone }>;
  /** It hangs up its side this long after it answered; a call that has no one left then ends. */
  leaveAfterMs?: number;
}

/** A scenario file: behaviours by identifier (an E.164 number, or a raw id such as `8:acs:…`). */
export interface Scenarios {
  $schema?: string;
  identifiers: Record<string, Behaviour>;
}

/**
 * The test numbers: identifiers that behave as scripted, always the same way, like a payment
 * provider's test cards. Any other identifier answers after the answer delay. A scenario file
 * adds identifiers, or changes these.
 */
export const testNumbers: Record<string, Behaviour> = {
  '+15550100002': { description: 'declines', outcome: 'decline' },
  '+15550100003': { description: 'never answers: the call or invitation fails after the ring timeout', outcome: 'noAnswer' },
  '+15550100004': {
    description: 'answers, then presses 1, 2 and pound a second apart',
    tones: [
      { afterMs: 1000, tone: 'tone1' },
      { afterMs: 2000, tone: 'tone2' },
      { afterMs: 3000, tone: 'pound' },
    ],
  },
  '+15550100005': { description: 'answers, then hangs up after 2 s', leaveAfterMs: 2000 },
  '+15550100006': { description: 'is busy', outcome: 'busy' },
};

/** The key an identifier's behaviour is found under: its E.164 number, or its raw id. */
export function scenarioKey(identifier: CommunicationIdentifier): string {
  if ('phoneNumber' in identifier) return identifier.phoneNumber.value;
  if (identifier.rawId) return identifier.rawId;
  if ('communicationUser' in identifier) return identifier.communicationUser.id;
  return `8:orgid:${identifier.microsoftTeamsUser.userId}`;
}

/** A key of a scenario file as looked up: `4:+1…` raw ids of numbers are read as the number. */
function normalKey(key: string): string {
  return key.startsWith('4:+') ? key.slice(2) : key;
}

const require = createRequire(import.meta.url);
let validate: ((value: unknown) => boolean) & { errors?: Array<{ instancePath: string; message?: string }> | null } | undefined;

/** The JSON Schema of scenario files (packages/simulator/scenarios.schema.json, made by `pnpm generate` from the spec). */
export function scenarioSchema(): object {
  return require('../scenarios.schema.json') as object;
}

/**
 * Reads a scenario file (JSON, or YAML by its .yaml/.yml name), checks it against the schema and
 * answers the behaviours by key; a file that is not valid is an error naming the file and what is
 * wrong where.
 */
export async function loadScenarios(path: string): Promise<Record<string, Behaviour>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`Cannot read the scenario file ${path}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    // The YAML parser and the validator load only when a scenario file is given.
    value = /\.ya?ml$/i.test(path) ? (await import('yaml')).parse(text) : JSON.parse(text);
  } catch (error) {
    throw new Error(`The scenario file ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(error as Error).message}`);
  }
  validate ??= new (await import('ajv/dist/2020.js')).Ajv2020({ allErrors: true, strict: true }).compile(scenarioSchema());
  if (!validate(value)) {
    const problems = validate.errors!.map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
    throw new Error(`The scenario file ${path} does not match scenarios.schema.json: ${problems}.`);
  }
  return Object.fromEntries(Object.entries((value as Scenarios).identifiers).map(([key, behaviour]) => [normalKey(key), behaviour]));
}

/** Looks identifiers up: the scenarios given over the test numbers. */
export function createBook(scenarios: Record<string, Behaviour> = {}) {
  const book = new Map<string, Behaviour>(Object.entries({ ...testNumbers, ...Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [normalKey(k), v])) }));
  return (identifier: CommunicationIdentifier): Behaviour | undefined => book.get(scenarioKey(identifier));
}
