// TLS material for the gateway: a CA and a server certificate for localhost / 127.0.0.1
// and the endpoint names configured (an instance's, a cluster's writer and reader, a proxy's).
import forge from "node-forge";
import { generateKeyPair, randomBytes } from "node:crypto";
import { isIP } from "node:net";
import { CERT_BACKDATE_MS, CERT_VALIDITY_MS, RDS_HOST, RSA_BITS } from "./limits.ts";


export interface TlsMaterial {
  caCertPem: string;
  key: Buffer;
  cert: Buffer;
}

/** `endpointHosts`: the endpoint names the certificate also carries (RDS's certificate names its endpoints). */
export async function createTlsMaterial(endpointHosts: string[] = []): Promise<TlsMaterial> {
  const [caKeys, serverKeys] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);
  const ca = caCertificate(caKeys);
  const server = serverCertificate(serverKeys, ca, caKeys.privateKey, endpointHosts);
  return {
    caCertPem: forge.pki.certificateToPem(ca),
    key: Buffer.from(forge.pki.privateKeyToPem(serverKeys.privateKey)),
    cert: Buffer.from(forge.pki.certificateToPem(server)),
  };
}

/** node-forge's pure-JS RSA key generation takes seconds; the runtime's takes milliseconds. */
export function rsaKeyPair(): Promise<forge.pki.rsa.KeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      "rsa",
      { modulusLength: RSA_BITS, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs1", format: "pem" } },
      (err, publicKey, privateKey) => {
        if (err) return reject(err);
        resolve({ publicKey: forge.pki.publicKeyFromPem(publicKey), privateKey: forge.pki.privateKeyFromPem(privateKey) });
      },
    );
  });
}

export function newCertificate(publicKey: forge.pki.rsa.PublicKey): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A DER INTEGER with the top bit set is negative, which strict verifiers refuse.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  cert.serialNumber = serial.toString("hex");
  const now = Date.now();
  cert.validity.notBefore = new Date(now - CERT_BACKDATE_MS);
  cert.validity.notAfter = new Date(now + CERT_VALIDITY_MS);
  return cert;
}

export function caCertificate(keys: forge.pki.rsa.KeyPair): forge.pki.Certificate {
  const cert = newCertificate(keys.publicKey);
  const subject = [{ name: "commonName", value: "RDS stand-in local CA" }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return cert;
}

export function serverCertificate(keys: forge.pki.rsa.KeyPair, ca: forge.pki.Certificate, caKey: forge.pki.rsa.PrivateKey, endpointHosts: string[]): forge.pki.Certificate {
  const cert = newCertificate(keys.publicKey);
  cert.setSubject([{ name: "commonName", value: "localhost" }]);
  cert.setIssuer(ca.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    // verify-full checks the name the client dialled (or its servername) against these.
    { name: "subjectAltName", altNames: subjectAltNames(endpointHosts) },
    { name: "subjectKeyIdentifier" },
    // OpenSSL's strict mode (Python 3.13's default, for one) wants the issuer's key id here.
    { name: "authorityKeyIdentifier", keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return cert;
}


/** localhost, 127.0.0.1 and the endpoints' names (type 2 = DNS, 7 = IP). */
function subjectAltNames(endpointHosts: string[]): { type: number; value?: string; ip?: string }[] {
  const names = [{ type: 2, value: "localhost" }, { type: 7, ip: RDS_HOST }];
  const extra = endpointHosts.filter((host) => host !== "localhost" && host !== RDS_HOST);
  return [...names, ...extra.map((host) => (isIP(host) ? { type: 7, ip: host } : { type: 2, value: host }))];
}
