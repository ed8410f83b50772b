/**
 * The rules of `pnpm check:breaking`: what, between the released contract and the current one,
 * would break a client or a callback receiver built against the released one.
 *
 * Every value that crosses the wire is judged from the side of whoever did not change:
 *
 * - what the API's user writes and the service reads (request bodies and parameters, and a
 *   receiver's answer to a callback) breaks when the service accepts less than it did: a new
 *   required field, a tightened bound, an enum value removed;
 * - what the service writes and the user reads (responses, and callback events) breaks when the
 *   user may now meet something it could not before, or miss something it relied on: a field
 *   removed or made optional, a type widened, a closed enum's new value, a loosened bound.
 *
 * Both specs are bundled (only local `$ref`s into `components`). Schemas are compared as the
 * values they describe: `$ref`s are followed, `allOf` is merged, `oneOf`/`anyOf` alternatives
 * are matched by name, and a schema reached again through its own `$ref`s (the recursive
 * `CommunicationError.details`) is compared once, where it first appears.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Severity = 'breaking' | 'additive';

export interface Finding {
  /** A stable id, e.g. `response-field-removed`: grep the output for it. */
  rule: string;
  severity: Severity;
  /** The operation id or webhook, and the status when it is about a response: `createCall 200`. */
  where: string;
  /** The field as a JSON pointer into the body (`*` for any array item), or `header X`. */
  field?: string;
  /** What changed, in plain words, with why it breaks users when it does. */
  message: string;
}

/** One finding on one line: `createCall 200: response field /callLegId was removed (clients read it) [response-field-removed]`. */
export function formatFinding(finding: Finding): string {
  return `${finding.where}: ${finding.message} [${finding.rule}]`;
}

// ---------------------------------------------------------------------------------------------
// The rules. Each change to an exchanged value has one entry: the reason it breaks users when
// they write the value (`writes`) and when they read it (`reads`); without a reason, the change
// is additive for that side. `{users}` is clients or receivers, `{refused}` what a value the
// service no longer accepts gets. The rule id is the role (`request`, `response`, `event`,
// `event-response`) and the entry's name: `request-field-required`, `event-field-removed`.

const exchangeRules = {
  'field-removed': { writes: 'the body refuses unknown fields: {users} still sending it {refused}', reads: '{users} read it' },
  'field-ignored': {},
  'field-added': {},
  'field-required': { writes: '{users} not sending it {refused}' },
  'field-optional': { reads: '{users} expect it always present' },
  'type-narrowed': { writes: '{users} sending the other types {refused}' },
  'type-widened': { reads: '{users} parse it as the old type' },
  'type-changed': { writes: '{users} sending the old type {refused}', reads: '{users} parse it as the old type' },
  'enum-value-removed': { writes: '{users} sending it {refused}' },
  'enum-value-added': { reads: 'the enum is closed: {users} switching on it meet a value they do not know' },
  'open-enum-value-added': {},
  'bound-tightened': { writes: '{users} sending values within the old bound {refused}' },
  'bound-loosened': { reads: '{users} may rely on the old bound, e.g. in storage sized to it' },
  'pattern-added': { writes: '{users} sending values that do not match it {refused}' },
  'pattern-removed': { reads: '{users} may rely on the old pattern' },
  'pattern-changed': { writes: '{users} sending values that matched the old one {refused}', reads: '{users} may rely on the old pattern' },
  'format-added': { writes: '{users} sending values not in that format {refused}' },
  'format-removed': { reads: '{users} may parse it in the old format' },
  'format-changed': { writes: '{users} sending the old format {refused}', reads: '{users} parse it in the old format' },
  'unknown-fields-refused': { writes: '{users} sending fields it does not list {refused}' },
  'unknown-fields-allowed': {},
  'variant-removed': { writes: '{users} sending that form {refused}' },
  // A new form of a union is additive on both sides: unions of events are how the API grows (a
  // new webhook is additive), and readers of a union skip the forms they do not know.
  'variant-added': {},
  'default-changed': { writes: '{users} omitting it get another value than before' },
  'parameter-removed': { reads: '{users} read it' },
  'parameter-required': { writes: '{users} not sending it {refused}' },
  'parameter-optional': { reads: '{users} expect it always present' },
  'parameter-added': {},
  'header-removed': { reads: '{users} read it' },
  'header-required': { writes: '{users} not sending it {refused}' },
  'header-optional': { reads: '{users} expect it always present' },
  'header-added': {},
  'body-required': { writes: '{users} sending no body {refused}' },
  'body-optional': { reads: '{users} expect a body' },
  'media-type-removed': { writes: '{users} sending it {refused}', reads: '{users} parse it' },
  'media-type-added': {},
  'status-removed': { writes: '{users} answer it and rely on what the service then does', reads: '{users} handle it' },
  'status-added': {},
} satisfies Record<string, { writes?: string; reads?: string }>;

type ExchangeRule = keyof typeof exchangeRules;

/**
 * The four places a value crosses the wire. `writes`: the API's user writes it and the service
 * reads it.
 */
interface Role {
  id: 'request' | 'response' | 'event' | 'event-response';
  writes: boolean;
  users: 'clients' | 'receivers';
  /** How messages name the role's values: `request field /x`, `response header Y`. */
  noun: 'request' | 'response' | 'event';
  refused: string;
}

const roles = {
  request: { id: 'request', writes: true, users: 'clients', noun: 'request', refused: 'now get 400' },
  response: { id: 'response', writes: false, users: 'clients', noun: 'response', refused: '' },
  event: { id: 'event', writes: false, users: 'receivers', noun: 'event', refused: '' },
  eventResponse: { id: 'event-response', writes: true, users: 'receivers', noun: 'response', refused: 'now have their answer refused' },
} satisfies Record<string, Role>;

// Changes to the API's surface rather than to a value: their ids and reasons are written where
// they are found (operation-removed, operation-moved, operation-added, security-changed,
// security-loosened, security-scheme-changed, webhook-removed, webhook-added, callback-removed,
// callback-added).

// ---------------------------------------------------------------------------------------------
// Reading the specs.

interface Specs {
  before: JsonObject;
  after: JsonObject;
  out: Finding[];
  /** How deep the schema comparison is now. */
  depth: number;
}

const methods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function entries(value: Json | undefined): Array<[string, Json]> {
  return isObject(value) ? Object.entries(value) : [];
}

function list(value: Json | undefined): Json[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function strings(value: Json | undefined): string[] {
  return list(value).filter((item): item is string => typeof item === 'string');
}

function same(a: Json | undefined, b: Json | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The node a local `$ref` (`#/components/schemas/X`) points at. */
function target(doc: JsonObject, ref: string): Json | undefined {
  if (!ref.startsWith('#')) throw new Error(`A bundled spec has only local $refs, not ${ref}`);
  let node: Json | undefined = doc;
  for (const part of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(part).replaceAll('~1', '/').replaceAll('~0', '~');
    node = Array.isArray(node) ? node[Number(key)] : isObject(node) ? node[key] : undefined;
  }
  return node;
}

/** A parameter, response, path item…: its `$ref`s followed (a loop of them gives nothing). */
function deref(doc: JsonObject, value: Json | undefined): JsonObject | undefined {
  const seen = new Set<string>();
  while (isObject(value) && typeof value.$ref === 'string' && !seen.has(value.$ref)) {
    seen.add(value.$ref);
    value = target(doc, value.$ref);
  }
  return isObject(value) && typeof value.$ref !== 'string' ? value : undefined;
}

function escapePointer(name: string): string {
  return name.replaceAll('~', '~0').replaceAll('/', '~1');
}

// ---------------------------------------------------------------------------------------------
// A schema as the set of values it allows: $refs followed and allOf merged, one level deep (the
// properties' and items' schemas are read when the comparison gets there, which is what keeps
// recursive schemas finite).

const upperBounds = ['maxLength', 'maxItems', 'maxProperties', 'maximum', 'exclusiveMaximum'] as const;
const lowerBounds = ['minLength', 'minItems', 'minProperties', 'minimum', 'exclusiveMinimum'] as const;
type Bound = (typeof upperBounds)[number] | (typeof lowerBounds)[number];

interface View {
  /** The `$ref`s this schema went through: its identity, for the cycle guard. */
  refs: string[];
  /** JSON types allowed; undefined: any. */
  types?: Set<string>;
  /** `enum`, or `const` as one value; undefined: any value. */
  values?: Json[];
  /** Marked extensible with `x-ms-enum: {modelAsString: true}` (Azure's convention). */
  openEnum: boolean;
  bounds: Partial<Record<Bound, number>>;
  multipleOf?: number;
  uniqueItems: boolean;
  patterns: string[];
  format?: string;
  default?: { value: Json };
  readOnly: boolean;
  writeOnly: boolean;
  /** Each property with every schema it must match (more than one under allOf). */
  properties: Map<string, Json[]>;
  required: Set<string>;
  /** `additionalProperties: false` (or `unevaluatedProperties: false`). */
  closed: boolean;
  /** Schemas of the values of a map (`additionalProperties: {…}`). */
  mapValues: Json[];
  items: Json[];
  /** The alternatives of a `oneOf` or `anyOf`. */
  variants?: Json[];
}

function view(doc: JsonObject, schemas: Json[]): View {
  const result: View = { refs: [], openEnum: false, bounds: {}, uniqueItems: false, patterns: [], readOnly: false, writeOnly: false, properties: new Map(), required: new Set(), closed: false, mapValues: [], items: [] };
  const chain = new Set<string>();
  for (const schema of schemas) absorb(doc, result, schema, chain);
  return result;
}

/** Adds what `schema` requires to `into`, as allOf does. */
function absorb(doc: JsonObject, into: View, schema: Json | undefined, chain: Set<string>): void {
  if (schema === false) into.types = new Set();
  if (!isObject(schema)) return;
  // In OpenAPI 3.1 a $ref's siblings apply too, so the target and the siblings are both absorbed.
  if (typeof schema.$ref === 'string' && !chain.has(schema.$ref)) {
    chain.add(schema.$ref);
    into.refs.push(schema.$ref);
    absorb(doc, into, target(doc, schema.$ref), chain);
  }
  for (const part of list(schema.allOf)) absorb(doc, into, part, chain);

  if (schema.type !== undefined) into.types = intersectTypes(into.types, new Set(strings(schema.type)));
  const values = 'const' in schema ? [schema.const ?? null] : Array.isArray(schema.enum) ? schema.enum : undefined;
  if (values) into.values = into.values ? into.values.filter((v) => values.some((w) => same(v, w))) : values;
  const msEnum = schema['x-ms-enum'];
  if (isObject(msEnum) && msEnum.modelAsString === true) into.openEnum = true;
  for (const keyword of upperBounds) {
    const value = schema[keyword];
    if (typeof value === 'number') into.bounds[keyword] = Math.min(value, into.bounds[keyword] ?? Infinity);
  }
  for (const keyword of lowerBounds) {
    const value = schema[keyword];
    if (typeof value === 'number') into.bounds[keyword] = Math.max(value, into.bounds[keyword] ?? -Infinity);
  }
  if (typeof schema.multipleOf === 'number') into.multipleOf = schema.multipleOf;
  if (schema.uniqueItems === true) into.uniqueItems = true;
  if (typeof schema.pattern === 'string' && !into.patterns.includes(schema.pattern)) into.patterns.push(schema.pattern);
  if (typeof schema.format === 'string') into.format ??= schema.format;
  if ('default' in schema && !into.default) into.default = { value: schema.default ?? null };
  if (schema.readOnly === true) into.readOnly = true;
  if (schema.writeOnly === true) into.writeOnly = true;
  for (const [name, property] of entries(schema.properties)) into.properties.set(name, [...(into.properties.get(name) ?? []), property]);
  for (const name of strings(schema.required)) into.required.add(name);
  if (schema.additionalProperties === false || schema.unevaluatedProperties === false) into.closed = true;
  if (isObject(schema.additionalProperties)) into.mapValues.push(schema.additionalProperties);
  if (schema.items !== undefined) into.items.push(schema.items);
  // A second union under one allOf is rare enough to leave out; the first is compared.
  const variants = Array.isArray(schema.oneOf) ? schema.oneOf : Array.isArray(schema.anyOf) ? schema.anyOf : undefined;
  if (variants) into.variants ??= variants;
}

function intersectTypes(a: Set<string> | undefined, b: Set<string>): Set<string> {
  if (!a) return b;
  const both = new Set<string>();
  for (const type of a) {
    if (b.has(type)) both.add(type);
    else if ((type === 'number' && b.has('integer')) || (type === 'integer' && b.has('number'))) both.add('integer');
  }
  return both;
}

/** Whether a value of JSON type `type` is allowed by `types` (an integer is a number). */
function allows(types: Set<string> | undefined, type: string): boolean {
  return !types || types.has(type) || (type === 'integer' && types.has('number'));
}

// ---------------------------------------------------------------------------------------------
// Reporting.

/** Where a value is, and how messages name it. */
interface Place {
  where: string;
  role: Role;
  name(pointer: string): string;
  field(pointer: string): string | undefined;
}

function bodyPlace(where: string, role: Role): Place {
  return { where, role, name: (pointer) => (pointer ? `${role.noun} field ${pointer}` : `${role.noun} body`), field: (pointer) => pointer || '/' };
}

function namedPlace(where: string, role: Role, kind: string, name: string): Place {
  return { where, role, name: (pointer) => `${role.noun} ${kind} ${name}${pointer}`, field: (pointer) => `${kind} ${name}${pointer}` };
}

function report(specs: Specs, place: Place, rule: ExchangeRule, pointer: string, what: string): void {
  const reasons: { writes?: string; reads?: string } = exchangeRules[rule];
  const reason = place.role.writes ? reasons.writes : reasons.reads;
  const why = reason?.replaceAll('{users}', place.role.users).replaceAll('{refused}', place.role.refused);
  const field = place.field(pointer);
  specs.out.push({
    rule: `${place.role.id}-${rule}`,
    severity: why ? 'breaking' : 'additive',
    where: place.where,
    ...(field === undefined ? {} : { field }),
    message: `${place.name(pointer)}${what}${why ? ` (${why})` : ''}`,
  });
}

function surface(specs: Specs, rule: string, severity: Severity, where: string, message: string): void {
  specs.out.push({ rule, severity, where, message });
}

// ---------------------------------------------------------------------------------------------
// Schemas: one function per aspect of the values a schema allows.

type SchemaRule = (specs: Specs, place: Place, pointer: string, before: View, after: View) => void;

function describeTypes(types: Set<string> | undefined): string {
  return types ? [...types].join(' or ') || 'nothing' : 'any type';
}

const typeRule: SchemaRule = (specs, place, pointer, before, after) => {
  if (same(before.types && [...before.types].sort(), after.types && [...after.types].sort())) return;
  const lost = !after.types ? false : !before.types ? true : [...before.types].some((type) => !allows(after.types, type));
  const gained = !before.types ? false : !after.types ? true : [...after.types].some((type) => !allows(before.types, type));
  const rule = lost && gained ? 'type-changed' : lost ? 'type-narrowed' : 'type-widened';
  report(specs, place, rule, pointer, `: type ${rule.slice(5)} from ${describeTypes(before.types)} to ${describeTypes(after.types)}`);
};

const enumRule: SchemaRule = (specs, place, pointer, before, after) => {
  // Only the released contract's mark counts: marking an enum open while adding to it is still breaking.
  const open = before.openEnum;
  if (!before.values && !after.values) return;
  if (!after.values) {
    report(specs, place, open ? 'open-enum-value-added' : 'enum-value-added', pointer, `: no longer limited to ${before.values!.map((v) => JSON.stringify(v)).join(', ')}`);
    return;
  }
  if (!before.values) {
    report(specs, place, 'enum-value-removed', pointer, `: now limited to ${after.values.map((v) => JSON.stringify(v)).join(', ')}`);
    return;
  }
  for (const value of before.values) {
    if (!after.values.some((v) => same(v, value))) report(specs, place, 'enum-value-removed', pointer, `: enum value ${JSON.stringify(value)} was removed`);
  }
  for (const value of after.values) {
    if (!before.values.some((v) => same(v, value))) report(specs, place, open ? 'open-enum-value-added' : 'enum-value-added', pointer, `: enum value ${JSON.stringify(value)} was added`);
  }
};

const boundRule: SchemaRule = (specs, place, pointer, before, after) => {
  for (const keyword of [...upperBounds, ...lowerBounds]) {
    const was = before.bounds[keyword];
    const is = after.bounds[keyword];
    if (was === is) continue;
    const upper = (upperBounds as readonly string[]).includes(keyword);
    const tightened = is !== undefined && (was === undefined || (upper ? is < was : is > was));
    const what = was === undefined ? `${keyword} ${is} added` : is === undefined ? `${keyword} ${was} removed` : `${keyword} ${is < was ? 'decreased' : 'increased'} from ${was} to ${is}`;
    report(specs, place, tightened ? 'bound-tightened' : 'bound-loosened', pointer, `: ${what}`);
  }
  if (before.multipleOf !== after.multipleOf) {
    // The old values are still allowed when they are multiples of the new step.
    const tightened = after.multipleOf !== undefined && (before.multipleOf === undefined || before.multipleOf % after.multipleOf !== 0);
    report(specs, place, tightened ? 'bound-tightened' : 'bound-loosened', pointer, `: multipleOf changed from ${before.multipleOf ?? 'none'} to ${after.multipleOf ?? 'none'}`);
  }
  if (before.uniqueItems !== after.uniqueItems) {
    report(specs, place, after.uniqueItems ? 'bound-tightened' : 'bound-loosened', pointer, `: uniqueItems ${after.uniqueItems ? 'added' : 'removed'}`);
  }
};

const patternRule: SchemaRule = (specs, place, pointer, before, after) => {
  const added = after.patterns.filter((p) => !before.patterns.includes(p));
  const removed = before.patterns.filter((p) => !after.patterns.includes(p));
  if (added.length === 1 && removed.length === 1) {
    report(specs, place, 'pattern-changed', pointer, `: pattern changed from /${removed[0]}/ to /${added[0]}/`);
    return;
  }
  for (const pattern of added) report(specs, place, 'pattern-added', pointer, `: pattern /${pattern}/ added`);
  for (const pattern of removed) report(specs, place, 'pattern-removed', pointer, `: pattern /${pattern}/ removed`);
};

const formatRule: SchemaRule = (specs, place, pointer, before, after) => {
  if (before.format === after.format) return;
  if (before.format === undefined) report(specs, place, 'format-added', pointer, `: format ${after.format} added`);
  else if (after.format === undefined) report(specs, place, 'format-removed', pointer, `: format ${before.format} removed`);
  else report(specs, place, 'format-changed', pointer, `: format changed from ${before.format} to ${after.format}`);
};

const defaultRule: SchemaRule = (specs, place, pointer, before, after) => {
  // A default only matters to whoever may omit the value.
  if (!place.role.writes || !before.default || same(before.default.value, after.default?.value)) return;
  const now = after.default ? JSON.stringify(after.default.value) : 'none';
  report(specs, place, 'default-changed', pointer, `: default changed from ${JSON.stringify(before.default.value)} to ${now}`);
};

const unknownFieldsRule: SchemaRule = (specs, place, pointer, before, after) => {
  if (!before.closed && after.closed) report(specs, place, 'unknown-fields-refused', pointer, ': now refuses fields it does not list (additionalProperties: false)');
  if (before.closed && !after.closed) report(specs, place, 'unknown-fields-allowed', pointer, ': now allows fields it does not list');
};

const schemaRules: SchemaRule[] = [typeRule, enumRule, boundRule, patternRule, formatRule, defaultRule, unknownFieldsRule];

// A backstop: the cycle guard already ends every recursion a bundled spec can hold.
const maxDepth = 64;

function compareSchemas(specs: Specs, place: Place, pointer: string, before: Json[], after: Json[], trail: Set<string>): void {
  const was = view(specs.before, before);
  const is = view(specs.after, after);
  // The same pair of named schemas met again below itself is a cycle (CommunicationError.details):
  // it was compared where it first appeared.
  const identity = was.refs.length || is.refs.length ? `${was.refs.join(' ')} > ${is.refs.join(' ')}` : undefined;
  if ((identity && trail.has(identity)) || specs.depth > maxDepth) return;
  if (identity) trail.add(identity);
  specs.depth += 1;
  for (const rule of schemaRules) rule(specs, place, pointer, was, is);
  compareProperties(specs, place, pointer, was, is, trail);
  if (was.items.length || is.items.length) compareSchemas(specs, place, `${pointer}/*`, was.items, is.items, trail);
  if (was.mapValues.length || is.mapValues.length) compareSchemas(specs, place, `${pointer}/*`, was.mapValues, is.mapValues, trail);
  compareVariants(specs, place, pointer, was, is, trail);
  specs.depth -= 1;
  if (identity) trail.delete(identity);
}

function compareProperties(specs: Specs, place: Place, pointer: string, before: View, after: View, trail: Set<string>): void {
  const writes = place.role.writes;
  // readOnly fields are only read, writeOnly fields only written.
  const skipped = (doc: JsonObject, schemas: Json[]) => {
    const property = view(doc, schemas);
    return writes ? property.readOnly : property.writeOnly;
  };
  const names = new Set([...before.properties.keys(), ...before.required, ...after.properties.keys(), ...after.required]);
  const added = [...names].filter((name) => !before.properties.has(name) && !before.required.has(name));
  for (const name of names) {
    const at = `${pointer}/${escapePointer(name)}`;
    const was = before.properties.get(name) ?? [];
    const is = after.properties.get(name) ?? [];
    const existed = before.properties.has(name) || before.required.has(name);
    const exists = after.properties.has(name) || after.required.has(name);
    if (skipped(specs.before, was) || skipped(specs.after, is)) continue;
    if (existed && !exists) {
      if (writes && !after.closed) {
        report(specs, place, 'field-ignored', at, ' was removed; the service ignores it now');
        continue;
      }
      // A field added beside it with the same schema is most likely its new name.
      const renamed = added.find((other) => after.properties.has(other) && same(after.properties.get(other), was));
      report(specs, place, 'field-removed', at, renamed ? ` was removed, apparently renamed to ${pointer}/${escapePointer(renamed)}` : ' was removed');
      continue;
    }
    if (!existed) {
      if (writes && after.required.has(name)) report(specs, place, 'field-required', at, ' is new and required');
      else report(specs, place, 'field-added', at, ' was added');
      continue;
    }
    if (before.required.has(name) && !after.required.has(name)) report(specs, place, 'field-optional', at, ' became optional');
    if (!before.required.has(name) && after.required.has(name)) report(specs, place, 'field-required', at, ' became required');
    compareSchemas(specs, place, at, was, is, trail);
  }
}

/** How an alternative of a union is known: the schema it refers to, its title, or its position. */
function variantName(variant: Json, index: number): string {
  if (isObject(variant) && typeof variant.$ref === 'string') return variant.$ref.split('/').pop()!;
  if (isObject(variant) && typeof variant.title === 'string') return variant.title;
  return `form ${index + 1}`;
}

function compareVariants(specs: Specs, place: Place, pointer: string, before: View, after: View, trail: Set<string>): void {
  // A union that appears or disappears is judged by the type rule alone.
  if (!before.variants || !after.variants) return;
  const later = new Map(after.variants.map((variant, index) => [variantName(variant, index), variant]));
  const earlier = new Map(before.variants.map((variant, index) => [variantName(variant, index), variant]));
  for (const [name, variant] of earlier) {
    const match = later.get(name);
    if (match === undefined) {
      report(specs, place, 'variant-removed', pointer, `: form ${name} was removed`);
      continue;
    }
    compareSchemas(specs, variantPlace(place, name), pointer, [variant], [match], trail);
  }
  for (const name of later.keys()) {
    if (!earlier.has(name)) report(specs, place, 'variant-added', pointer, `: form ${name} was added`);
  }
}

/** The place of a union's alternative: its messages say which alternative they are about. */
function variantPlace(place: Place, variant: string): Place {
  return { ...place, name: (pointer) => `${place.name(pointer)} of ${variant}` };
}

// ---------------------------------------------------------------------------------------------
// Parameters, headers, bodies and responses.

function schemaOf(parameter: JsonObject): Json[] {
  if (parameter.schema !== undefined) return [parameter.schema];
  const media = entries(parameter.content)[0]?.[1];
  return isObject(media) && media.schema !== undefined ? [media.schema] : [];
}

/**
 * Parameters by location and name (header names ignore case). Path parameters are known by
 * their position in the template: renaming one changes no request.
 */
function parametersOf(doc: JsonObject, template: string, ...lists: Array<Json | undefined>): Map<string, JsonObject> {
  const names = [...template.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
  const found = new Map<string, JsonObject>();
  for (const raw of lists.flatMap(list)) {
    const parameter = deref(doc, raw);
    if (!parameter || typeof parameter.name !== 'string' || typeof parameter.in !== 'string') continue;
    const position = names.indexOf(parameter.name);
    const key = parameter.in === 'path' && position >= 0 ? `path #${position}` : `${parameter.in} ${parameter.in === 'header' ? parameter.name.toLowerCase() : parameter.name}`;
    found.set(key, parameter);
  }
  return found;
}

type Named = 'parameter' | 'header';

function compareNamed(specs: Specs, where: string, role: Role, kind: Named, before: Map<string, JsonObject>, after: Map<string, JsonObject>): void {
  const placeOf = (item: JsonObject, key: string) =>
    namedPlace(where, role, kind === 'header' ? 'header' : String(item.in), typeof item.name === 'string' ? item.name : key);
  for (const [key, was] of before) {
    const is = after.get(key);
    if (!is) {
      report(specs, placeOf(was, key), `${kind}-removed`, '', ' was removed');
      continue;
    }
    const place = placeOf(is, key);
    if (was.required !== true && is.required === true) report(specs, place, `${kind}-required`, '', ' became required');
    if (was.required === true && is.required !== true) report(specs, place, `${kind}-optional`, '', ' became optional');
    compareSchemas(specs, place, '', schemaOf(was), schemaOf(is), new Set());
  }
  for (const [key, is] of after) {
    if (before.has(key)) continue;
    if (is.required === true) report(specs, placeOf(is, key), `${kind}-required`, '', ' is new and required');
    else report(specs, placeOf(is, key), `${kind}-added`, '', ' was added');
  }
}

function headersOf(doc: JsonObject, headers: Json | undefined): Map<string, JsonObject> {
  const found = new Map<string, JsonObject>();
  for (const [name, raw] of entries(headers)) {
    const header = deref(doc, raw);
    if (header) found.set(name.toLowerCase(), { ...header, name });
  }
  return found;
}

function compareContent(specs: Specs, place: Place, before: Json | undefined, after: Json | undefined): void {
  const later = isObject(after) ? after : {};
  const typePlace = { ...place, name: () => `${place.role.noun} media type`, field: () => undefined };
  for (const [type, media] of entries(before)) {
    const match = later[type];
    if (match === undefined) {
      report(specs, typePlace, 'media-type-removed', '', ` ${type} was removed`);
      continue;
    }
    const schemas = (value: Json) => (isObject(value) && value.schema !== undefined ? [value.schema] : []);
    compareSchemas(specs, place, '', schemas(media), schemas(match), new Set());
  }
  for (const type of Object.keys(later)) {
    if (!isObject(before) || !(type in before)) report(specs, typePlace, 'media-type-added', '', ` ${type} was added`);
  }
}

function compareBody(specs: Specs, where: string, role: Role, before: Json | undefined, after: Json | undefined): void {
  const was = deref(specs.before, before);
  const is = deref(specs.after, after);
  if (!was && !is) return;
  const place = bodyPlace(where, role);
  if (was?.required !== true && is?.required === true) report(specs, place, 'body-required', '', ' became required');
  if (was?.required === true && is?.required !== true) report(specs, place, 'body-optional', '', ' became optional');
  compareContent(specs, place, was?.content, is?.content);
}

/** `role` is whoever reads the responses' bodies: clients for operations, the service for callbacks. */
function compareResponses(specs: Specs, label: string, role: Role, before: Json | undefined, after: Json | undefined): void {
  const later = isObject(after) ? after : {};
  for (const [status, response] of entries(before)) {
    const where = `${label} ${status}`;
    const match = later[status];
    if (match === undefined) {
      report(specs, { where, role, name: () => `response ${status}`, field: () => undefined }, 'status-removed', '', ' was removed');
      continue;
    }
    const was = deref(specs.before, response);
    const is = deref(specs.after, match);
    compareNamed(specs, where, role, 'header', headersOf(specs.before, was?.headers), headersOf(specs.after, is?.headers));
    compareContent(specs, bodyPlace(where, role), was?.content, is?.content);
  }
  for (const status of Object.keys(later)) {
    if (!isObject(before) || !(status in before)) {
      report(specs, { where: `${label} ${status}`, role, name: () => `response ${status}`, field: () => undefined }, 'status-added', '', ' was added');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Operations and events.

interface Operation {
  key: string;
  method: string;
  path: string;
  node: JsonObject;
  parameters: Map<string, JsonObject>;
}

/** Operations by operationId (by method and path when they have none). */
function operationsOf(doc: JsonObject): Map<string, Operation> {
  const found = new Map<string, Operation>();
  for (const [path, raw] of entries(doc.paths)) {
    const item = deref(doc, raw);
    if (!item) continue;
    for (const method of methods) {
      const node = item[method];
      if (!isObject(node)) continue;
      const key = typeof node.operationId === 'string' ? node.operationId : `${method.toUpperCase()} ${path}`;
      found.set(key, { key, method, path, node, parameters: parametersOf(doc, path, item.parameters, node.parameters) });
    }
  }
  return found;
}

/** Method and path, with the path parameters' names left out (they change no request). */
function route(operation: Operation): string {
  return `${operation.method.toUpperCase()} ${operation.path.replace(/\{[^}]+\}/g, '{}')}`;
}

function describeRoute(operation: Operation): string {
  return `${operation.method.toUpperCase()} ${operation.path}`;
}

function compareOperations(specs: Specs): void {
  const before = operationsOf(specs.before);
  const after = operationsOf(specs.after);
  const byRoute = new Map([...after.values()].map((operation) => [route(operation), operation]));
  for (const [key, was] of before) {
    const is = after.get(key);
    if (!is) {
      const successor = byRoute.get(route(was));
      if (successor && !before.has(successor.key)) {
        surface(specs, 'operation-removed', 'breaking', key, `operation ${describeRoute(was)} was removed: its operationId is now ${successor.key} (generated clients name their methods after it)`);
      } else {
        surface(specs, 'operation-removed', 'breaking', key, `operation ${describeRoute(was)} was removed (clients calling it get 404 or 405)`);
      }
      continue;
    }
    if (route(was) !== route(is)) {
      surface(specs, 'operation-moved', 'breaking', key, `operation moved from ${describeRoute(was)} to ${describeRoute(is)} (clients call the old method and path)`);
    }
    compareSecurity(specs, key, was.node, is.node);
    compareNamed(specs, key, roles.request, 'parameter', was.parameters, is.parameters);
    compareBody(specs, key, roles.request, was.node.requestBody, is.node.requestBody);
    compareResponses(specs, key, roles.response, was.node.responses, is.node.responses);
  }
  for (const [key, is] of after) {
    if (!before.has(key)) surface(specs, 'operation-added', 'additive', key, `operation ${describeRoute(is)} was added`);
  }
}

interface CallbackEvent {
  kind: 'webhook' | 'callback';
  label: string;
  node: JsonObject;
  parameters: Map<string, JsonObject>;
}

/** What the service sends: the webhooks, and the callbacks of operations. */
function eventsOf(doc: JsonObject): Map<string, CallbackEvent> {
  const found = new Map<string, CallbackEvent>();
  const add = (kind: CallbackEvent['kind'], key: string, label: string, template: string, item: JsonObject) => {
    for (const method of methods) {
      const node = item[method];
      if (!isObject(node)) continue;
      const named = method === 'post' ? label : `${label} ${method.toUpperCase()}`;
      found.set(`${kind} ${key} ${method}`, { kind, label: named, node, parameters: parametersOf(doc, template, item.parameters, node.parameters) });
    }
  };
  for (const [name, raw] of entries(doc.webhooks)) {
    const item = deref(doc, raw);
    if (item) add('webhook', name, `webhook ${name}`, name, item);
  }
  for (const operation of operationsOf(doc).values()) {
    for (const [name, raw] of entries(operation.node.callbacks)) {
      for (const [expression, rawItem] of entries(deref(doc, raw))) {
        const item = deref(doc, rawItem);
        if (item) add('callback', `${operation.key} ${name} ${expression}`, `${operation.key} callback ${name}`, expression, item);
      }
    }
  }
  return found;
}

function compareEvents(specs: Specs): void {
  const before = eventsOf(specs.before);
  const after = eventsOf(specs.after);
  for (const [key, was] of before) {
    const is = after.get(key);
    if (!is) {
      surface(specs, `${was.kind}-removed`, 'breaking', was.label, `${was.kind === 'webhook' ? 'event' : 'callback'} was removed (receivers wait for it)`);
      continue;
    }
    compareNamed(specs, is.label, roles.event, 'parameter', was.parameters, is.parameters);
    compareBody(specs, is.label, roles.event, was.node.requestBody, is.node.requestBody);
    compareResponses(specs, is.label, roles.eventResponse, was.node.responses, is.node.responses);
  }
  for (const [key, is] of after) {
    if (!before.has(key)) surface(specs, `${is.kind}-added`, 'additive', is.label, `${is.kind === 'webhook' ? 'event' : 'callback'} was added`);
  }
}

// ---------------------------------------------------------------------------------------------
// Security.

/** One way to authenticate: each scheme it needs, with the scopes it needs. */
type Requirement = Map<string, Set<string>>;

function requirementsOf(doc: JsonObject, operation: JsonObject): Requirement[] {
  return list(operation.security ?? doc.security ?? [])
    .filter(isObject)
    .map((requirement) => new Map(Object.entries(requirement).map(([scheme, scopes]) => [scheme, new Set(strings(scopes))])));
}

/** Whether a client that meets `held` meets `asked` too. */
function meets(held: Requirement, asked: Requirement): boolean {
  return [...asked].every(([scheme, scopes]) => held.has(scheme) && [...scopes].every((scope) => held.get(scheme)!.has(scope)));
}

function describeRequirement(requirement: Requirement): string {
  if (requirement.size === 0) return 'no authentication';
  return [...requirement].map(([scheme, scopes]) => (scopes.size ? `${scheme} [${[...scopes].join(' ')}]` : scheme)).join(' and ');
}

function describeRequirements(requirements: Requirement[]): string {
  return requirements.length ? requirements.map(describeRequirement).join(' or ') : 'no authentication';
}

function compareSecurity(specs: Specs, where: string, before: JsonObject, after: JsonObject): void {
  const was = requirementsOf(specs.before, before);
  const is = requirementsOf(specs.after, after);
  // No requirement at all means anyone may call.
  const ways = (requirements: Requirement[]) => (requirements.length ? requirements : [new Map()]);
  const stranded = ways(was).filter((held) => !ways(is).some((asked) => meets(held, asked)));
  const change = `security changed from ${describeRequirements(was)} to ${describeRequirements(is)}`;
  if (stranded.length) {
    surface(specs, 'security-changed', 'breaking', where, `${change} (clients authenticating with ${stranded.map(describeRequirement).join(' or ')} now get 401)`);
  } else if (describeRequirements(was) !== describeRequirements(is)) {
    surface(specs, 'security-loosened', 'additive', where, change);
  }
}

/** What a client must send to authenticate with a scheme: everything but its prose. */
function schemeContract(scheme: JsonObject | undefined): JsonObject {
  return Object.fromEntries(Object.entries(scheme ?? {}).filter(([key]) => key !== 'description' && !key.startsWith('x-')));
}

function compareSecuritySchemes(specs: Specs): void {
  const after = isObject(specs.after.components) ? specs.after.components.securitySchemes : undefined;
  const before = isObject(specs.before.components) ? specs.before.components.securitySchemes : undefined;
  for (const [name, raw] of entries(before)) {
    const later = isObject(after) ? after[name] : undefined;
    // A scheme that is gone is reported on the operations that required it.
    if (later === undefined) continue;
    const was = schemeContract(deref(specs.before, raw));
    const is = schemeContract(deref(specs.after, later));
    const changed = [...new Set([...Object.keys(was), ...Object.keys(is)])].filter((key) => !same(was[key], is[key]));
    if (changed.length) {
      const what = changed.map((key) => `${key} ${JSON.stringify(was[key] ?? null)} → ${JSON.stringify(is[key] ?? null)}`).join(', ');
      surface(specs, 'security-scheme-changed', 'breaking', `security scheme ${name}`, `changed: ${what} (clients sending credentials as before now get 401)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The gate.

/** Every change from `before` (the released contract) to `after`, breaking or additive. */
export function compareContracts(before: JsonObject, after: JsonObject): Finding[] {
  const specs: Specs = { before, after, out: [], depth: 0 };
  compareOperations(specs);
  compareEvents(specs);
  compareSecuritySchemes(specs);
  // A schema shared by several fields of one body is reported once per field, but a finding met
  // twice on the same field (two routes through a union) only once.
  const seen = new Set<string>();
  return specs.out.filter((finding) => {
    const line = formatFinding(finding);
    return !seen.has(line) && (seen.add(line), true);
  });
}

export interface Verdict {
  releasedVersion: string;
  currentVersion: string;
  breaking: Finding[];
  additive: Finding[];
  /** info.version's major is above the released one's: the breaking changes are released deliberately. */
  majorBumped: boolean;
  passes: boolean;
}

function versionOf(doc: JsonObject): string {
  const version = isObject(doc.info) ? doc.info.version : undefined;
  return typeof version === 'string' ? version : '';
}

/** The major of a `major.minor.patch` version; undefined when it has none. */
export function majorOf(version: string): number | undefined {
  const match = /^v?(\d+)(?:\.|$)/.exec(version);
  return match ? Number(match[1]) : undefined;
}

export function judge(released: JsonObject, current: JsonObject): Verdict {
  const findings = compareContracts(released, current);
  const releasedVersion = versionOf(released);
  const currentVersion = versionOf(current);
  const releasedMajor = majorOf(releasedVersion);
  const currentMajor = majorOf(currentVersion);
  const majorBumped = releasedMajor !== undefined && currentMajor !== undefined && currentMajor > releasedMajor;
  const breaking = findings.filter((finding) => finding.severity === 'breaking');
  return {
    releasedVersion,
    currentVersion,
    breaking,
    additive: findings.filter((finding) => finding.severity === 'additive'),
    majorBumped,
    passes: breaking.length === 0 || majorBumped,
  };
}

function nextMajor(version: string): string {
  const major = majorOf(version);
  return major === undefined ? 'the next major' : `${major + 1}.0.0`;
}

/** The gate's report: what changed, and on failure what to do. `snapshot` names the released contract's file. */
export function renderVerdict(verdict: Verdict, snapshot: string): string {
  const lines: string[] = [];
  const items = (findings: Finding[]) => findings.map((finding) => `  ${formatFinding(finding)}`);
  const released = `the released contract (${snapshot}, ${verdict.releasedVersion})`;
  if (verdict.breaking.length === 0) {
    lines.push(verdict.additive.length ? `No breaking changes against ${released}.` : `No changes against ${released}.`);
  } else if (verdict.majorBumped) {
    lines.push(
      `Breaking changes accepted: info.version's major went from ${verdict.releasedVersion} (released) to ${verdict.currentVersion}, so these are released deliberately (${verdict.breaking.length}):`,
      ...items(verdict.breaking),
      `Release them by updating ${snapshot} in the release commit (\`pnpm check:breaking --accept\`).`,
    );
  } else {
    const count = verdict.breaking.length;
    lines.push(`${count} breaking change${count === 1 ? '' : 's'} against ${released}:`, ...items(verdict.breaking));
  }
  if (verdict.additive.length) lines.push('', `Additive, for the reviewer (${verdict.additive.length}):`, ...items(verdict.additive));
  if (!verdict.passes) {
    lines.push(
      '',
      `Clients and callback receivers built against ${verdict.releasedVersion} would break. Make the change additive (keep what was`,
      'released beside what replaces it, make new fields optional), or release it deliberately: bump',
      `info.version's major in spec/openapi.yaml (${verdict.releasedVersion} → ${nextMajor(verdict.releasedVersion)}) and update ${snapshot} (see its README.md).`,
    );
  }
  return lines.join('\n');
}
