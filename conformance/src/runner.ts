import { CheckContext, CheckFailed, CheckSkipped, type TargetOptions } from './context.ts';
import { Contract } from './contract.ts';
import { allChecks, type Check } from './checks/index.ts';
import { curlCommand, shellQuote, type Reproduction, type SentRequest } from './reproduce.ts';
import { createDistinctSigner } from './signing.ts';

export interface CheckResult {
  id: string;
  title: string;
  status: 'passed' | 'failed' | 'skipped';
  /** Why it failed or was skipped. */
  message?: string;
  /** What the check left out and why, whatever its status: an operation it could not send as the contract means it. */
  notes?: string[];
  /** How to see a failure again: the command that re-runs the check, and the request that broke the contract. */
  reproduce?: Reproduction;
  durationMs: number;
  requests: number;
}

export interface RunOptions extends TargetOptions {
  /** Globs over check ids (`auth.*`); only matching checks run. */
  only?: string[];
  checks?: Check[];
  contract?: Contract;
  /** Hears each result as it comes. */
  onResult?: (result: CheckResult) => void;
  /**
   * The command line that started this run, secrets left out and without --only and --seed: a
   * failed check's `reproduce.command` is it with `--only <id> --seed <seed>`. By default one is
   * made from these options.
   */
  commandLine?: string;
}

function matches(id: string, globs: string[] | undefined): boolean {
  if (!globs?.length) return true;
  return globs.some((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(id));
}

/** The CLI's command line for these options; the access key and the callback secret are placeholders. */
export function commandLineOf(options: TargetOptions, program = 'call-automation-conformance'): string {
  const args = [program, '--base-url', shellQuote(options.baseUrl), '--connection-string', shellQuote(`endpoint=${options.baseUrl}/;accesskey=<access key>`)];
  if (options.callbackSecret) args.push('--callback-secret', shellQuote('<callback secret>'));
  if (options.callbackUrl) args.push('--callback-url', shellQuote(options.callbackUrl));
  if (options.controlUrl) args.push('--control-url', shellQuote(options.controlUrl));
  if (options.expectReplayRefusal) args.push('--expect-replay-refusal');
  return args.join(' ');
}

/** An unexpected error, short: its message and where it was thrown (the first stack frame), not the whole stack. */
function unexpected(error: unknown): string {
  if (!(error instanceof Error)) return `the check could not run: ${String(error)}`;
  const frame = error.stack?.split('\n').find((line) => /^\s+at /.test(line))?.trim();
  return `the check could not run: ${error.name}: ${error.message}${frame ? ` (${frame})` : ''}`;
}

/** Runs the checks against the target, one at a time, each with its own context. */
export async function runChecks(options: RunOptions): Promise<CheckResult[]> {
  const contract = options.contract ?? new Contract();
  const signer = createDistinctSigner(options.accessKey);
  const commandLine = options.commandLine ?? commandLineOf(options);
  const results: CheckResult[] = [];
  for (const check of (options.checks ?? allChecks).filter((c) => matches(c.id, options.only))) {
    const context = new CheckContext(contract, options, signer);
    const started = performance.now();
    let result: CheckResult;
    // The request to show with a failure: the one the check failed on, else the first whose answer broke the spec.
    let blamed: SentRequest | undefined;
    try {
      await check.run(context);
      result = context.problems.length
        ? { id: check.id, title: check.title, status: 'failed', message: context.problems.join('\n'), durationMs: 0, requests: 0 }
        : { id: check.id, title: check.title, status: 'passed', durationMs: 0, requests: 0 };
      blamed = context.blamed;
    } catch (error) {
      if (error instanceof CheckSkipped) result = { id: check.id, title: check.title, status: 'skipped', message: error.message, durationMs: 0, requests: 0 };
      else {
        const message = error instanceof CheckFailed ? error.message : unexpected(error);
        result = { id: check.id, title: check.title, status: 'failed', message: [message, ...context.problems].join('\n'), durationMs: 0, requests: 0 };
        blamed = (error instanceof CheckFailed ? error.request : undefined) ?? context.blamed;
      }
    }
    result.durationMs = Math.round(performance.now() - started);
    if (result.status === 'failed') {
      result.reproduce = { command: `${commandLine} --only ${shellQuote(check.id)} --seed ${options.seed}` };
      if (blamed) result.reproduce.curl = await curlCommand(blamed);
    }
    result.requests = context.requestsSent;
    if (context.notes.length) result.notes = [...context.notes];
    results.push(result);
    options.onResult?.(result);
  }
  return results;
}
