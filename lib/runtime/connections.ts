import fs from "node:fs";
import { SfError } from "../errors.ts";

/**
 * Connection settings, read from an environment map handed in by an entry point (never
 * from topology files). A topology names a connection; `default` uses the plain variable
 * (REDIS_URL), any other name the suffixed one (REDIS_URL__CACHE). Every variable may
 * instead name a file holding the value: REDIS_PASSWORD_FILE=/run/secrets/redis.
 */
export class Connections {
  private readonly env: Readonly<Record<string, string | undefined>>;
  constructor(env: Readonly<Record<string, string | undefined>>) {
    this.env = env;
  }

  private key(variable: string, name: string): string {
    return name === "default" ? variable : `${variable}__${name.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
  }

  /** The value of `variable` for connection `name`, from the variable or its _FILE. */
  get(variable: string, name = "default"): string | undefined {
    const key = this.key(variable, name);
    const direct = this.env[key];
    if (direct !== undefined && direct !== "") return direct;
    const file = this.env[`${key}_FILE`];
    if (file) {
      try {
        return fs.readFileSync(file, "utf8").trim();
      } catch (err) {
        throw new SfError("SF_ERR_CONFIG_MISSING", `${key}_FILE names ${file}, which cannot be read`, { cause: err });
      }
    }
    return undefined;
  }

  require(variable: string, name = "default"): string {
    const v = this.get(variable, name);
    if (v === undefined) {
      const key = this.key(variable, name);
      throw new SfError("SF_ERR_CONFIG_MISSING", `connection "${name}" needs ${key} (or ${key}_FILE) in the environment`);
    }
    return v;
  }

  /** Reads a file named by `variable` (TLS material), or undefined when unset. */
  file(variable: string, name = "default"): Buffer | undefined {
    const path = this.get(variable, name);
    if (!path) return undefined;
    try {
      return fs.readFileSync(path);
    } catch (err) {
      throw new SfError("SF_ERR_CONFIG_MISSING", `${this.key(variable, name)} names ${path}, which cannot be read`, { cause: err });
    }
  }

  flag(variable: string, name = "default"): boolean {
    const v = this.get(variable, name);
    return v === "1" || v === "true" || v === "yes";
  }
}

/** A URL with its password masked, fit for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable url>";
  }
}
