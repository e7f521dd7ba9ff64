import type { StreamRecord } from "../../../lib/runtime/contracts.ts";

/**
 * Transforms of the `resident-complaints` topology: the creation quota key, and the
 * transition of one complaint from its previous state to the current event, from which
 * the open-complaint counters, the notifications and the next state come.
 */

export interface ComplaintEvent {
  type: string;
  id: string;
  title: string;
  description: string | null;
  category: string;
  priority: string;
  status: string;
  userId: string;
  apartment: string;
  building: string;
  createdAt: string;
  updatedAt: string;
}

/** A complaint as of one event: `at` is the event's offset in its partition. */
export interface Snapshot {
  at: number;
  status: string;
  priority: string;
  open: boolean;
  deleted: boolean;
}

/** What `resident:complaint-state:{id}` holds (under `state`): the newest snapshots, oldest first. */
export interface ComplaintState {
  id: string;
  userId: string;
  building: string;
  history: Snapshot[];
}

export const PRIORITIES = ["LOW", "MEDIUM", "HIGH", "URGENT"] as const;
export const OPEN_STATUSES: ReadonlySet<string> = new Set(["PENDING", "IN_PROGRESS"]);
/** Snapshots kept per complaint: enough for a replayed batch to find the state before each of its events. */
export const HISTORY = 16;
const MEMORY = 50_000;

/** `quotaKey` (before `rate-limit`): the resident who creates a complaint; absent on other events, which pass unlimited. */
export function quotaKey(value: ComplaintEvent): unknown {
  return { ...value, quotaKey: value.type === "complaint.created" ? value.userId : null };
}

/**
 * Snapshots this worker computed, by complaint id: the cache is read once per batch, so a
 * later event of the same complaint in the same batch finds its predecessor here. Every
 * snapshot carries its offset, so the newer of memory and cache always wins.
 */
const memory = new Map<string, Snapshot[]>();

function remember(id: string, history: Snapshot[]): void {
  memory.delete(id);
  memory.set(id, history);
  if (memory.size > MEMORY) memory.delete(memory.keys().next().value!);
}

/** Snapshots before `offset`, from the cached state and this worker's memory, oldest first. */
function historyBefore(id: string, cached: ComplaintState | undefined, offset: number): { history: Snapshot[]; known: boolean } {
  const all = new Map<number, Snapshot>();
  for (const s of cached?.history ?? []) all.set(s.at, s);
  for (const s of memory.get(id) ?? []) all.set(s.at, s);
  const sorted = [...all.values()].sort((a, b) => a.at - b.at);
  const before = sorted.filter((s) => s.at < offset);
  // Every kept snapshot is newer than this event and some were truncated: its predecessor is unknown.
  const known = before.length > 0 || sorted.length < HISTORY;
  return { history: before, known };
}

function next(event: ComplaintEvent, prior: Snapshot | undefined, at: number): Snapshot {
  const priority = event.priority.toUpperCase();
  if (event.type === "complaint.deleted") return { at, status: event.status, priority, open: false, deleted: true };
  // An event after the delete does not bring the complaint back.
  if (prior?.deleted && event.type !== "complaint.created") return { ...prior, at };
  return { at, status: event.status, priority, open: OPEN_STATUSES.has(event.status.toUpperCase()), deleted: false };
}

function isOpen(s: Snapshot | undefined): boolean {
  return s !== undefined && s.open && !s.deleted;
}

function eventTime(event: ComplaintEvent, record: StreamRecord): number {
  const t = Date.parse(event.type === "complaint.created" ? event.createdAt : event.updatedAt);
  return Number.isFinite(t) ? t : record.origin.timestamp;
}

/**
 * `transition` (after `enrich` put the cached state into `previous`): computes the change
 * of openness from the previous snapshot to this event. Output fields the sinks read:
 * `openDelta` (+1 opened, −1 closed/resolved/deleted while open, 0 otherwise),
 * `openByPriority.<P>` (the same per priority, so a priority change moves the count),
 * `newComplaint` (a first creation: counts in the 24 h window), `eventTime` (epoch ms),
 * `notify` + `notification` (created, or status changed), and `state` (cached for the next event).
 * A record an earlier step already routed elsewhere (over the creation quota) passes as the event.
 */
export function transition(value: ComplaintEvent & { previous?: { state?: ComplaintState } | null; quotaKey?: unknown }, record: StreamRecord): unknown {
  const { previous, quotaKey: _quota, ...event } = value;
  if (record.targets) return event;
  const offset = Number(record.origin.offset);
  const cached = previous?.state;
  const { history, known } = historyBefore(event.id, cached, offset);
  const prior = known ? history.at(-1) : undefined;
  const current = next(event, prior, offset);
  const wasOpen = isOpen(prior);
  const nowOpen = isOpen(current);
  const openByPriority: Record<string, number> = Object.fromEntries(PRIORITIES.map((p) => [p, 0]));
  if (wasOpen && prior!.priority in openByPriority) openByPriority[prior!.priority]! -= 1;
  if (nowOpen && current.priority in openByPriority) openByPriority[current.priority]! += 1;
  const newComplaint = event.type === "complaint.created" && (prior === undefined || prior.deleted);
  const statusChanged = event.type === "complaint.updated" && prior !== undefined && !prior.deleted && prior.status !== current.status;
  const kept = [...history, current].slice(-HISTORY);
  remember(event.id, kept);
  const at = eventTime(event, record);
  const notify = newComplaint || statusChanged;
  return {
    ...event,
    eventTime: at,
    openDelta: (nowOpen ? 1 : 0) - (wasOpen ? 1 : 0),
    openByPriority,
    newComplaint,
    notify,
    notification: notify
      ? {
          id: record.id,
          kind: newComplaint ? "complaint.created" : "complaint.status_changed",
          userId: event.userId,
          complaintId: event.id,
          building: event.building,
          title: newComplaint ? `Complaint received: ${event.title}` : `Complaint ${current.status.toLowerCase().replace(/_/g, " ")}: ${event.title}`,
          status: current.status,
          previousStatus: statusChanged ? prior!.status : null,
          at: new Date(at).toISOString(),
        }
      : null,
    state: { id: event.id, userId: cached?.userId ?? event.userId, building: cached?.building ?? event.building, history: kept } satisfies ComplaintState,
  };
}
