import fs from "node:fs";
import path from "node:path";
import type { Daemons } from "../daemon.ts";
import { which } from "../daemon.ts";
import { StackError } from "../errors.ts";
import type { Certs } from "./certs.ts";
import { PRINCIPALS, readSecret, secretFile } from "./secrets.ts";

/**
 * The key patterns and channels the example fleets write (topologies/resident and ml): the
 * feature store and dedupe/rate-limit state (sf:v1:), the caches the topologies name,
 * BullMQ's queues and the notification channel. The worker user may touch nothing else.
 */
export const WORKER_KEY_PATTERNS = ["sf:v1:*", "complaint:*", "user:*", "resident:*", "prediction:*", "bull:*"] as const;
export const WORKER_CHANNELS = ["notifications", "notifications:*"] as const;

/** redis.conf of the secured Redis: TLS only (no plain port), `default` off, two ACL users. */
function config(port: number, dir: string, certs: Certs, secrets: string): string {
  const keys = WORKER_KEY_PATTERNS.map((k) => `~${k}`).join(" ");
  const channels = WORKER_CHANNELS.map((c) => `&${c}`).join(" ");
  return `# written by \`streamfleet stack up --secure\` (holds passwords: mode 0600)
# the config file in the process title: \`stack down\` knows its own process by the state dir
proc-title-template "{title} {config-file} {listen-addr}"
bind 127.0.0.1
port 0
tls-port ${port}
tls-cert-file ${certs.cert}
tls-key-file ${certs.key}
tls-ca-cert-file ${certs.ca}
tls-auth-clients no
save ""
appendonly no
dir ${dir}
user default off
user ${PRINCIPALS.redisAdmin} on >${readSecret(secrets, "redisAdmin")} ~* &* +@all
user ${PRINCIPALS.redisWorker} on >${readSecret(secrets, "redisWorker")} resetchannels ${keys} ${channels} +@all -@dangerous +info
`;
}

export async function startSecureRedis(daemons: Daemons, stateDir: string, port: number, certs: Certs, secrets: string): Promise<void> {
  const server = which("redis-server");
  if (!server) throw new StackError("SF_ERR_STACK_NO_REDIS", "redis-server is not on PATH: install it (`apt-get install redis-server`); the secured stack starts its own, with TLS");
  const dir = path.join(stateDir, "redis");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const conf = path.join(dir, "redis.conf");
  fs.writeFileSync(conf, config(port, dir, certs, secrets), { mode: 0o600 });
  daemons.start({ name: "redis", command: server, args: [conf], cwd: dir });
}

/** The client variables of one Redis user (TLS with the stack's CA, the password as a file). */
export function redisClientEnv(port: number, certs: Certs, secrets: string, who: "redisAdmin" | "redisWorker"): Record<string, string> {
  return {
    REDIS_URL: `rediss://localhost:${port}`,
    REDIS_USERNAME: PRINCIPALS[who],
    REDIS_PASSWORD_FILE: secretFile(secrets, who),
    REDIS_TLS_CA_FILE: certs.ca,
  };
}
