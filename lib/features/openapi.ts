/** The feature server's OpenAPI 3 document, served at /openapi.json. */
export function openApiDocument(): Record<string, unknown> {
  const error = {
    type: "object",
    required: ["error"],
    properties: { error: { type: "object", required: ["code", "message"], properties: { code: { type: "string", example: "SF_ERR_FEATURES_BAD_REQUEST" }, message: { type: "string" } } } },
  };
  const feature = {
    type: "object",
    required: ["value", "event_time", "staleness_ms"],
    properties: {
      value: { description: "The feature's value (JSON); windows: the sum of the current tumbling window (0 when empty); null when never written" },
      event_time: { type: ["integer", "null"], description: "Epoch ms of the newest event that changed the feature" },
      staleness_ms: { type: ["integer", "null"], description: "Read time minus event_time" },
      window_start: { type: "integer", description: "window_count/window_sum: epoch ms start of the window summed" },
    },
  };
  const entity = {
    type: "object",
    required: ["id", "found", "features"],
    properties: { id: { type: "string" }, found: { type: "boolean", description: "False when no asked feature was ever written (or the entity expired)" }, features: { type: "object", additionalProperties: { $ref: "#/components/schemas/Feature" } } },
  };
  const errors = {
    "400": { description: "Malformed request; the message says why", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    "401": { description: "Missing or wrong bearer token", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    "404": { description: "Unknown feature view", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
    "503": { description: "Redis is unreachable", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
  };
  const viewParam = { name: "view", in: "path", required: true, schema: { type: "string" }, description: "Feature view name" };
  return {
    openapi: "3.1.0",
    info: { title: "streamfleet feature server", version: "1.0.0", description: "Online features written by the redis.features sink. Key layout: docs/feature-store.md." },
    security: [{ bearer: [] }],
    paths: {
      "/v1/features/{view}/{id}": {
        get: {
          summary: "Features of one entity",
          parameters: [viewParam, { name: "id", in: "path", required: true, schema: { type: "string" } }, { name: "names", in: "query", required: false, schema: { type: "string" }, description: "Comma-separated feature names; default all" }],
          responses: { "200": { description: "The entity's features", content: { "application/json": { schema: { allOf: [{ $ref: "#/components/schemas/Entity" }, { type: "object", properties: { view: { type: "string" } } }] } } } }, ...errors },
        },
      },
      "/v1/features/{view}": {
        post: {
          summary: "Features of many entities (one Redis round trip)",
          parameters: [viewParam],
          requestBody: { required: true, content: { "application/json": { schema: { type: "object", required: ["ids"], properties: { ids: { type: "array", minItems: 1, maxItems: 1000, items: { type: "string", minLength: 1 } }, names: { type: "array", items: { type: "string" } } } } } } },
          responses: { "200": { description: "Features per entity, in the order of ids", content: { "application/json": { schema: { type: "object", properties: { view: { type: "string" }, entities: { type: "array", items: { $ref: "#/components/schemas/Entity" } } } } } } }, ...errors },
        },
      },
      "/v1/historical/{view}": {
        post: {
          summary: "Point-in-time features for a training set, from the view's offline feature log",
          description: "Each row with every requested feature as of its timestamp: contributions with event time ≤ timestamp, by each kind's semantics (docs/feature-store.md, Point-in-time semantics); null when nothing before it (windows 0). The answer streams as NDJSON, one line per row in the order asked; an error after the first line ends it with a line {\"error\": {code, message}}.",
          parameters: [viewParam],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["rows"],
                  properties: {
                    rows: { type: "array", minItems: 1, maxItems: 1000000, items: { type: "object", required: ["entity", "timestamp"], properties: { entity: { type: "string", minLength: 1 }, timestamp: { type: ["integer", "string"], description: "Epoch ms or ISO 8601" } }, additionalProperties: { description: "Labels and anything else: passed through" } } },
                    names: { type: "array", items: { type: "string" } },
                  },
                },
              },
            },
          },
          responses: {
            "200": { description: "One JSON object per line: the row as given plus `features` {name: value}", content: { "application/x-ndjson": { schema: { type: "object", required: ["features"], properties: { features: { type: "object" } } } } } },
            ...errors,
            "501": { description: "The server has no offline log database (DATABASE_URL)", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
          },
        },
      },
      "/healthz": { get: { summary: "200 when Redis answers", security: [], responses: { "200": { description: "ok" }, "503": { description: "Redis unreachable" } } } },
      "/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3 document" } } } },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { Error: error, Feature: feature, Entity: entity },
    },
  };
}
