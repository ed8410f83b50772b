import { CheckContext, CheckFailed, CheckSkipped, type TargetOptions } from './context.ts';
import { Contract } from './contract.ts';
import { allChecks, type Check } from './checks/index.ts';
import { createDistinctSigner } from './signing.ts';

export interface CheckResult {
  id: string;
  title: string;
  status: 'passed' | 'failed' | 'skipped';
  /** Why it failed or was skipped. */
  message?: string;
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
}

function matches(id: string, globs: string[] | undefined): boolean {
  if (!globs?.length) return true;
  return globs.some((glob) => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(id));
}

/** Runs the checks against the target, one at a time, each with its own context. */
export async function runChecks(options: RunOptions): Promise<CheckResult[]> {
  const contract = options.contract ?? new Contract();
  const signer = createDistinctSigner(options.accessKey);
  const results: CheckResult[] = [];
  for (const check of (options.checks ?? allChecks).filter((c) => matches(c.id, options.only))) {
    const context = new CheckContext(contract, options, signer);
    const started = performance.now();
    let result: CheckResult;
    try {
      await check.run(context);
      result = context.problems.length
        ? { id: check.id, title: check.title, status: 'failed', message: context.problems.join('\n'), durationMs: 0, requests: 0 }
        : { id: check.id, title: check.title, status: 'passed', durationMs: 0, requests: 0 };
    } catch (error) {
      if (error instanceof CheckSkipped) result = { id: check.id, title: check.title, status: 'skipped', message: error.message, durationMs: 0, requests: 0 };
      else {
        const message = error instanceof CheckFailed ? error.message : `the check could not run: ${(error as Error).stack ?? String(error)}`;
        result = { id: check.id, title: check.title, status: 'failed', message: [message, ...context.problems].join('\n'), durationMs: 0, requests: 0 };
      }
    }
    result.durationMs = Math.round(performance.now() - started);
    result.requests = context.exchanges.length;
    results.push(result);
    options.onResult?.(result);
  }
  return results;
}
