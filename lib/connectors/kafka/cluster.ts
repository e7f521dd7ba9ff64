import crypto from "node:crypto";
import type { Kafka } from "kafkajs";

/** 8 hex characters of the cluster id: enough to tell a rebuilt cluster from the old one. */
export async function clusterTag(kafka: Kafka): Promise<string> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { clusterId } = await admin.describeCluster();
    return crypto.createHash("sha256").update(clusterId).digest("hex").slice(0, 8);
  } finally {
    await admin.disconnect();
  }
}

