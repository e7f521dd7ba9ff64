import pino from "pino";
import type { Logger } from "pino";

/** Keys whose values never reach a log line. */
const REDACT = ["password", "*.password", "token", "*.token", "authorization", "*.authorization", "secret", "*.secret", "url", "*.url"];

/** The process logger: JSON lines on stdout (or a destination), secrets redacted. */
export function createLogger(options: { level?: string; destination?: pino.DestinationStream; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? "streamfleet",
      level: options.level ?? "info",
      redact: { paths: REDACT, censor: "[redacted]" },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ sync: false }),
  );
}

export type { Logger };
