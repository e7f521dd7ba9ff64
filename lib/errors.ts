/**
 * The one error catalogue. Every error streamfleet raises carries a stable code
 * (`SF_ERR_<AREA>_<WHAT>`), a message that says what to do, whether retrying can help, and
 * its cause. docs/errors.md is generated from CATALOGUE (a test fails when it is stale).
 */
export const CATALOGUE = {
  SF_ERR_TOPOLOGY_INVALID: { retriable: false, doc: "A topology file does not match the model; the message names the file, the path and what was expected." },
  SF_ERR_TOPOLOGY_LOAD: { retriable: false, doc: "A topology file or a module it names could not be read or imported." },
  SF_ERR_TOPOLOGY_RELOAD: { retriable: false, doc: "`streamfleet run --watch` refused a changed topology (it does not validate, its file was deleted or renamed, or the new version did not start); the running version is kept, and the log line says why (`cause` is the underlying code). Fix the file: the next change is tried again." },
  SF_ERR_TOPOLOGY_DUPLICATE: { retriable: false, doc: "Two topologies share a name or consumer group." },
  SF_ERR_CONFIG_MISSING: { retriable: false, doc: "A connection setting (URL, user, password, TLS file) is missing from the environment or its secret file." },
  SF_ERR_AUTH_FAILED: { retriable: false, doc: "A server refused this worker's credentials (wrong user or password, no TLS where the server demands it); the message names the connection and the variables to check. Not retried: a password does not fix itself." },
  SF_ERR_AUTH_DENIED: { retriable: false, doc: "A server accepted the credentials but its ACLs deny what a topology asked (a Kafka topic or group, a Redis key or command, a table, a vhost); the message names the connection, the principal and the resource. Not retried: grant the ACL or change the topology." },
  SF_ERR_TLS_UNTRUSTED: { retriable: false, doc: "A server's TLS certificate was refused: not signed by the CA the connection trusts (its *_CA_FILE), expired, or not naming the host connected to. Not retried." },
  SF_ERR_DECODE_NO_MAGIC: { retriable: false, doc: "A record's bytes do not start with the Avro wire-format magic byte 0." },
  SF_ERR_DECODE_UNKNOWN_SCHEMA: { retriable: false, doc: "A record names a schema id the registry does not know." },
  SF_ERR_DECODE_MALFORMED: { retriable: false, doc: "A record's bytes do not decode with its schema (truncated, wrong schema, bad JSON)." },
  SF_ERR_VALIDATE_FAILED: { retriable: false, doc: "A record does not match the reader or validation schema." },
  SF_ERR_STEP_FAILED: { retriable: true, doc: "A transform threw; it is retried by the error policy, then sent to the DLQ." },
  SF_ERR_SINK_NOT_CONNECTED: { retriable: true, doc: "A sink's server is unreachable; the partition pauses and the write is retried with back-off, never skipped." },
  SF_ERR_SINK_REJECTED: { retriable: true, doc: "A server refused a write it may accept later (unroutable message, queue full); retried, never counted as delivered." },
  SF_ERR_SINK_REPLAY_OVERLAP: { retriable: false, doc: "A combining sink (redis.features) found a replayed batch that overlaps an earlier write in part; the runner takes the batch again in exact mode, record by record. Handled inside the runner, never dead-lettered." },
  SF_ERR_SINK_RECORD_INVALID: { retriable: false, doc: "One record cannot be written by a sink (fields that do not fit the table); it goes to the DLQ with the reason." },
  SF_ERR_SCHEMA_REGISTRY: { retriable: true, doc: "The schema registry did not answer or refused a request." },
  SF_ERR_SCHEMA_INCOMPATIBLE: { retriable: false, doc: "A topology's reader schema cannot read a version of its subject (the message names subject, version and field), or the registry refused a writer schema by the subject's compatibility level." },
  SF_ERR_SCHEMA_NOT_FOUND: { retriable: false, doc: "A subject or schema file named by a topology does not exist." },
  SF_ERR_FEATURES_BAD_REQUEST: { retriable: false, doc: "A feature read names an unknown view, an empty id list or a malformed body." },
  SF_ERR_FEATURES_UNAUTHORIZED: { retriable: false, doc: "The feature server was called without a valid bearer token." },
  SF_ERR_FEATURES_OVERLOADED: { retriable: true, doc: "The feature server is answering as many reads as it is allowed to (FEATURE_SERVER_MAX_IN_FLIGHT); HTTP 503 with Retry-After: retry after that many seconds, or add servers." },
  SF_ERR_FEATURES_OFFLINE_LOG: { retriable: true, doc: "PostgreSQL refused a write to a view's offline feature log (permissions, a table changed by hand, text with a NUL character); the batch is retried, nothing is written to Redis or committed until the log takes it." },
  SF_ERR_FEATURES_DEADLINE: { retriable: true, doc: "A feature read was not answered within the server's deadline (FEATURE_SERVER_DEADLINE_MS): Redis slow or unreachable, or the server overloaded; HTTP 504, retry." },
  SF_ERR_CLI_USAGE: { retriable: false, doc: "A `streamfleet` command line does not parse: an unknown command or flag, a missing value, a number out of range; the CLI exits 2. `streamfleet <command> --help` lists what it takes." },
  SF_ERR_TEST_INVALID: { retriable: false, doc: "A topology test file (`*.test.yaml`, see docs/testing.md) does not match its model, names a topology or sink that does not exist, or a sink of its topology cannot render its effect; the message names file, line and path." },
  SF_ERR_TEST_FAILED: { retriable: false, doc: "`streamfleet test`: a case's observed sink effects, filtered count or dead letters differ from what its test file expects (the diff names each path), or a case could not run to the end; the command exits 1." },
  SF_ERR_INIT_NOT_EMPTY: { retriable: false, doc: "`streamfleet init` would overwrite files: the target directory already holds some of the scaffold's files; choose an empty or new directory." },
  SF_ERR_SHUTDOWN_TIMEOUT: { retriable: false, doc: "In-flight batches did not drain before the shutdown deadline; their offsets were not committed and will be re-read." },
} as const satisfies Record<string, { retriable: boolean; doc: string }>;

export type ErrorCode = keyof typeof CATALOGUE;

export interface SfErrorOptions {
  cause?: unknown;
  /** Overrides the catalogue's default. */
  retriable?: boolean;
  /** Where it happened, e.g. "steps[2].transform" or a sink name. */
  where?: string;
}

export class SfError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options: SfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SfError";
    this.code = code;
    this.retriable = options.retriable ?? CATALOGUE[code].retriable;
    this.where = options.where;
  }
}

/** True for errors a retry may fix: SfErrors marked retriable, and unknown failures. */
export function isRetriable(err: unknown): boolean {
  return err instanceof SfError ? err.retriable : true;
}

/** An error's code, or SF_ERR_STEP_FAILED for anything that is not an SfError. */
export function errorCode(err: unknown): ErrorCode {
  return err instanceof SfError ? err.code : "SF_ERR_STEP_FAILED";
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
