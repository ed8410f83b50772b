import type { components, ValidationIssue } from '@call-automation/contract';

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
    readonly options: { target?: string; details?: CommunicationError[]; headers?: Record<string, string> } = {},
  ) {
    super(message);
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
 * The errors inside the branches of a failed oneOf are left out (every error at or below its
 * field, since a oneOf is all that checks an identifier): "must be exactly one of" says more than
 * every branch's complaint.
 */
export function toDetails(issues: readonly ValidationIssue[], prefix = ''): CommunicationError[] {
  const failedOneOf = issues.filter((i) => i.keyword === 'oneOf').map((i) => i.instancePath);
  return issues
    .filter((i) => i.keyword === 'oneOf' || !failedOneOf.some((path) => i.instancePath === path || i.instancePath.startsWith(`${path}/`)))
    .map((issue) => {
      const property = (issue.params.missingProperty ?? issue.params.additionalProperty) as string | undefined;
      const target = `${prefix}${issue.instancePath}${property === undefined ? '' : `/${escape(property)}`}` || '/';
      let message = issue.message ?? 'is invalid';
      if (issue.keyword === 'additionalProperties') message = `is not a known field`;
      if (issue.keyword === 'oneOf') message = 'must be exactly one of the allowed kinds (for an identifier: communicationUser, phoneNumber or microsoftTeamsUser)';
      if (issue.keyword === 'enum') message = `must be one of ${(issue.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
      return { code: codes[issue.keyword] ?? 'InvalidValue', message, target };
    });
}
