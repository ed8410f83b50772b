import type { RetryOptions } from './retry.ts';

/** What a single operation asks of its request, beyond the client's options. */
export interface OperationOptions {
  /** Aborting it stops the operation and any retries at once. */
  signal?: AbortSignal;
  /**
   * Extra headers for this request. They override the client's, including the repeatability
   * headers; a value of null removes one, undefined is skipped.
   */
  headers?: Record<string, string | null | undefined>;
  /** Retry settings for this operation, or false for none. */
  retry?: RetryOptions | false;
  /** This operation's per-attempt time limit. */
  timeoutMs?: number;
}
