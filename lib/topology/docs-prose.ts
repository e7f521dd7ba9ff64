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
