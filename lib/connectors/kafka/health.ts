import pino from "pino";
import type { Connections } from "../../runtime/connections.ts";
import { createKafka } from "./client.ts";

const quiet = pino({ level: "silent" });

/** Kafka answers when an admin client can describe the cluster within 3 s. */
export async function kafkaHealth(connections: Connections, signal: AbortSignal): Promise<void> {
  const kafka = createKafka(connections, "default", quiet, "streamfleet-health");
  const admin = kafka.admin({ retry: { retries: 0 } });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("Kafka did not answer within 3s")), 3000);
    signal.addEventListener("abort", () => reject(new Error("health check aborted")), { once: true });
  });
  try {
    await Promise.race([admin.connect().then(() => admin.describeCluster()), timeout]);
  } finally {
    clearTimeout(timer);
    // A listener that is not Kafka may never answer: do not wait for a clean disconnect.
    void admin.disconnect().catch(() => {});
  }
}
