import pino from "pino";
import type { Connections } from "../../runtime/connections.ts";
import { clientKind } from "./platformatic/options.ts";

const quiet = pino({ level: "silent" });

/** Kafka answers when an admin client of the connection's own client (KAFKA_CLIENT) can describe the cluster within 3 s. */
export async function kafkaHealth(connections: Connections, signal: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("Kafka did not answer within 3s")), 3000);
    signal.addEventListener("abort", () => reject(new Error("health check aborted")), { once: true });
  });
  try {
    if (clientKind(connections, "default") === "platformatic") {
      const { withAdmin } = await import("./platformatic/index.ts");
      await Promise.race([withAdmin(connections, "default", (admin) => admin.metadata({ topics: [] })), timeout]);
      return;
    }
    const { createKafka } = await import("./client.ts");
    const admin = createKafka(connections, "default", quiet, "streamfleet-health").admin({ retry: { retries: 0 } });
    try {
      await Promise.race([admin.connect().then(() => admin.describeCluster()), timeout]);
    } finally {
      // A listener that is not Kafka may never answer: do not wait for a clean disconnect.
      void admin.disconnect().catch(() => {});
    }
  } finally {
    clearTimeout(timer);
  }
}
