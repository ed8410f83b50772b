import { operationTable, type OperationEntry } from '@call-automation/contract';

/** An operation of the spec, ready to serve: its header names in lower case, its statuses as a set. */
export type Operation = OperationEntry & { headerNames: string[]; statusSet: Set<number> };

/** What a method and path come to. */
export type RouteMatch =
  | { kind: 'operation'; operation: Operation; params: Record<string, string> }
  /** The path is the API's, the method is not one of its: 405 with Allow. */
  | { kind: 'method-not-allowed'; allow: readonly string[] }
  | { kind: 'not-found' };

interface PathEntry {
  /** The path's segments: a literal, or null for a parameter. */
  segments: Array<string | null>;
  /** The parameters' names, in the order they appear. */
  names: string[];
  byMethod: Map<string, Operation>;
  allow: string[];
}

/**
 * A segment as sent, decoded as the parameter's value. A segment that is not valid
 * percent-encoding is taken as it is, as Hono takes it, so that both adapters route alike.
 */
function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Routes requests by the spec's operation table: the paths it names, with their methods. */
export function createRouter() {
  const served: Operation[] = Object.values(operationTable).map((entry) => ({
    ...(entry as OperationEntry),
    headerNames: entry.headers.map((name: string) => name.toLowerCase()),
    statusSet: new Set<number>(entry.statuses),
  }));
  const paths = new Map<string, PathEntry>();
  for (const operation of served) {
    let entry = paths.get(operation.path);
    if (!entry) {
      const segments = operation.path.split('/').slice(1);
      entry = {
        segments: segments.map((segment) => (/^\{[^}]+\}$/.test(segment) ? null : segment)),
        names: segments.filter((segment) => segment.startsWith('{')).map((segment) => segment.slice(1, -1)),
        byMethod: new Map(),
        allow: [],
      };
      paths.set(operation.path, entry);
    }
    entry.byMethod.set(operation.method, operation);
    entry.allow.push(operation.method);
  }
  const entries = [...paths.values()];

  function match(method: string, path: string): RouteMatch {
    const segments = path.split('/');
    if (segments[0] !== '') return { kind: 'not-found' };
    for (const entry of entries) {
      if (segments.length - 1 !== entry.segments.length) continue;
      const values: string[] = [];
      let matched = true;
      for (let i = 0; i < entry.segments.length; i++) {
        const literal = entry.segments[i];
        const segment = segments[i + 1]!;
        if (literal === null) {
          if (segment === '') {
            matched = false;
            break;
          }
          values.push(segment);
        } else if (literal !== segment && literal !== decodeSegment(segment)) {
          matched = false;
          break;
        }
      }
      if (!matched) continue;
      const operation = entry.byMethod.get(method);
      if (!operation) return { kind: 'method-not-allowed', allow: entry.allow };
      const params: Record<string, string> = {};
      for (let i = 0; i < values.length; i++) params[entry.names[i]!] = decodeSegment(values[i]!);
      return { kind: 'operation', operation, params };
    }
    return { kind: 'not-found' };
  }

  return { operations: served, paths: entries, match };
}
