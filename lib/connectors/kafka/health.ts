import pino from "pino";
import type { Connections } from "../../runtime/connections.ts";
import { clientKind } from "./platformatic/options.ts";

const quiet = pino({ level: "silent" });

/**
 * Kafka answers when an admin client of the connection's own client (KAFKA_CLIENT) can describe
 * the cluster within 3 s (counted once the client is loaded: its import is not the broker's delay).
 */
export async function kafkaHealth(connections: Connections, signal: AbortSignal): Promise<void> {
  const probe = clientKind(connections, "default") === "platformatic" ? await platformaticProbe(connections) : await kafkajsProbe(connections);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("Kafka did not answer within 3s")), 3000);
    signal.addEventListener("abort", () => reject(new Error("health check aborted")), { once: true });
  });
  try {
    await Promise.race([probe.run(), timeout]);
  } finally {
    clearTimeout(timer);
    probe.close();
  }
}

interface Probe {
  run: () => Promise<unknown>;
  /** Ends the client without waiting: a listener that is not Kafka may never answer. */
  close: () => void;
}

async function platformaticProbe(connections: Connections): Promise<Probe> {
  const { Admin } = await import("@platformatic/kafka");
  const { platformaticOptions } = await import("./platformatic/options.ts");
  const admin = new Admin({ ...platformaticOptions(connections, "default", "streamfleet-health"), retries: 0 });
  return { run: () => admin.metadata({ topics: [] }), close: () => void admin.close().catch(() => {}) };
}

async function kafkajsProbe(connections: Connections): Promise<Probe> {
  const { createKafka } = await import("./client.ts");
  const admin = createKafka(connections, "default", quiet, "streamfleet-health").admin({ retry: { retries: 0 } });
  return { run: () => admin.connect().then(() => admin.describeCluster()), close: () => void admin.disconnect().catch(() => {}) };
}
