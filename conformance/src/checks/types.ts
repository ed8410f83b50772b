import type { CheckContext } from '../context.ts';

/** One claim about the target, checked by `run`: it passes unless it throws or the answers it saw break the spec. */
export interface Check {
  /** Dotted, stable, for --only: `auth.no-credentials`. */
  id: string;
  title: string;
  run(context: CheckContext): Promise<void>;
}
