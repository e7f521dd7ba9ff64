import { createKafka } from "../../connectors/kafka/client.ts";
import { createLogger } from "../../observability/logger.ts";
import { Connections } from "../../runtime/connections.ts";
import { brokerStorageProperties } from "../kafka.ts";
import type { Certs } from "./certs.ts";
import { PRINCIPALS, readSecret, secretFile } from "./secrets.ts";

/**
 * The secured Kafka broker: one listener for clients (SASL_SSL, SCRAM-SHA-512) and a
 * controller listener that takes only clients with a certificate of the stack's CA (mutual
 * TLS), so that nothing on either port talks to it without credentials. KRaft's
 * StandardAuthorizer with no allow-if-no-ACL: the admin is a super user, the worker may use
 * only what `WORKER_ACLS` grants.
 */
// The Kafka protocol's numbers (kafkajs's AclResourceTypes, AclOperationTypes, AclPermissionTypes,
// ResourcePatternTypes): kafkajs itself is imported only inside lib/connectors/kafka.
const AclResourceTypes = { TOPIC: 2, GROUP: 3 } as const;
const AclOperationTypes = { READ: 3, WRITE: 4, CREATE: 5, DELETE: 6, DESCRIBE: 8, DESCRIBE_CONFIGS: 10 } as const;
const AclPermissionTypes = { ALLOW: 3 } as const;
const ResourcePatternTypes = { PREFIXED: 4 } as const;
type AclEntry = Parameters<ReturnType<ReturnType<typeof createKafka>["admin"]>["createAcls"]>[0]["acl"][number];

export const WORKER_TOPIC_PREFIXES = ["resident.", "ml."] as const;
export const WORKER_GROUP_PREFIX = "streamfleet.";

export function secureKafkaProperties(port: number, controllerPort: number, certs: Certs, secrets: string): (dataDir: string) => string {
  const admin = PRINCIPALS.kafkaAdmin;
  return (dataDir) => `# written by \`streamfleet stack up --secure\` (holds the inter-broker password: mode 0600)
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${controllerPort}
listeners=CLIENT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}
advertised.listeners=CLIENT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=CLIENT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${admin}" password="${readSecret(secrets, "kafkaAdmin")}";
ssl.keystore.type=PEM
ssl.keystore.location=${certs.keystore}
ssl.truststore.type=PEM
ssl.truststore.location=${certs.ca}
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([a-zA-Z0-9.-]+),.*$/cert-$1/,RULE:^.*,CN=([a-zA-Z0-9.-]+)$/cert-$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:${admin};User:cert-localhost
${brokerStorageProperties(dataDir)}`;
}

/** `kafka-storage format` arguments that create both SCRAM users before the first start. */
export function scramUsers(secrets: string): string[] {
  return (["kafkaAdmin", "kafkaWorker"] as const).flatMap((who) => ["--add-scram", `SCRAM-SHA-512=[name=${PRINCIPALS[who]},password=${readSecret(secrets, who)}]`]);
}

/** The client variables of one principal (the password as a file path). */
export function kafkaClientEnv(port: number, certs: Certs, secrets: string, who: "kafkaAdmin" | "kafkaWorker"): Record<string, string> {
  return {
    KAFKA_BROKERS: `127.0.0.1:${port}`,
    KAFKA_SSL: "true",
    KAFKA_SSL_CA_FILE: certs.ca,
    KAFKA_SASL_MECHANISM: "scram-sha-512",
    KAFKA_SASL_USERNAME: PRINCIPALS[who],
    KAFKA_SASL_PASSWORD_FILE: secretFile(secrets, who),
  };
}

function workerAcls(): AclEntry[] {
  const principal = `User:${PRINCIPALS.kafkaWorker}`;
  const allow = (resourceType: number, resourceName: string, operation: number): AclEntry => ({
    resourceType,
    resourceName,
    resourcePatternType: ResourcePatternTypes.PREFIXED,
    principal,
    host: "*",
    operation,
    permissionType: AclPermissionTypes.ALLOW,
  });
  const topicOps = [AclOperationTypes.READ, AclOperationTypes.WRITE, AclOperationTypes.CREATE, AclOperationTypes.DESCRIBE, AclOperationTypes.DESCRIBE_CONFIGS];
  return [
    ...WORKER_TOPIC_PREFIXES.flatMap((prefix) => topicOps.map((op) => allow(AclResourceTypes.TOPIC, prefix, op))),
    ...[AclOperationTypes.READ, AclOperationTypes.DESCRIBE, AclOperationTypes.DELETE].map((op) => allow(AclResourceTypes.GROUP, WORKER_GROUP_PREFIX, op)),
  ];
}

/** Grants the worker its ACLs, as the admin (creating an existing ACL again changes nothing). */
export async function applyWorkerAcls(port: number, certs: Certs, secrets: string): Promise<void> {
  const kafka = createKafka(new Connections(kafkaClientEnv(port, certs, secrets, "kafkaAdmin")), "default", createLogger({ level: "silent" }), "streamfleet-stack");
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createAcls({ acl: workerAcls() });
  } finally {
    await admin.disconnect();
  }
}
