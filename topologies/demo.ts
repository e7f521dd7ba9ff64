/**
 * What each example system offers `npm start`'s demo producer: its input topics with their
 * Avro schemas, and a generator of realistic events. Each system folder (topologies/<system>/)
 * exports `demo: DemoSystem` from its demo.ts.
 */
export interface DemoTopic {
  topic: string;
  /** Path of the value's .avsc, relative to the repository root (e.g. schemas/resident/complaint-event.avsc). */
  schema: string;
  partitions: number;
}

export interface DemoEvent {
  topic: string;
  key: string;
  value: Record<string, unknown>;
}

export interface DemoSystem {
  name: string;
  topics: DemoTopic[];
  /** The events for tick i (a tick is one step of the demo clock; return one or a few events). */
  next(i: number, now: number): DemoEvent[];
}
