import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { which } from "../daemon.ts";
import { StackError } from "../errors.ts";

/**
 * The secured stack's certificates, made once with openssl under `<dir>`: a local CA, one
 * server certificate for localhost and 127.0.0.1 (every secured server presents it; it also
 * serves as the Kafka controller's client certificate), and, for the tests of what a client
 * does with a bad certificate, a second CA nobody trusts with a server certificate of its
 * own, and a server certificate of the real CA that expired in 2020.
 */
export interface Certs {
  dir: string;
  /** The CA every client trusts (PEM). */
  ca: string;
  /** The server certificate (PEM) and its unencrypted PKCS#8 key. */
  cert: string;
  key: string;
  /** cert + key in one PEM file (Kafka's PEM keystore). */
  keystore: string;
  /** A server certificate and key signed by a CA no client trusts. */
  untrustedCert: string;
  untrustedKey: string;
  /** A server certificate of the real CA, valid only in 2020. */
  expiredCert: string;
  expiredKey: string;
}

export function certPaths(dir: string): Certs {
  const p = (f: string) => path.join(dir, f);
  return {
    dir,
    ca: p("ca.pem"),
    cert: p("server.pem"),
    key: p("server.key"),
    keystore: p("server-keystore.pem"),
    untrustedCert: p("untrusted.pem"),
    untrustedKey: p("untrusted.key"),
    expiredCert: p("expired.pem"),
    expiredKey: p("expired.key"),
  };
}

const SERVER_EXT = [
  "basicConstraints=CA:FALSE",
  "keyUsage=digitalSignature,keyEncipherment",
  // serverAuth for every server, clientAuth for the Kafka broker talking to its controller
  "extendedKeyUsage=serverAuth,clientAuth",
  "subjectAltName=DNS:localhost,IP:127.0.0.1",
].join("\n");

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) {
    throw new StackError("SF_ERR_STACK_CERTS", `openssl ${args[0]} failed while making the secured stack's certificates: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  }
}

/** Makes the certificates once (a complete set is reused); returns their paths. */
export function ensureCerts(dir: string, validDays = 825): Certs {
  const c = certPaths(dir);
  if ([c.ca, c.keystore, c.untrustedCert, c.expiredCert].every((f) => fs.existsSync(f))) return c;
  if (!which("openssl")) throw new StackError("SF_ERR_STACK_CERTS", "openssl is not on PATH: install it (`apt-get install openssl`); the secured stack makes its certificates with it");
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, "server.ext"), SERVER_EXT);
  const ca = (name: string, cn: string) =>
    openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", String(validDays), "-subj", `/CN=${cn}`, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  const server = (name: string, caName: string, dates: string[]) => {
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", "/CN=localhost/O=streamfleet"], dir);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${caName}.pem`, "-CAkey", `${caName}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-extfile", "server.ext", ...dates], dir);
  };
  ca("ca", "streamfleet local CA");
  server("server", "ca", ["-days", String(validDays)]);
  ca("other-ca", "a CA no streamfleet client trusts");
  server("untrusted", "other-ca", ["-days", String(validDays)]);
  expired(dir);
  fs.writeFileSync(c.keystore, fs.readFileSync(c.cert, "utf8") + fs.readFileSync(c.key, "utf8"));
  for (const f of fs.readdirSync(dir)) {
    if (f.endsWith(".csr") || f.endsWith(".srl") || f === "server.ext") fs.rmSync(path.join(dir, f));
    else fs.chmodSync(path.join(dir, f), f.endsWith(".key") || f.includes("keystore") ? 0o600 : 0o644);
  }
  return c;
}

/** A certificate of the real CA whose validity ended in 2020 (`openssl ca` sets past dates). */
function expired(dir: string): void {
  fs.mkdirSync(path.join(dir, "ca-db"), { recursive: true });
  fs.writeFileSync(path.join(dir, "ca-db", "index.txt"), "");
  fs.writeFileSync(path.join(dir, "ca-db", "serial"), "1000\n");
  fs.writeFileSync(
    path.join(dir, "ca.cnf"),
    `[ca]\ndefault_ca=local\n[local]\ndir=${dir}\ndatabase=$dir/ca-db/index.txt\nserial=$dir/ca-db/serial\nnew_certs_dir=$dir/ca-db\ndefault_md=sha256\npolicy=any\ncopy_extensions=none\nunique_subject=no\n[any]\ncommonName=supplied\norganizationName=optional\n[ext]\n${SERVER_EXT}\n`,
  );
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=localhost/O=streamfleet"], dir);
  openssl(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-in", "expired.csr", "-out", "expired.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "ext", "-notext"], dir);
  fs.rmSync(path.join(dir, "ca-db"), { recursive: true, force: true });
  fs.rmSync(path.join(dir, "ca.cnf"));
}
