import fs from "node:fs";
import path from "node:path";

/**
 * PostgreSQL refuses to run as root and RabbitMQ's Erlang cookie belongs to its own user: when
 * the stack runs as root it starts them as their Debian system users, and hands those users
 * the directories (and copies of the TLS files) they need.
 */
export interface SystemUser {
  uid: number;
  gid: number;
  home: string;
}

/** The account `name` from /etc/passwd, or undefined. */
export function systemUser(name: string): SystemUser | undefined {
  try {
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? "/" };
    }
  } catch {
    /* no passwd file */
  }
  return undefined;
}

/** The user a server runs as: `name` when we are root, else ourselves (undefined). */
export function runAs(name: string): SystemUser | undefined {
  return process.getuid?.() === 0 ? systemUser(name) : undefined;
}

/** Gives `dir` (recursively) to `user`, when there is one. */
export function chownTree(dir: string, user: SystemUser | undefined): void {
  if (!user) return;
  fs.chownSync(dir, user.uid, user.gid);
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) chownTree(p, user);
    else fs.chownSync(p, user.uid, user.gid);
  }
}

/** Copies TLS files into `dir` (mode 0600 keys) so a server running as another user can read them. */
export function copyTls(files: Record<string, string>, dir: string): Record<string, string> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const out: Record<string, string> = {};
  for (const [name, src] of Object.entries(files)) {
    const dst = path.join(dir, path.basename(src));
    fs.copyFileSync(src, dst);
    fs.chmodSync(dst, dst.endsWith(".key") ? 0o600 : 0o644);
    out[name] = dst;
  }
  return out;
}
