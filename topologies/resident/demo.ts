import type { DemoEvent, DemoSystem } from "../demo.ts";

/**
 * Demo traffic of the resident management system, a pure function of the tick: residents
 * and staff sign up first, then a complaint is filed every other tick and each one follows
 * its own plan (in progress, resolved or closed, sometimes reprioritised or deleted),
 * with a notification to the resident when it is resolved and building announcements.
 */

const RESIDENTS = 60;
const STAFF = 4;
const USERS = RESIDENTS + STAFF;
const BUILDINGS = ["A", "B", "C", "D"];
/** The demo clock runs about one tick a second; lifecycle steps are this many ticks after the creation. */
const TICK_MS = 1000;
const STEP = { inProgress: 8, reprioritise: 14, finish: 30, remove: 50 };

const CATEGORIES: Array<[string, number, string[]]> = [
  ["MAINTENANCE", 30, ["Broken window latch", "Door does not close", "Elevator out of service", "Peeling paint in hallway"]],
  ["PLUMBING", 20, ["Water leak under sink", "Bathroom leak", "No hot water", "Clogged drain"]],
  ["ELECTRICAL", 12, ["Flickering lights", "Power outlet not working", "Hallway light out"]],
  ["NOISE", 14, ["Loud music at night", "Construction noise before 8am", "Barking dog"]],
  ["CLEANLINESS", 10, ["Garbage room overflowing", "Stairwell not cleaned", "Pest sighting"]],
  ["SECURITY", 6, ["Main entrance lock broken", "Unknown person in garage", "Intercom not working"]],
  ["PARKING", 8, ["Car parked in my spot", "Garage gate stuck"]],
];
const PRIORITIES: Array<[string, number]> = [
  ["LOW", 30],
  ["MEDIUM", 40],
  ["HIGH", 22],
  ["URGENT", 8],
];

/** A deterministic number in [0, 1) from integers (a small integer hash). */
function rand(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p & 0xffff), 0x01000193);
    h = Math.imul(h ^ (p >>> 16), 0x01000193);
  }
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return (h >>> 0) / 0x1_0000_0000;
}

function weighted<T>(items: Array<[T, number, ...unknown[]]>, r: number): [T, number, ...unknown[]] {
  const total = items.reduce((a, x) => a + x[1], 0);
  let x = r * total;
  for (const item of items) if ((x -= item[1]) < 0) return item;
  return items[items.length - 1]!;
}

const userId = (n: number) => `u-${String(n + 1).padStart(3, "0")}`;

function user(n: number, type: string): DemoEvent {
  const id = userId(n);
  const role = n < RESIDENTS ? "RESIDENT" : n === USERS - 1 ? "ADMIN" : "STAFF";
  const domain = n < RESIDENTS ? "residents.example" : "staff.example";
  return { topic: "resident.user-events", key: id, value: { type, id, email: `${type === "user.updated" ? "new." : ""}${id}@${domain}`, role } };
}

/** Complaint number c: who files it, where, what, and how its life goes. */
function complaint(c: number) {
  const resident = Math.floor(rand(c, 1) * RESIDENTS);
  const building = BUILDINGS[resident % BUILDINGS.length]!;
  const [category, , titles] = weighted(CATEGORIES, rand(c, 2)) as [string, number, string[]];
  const title = titles[Math.floor(rand(c, 3) * titles.length)]!;
  const [priority] = weighted(PRIORITIES, rand(c, 4));
  const fate = rand(c, 5);
  return {
    id: `c-${String(c + 1).padStart(6, "0")}`,
    userId: userId(resident),
    building,
    apartment: `${building}${(resident % 6) + 1}0${(resident % 4) + 1}`,
    category,
    title,
    description: `${title} (reported by apartment ${building}${(resident % 6) + 1}0${(resident % 4) + 1})`,
    priority,
    escalated: priority === "LOW" ? "MEDIUM" : priority === "MEDIUM" ? "HIGH" : "URGENT",
    inProgress: fate < 0.75,
    reprioritise: rand(c, 6) < 0.15,
    finalStatus: fate < 0.7 ? "RESOLVED" : fate < 0.85 ? "CLOSED" : fate < 0.9 ? "REJECTED" : undefined,
    removed: rand(c, 7) < 0.06,
  };
}

type Plan = ReturnType<typeof complaint>;

function complaintEvent(p: Plan, type: string, status: string, priority: string, created: number, now: number): DemoEvent {
  const { id, userId: uid, building, apartment, category, title, description } = p;
  return {
    topic: "resident.complaint-events",
    key: id,
    value: { type, id, title, description, category, priority, status, userId: uid, apartment, building, createdAt: new Date(created).toISOString(), updatedAt: new Date(now).toISOString() },
  };
}

/** The events of complaint c that fall `d` ticks after its creation. */
function lifecycle(c: number, d: number, now: number): DemoEvent[] {
  const p = complaint(c);
  const created = now - d * TICK_MS;
  const priorityAt = (step: number) => (p.reprioritise && step >= STEP.reprioritise ? p.escalated : p.priority);
  const statusAt = (step: number) => (step >= STEP.finish && p.finalStatus ? p.finalStatus : p.inProgress && step >= STEP.inProgress ? "IN_PROGRESS" : "PENDING");
  if (d === 0) return [complaintEvent(p, "complaint.created", "PENDING", p.priority, created, now)];
  if ((d === STEP.inProgress && p.inProgress) || (d === STEP.reprioritise && p.reprioritise)) return [complaintEvent(p, "complaint.updated", statusAt(d), priorityAt(d), created, now)];
  if (d === STEP.finish && p.finalStatus) {
    const out = [complaintEvent(p, "complaint.updated", p.finalStatus, priorityAt(d), created, now)];
    out.push({
      topic: "resident.notification-events",
      key: `n-${p.id}-${d}`,
      value: { type: "notification.created", id: `n-${p.id}-${d}`, userId: p.userId, kind: "COMPLAINT_UPDATE", title: `Your complaint was ${p.finalStatus.toLowerCase()}`, message: `"${p.title}" is now ${p.finalStatus.toLowerCase()}.`, complaintId: p.id, createdAt: new Date(now).toISOString() },
    });
    return out;
  }
  if (d === STEP.remove && p.removed) return [complaintEvent(p, "complaint.deleted", statusAt(d), priorityAt(d), created, now)];
  return [];
}

function announcement(i: number, now: number): DemoEvent {
  const building = BUILDINGS[Math.floor(i / 25) % BUILDINGS.length]!;
  const resident = Math.floor(rand(i, 9) * RESIDENTS);
  const kind = rand(i, 10) < 0.5 ? "MAINTENANCE_WINDOW" : "ANNOUNCEMENT";
  const id = `n-t${i}`;
  const title = kind === "MAINTENANCE_WINDOW" ? `Water shut-off in building ${building}` : `Building ${building} meeting`;
  return {
    topic: "resident.notification-events",
    key: id,
    value: { type: "notification.created", id, userId: userId(resident), kind, title, message: `${title}: see the notice board for times.`, complaintId: null, createdAt: new Date(now).toISOString() },
  };
}

export const demo: DemoSystem = {
  name: "resident",
  topics: [
    { topic: "resident.user-events", schema: "schemas/resident/user-event.avsc", partitions: 3 },
    { topic: "resident.complaint-events", schema: "schemas/resident/complaint-event.avsc", partitions: 3 },
    { topic: "resident.notification-events", schema: "schemas/resident/notification-event.avsc", partitions: 3 },
  ],
  next(i, now) {
    if (i < USERS) return [user(i, "user.created")];
    const t = i - USERS;
    const out: DemoEvent[] = [];
    // A complaint is filed every other tick; complaint c was created at tick 2c.
    if (t % 2 === 0) out.push(...lifecycle(t / 2, 0, now));
    for (const d of Object.values(STEP)) if (t >= d && (t - d) % 2 === 0) out.push(...lifecycle((t - d) / 2, d, now));
    if (t % 25 === 24) out.push(announcement(i, now));
    if (t % 40 === 39) out.push(user(Math.floor(rand(i, 11) * USERS), "user.updated"));
    return out;
  },
};
