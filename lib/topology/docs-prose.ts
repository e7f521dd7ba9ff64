/**
 * The hand-written parts of docs/topology.md (the rest is generated from the schemas by
 * lib/topology/docs.ts): kept here so that the generated file stays the one source.
 */

/** What a worker does to the schema registry when a topology starts. */
export const REGISTRY_AT_START = `## The schema registry at start

A worker talks to the registry before it joins its consumer group, once per Avro codec:

- **\`codec.value\` (or \`codec.key\`) with a local \`schema:\`** — that \`.avsc\` is the topology's
  *reader* schema. When the subject (\`subject:\`, default \`<first topic>-value\`) already holds
  versions, the worker **registers nothing**: it fetches every version and checks, with Avro's
  schema resolution, that the reader can read each one (fields it lacks need a default,
  types must promote, record names must match or be aliased). When it cannot, the worker
  stops before consuming anything, with \`SF_ERR_SCHEMA_INCOMPATIBLE\` naming the subject, the
  version, its schema id and the field, and \`streamfleet run\` exits 1. Fix the reader (give
  the field a default), or delete that version from the subject if none of its records are
  left in the topic. The check is made locally, not with the registry's compatibility
  endpoint, whose answer depends on the subject's compatibility level (always "compatible"
  under \`NONE\`); so it holds whatever that level is.
- When the subject **does not exist yet**, the worker registers its reader schema as the
  subject's first version, so that producers registering later are checked against it by the
  subject's compatibility level. Several workers starting at once register the same schema
  and get the same id; if another schema got there first, it is checked like an existing
  subject.
- **Avro without a local schema** — nothing at start; each record is read with the writer
  schema its id names, fetched once per id.
- A \`kafka\` sink with \`value: {type: avro}\` registers its schema (a *writer*) under its
  subject at start: the registry accepts it, or refuses it by the subject's compatibility
  level (\`SF_ERR_SCHEMA_INCOMPATIBLE\`). The worker never reads or changes a subject's
  compatibility level: that is the registry operator's setting.
`;

/** Template syntax and how template fields are checked. */
export const TEMPLATES = `## Templates and field paths

Keys, channels, job names and ids, routing keys, message ids and types, value mappings (\`map\`,
\`data\`, \`body\`, \`headers\`, a publish sink's \`fields\`, a column's \`value\`) and a counter's \`by\`
are **templates**: \`{path}\` reads a field of the record value by dotted path; \`{$key}\`,
\`{$key.<path>}\`, \`{$topic}\`, \`{$partition}\`, \`{$offset}\`, \`{$timestamp}\`, \`{$id}\` and
\`{$header.<name>}\` read the record's envelope. A value that is exactly one placeholder
(\`"{amount}"\`) keeps the field's type. \`{\` and \`}\` always delimit a placeholder (there is no
escape). A predicate's \`field\`, \`event_time\`, a feature's \`field\` and a cache's \`fields\` are
**field paths**: the same paths without braces.

A template that does not parse (\`"{entity"\`, \`"a}"\`, \`"{}"\`, \`"{$partiton}"\`) is rejected when
the topology is loaded — by \`validate\`, \`run\` and \`graph\` alike — and never rendered literally.
When the value schema is known (\`codec.value.schema\` names a local .avsc), every path must name
one of its fields, followed through the steps: \`filter\`, \`route\`, \`dedupe\` and \`rate-limit\`
leave the value as it is, a \`validate\` step makes it that step's schema, \`map\` makes it its
\`fields\` (added to the input's with \`merge\`), \`enrich\` adds its \`into\` field, and after a
\`transform\` nothing is known, so nothing is checked. Below an Avro map or array any path is accepted.
`;

/** What `streamfleet validate` checks, offline and against the registry. */
export const VALIDATE = `## What \`streamfleet validate\` checks

\`streamfleet validate [--offline] [files|dirs]\` reports every problem of every file at once, sorted
by file and line, each as \`file:line path: what was expected\`, and exits 1 when there is one. A
problem in one step or sink does not hide the others: every check that can still run, runs.

Offline (always):

- the file is YAML (or a \`*.topology.ts\` with a default export); every field matches the model
  above — types, ranges, required and unknown fields, step kinds and sink types — step by step
  and sink by sink;
- templates parse, and name fields of the value schema where it is known (see Templates);
- a transform's module exists and exports the named function; the .avsc files of codecs,
  \`validate\` steps, \`kafka\` and \`postgres\` sinks exist and are Avro schemas;
- a route's \`to\` and \`default\`, and a rate-limit's \`over_limit.route\`, name sinks of the topology;
- topology names and consumer groups are unique in the fleet.

Against the registry (unless \`--offline\`; at \`SCHEMA_REGISTRY_URL\`):

- a codec with a local reader schema: the reader can read every version of its subject — the
  same check a worker makes at start (see above); a subject that does not exist yet is a warning;
- a codec that names a \`subject\`: it exists; the implied \`<topic>-value\` subjects of a codec
  without a local schema: a warning while no producer has registered them.

Not checked: whether Kafka, Redis, RabbitMQ and PostgreSQL answer and topics exist (a running
worker's \`/health\` and \`/readyz\` say so).
`;

/** `streamfleet run --watch`: what is watched, what a reload does, what it refuses. */
export const HOT_RELOAD = `## Hot reload

\`streamfleet run --watch [files|dirs]\` swaps a topology when its files change, without stopping
the worker or its other topologies.

- **What is watched.** Each topology file, and every file it names relative to itself (the
  strings ending in \`.avsc\`, \`.json\`, \`.ts\`, \`.js\`, \`.mjs\`, \`.cjs\`: transform modules, reader
  schemas, \`validate\` step and sink schemas). Every directory under the inputs is watched, and
  the directory of each named file outside them; a file saved in place or replaced by a rename
  is seen alike. Changes are read once the files have been quiet for 300 ms (editors write in
  several steps), and compared by content: a save that changes nothing reloads nothing.
  Modules imported *by* a transform module are not watched (they are imported again, when
  changed, with a changed module that imports them).
- **Checked first.** The changed topology is checked as \`streamfleet validate\` checks it,
  registry included (a reader schema that cannot read its subject is refused), and its name and
  consumer group against the other topologies.
- **Swapped only if it passes.** The running version is drained — in-flight batches finish,
  their offsets are committed, it leaves its consumer group — then the new version starts and
  reads on from the committed offsets: no record is lost, and none is taken twice unless the
  drain outlasts \`STREAMFLEET_SHUTDOWN_MS\` (then, as at a stop, what was not committed is read
  again). Other topologies are not touched (their consumers do not rebalance). One change is
  handled at a time.
- **Refused changes keep the running version.** A change that does not validate, a topology
  file that is deleted or renamed (the new name is a new file whose topology name is already
  taken), or a new version that does not start (a sink that cannot connect: the running version
  is then started again) is logged at \`warn\` with \`code: SF_ERR_TOPOLOGY_RELOAD\`, the underlying
  error's code as \`cause\`, and the reason. A refused file is tried again when it changes. A
  topology is removed by restarting the worker without its file. (A running version started
  again reads its .avsc files as they are then; its transform modules are the ones it ran with.)
- **A new file** in a watched directory adds its topology once it validates.
- **Transform modules are imported again** when their content changed (Node caches modules by
  URL, so each content gets its own: \`module.ts?sfv=<hash>\`). Node never frees a module: every
  distinct content of a module that was loaded stays in memory until the worker exits
  (restart a worker edited many times); going back to an earlier content reuses it.
- **Health during a swap.** \`/healthz\` stays up. \`/readyz\` answers 503 from the moment the
  running version starts draining until the new one joined its consumer group — as at start;
  the whole reload (the \`ms\` of its log line) took 0.3–0.5 s in the tests. If neither the new nor the restarted version runs,
  \`/readyz\` stays 503 until a change of the topology's files starts one.
- **Log and metrics.** A reload logs \`topology reloaded\` (or \`topology added\`) at \`info\` with the
  files that changed and how long it took. \`streamfleet_topology_reloads_total{topology,
  outcome}\` counts reloads by outcome: \`ok\` (the new version runs) or \`failed\`; \`topology\` is
  the running topology's name (a new file that never loaded: the file's name).
`;
