import { patternHints, type components, type ValidationIssue } from '@call-automation/contract';

export type CommunicationError = components['schemas']['CommunicationError'];

/**
 * An error answer in the API's error body. Throw it from a handler (`throw new ApiError(404,
 * 'CallNotFound', …)`) or from a hook; the stub answers it if the operation documents its status,
 * and answers 500 otherwise.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** `cause`: what made the service answer so (a store that failed), for `onError`; never in the body. */
    readonly options: { target?: string; details?: CommunicationError[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }

  get body(): CommunicationError {
    return {
      code: this.code,
      message: this.message,
      ...(this.options.target === undefined ? {} : { target: this.options.target }),
      ...(this.options.details === undefined ? {} : { details: this.options.details }),
    };
  }
}

export type { ValidationIssue };

const codes: Record<string, string> = {
  required: 'Required',
  additionalProperties: 'UnknownProperty',
  type: 'InvalidType',
  enum: 'InvalidValue',
  const: 'InvalidValue',
  maxLength: 'TooLong',
  minLength: 'TooShort',
  maxItems: 'TooMany',
  minItems: 'TooFew',
  format: 'InvalidFormat',
  pattern: 'InvalidFormat',
  uniqueItems: 'NotUnique',
  oneOf: 'NotExactlyOne',
  maximum: 'InvalidValue',
  minimum: 'InvalidValue',
};

function escape(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * One `details` entry per violated rule, each naming its field as a JSON pointer under `prefix`.
 * Within a failed oneOf (an identifier), the branches' complaints about the value itself (a
 * missing or unknown kind) are left out: "must be exactly one of" says more. But when the value
 * chose a kind and got its content wrong (a phone number not in E.164 form), that content's
 * errors are what the caller needs, and they are given instead. A pattern is explained in words
 * where the spec describes it.
 */
export function toDetails(issues: readonly ValidationIssue[], prefix = ''): CommunicationError[] {
  const failedOneOf = issues.filter((i) => i.keyword === 'oneOf').map((i) => i.instancePath);
  const deeper = (i: ValidationIssue, path: string) => i.instancePath.startsWith(`${path}/`);
  /**
   * The field a failed oneOf's value chose, if it chose one: the other branches all refuse the
   * same one field (an identifier with phoneNumber alone), and the errors below the value are in it.
   */
  const chosen = new Map<string, string>();
  for (const path of failedOneOf) {
    const refused = new Set(issues.filter((i) => i.instancePath === path && i.keyword === 'additionalProperties').map((i) => String(i.params.additionalProperty)));
    const [field] = refused;
    if (refused.size === 1 && issues.some((i) => deeper(i, path)) && issues.every((i) => !deeper(i, path) || i.instancePath.startsWith(`${path}/${escape(field!)}`))) chosen.set(path, field!);
  }
  return issues
    .filter((issue) => {
      const path = failedOneOf.find((p) => issue.instancePath === p || deeper(issue, p));
      if (path === undefined) return true;
      if (chosen.has(path)) return deeper(issue, path);
      return issue.keyword === 'oneOf';
    })
    .map((issue) => {
      const property = (issue.params.missingProperty ?? issue.params.additionalProperty) as string | undefined;
      const target = `${prefix}${issue.instancePath}${property === undefined ? '' : `/${escape(property)}`}` || '/';
      let message = issue.message ?? 'is invalid';
      if (issue.keyword === 'additionalProperties') message = `is not a known field`;
      if (issue.keyword === 'oneOf') message = 'must be exactly one of the allowed kinds (for an identifier: communicationUser, phoneNumber or microsoftTeamsUser)';
      if (issue.keyword === 'enum') message = `must be one of ${(issue.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      const hint = issue.keyword === 'pattern' ? patternHints[issue.schemaPath.replace(/^.*?(#\/components\/)/, '$1').replace(/\/pattern$/, '')] : undefined;
      if (hint) message = `must be ${hint[0]!.toLowerCase()}${hint.slice(1)}`;
      return { code: codes[issue.keyword] ?? 'InvalidValue', message, target };
    });
}
