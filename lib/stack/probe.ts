import fs from "node:fs";
import https from "node:https";
import net from "node:net";

/** True when something accepts TCP connections on host:port within the timeout. */
export function tcpOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** True when GET url answers 2xx within the timeout (https with `caFile` trusts that CA). */
export async function httpOk(url: string, timeoutMs = 1000, caFile?: string): Promise<boolean> {
  if (caFile) return httpsOk(url, timeoutMs, fs.readFileSync(caFile));
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function httpsOk(url: string, timeoutMs: number, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 300);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

/** Polls `check` until it is true or the deadline passes. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 250): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Parses "host:port" (first entry of a comma list) into its parts. */
export function hostPort(address: string, defaultPort: number): { host: string; port: number } {
  const first = address.split(",")[0]!.trim();
  const idx = first.lastIndexOf(":");
  if (idx < 0) return { host: first, port: defaultPort };
  return { host: first.slice(0, idx).replace(/^\[|\]$/g, ""), port: Number(first.slice(idx + 1)) };
}

/** Host and port of a URL such as redis://h:p, amqp://u:p@h:p, postgres://h:p/db. */
export function urlHostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1", port: u.port ? Number(u.port) : defaultPort };
}
