import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Daemons } from "../daemon.ts";
import { StackError } from "../errors.ts";
import { waitFor } from "../probe.ts";
import type { Certs } from "./certs.ts";
import { PRINCIPALS, readSecret, secretFile } from "./secrets.ts";
import { chownTree, copyTls, runAs } from "./system-user.ts";

/**
 * A PostgreSQL instance of our own (initdb + postgres from the machine's packages, on its
 * own port and data dir): password logins only (scram-sha-256), TCP only over TLS
 * (`hostssl`; a plain connection finds no pg_hba entry), a superuser for set-up and tests
 * and a worker role that owns the `streamfleet` database.
 */
export const SECURE_DATABASE = "streamfleet";

/** The newest installed server's bin dir (Debian: /usr/lib/postgresql/<major>/bin). */
export function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  try {
    const majors = fs.readdirSync(root).filter((d) => fs.existsSync(path.join(root, d, "bin", "initdb")));
    majors.sort((a, b) => Number(b) - Number(a));
    return majors[0] ? path.join(root, majors[0], "bin") : undefined;
  } catch {
    return undefined;
  }
}

const HBA = `# written by \`streamfleet stack up --secure\`: passwords only, TCP only with TLS
local   all all                scram-sha-256
hostssl all all 127.0.0.1/32   scram-sha-256
hostssl all all ::1/128        scram-sha-256
`;

export async function startSecurePostgres(daemons: Daemons, stateDir: string, port: number, certs: Certs, secrets: string, timeoutMs: number): Promise<void> {
  const bin = postgresBin();
  if (!bin) throw new StackError("SF_ERR_STACK_NO_POSTGRES", "no PostgreSQL server under /usr/lib/postgresql/*/bin: install it (`apt-get install postgresql`); the secured stack runs its own instance");
  const user = runAs("postgres");
  const home = path.join(stateDir, "postgres");
  const data = path.join(home, "data");
  const socketDir = path.join(home, "socket");
  fs.mkdirSync(socketDir, { recursive: true, mode: 0o700 });
  const tls = copyTls({ cert: certs.cert, key: certs.key }, path.join(home, "tls"));
  const fresh = !fs.existsSync(path.join(data, "PG_VERSION"));
  if (fresh) {
    fs.rmSync(data, { recursive: true, force: true });
    const pwfile = path.join(home, "initdb.pw");
    fs.writeFileSync(pwfile, readSecret(secrets, "pgAdmin"), { mode: 0o600 });
    fs.chmodSync(home, 0o700);
    chownTree(home, user);
    const r = spawnSync(path.join(bin, "initdb"), ["-D", data, "-U", PRINCIPALS.pgAdmin, `--pwfile=${pwfile}`, "--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"], {
      encoding: "utf8",
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
    });
    fs.rmSync(pwfile, { force: true });
    if (r.status !== 0) throw new StackError("SF_ERR_STACK_POSTGRES", `initdb failed: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    fs.writeFileSync(path.join(data, "pg_hba.conf"), HBA);
  }
  chownTree(home, user);
  daemons.start({
    name: "postgres",
    command: path.join(bin, "postgres"),
    args: ["-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${socketDir}`, "-c", "ssl=on", "-c", `ssl_cert_file=${tls.cert}`, "-c", `ssl_key_file=${tls.key}`, "-c", "password_encryption=scram-sha-256"],
    cwd: home,
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  const psql = (sql: string, db = "postgres") =>
    spawnSync(path.join(bin, "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", socketDir, "-p", String(port), "-U", PRINCIPALS.pgAdmin, "-d", db, "-tA"], {
      input: sql,
      encoding: "utf8",
      // The superuser's password reaches psql through its environment, never its arguments.
      env: { ...process.env, PGPASSWORD: readSecret(secrets, "pgAdmin") },
    });
  if (!(await waitFor(async () => psql("select 1").status === 0, timeoutMs))) {
    const tail = daemons.tail("postgres", 3);
    await daemons.stop("postgres");
    throw new StackError("SF_ERR_STACK_TIMEOUT", `the secured PostgreSQL did not come up on 127.0.0.1:${port} within ${timeoutMs / 1000}s: ${tail.slice(-300)}`);
  }
  const hasWorker = psql(`select 1 from pg_roles where rolname = '${PRINCIPALS.pgWorker}'`).stdout.trim() === "1";
  if (!hasWorker) {
    // The password travels on psql's stdin; the server does not log statements by default.
    const r = psql(`create role ${PRINCIPALS.pgWorker} login password '${readSecret(secrets, "pgWorker")}';\ncreate database ${SECURE_DATABASE} owner ${PRINCIPALS.pgWorker};\n`);
    if (r.status !== 0) throw new StackError("SF_ERR_STACK_POSTGRES", `creating the worker role of the secured PostgreSQL failed: ${r.stderr.trim().slice(0, 300)}`);
  }
}

/** The client variables of a PostgreSQL role: verify-full against the stack's CA, the password as a file. */
export function postgresClientEnv(port: number, certs: Certs, secrets: string, who: "pgAdmin" | "pgWorker"): Record<string, string> {
  return {
    DATABASE_URL: `postgres://${PRINCIPALS[who]}@localhost:${port}/${SECURE_DATABASE}`,
    PGPASSWORD_FILE: secretFile(secrets, who),
    PGSSLMODE: "verify-full",
    PGSSLROOTCERT: certs.ca,
  };
}
