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

  /** The variable `variable` is read from for connection `name` (REDIS_URL__CACHE), for messages. */
  variable(variable: string, name = "default"): string {
    return this.key(variable, name);
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

/** How one connection is secured, for the messages of `securityError`. */
export interface SecuredConnection {
  /** The server kind and connection name, e.g. `Kafka connection "default"`. */
  what: string;
  /** Where, without credentials (a redacted URL, host:port). */
  target: string;
  /** The variables that hold the credentials, e.g. "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)". */
  credentials: string;
  /** The variable of the trusted CA, e.g. "KAFKA_SSL_CA_FILE". */
  ca: string;
}

const UNTRUSTED = new Set(["SELF_SIGNED_CERT_IN_CHAIN", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE", "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "CERT_UNTRUSTED", "CERT_SIGNATURE_FAILURE"]);

/** The TLS verification code of an error or one of its causes (clients wrap socket errors). */
function tlsCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (UNTRUSTED.has(code) || code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID" || code === "ERR_TLS_CERT_ALTNAME_INVALID")) return code;
  }
  return undefined;
}

/**
 * A certificate the client refused, as one non-retriable SfError naming the connection and
 * what to check; undefined for any other failure. The message holds no secret: it is built
 * from the connection's description, never from the client's error text.
 */
export function tlsError(err: unknown, c: SecuredConnection): SfError | undefined {
  const code = tlsCode(err);
  if (!code) return undefined;
  const why =
    code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID"
      ? "the server's TLS certificate is outside its validity period (expired, or the clock is wrong): renew the server's certificate"
      : code === "ERR_TLS_CERT_ALTNAME_INVALID"
        ? "the server's TLS certificate does not name the host connected to: connect by a name the certificate holds"
        : `the server's TLS certificate is not signed by a CA this worker trusts: check ${c.ca}`;
  return new SfError("SF_ERR_TLS_UNTRUSTED", `${c.what} (${c.target}): ${why} [${code}]`, { cause: err });
}

/** The server refused the credentials: one non-retriable SfError naming what to check. */
export function authFailed(err: unknown, c: SecuredConnection, detail = "the server refused the credentials"): SfError {
  return new SfError("SF_ERR_AUTH_FAILED", `${c.what} (${c.target}): ${detail}: check ${c.credentials}`, { cause: err });
}

/** The server's ACLs deny `resource` to `principal`: one non-retriable SfError. */
export function authDenied(err: unknown, c: SecuredConnection, principal: string, resource: string): SfError {
  return new SfError("SF_ERR_AUTH_DENIED", `${c.what} (${c.target}): the ACLs deny ${principal} ${resource}: grant it on the server or change the topology`, { cause: err });
}
