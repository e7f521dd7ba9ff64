import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Daemons } from "./daemon.ts";
import { StackError } from "./errors.ts";
import { ensurePomJars, requireJava } from "./java.ts";
import { tcpOpen, waitFor } from "./probe.ts";

export interface KafkaOptions {
  stateDir: string;
  pomFile: string;
  port: number;
  controllerPort: number;
  startTimeoutMs: number;
  /** Where the jars go (default `<stateDir>/kafka/libs`): the secured stack shares the open one's. */
  libsDir?: string;
  /** server.properties (default: the open stack's PLAINTEXT broker). */
  properties?: (dataDir: string) => string;
  /** Extra `kafka-storage format` arguments (SCRAM users of a secured broker). */
  formatArgs?: string[];
}

/** Kafka 4.x in KRaft mode, one combined broker+controller on loopback. */
export async function startKafka(daemons: Daemons, o: KafkaOptions): Promise<void> {
  const java = requireJava();
  const home = path.join(o.stateDir, "kafka");
  const libs = o.libsDir ?? path.join(home, "libs");
  // Ports first: a busy port should fail at once, before any download.
  for (const port of [o.port, o.controllerPort]) {
    if (await tcpOpen("127.0.0.1", port)) {
      throw new StackError(
        "SF_ERR_STACK_PORT_IN_USE",
        `port ${port} is in use by another process, so Kafka cannot start: stop it, set ${o.properties ? "STREAMFLEET_SECURE_KAFKA_PORT" : "STREAMFLEET_KAFKA_PORT"}, or set KAFKA_BROKERS to use a running Kafka`,
      );
    }
  }
  ensurePomJars(o.pomFile, libs, "Apache Kafka", path.join(o.stateDir, "logs", "maven-kafka.log"));
  const dataDir = path.join(home, "data");
  const props = path.join(home, "server.properties");
  fs.mkdirSync(home, { recursive: true });
  fs.writeFileSync(props, o.properties ? o.properties(dataDir) : serverProperties(o, dataDir), { mode: 0o600 });
  fs.writeFileSync(path.join(home, "log4j2.yaml"), LOG4J);
  const classpath = `${libs}/*`;
  if (!fs.existsSync(path.join(dataDir, "meta.properties"))) {
    const id = spawnSync(java, ["-cp", classpath, "kafka.tools.StorageTool", "random-uuid"], { encoding: "utf8" })
      .stdout.trim()
      .split("\n")
      .pop();
    const fmt = spawnSync(
      java,
      ["-cp", classpath, "kafka.tools.StorageTool", "format", "-t", id ?? "", "-c", props, "--standalone", ...(o.formatArgs ?? [])],
      { encoding: "utf8" },
    );
    if (fmt.status !== 0) {
      throw new StackError("SF_ERR_STACK_KAFKA_FORMAT", `formatting Kafka storage failed: ${(fmt.stderr || fmt.stdout).trim().slice(0, 300).replace(/password=[^\],]*/g, "password=***")}`);
    }
  }
  daemons.start({
    name: "kafka",
    command: java,
    args: [
      "-Xms256m",
      "-Xmx1g",
      "-XX:+UseG1GC",
      `-Dlog4j2.configurationFile=${path.join(home, "log4j2.yaml")}`,
      `-Dkafka.logs.dir=${path.join(o.stateDir, "logs")}`,
      "-cp",
      classpath,
      "kafka.Kafka",
      props,
    ],
    cwd: home,
  });
  const started = () => daemons.tail("kafka", 400).includes("Kafka Server started");
  const ok = await waitFor(async () => started() && (await tcpOpen("127.0.0.1", o.port)), o.startTimeoutMs);
  if (!ok) {
    const tail = daemons.tail("kafka", 3);
    await daemons.stop("kafka");
    throw new StackError(
      "SF_ERR_STACK_TIMEOUT",
      `Kafka did not come up on 127.0.0.1:${o.port} within ${o.startTimeoutMs / 1000}s; log ${daemons.logFile("kafka")}: ${tail.slice(-300)}`,
    );
  }
}

/**
 * The classpath of Kafka's command-line tools (`org.apache.kafka.tools.*`: kafka-tools and its
 * runtime jars, the broker's version), fetched once from Maven Central into
 * `<stateDir>/kafka/tools`. A directory of its own: the broker's libs are rewritten when their
 * pom changes, and a running broker keeps them open.
 */
export function kafkaToolsClasspath(stateDir: string, pomFile: string): string {
  const dir = path.join(stateDir, "kafka", "tools");
  ensurePomJars(pomFile, dir, "Apache Kafka's tools", path.join(stateDir, "logs", "maven-kafka-tools.log"));
  return `${dir}/*`;
}

function serverProperties(o: KafkaOptions, dataDir: string): string {
  return `# written by \`streamfleet stack up\`
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${o.controllerPort}
${plaintextListeners(o.port, o.controllerPort)}
${brokerStorageProperties(dataDir)}`;
}

/** A broker's PLAINTEXT client listener and its controller listener, both on loopback. */
export function plaintextListeners(port: number, controllerPort: number): string {
  return `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT`;
}

/**
 * What every stack's broker shares (single node, cluster, secured): where it keeps its logs,
 * the topics it creates, its internal topics' replication (`replication`: the cluster's), a
 * consumer group's first rebalance at once, a day of retention. Ends with a newline.
 */
export function brokerStorageProperties(dataDir: string, replication = { replicationFactor: 1, minInsyncReplicas: 1 }): string {
  const { replicationFactor: rf, minInsyncReplicas: isr } = replication;
  return `log.dirs=${dataDir}
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=${rf}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=${rf}
transaction.state.log.min.isr=${isr}
group.initial.rebalance.delay.ms=0
share.coordinator.state.topic.replication.factor=${rf}
share.coordinator.state.topic.min.isr=${isr}
log.retention.hours=24
`;
}

const LOG4J = `Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
      - name: kafka.log.LogCleaner
        level: WARN
`;
