// The sessions the STS stand-in issues: minting temporary credentials for a role, how long
// a session may last, and how a session is written in AssumeRole* replies. The store is
// what the /_local/ endpoints read for the S3 and RDS gates.
import { createHash, randomBytes, randomInt } from "node:crypto";
import { roleArnOf, type RoleConfig } from "./config.ts";
import { validationError } from "./errors.ts";
import type { PolicyDocument } from "./iamPolicy.ts";
import { DEFAULT_DURATION_SECONDS, ROLE_CHAINING_MAX_SECONDS } from "./limits.ts";
import { isoSeconds, type XmlFields } from "./xml.ts";

const UPPER_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

export interface Session {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  /** When STS issued it: aws:TokenIssueTime. */
  issuedAt: Date;
  roleArn: string;
  assumedRoleArn: string;
  assumedRoleId: string;
  accountId: string;
  /** The role's permission policies as they were when the session was issued. */
  rolePolicies: PolicyDocument[];
  sessionPolicies?: PolicyDocument[];
}

export interface SessionStore {
  /** By access key id. */
  sessions: Map<string, Session>;
  issuedSecretAccessKeys: string[];
  issuedSessionTokens: string[];
}

interface SessionGrant {
  accountId: string;
  role: RoleConfig;
  roleSessionName: string;
  durationSeconds: number;
  sessionPolicies?: PolicyDocument[];
}

function randomUpperAlnum(length: number): string {
  return Array.from({ length }, () => UPPER_ALNUM[randomInt(UPPER_ALNUM.length)]).join("");
}

/** A role's unique id is stable (AWS assigns it once at creation), so derive it from the role's ARN. */
function roleUniqueId(roleArn: string): string {
  const digest = createHash("sha256").update(roleArn).digest();
  // AROA + 17 characters: the length of real role ids.
  return `AROA${Array.from(digest.subarray(0, 17), (b) => UPPER_ALNUM[b % UPPER_ALNUM.length]).join("")}`;
}

export function mintSession(store: SessionStore, grant: SessionGrant): Session {
  const roleArn = roleArnOf(grant.accountId, grant.role.roleName);
  // STS reports expirations to the second.
  const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
  const expiration = new Date(issuedAt.getTime() + grant.durationSeconds * 1000);
  const session: Session = {
    // Temporary credentials' key ids start with ASIA; long-term keys with AKIA.
    accessKeyId: `ASIA${randomUpperAlnum(16)}`,
    secretAccessKey: randomBytes(30).toString("base64"),
    sessionToken: randomBytes(300).toString("base64"),
    expiration,
    issuedAt,
    roleArn,
    assumedRoleArn: `arn:aws:sts::${grant.accountId}:assumed-role/${grant.role.roleName}/${grant.roleSessionName}`,
    assumedRoleId: `${roleUniqueId(roleArn)}:${grant.roleSessionName}`,
    accountId: grant.accountId,
    rolePolicies: grant.role.permissionPolicies,
    sessionPolicies: grant.sessionPolicies,
  };
  store.sessions.set(session.accessKeyId, session);
  store.issuedSecretAccessKeys.push(session.secretAccessKey);
  store.issuedSessionTokens.push(session.sessionToken);
  return session;
}

export function sessionDuration(requested: number | undefined, role: RoleConfig, chained: boolean): number {
  const seconds = requested ?? DEFAULT_DURATION_SECONDS;
  if (chained && seconds > ROLE_CHAINING_MAX_SECONDS) {
    throw validationError("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.");
  }
  if (seconds > role.maxSessionDuration) throw validationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.");
  return seconds;
}

export function credentialsXml(session: Session): XmlFields {
  return {
    AccessKeyId: session.accessKeyId,
    SecretAccessKey: session.secretAccessKey,
    SessionToken: session.sessionToken,
    Expiration: isoSeconds(session.expiration),
  };
}

export function assumedRoleUserXml(session: Session): XmlFields {
  return { Arn: session.assumedRoleArn, AssumedRoleId: session.assumedRoleId };
}
