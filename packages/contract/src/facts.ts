// The shape of the operation and event tables: what `pnpm generate` reads from the spec for every
// package. The generated tables are checked against it.

/** What every package needs to know of one operation, read from the spec. */
export interface OperationFacts {
  readonly operationId: string;
  readonly method: string;
  /** As the spec writes it: `/calls/{callId}/Hangup`. */
  readonly path: string;
  readonly pathParams: readonly string[];
  /** Header parameters, as the spec names them. */
  readonly headers: readonly string[];
  /** The component schema of the JSON body, or null when the operation takes none. */
  readonly body: string | null;
  readonly statuses: readonly number[];
  readonly successStatus: number;
  /** Takes Repeatability-Request-ID: a repeat answers the first result. */
  readonly repeatable: boolean;
  /** Ends in the same state however often it is sent (`x-idempotent`, or an idempotent method). */
  readonly idempotent: boolean;
  /** JSON pointers of the body fields holding URIs the service will contact (`x-contacted-uri`). */
  readonly contactedUris: readonly string[];
  /** The JSON pointer of the body field its callbacks go to (`callbacks` → `{$request.body#/…}`), or null. */
  readonly callbackUri: string | null;
  /**
   * The JSON pointer, in its success answer, of the id the other operations take (its `links`
   * map a path parameter to `$response.body#/…`), or null when it creates nothing.
   */
  readonly createdId: string | null;
  /** The path parameter the created id fills in the linked operations, or null. */
  readonly linkedParam: string | null;
  /** Ends the call it acts on (`x-ends-call`): every operation on it answers 404 afterwards. */
  readonly endsCall: boolean;
  /** The names of its generated validators. */
  readonly validators: { readonly body: string | null; readonly params: string | null; readonly headers: string | null };
}

/**
 * What a client needs to know of one operation to call it: the fields of its facts the client
 * reads, and no more, so that a browser bundle of the client carries only these.
 */
export type OperationRoute = Pick<OperationFacts, 'operationId' | 'method' | 'path' | 'pathParams' | 'body' | 'repeatable' | 'idempotent'>;

/** What every package needs to know of one callback event (a webhook of the spec). */
export interface EventFacts {
  readonly name: string;
  /** The CloudEvent `type` it is sent with. */
  readonly type: string;
  /** The component schema of the whole event. */
  readonly schema: string;
  /** The name of its generated validator. */
  readonly validator: string;
}
